"""The freedesktop entry: valid per ``desktop-file-validate``, and its Exec line starts Hearth."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from app.desktop_entry import DesktopEntry, desktop_entry_text, launch_command
from tests.fixtures.launching import HEARTH


def _validate(path: Path) -> None:
    tool = shutil.which("desktop-file-validate")
    assert tool, "desktop-file-validate is missing: packaging/system-deps.sh installs it"
    proc = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def _exec_argv(value: str) -> list[str]:
    """An Exec value read back as the spec says: string escapes, then ``%%``, then the
    quoting rule (inside double quotes a backslash escapes ``"`$\\``; shlex differs)."""
    text = re.sub(r"\\(.)", lambda m: {"s": " ", "n": "\n", "t": "\t", "r": "\r"}.get(
        m.group(1), m.group(1)), value).replace("%%", "%")
    args: list[str] = []
    current, quoted, i = "", False, 0
    while i < len(text):
        c = text[i]
        if quoted and c == "\\" and i + 1 < len(text) and text[i + 1] in '"`$\\':
            current, i = current + text[i + 1], i + 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == " " and not quoted:
            if current:
                args.append(current)
            current = ""
        else:
            current += c
        i += 1
    assert not quoted, f"unbalanced quotes in {value!r}"
    return [*args, current] if current else args


def _entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def test_installed_entry_validates_and_its_exec_line_starts_the_app(
        tmp_path: Path, hearth_env) -> None:
    entry = DesktopEntry(tmp_path / "share")
    path = entry.install()
    _validate(path)
    fields = _entry(path)
    assert fields["Exec"].startswith(str(HEARTH)), "must point at the installed entry point"
    assert fields["Icon"] == "hearth" and fields["Terminal"] == "false"
    for icon in entry.icon_files():
        assert icon.is_file() and icon.stat().st_size > 0
    command = _exec_argv(fields["Exec"])
    proc = subprocess.run([*command, "--exit-when-shown"], capture_output=True, text=True,
                          timeout=60, env=hearth_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "hearth: window shown" in proc.stdout


@pytest.mark.parametrize("odd", ["/opt/My Apps/hearth", '/tmp/we"ird$/hearth', "/x/100%/h",
                                 "/back\\slash/h"])
def test_exec_line_quoting_survives_odd_paths(tmp_path: Path, odd: str) -> None:
    """Spaces, quotes, dollars and percent signs are quoted as the spec says."""
    path = tmp_path / "hearth.desktop"
    path.write_text(desktop_entry_text([odd, "--flag"]))
    _validate(path)
    assert _exec_argv(_entry(path)["Exec"]) == [odd, "--flag"]


def test_cli_flags_install_then_uninstall_everything(tmp_path: Path, hearth_env) -> None:
    share = tmp_path / "xdg"
    env = hearth_env(XDG_DATA_HOME=str(share))
    done = subprocess.run([str(HEARTH), "--install-desktop-entry"], capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    entry = DesktopEntry(share)
    assert entry.desktop_file.is_file()
    assert all(p.is_file() for p in entry.icon_files())
    gone = subprocess.run([str(HEARTH), "--uninstall-desktop-entry"], capture_output=True,
                          text=True, timeout=60, env=env)
    assert gone.returncode == 0, gone.stderr
    assert not entry.desktop_file.exists()
    assert not any(p.exists() for p in entry.icon_files())


def test_unwritable_folder_is_one_clear_error(tmp_path: Path) -> None:
    from app.desktop_entry import DesktopEntryError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DesktopEntryError, match="Could not write the desktop entry"):
        DesktopEntry(blocker).install()


def test_launch_command_is_the_entry_point_beside_this_python() -> None:
    assert launch_command() == [str(HEARTH)]
