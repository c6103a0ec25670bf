"""A chat as the front ends drive it: intents in, requests and saved turns out, no Qt.

The window, ``hearth-cli chat`` and the API server share these rules:

- what the model sees (:meth:`Conversation.request`), what regenerate and edit remove;
- what is saved when: the first message creates the chat; each send adds the user message
  and an empty, incomplete reply in one write; the reply is saved as it grows at most every
  ``save_interval_s`` (so a crash loses at most that much); the final save carries the
  metrics, the finish reason and any error;
- which thread owns what: history calls are blocking, so they go through the injected
  ``persist(job, on_done, on_error)`` (the GUI's runs them on its history thread and
  delivers the callbacks on the GUI thread; the CLI's runs them at once). Row ids reach the
  conversation only through ``on_done``, on the caller's thread; a write that needs an id not
  known yet waits until it is (never a guess, never a write from the other thread).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from core.chat.conversation import Conversation, Turn
from core.chat.history import Chat, HistoryStore, Message
from core.engine import DoneEvent, ErrorEvent, GenerationRequest, SamplingParams

log = logging.getLogger("hearth.chat")

Job = Callable[[], Any]
OnDone = Callable[[Any], None]
OnError = Callable[[Exception], None]
Persist = Callable[[Job, OnDone, OnError], None]
SAVE_INTERVAL_S = 0.5


def run_now(job: Job, on_done: OnDone, on_error: OnError) -> None:
    """The synchronous ``persist``: for callers with no GUI thread to keep free."""
    try:
        result = job()
    except Exception as err:  # handed to the caller's error path, never dropped
        on_error(err)
    else:
        on_done(result)


def _ignore(_result: object) -> None:
    return None


class ChatSession:
    """One open conversation and its history. Every method runs on the caller's thread.

    ``store=None`` keeps the chat in memory only (``hearth-cli chat`` without ``--save``).
    ``on_error`` receives every failed history write (the front end shows and logs it)."""

    def __init__(self, store: HistoryStore | None, persist: Persist = run_now,
                 on_error: OnError | None = None, *, save_interval_s: float = SAVE_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self._persist = store, persist
        self._report = on_error or (lambda err: log.error("history write failed: %s", err))
        self.save_interval_s, self._clock = save_interval_s, clock
        self.conversation = Conversation()
        self.model_name = ""
        self.reply: Turn | None = None  # the reply streaming now
        self._pending_ids = 0  # writes whose row ids have not come back yet
        self._deferred: list[Callable[[], Job | None]] = []
        self._last_save = 0.0
        self._dirty = False

    # -- state -----------------------------------------------------------------------------
    @property
    def streaming(self) -> bool:
        return self.reply is not None

    @property
    def chat_id(self) -> int | None:
        return self.conversation.chat_id

    # -- opening ---------------------------------------------------------------------------
    def new_chat(self) -> None:
        self.conversation = Conversation()

    def list_chats(self, query: str, on_done: Callable[[list[Chat]], None]) -> None:
        if self.store is not None:
            store = self.store
            self._persist(lambda: store.list_chats(query), on_done, self._report)

    def open(self, chat_id: int, on_opened: Callable[[Conversation], None]) -> None:
        """Read a chat and make it the current one; ``on_opened`` renders it."""
        if self.store is None:
            return
        store = self.store

        def fetch() -> tuple[Chat | None, list[Message]]:
            return store.get_chat(chat_id), store.messages(chat_id)

        def opened(result: tuple[Chat | None, list[Message]]) -> None:
            chat, messages = result
            if chat is None or self.streaming:
                return
            self.conversation = Conversation.from_history(chat, messages)
            on_opened(self.conversation)

        self._persist(fetch, opened, self._report)

    # -- turns -----------------------------------------------------------------------------
    def send(self, text: str, sampling: SamplingParams, max_tokens: int,
             system_prompt: str | None = None,
             on_saved: Callable[[], None] | None = None,
             stop: list[str] | None = None) -> GenerationRequest:
        """Add the user's message and start the reply; returns the request to run.
        ``on_saved`` runs once both rows (and a new chat's) are written."""
        conv = self.conversation
        if system_prompt is not None:
            conv.system_prompt = system_prompt
        user = conv.add_user(text)
        if conv.chat_id is None:
            conv.title = conv.suggested_title()
        request = conv.request(sampling, max_tokens, stop)
        reply = self._start(conv)
        if self.store is not None:
            store, title, prompt, model = self.store, conv.title, conv.system_prompt, \
                self.model_name

            def make() -> Job:
                chat_id = conv.chat_id  # read when the write is issued: earlier ids are in

                def write() -> tuple[int, int, int]:
                    cid = chat_id if chat_id is not None else store.create_chat(
                        title, prompt, model).id
                    uid = store.add_message(cid, "user", text)
                    return cid, uid, store.add_message(cid, "assistant", "", complete=False)

                return write

            def saved(ids: tuple[int, int, int]) -> None:
                conv.chat_id, user.message_id, reply.message_id = ids
                if on_saved is not None:
                    on_saved()

            self._id_write(make, saved)
        return request

    def regenerate(self, sampling: SamplingParams, max_tokens: int,
                   stop: list[str] | None = None) -> tuple[GenerationRequest, list[Turn]] | None:
        """Drop the last reply (and any error after it) and ask again; returns the request
        and the removed turns (None when there is no user message to answer)."""
        conv = self.conversation
        removed = conv.truncate_for_regenerate()
        if not removed and conv.last_user_index() is None:
            return None
        self._forget(removed)
        request = conv.request(sampling, max_tokens, stop)
        reply = self._start(conv)
        if self.store is not None:
            store = self.store

            def make() -> Job | None:
                chat_id = conv.chat_id
                if chat_id is None:
                    return None
                return lambda: store.add_message(chat_id, "assistant", "", complete=False)

            def saved(message_id: int) -> None:
                reply.message_id = message_id

            self._id_write(make, saved)
        return request, removed

    def edit_last(self) -> tuple[str, list[Turn]]:
        """Take back the last user message (and what followed) to edit and send again."""
        text, removed = self.conversation.truncate_for_edit()
        self._forget(removed)
        return text, removed

    def on_text(self, text: str) -> None:
        """Reply text arrived; saved as it grows, at most every ``save_interval_s``."""
        if self.reply is None:
            return
        self.reply.content += text
        self._dirty = True
        self.tick()

    def tick(self) -> None:
        """Save the growing reply if it changed and the interval has passed (a GUI timer
        calls this too, so a stalled stream's last text is not left unsaved)."""
        reply = self.reply
        if reply is None or not self._dirty or self.store is None:
            return
        now = self._clock()
        if now - self._last_save < self.save_interval_s or reply.message_id is None:
            return
        self._last_save, self._dirty = now, False
        store, message_id, content = self.store, reply.message_id, reply.content
        self._persist(lambda: store.update_message(message_id, content, complete=False),
                      _ignore, self._report)

    def finish(self, final: DoneEvent | ErrorEvent) -> Turn | None:
        """The reply ended: keep its final text (and an error turn when it failed), save it
        with its metrics. Returns the error turn to show, if any."""
        reply, self.reply = self.reply, None
        if reply is None:
            return None
        reply.complete = True
        error_turn = None
        error: str | None = None
        if isinstance(final, DoneEvent):
            reply.content = final.text
            reply.metrics, reply.finish_reason = final.metrics.to_dict(), final.finish_reason
        else:
            reply.content, error = final.partial_text, final.message
            error_turn = Turn("error", final.message)
            self.conversation.turns.append(error_turn)
        if self.store is not None:
            store = self.store
            content, metrics, finish = reply.content, reply.metrics, reply.finish_reason

            def make() -> Job | None:
                message_id = reply.message_id
                if message_id is None:
                    return None
                return lambda: store.update_message(message_id, content, complete=True,
                                                    finish_reason=finish, error=error,
                                                    metrics=metrics)

            self._when_ids_known(make)
        return error_turn

    def close(self) -> None:
        """The front end is closing mid-reply: keep the reply as it stands, cancelled (the
        engine's own final event would come too late for the history)."""
        reply, self.reply = self.reply, None
        if reply is None:
            return
        reply.complete, reply.finish_reason = True, "cancelled"
        if self.store is not None:
            store, content = self.store, reply.content

            def make() -> Job | None:
                message_id = reply.message_id
                if message_id is None:
                    return None
                return lambda: store.update_message(message_id, content, complete=True,
                                                    finish_reason="cancelled")

            self._when_ids_known(make)

    # -- the chat itself -------------------------------------------------------------------
    def set_system_prompt(self, text: str) -> None:
        conv = self.conversation
        conv.system_prompt = text
        self._chat_write(conv, lambda store, cid: store.update_chat(cid, system_prompt=text))

    def rename(self, chat_id: int, title: str, on_done: OnDone = _ignore) -> None:
        if chat_id == self.conversation.chat_id:
            self.conversation.title = title
        if self.store is not None:
            store = self.store
            self._persist(lambda: store.update_chat(chat_id, title=title), on_done,
                          self._report)

    def delete_chat(self, chat_id: int, on_done: OnDone = _ignore) -> None:
        if chat_id == self.conversation.chat_id:
            self.new_chat()
        if self.store is not None:
            store = self.store
            self._persist(lambda: store.delete_chat(chat_id), on_done, self._report)

    # -- internals -------------------------------------------------------------------------
    def _start(self, conv: Conversation) -> Turn:
        self.reply = conv.start_reply()
        self._last_save, self._dirty = self._clock(), False
        return self.reply

    def _forget(self, removed: list[Turn]) -> None:
        """Delete the rows of removed turns (once their ids are known)."""
        if self.store is None or not removed:
            return
        store, conv = self.store, self.conversation

        def make() -> Job | None:
            first = next((t.message_id for t in removed if t.message_id is not None), None)
            chat_id = conv.chat_id
            if chat_id is None or first is None:
                return None
            return lambda: store.delete_messages_from(chat_id, first)

        self._when_ids_known(make)

    def _chat_write(self, conv: Conversation,
                    write: Callable[[HistoryStore, int], object]) -> None:
        if self.store is None:
            return
        store = self.store

        def make() -> Job | None:
            chat_id = conv.chat_id
            return None if chat_id is None else (lambda: write(store, chat_id))

        self._when_ids_known(make)

    def _id_write(self, make: Callable[[], Job | None], apply: OnDone) -> None:
        """A write whose result is row ids: ``apply`` stores them (caller's thread); later
        writes that need ids wait for it."""
        def done(result: object) -> None:
            if result is not None:
                apply(result)
            self._ids_arrived()

        self._when_ids_known(make, done)

    def _when_ids_known(self, make: Callable[[], Job | None],
                        on_done: OnDone | None = None) -> None:
        """Issue the write ``make()`` builds once no id is outstanding (``make`` runs on the
        caller's thread and reads the ids there); ``on_done`` marks an id-producing write."""
        if self._pending_ids or self._deferred:
            self._deferred.append(lambda: self._issue(make, on_done))
            return
        self._issue(make, on_done)

    def _issue(self, make: Callable[[], Job | None], on_done: OnDone | None) -> None:
        if on_done is not None:
            self._pending_ids += 1
        job = make()
        if job is None:
            if on_done is not None:
                on_done(None)
            return
        self._persist(job, on_done or _ignore,
                      self._failed_ids if on_done is not None else self._report)

    def _ids_arrived(self) -> None:
        self._pending_ids -= 1
        while self._deferred and not self._pending_ids:
            self._deferred.pop(0)()

    def _failed_ids(self, err: Exception) -> None:
        self._ids_arrived()
        self._report(err)
