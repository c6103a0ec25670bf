"""Hearth's identity on the desktop: its icon files and a freedesktop ``.desktop`` entry.

``hearth --install-desktop-entry`` writes ``hearth.desktop`` into the XDG applications
folder and the icons into the user's hicolor theme, pointing at the ``hearth`` that is
running now (the venv's entry point, or the bundle's executable), so the app then starts
from the desktop menu or a double-click with no terminal. ``--uninstall-desktop-entry``
removes exactly those files. The XDG data folder is a parameter so tests install into a
temporary one; the default follows ``$XDG_DATA_HOME`` as the spec says.

Nothing here imports Qt: installing an entry must work without a display.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from core.errors import HearthError

APP_ID = "hearth"
ICON_SIZES: tuple[int, ...] = (16, 24, 32, 48, 64, 128, 256, 512)


class DesktopEntryError(HearthError):
    """The desktop entry could not be written or removed."""


def assets_dir() -> Path:
    """The icons: next to the code in a checkout, inside the bundle when frozen."""
    frozen = getattr(sys, "_MEIPASS", None)
    base = Path(frozen) if frozen else Path(__file__).resolve().parent.parent
    return base / "assets"


def icon_png(size: int) -> Path:
    return assets_dir() / f"hearth-{size}.png"


def xdg_data_home() -> Path:
    """``$XDG_DATA_HOME`` or ``~/.local/share`` (the freedesktop default)."""
    value = os.environ.get("XDG_DATA_HOME", "")
    return Path(value) if os.path.isabs(value) else Path.home() / ".local" / "share"


def launch_command() -> list[str]:
    """The command that starts this Hearth: the bundle's executable when frozen, else the
    ``hearth`` entry point installed beside this Python, else ``python -m app.main``."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    script = Path(sys.executable).parent / ("hearth.exe" if os.name == "nt" else "hearth")
    if script.is_file():
        return [str(script)]
    found = shutil.which("hearth")
    if found:
        return [found]
    return [sys.executable, "-m", "app.main"]


def _quote(arg: str) -> str:
    """Quote one Exec argument per the Desktop Entry spec (double quotes, escaped)."""
    reserved = set(' \t\n"\'\\><~|&;$*?#()`')
    if arg and not reserved.intersection(arg):
        return arg
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return f'"{escaped}"'


def desktop_entry_text(command: list[str]) -> str:
    """The ``.desktop`` file's text for launching ``command``."""
    # Quoting first, then the string-value escape (a backslash is written twice), then
    # percent signs doubled (field codes): the order the spec gives for reading it back.
    exec_line = " ".join(_quote(a) for a in command).replace("\\", "\\\\")
    exec_line = exec_line.replace("%", "%%")
    try_exec = command[0].replace("\\", "\\\\")
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.4",
        "Name=Hearth",
        "GenericName=Local AI Chat",
        "Comment=Run LLMs on your own machine, with live speed and energy figures",
        f"Exec={exec_line}",
        f"TryExec={try_exec}",
        f"Icon={APP_ID}",
        "Terminal=false",
        "Categories=Utility;",
        "Keywords=LLM;AI;chat;GGUF;llama;",
        "StartupNotify=true",
        "",
    ])


@dataclass(frozen=True)
class DesktopEntry:
    """Where the entry and its icons go under an XDG data folder (injectable for tests)."""

    data_home: Path

    @classmethod
    def default(cls) -> DesktopEntry:
        return cls(xdg_data_home())

    @property
    def desktop_file(self) -> Path:
        return self.data_home / "applications" / f"{APP_ID}.desktop"

    def icon_files(self) -> list[Path]:
        hicolor = self.data_home / "icons" / "hicolor"
        pngs = [hicolor / f"{s}x{s}" / "apps" / f"{APP_ID}.png" for s in ICON_SIZES]
        return [*pngs, hicolor / "scalable" / "apps" / f"{APP_ID}.svg"]

    def install(self, command: list[str] | None = None) -> Path:
        """Write the icons and the entry (replacing older ones); returns the entry's path."""
        sources = [icon_png(s) for s in ICON_SIZES] + [assets_dir() / "hearth.svg"]
        missing = [str(p) for p in sources if not p.is_file()]
        if missing:
            raise DesktopEntryError(f"Hearth's icon files are missing ({missing[0]}); "
                                    "reinstall Hearth.")
        try:
            for src, dst in zip(sources, self.icon_files(), strict=True):
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
            self.desktop_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.desktop_file.with_suffix(".desktop.tmp")
            tmp.write_text(desktop_entry_text(command or launch_command()), encoding="utf-8")
            os.replace(tmp, self.desktop_file)
        except OSError as err:
            raise DesktopEntryError(f"Could not write the desktop entry ({err}); check that "
                                    f"{self.data_home} is writable.") from err
        self._refresh_caches()
        return self.desktop_file

    def uninstall(self) -> list[Path]:
        """Remove the entry and the icons this module wrote; returns what was removed."""
        removed = []
        for path in [self.desktop_file, *self.icon_files()]:
            if path.is_file():
                path.unlink()
                removed.append(path)
        self._refresh_caches()
        return removed

    def _refresh_caches(self) -> None:
        """Menus notice the change sooner when the caches are rebuilt (optional tools)."""
        tool = shutil.which("update-desktop-database")
        apps = self.desktop_file.parent
        if tool and apps.is_dir():
            subprocess.run([tool, "-q", str(apps)], check=False, capture_output=True,
                           timeout=30)
