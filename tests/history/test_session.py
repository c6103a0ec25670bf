"""The chat rules every front end shares (core.chat.session): what is saved when, what
regenerate and edit remove, and row ids that reach the conversation only through results,
on the caller's thread, however late the history thread answers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.chat.conversation import Conversation
from core.chat.history import HistoryStore
from core.chat.session import ChatSession
from core.engine import DoneEvent, ErrorEvent, RequestMetrics, SamplingParams

GREEDY = SamplingParams(preset="greedy", temperature=0.0)


class LaterQueue:
    """A ``persist`` that holds jobs until :meth:`run_all`, as a busy history thread
    would: the session must not read an id before the job that makes it has answered."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Callable, Callable, Callable]] = []

    def __call__(self, job: Callable, on_done: Callable, on_error: Callable) -> None:
        self.jobs.append((job, on_done, on_error))

    def run_all(self) -> None:
        while self.jobs:
            job, on_done, on_error = self.jobs.pop(0)
            try:
                result = job()
            except Exception as err:
                on_error(err)
            else:
                on_done(result)


def done(text: str, tokens: int = 3) -> DoneEvent:
    return DoneEvent("eos", text, RequestMetrics(decode_tokens=tokens, decode_ms=20.0))


@pytest.fixture
def store(tmp_path: Path):
    with HistoryStore(tmp_path / "h.sqlite3") as s:
        yield s


def test_send_saves_chat_user_and_empty_reply_then_the_final_reply(store) -> None:
    session = ChatSession(store)
    request = session.send("Name a colour", GREEDY, 16, "Be brief.")
    assert [m.role for m in request.messages] == ["system", "user"]
    [chat] = store.list_chats()
    assert (chat.title, chat.system_prompt) == ("Name a colour", "Be brief.")
    user, reply = store.messages(chat.id)
    assert (user.content, reply.content, reply.complete) == ("Name a colour", "", False)
    assert session.conversation.chat_id == chat.id
    assert session.conversation.turns[-1].message_id == reply.id
    session.on_text("Bl")
    session.finish(done("Blue"))
    _, reply = store.messages(chat.id)
    assert reply.content == "Blue" and reply.complete and reply.finish_reason == "eos"
    assert reply.metrics is not None and reply.metrics["decode_tokens"] == 3


def test_partial_saves_at_most_every_interval(store) -> None:
    now = [0.0]
    session = ChatSession(store, save_interval_s=0.5, clock=lambda: now[0])
    session.send("Tell a story", GREEDY, 64)
    chat_id = session.conversation.chat_id

    def saved() -> str:
        return store.messages(chat_id)[1].content

    session.on_text("Once")
    assert saved() == ""  # 0 s since the reply started: not yet
    now[0] = 0.6
    session.on_text(" upon")
    assert saved() == "Once upon"
    now[0] = 0.7
    session.on_text(" a time")
    assert saved() == "Once upon"  # 0.1 s since the last save
    session.tick()
    assert saved() == "Once upon"
    now[0] = 1.2
    session.tick()  # a stalled stream still gets its text saved
    assert saved() == "Once upon a time"


def test_ids_arrive_late_and_every_write_waits_for_them(store) -> None:
    later = LaterQueue()
    session = ChatSession(store, later)
    session.send("First", GREEDY, 16)
    session.on_text("partial")
    assert session.conversation.chat_id is None  # the history thread has not answered
    session.finish(done("First reply"))
    result = session.regenerate(GREEDY, 16)  # before any id is known
    assert result is not None and [t.role for t in result[1]] == ["assistant"]
    session.finish(done("Second reply"))
    assert len(later.jobs) == 1  # the rest waits for the ids of the first write
    later.run_all()
    chat_id = session.conversation.chat_id
    assert chat_id is not None
    rows = store.messages(chat_id)
    assert [(m.role, m.content, m.complete) for m in rows] == [
        ("user", "First", True), ("assistant", "Second reply", True)]
    assert [t.message_id for t in session.conversation.turns] == [m.id for m in rows]
    assert len(store.list_chats()) == 1


def test_second_message_before_the_chat_row_exists_joins_the_same_chat(store) -> None:
    later = LaterQueue()
    session = ChatSession(store, later)
    session.send("One", GREEDY, 16)
    session.finish(done("1"))
    session.send("Two", GREEDY, 16)
    session.finish(done("2"))
    later.run_all()
    [chat] = store.list_chats()
    assert [m.content for m in store.messages(chat.id)] == ["One", "1", "Two", "2"]


def test_edit_last_removes_the_turn_and_its_rows(store) -> None:
    session = ChatSession(store)
    session.send("Name a fruit", GREEDY, 16)
    session.finish(done("Apple"))
    text, removed = session.edit_last()
    assert text == "Name a fruit" and [t.role for t in removed] == ["user", "assistant"]
    assert store.messages(session.conversation.chat_id) == []
    assert session.regenerate(GREEDY, 16) is None  # nothing left to answer


def test_an_error_keeps_the_partial_reply_and_is_saved(store) -> None:
    session = ChatSession(store)
    session.send("Hello", GREEDY, 16)
    session.on_text("Hel")
    error_turn = session.finish(ErrorEvent("The engine process stopped.", "WorkerDied", "Hel"))
    assert error_turn is not None and error_turn.role == "error"
    _, reply = store.messages(session.conversation.chat_id)
    assert (reply.content, reply.error) == ("Hel", "The engine process stopped.")
    # The error is shown but never sent to the model; the partial reply is.
    request = session.send("Again", GREEDY, 16)
    assert [(m.role, m.content) for m in request.messages] == [
        ("user", "Hello"), ("assistant", "Hel"), ("user", "Again")]
    reopened = Conversation.from_history(store.get_chat(session.chat_id),
                                         store.messages(session.chat_id))
    assert [t.role for t in reopened.turns] == ["user", "assistant", "error", "user",
                                                "assistant"]


def test_failed_writes_reach_the_error_path_and_the_session_goes_on(tmp_path: Path) -> None:
    errors: list[Exception] = []
    store = HistoryStore(tmp_path / "h.sqlite3")
    store.close()  # every write now fails for real
    session = ChatSession(store, on_error=errors.append)
    session.send("Hello", GREEDY, 16)
    session.finish(done("Hi"))
    session.send("Still there?", GREEDY, 16)
    assert errors and all("closed" in str(e) for e in errors)
    assert [t.role for t in session.conversation.turns] == ["user", "assistant", "user",
                                                            "assistant"]


def test_without_a_store_nothing_is_written(tmp_path: Path) -> None:
    session = ChatSession(None)
    session.send("Hi", GREEDY, 8)
    session.on_text("Hello")
    session.finish(done("Hello!"))
    assert [t.content for t in session.conversation.turns] == ["Hi", "Hello!"]
    assert not list(tmp_path.iterdir())


def test_closing_mid_reply_keeps_what_was_said(store) -> None:
    session = ChatSession(store)
    session.send("Tell me a story", GREEDY, 64)
    session.on_text("Once upon")
    session.close()
    assert not session.streaming
    _, reply = store.messages(session.chat_id)
    assert (reply.content, reply.complete, reply.finish_reason) == ("Once upon", True,
                                                                    "cancelled")
    assert session.finish(done("late")) is None  # the engine's late final event is ignored
