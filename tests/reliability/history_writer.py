"""A stand-in for the app's history writes, run as a process the test kills with SIGKILL.

It uses :class:`HistoryStore` exactly as ``app/main_window.py`` does: ``create_chat``,
``add_message`` for the user's turn, ``add_message(complete=False)`` for the reply, then
``update_message(complete=False)`` as the reply grows and a final
``update_message(complete=True)``. After each call returns (the transaction committed) it
prints one line to stdout, so the parent knows exactly what was committed before the kill:

    C <message_id> <n_chars> <sha256 of the content, first 16 hex> <complete 0|1>

Token sources: ``sim`` (seeded random words, as fast as SQLite allows: many commits per
second, so kills land in every phase) or ``engine`` (a real :class:`EngineClient` stream on
the default model, a save every few tokens).
"""

from __future__ import annotations

import hashlib
import random
import sys
from collections.abc import Iterator
from pathlib import Path

from core.chat.history import HistoryStore

WORDS = ("the", "hearth", "keeps", "every", "word", "safe", "ünïcødé", "日本語", "🔥", "\n")


def _sim_tokens(rng: random.Random) -> Iterator[str]:
    for _ in range(rng.randrange(20, 200)):
        yield rng.choice(WORDS) + " "


def _engine_tokens(client: object, prompt: str) -> Iterator[str]:
    from core.engine.api import GenerationRequest, TextEvent

    request = GenerationRequest(prompt=prompt, max_tokens=48)
    for event in client.generate(request):  # type: ignore[attr-defined]
        if isinstance(event, TextEvent):
            yield event.text


def _report(message_id: int, content: str, complete: bool) -> None:
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    print(f"C {message_id} {len(content)} {digest} {int(complete)}", flush=True)


def main(db: Path, seed: int, source: str, every: int = 4) -> None:
    rng = random.Random(seed)
    client = None
    if source == "engine":
        from core.engine.config import EngineConfig
        from core.engine.process.client import EngineClient
        from core.models.bundled import default_model_path
        from tests.paths import MODEL_CACHE

        client = EngineClient()
        client.load(EngineConfig(model_path=default_model_path(MODEL_CACHE), n_ctx=256,
                                 n_gpu_layers=0))
    store = HistoryStore(db)
    print("READY", flush=True)
    turn = 0
    while True:
        chat = store.create_chat(f"run {seed} chat {turn}", "be brief", "test-model")
        for _ in range(rng.randrange(1, 4)):
            turn += 1
            question = f"question {turn} of run {seed}"
            _report(store.add_message(chat.id, "user", question), question, True)
            reply_id = store.add_message(chat.id, "assistant", "", complete=False)
            _report(reply_id, "", False)
            tokens = (_engine_tokens(client, question) if client is not None
                      else _sim_tokens(rng))
            content = ""
            for i, token in enumerate(tokens, 1):
                content += token
                if i % every == 0:
                    store.update_message(reply_id, content, complete=False)
                    _report(reply_id, content, False)
            store.update_message(reply_id, content, complete=True, finish_reason="length",
                                 metrics={"decode_tokens": len(content)})
            _report(reply_id, content, True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
