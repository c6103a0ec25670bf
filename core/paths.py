"""Where Hearth keeps its files.

Everything lives under one home folder: the platform's user data dir (platformdirs), or
``$HEARTH_HOME`` when set, so tests and portable installs can isolate themselves with one
variable.

The folder holds chats, batch files, indexes and keys, so it is the user's alone: folders
0700 and files 0600 (an existing 0755 folder is tightened on first use). Windows has no
such modes; its per-user profile folder already keeps other accounts out.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import platformdirs

APP_NAME = "Hearth"


def hearth_home() -> Path:
    """The root of Hearth's data (models, history, settings); created on first use."""
    override = os.environ.get("HEARTH_HOME")
    home = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, False))
    return private_dir(home)


def private_dir(path: Path) -> Path:
    """``path`` as a folder only its owner can enter (created if missing)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
    return path


def private_file(path: Path) -> Path:
    """``path`` as a file only its owner can read (created empty if missing), so what is
    written into it next is never readable by others, not even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    with contextlib.suppress(OSError):
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    return path


def models_dir() -> Path:
    """Models Hearth owns (the bundled default, imports, quantized twins)."""
    return private_dir(hearth_home() / "models")
