"""API keys for remote engines: the OS keyring, or a file only the user can read.

Keys go to the system keyring (``keyring``: Secret Service, macOS Keychain, Windows
Credential Locker) when one works. Where none exists (a headless Linux box, a minimal
desktop without a Secret Service), they go to ``secrets.json`` in Hearth's home, created
with mode 0600 and checked on every read: a file that others can read is tightened and the
fact logged. Nothing else in Hearth stores a key: settings, the endpoint list, the history
and the log name an endpoint by its id and address only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import threading
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.paths import hearth_home

log = logging.getLogger("hearth.secrets")

SERVICE = "Hearth"
SECRETS_FILE = "secrets.json"


def _usable_keyring() -> Any | None:
    """The system keyring backend, or None where there is none (``keyring`` then falls
    back to its ``fail`` backend, priority 0, which raises on every call)."""
    import keyring

    try:
        backend = keyring.get_keyring()
        priority = float(backend.priority)
    except Exception as err:  # a broken keyring set-up is the same as none
        log.warning("no usable keyring (%s); keys go to an owner-only file", err)
        return None
    return backend if priority > 0 else None


class KeyStore:
    """Stores one secret per name (an endpoint's id). ``backend``: a ``keyring`` backend to
    use (default: the system's, if any); ``path``: the fallback file (default:
    ``secrets.json`` in Hearth's home). ``where`` says in words which one is in use."""

    def __init__(self, backend: Any | None = None, path: Path | None = None,
                 use_keyring: bool = True) -> None:
        self._given = backend
        self._use_keyring = use_keyring
        self._resolved = backend is not None or not use_keyring
        self._path = path
        self._lock = threading.Lock()

    @property
    def _backend(self) -> Any | None:
        """The keyring backend, looked up on first use (finding one scans the installed
        backends: not something to do on a GUI thread at start-up)."""
        if not self._resolved:
            self._given = _usable_keyring()
            self._resolved = True
        return self._given

    @property
    def path(self) -> Path:
        return self._path or hearth_home() / SECRETS_FILE

    @property
    def uses_keyring(self) -> bool:
        return self._backend is not None

    @property
    def where(self) -> str:
        if self._backend is not None:
            return f"the system keyring ({type(self._backend).__name__})"
        return f"a file only you can read ({self.path})"

    # -- the API -------------------------------------------------------------------------
    def get(self, name: str) -> str | None:
        """The secret stored under ``name``, or None (also when the keyring fails: that is
        logged, and the request then goes without a key and gets the server's answer)."""
        if self._backend is not None:
            try:
                return self._backend.get_password(SERVICE, name)
            except Exception as err:
                log.error("the keyring could not read the key of %s: %s", name, err)
                return None
        with self._lock:
            return self._read().get(name)

    def set(self, name: str, secret: str) -> None:
        """Store ``secret`` under ``name`` (an empty secret deletes it)."""
        if not secret:
            self.delete(name)
            return
        if self._backend is not None:
            try:
                self._backend.set_password(SERVICE, name, secret)
            except Exception as err:
                raise ConfigError(f"The system keyring refused to store the key ({err}).") \
                    from None
            return
        with self._lock:
            data = self._read()
            data[name] = secret
            self._write(data)

    def delete(self, name: str) -> None:
        if self._backend is not None:
            with contextlib.suppress(Exception):  # not there: nothing to delete
                self._backend.delete_password(SERVICE, name)
            return
        with self._lock:
            data = self._read()
            if data.pop(name, None) is not None:
                self._write(data)

    # -- the owner-only file --------------------------------------------------------------
    def _read(self) -> dict[str, str]:
        path = self.path
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            return {}
        if mode & 0o077:
            log.warning("%s was readable by others (mode %o); made owner-only", path, mode)
            path.chmod(0o600)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(f"The key file {path} is damaged ({err}); remove it and enter "
                              "the keys again in Settings › Engines.") from None
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _write(self, data: dict[str, str]) -> None:
        """Atomically replace the file; the temporary is created 0600, so the secret is
        never on disk with wider permissions, not even for a moment."""
        path = self.path
        tmp = path.with_suffix(".json.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(tmp, path)
        path.chmod(0o600)
