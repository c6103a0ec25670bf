"""One exception base for the core, caught where the UI (GUI or CLI) meets the core.

Every message is a sentence a user can act on: what happened and what to do. Subclasses
exist so callers can react differently (e.g. offer a smaller context), not to carry detail
that the message lacks.
"""

from __future__ import annotations


class HearthError(Exception):
    """Base of every error the core raises on purpose; ``str(err)`` is the user's message."""


class ModelFileError(HearthError):
    """The model file is missing, unreadable, not a GGUF, or truncated."""


class UnsupportedModelError(HearthError):
    """The file is a valid GGUF but llama.cpp cannot run it (unknown architecture, ...)."""


class ContextTooLargeError(HearthError):
    """The requested context does not fit in memory."""


class PromptTooLongError(HearthError):
    """The prompt (plus room for one reply token) does not fit in the context."""


class EngineError(HearthError):
    """llama.cpp failed at run time (decode error, worker crash, ...)."""


class ConfigError(HearthError):
    """A setting or command-line value is invalid."""


class QueueFullError(EngineError):
    """Too many requests are waiting; ``retry_after_s`` is a fair guess of when to retry
    (the API answers 429 with it as ``Retry-After``)."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ContextFullError(EngineError):
    """The KV cache cannot hold this request next to the ones already running."""
