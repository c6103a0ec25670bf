"""The documents feature's errors: one sentence each, what happened and what to do."""

from __future__ import annotations

from core.errors import HearthError


class DocumentsError(HearthError):
    """A collection or the index cannot be used as asked (unknown name, damaged store...)."""


class ReadError(HearthError):
    """One file cannot be read (unsupported type, damaged, encrypted); the others go on."""
