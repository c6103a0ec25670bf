"""Where Hearth keeps its files.

Everything lives under one home folder: the platform's user data dir (platformdirs), or
``$HEARTH_HOME`` when set, so tests and portable installs can isolate themselves with one
variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "Hearth"


def hearth_home() -> Path:
    """The root of Hearth's data (models, history, settings); created on first use."""
    override = os.environ.get("HEARTH_HOME")
    home = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, False))
    home.mkdir(parents=True, exist_ok=True)
    return home


def models_dir() -> Path:
    """Models Hearth owns (the bundled default, imports, quantized twins)."""
    path = hearth_home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path
