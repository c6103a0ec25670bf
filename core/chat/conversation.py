"""A chat's state as plain Python: turns, the system prompt, and the requests they make.

The GUI renders a Conversation and calls its methods; nothing here knows about Qt, the
engine process or the database, so the rules (what regenerate removes, what the model sees)
are tested without any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.engine import ChatMessage, GenerationRequest, SamplingParams

if TYPE_CHECKING:
    from core.chat.history import Chat, Message


@dataclass
class Turn:
    """One message. ``error`` turns are shown to the user but never sent to the model."""

    role: str  # "user", "assistant" or "error"
    content: str = ""
    message_id: int | None = None  # its row in the history, once saved
    metrics: dict[str, Any] | None = None
    finish_reason: str | None = None
    complete: bool = True


@dataclass
class Conversation:
    chat_id: int | None = None
    title: str = "New chat"
    system_prompt: str = ""
    turns: list[Turn] = field(default_factory=list)

    @classmethod
    def from_history(cls, chat: Chat, messages: list[Message]) -> Conversation:
        """A saved chat as turns: a reply that failed keeps its partial text as the reply
        and its error as an ``error`` turn after it (one ``error`` turn when nothing came)."""
        conv = cls(chat.id, chat.title, chat.system_prompt)
        for m in messages:
            if m.error and not m.content:
                conv.turns.append(Turn("error", m.error, m.id))
                continue
            conv.turns.append(Turn(m.role, m.content, m.id, m.metrics, m.finish_reason,
                                   m.complete))
            if m.error:
                conv.turns.append(Turn("error", m.error))
        return conv

    def add_user(self, text: str) -> Turn:
        turn = Turn("user", text)
        self.turns.append(turn)
        return turn

    def start_reply(self) -> Turn:
        turn = Turn("assistant", "", complete=False)
        self.turns.append(turn)
        return turn

    def messages(self) -> list[ChatMessage]:
        """What the model sees: the system prompt and every finished user/assistant turn
        (a cancelled reply's partial text included: it is what the user saw; a reply that
        failed before its first word is not a turn of the conversation)."""
        out = [ChatMessage("system", self.system_prompt)] if self.system_prompt.strip() else []
        out += [ChatMessage(t.role, t.content) for t in self.turns  # type: ignore[arg-type]
                if t.role == "user" or (t.role == "assistant" and t.content)]
        return out

    def request(self, sampling: SamplingParams, max_tokens: int,
                stop: list[str] | None = None) -> GenerationRequest:
        """The request for the reply being started (the last turn is the empty reply)."""
        messages = self.messages()
        return GenerationRequest(messages=messages, sampling=sampling, max_tokens=max_tokens,
                                 stop=list(stop or []))

    def last_user_index(self) -> int | None:
        for i in range(len(self.turns) - 1, -1, -1):
            if self.turns[i].role == "user":
                return i
        return None

    def truncate_for_regenerate(self) -> list[Turn]:
        """Remove everything after the last user turn (the reply and any error); returns
        the removed turns so their history rows can be deleted."""
        index = self.last_user_index()
        if index is None:
            return []
        removed, self.turns = self.turns[index + 1 :], self.turns[: index + 1]
        return removed

    def truncate_for_edit(self) -> tuple[str, list[Turn]]:
        """Remove the last user turn and what followed; returns its text (to edit and
        resend) and the removed turns."""
        index = self.last_user_index()
        if index is None:
            return "", []
        removed, self.turns = self.turns[index:], self.turns[:index]
        return removed[0].content, removed

    def suggested_title(self) -> str:
        """A title from the first user message (the list shows it until renamed)."""
        for turn in self.turns:
            if turn.role == "user" and turn.content.strip():
                line = turn.content.strip().splitlines()[0]
                return line[:40] + ("…" if len(line) > 40 else "")
        return self.title
