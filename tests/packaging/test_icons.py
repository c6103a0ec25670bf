"""The icon files the window, the desktop entry and the bundles use."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.paths import REPO_ROOT

ASSETS = REPO_ROOT / "assets"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


@pytest.mark.parametrize("size", SIZES)
def test_png_has_its_size_a_transparent_corner_and_an_opaque_middle(qapp, size: int) -> None:
    from PySide6.QtGui import QImage

    image = QImage(str(ASSETS / f"hearth-{size}.png"))
    assert not image.isNull()
    assert (image.width(), image.height()) == (size, size)
    assert image.pixelColor(0, 0).alpha() == 0  # rounded corner: the desktop shows through
    assert image.pixelColor(size // 2, size // 2).alpha() == 255


@pytest.mark.parametrize(("name", "sizes"), [("hearth.ico", (16, 24, 32, 48, 64, 128, 256)),
                                            ("hearth.icns", (16, 32, 64, 128, 256, 512))])
def test_windows_and_macos_icons_hold_every_size(qapp, name: str, sizes: tuple[int]) -> None:
    from PySide6.QtGui import QImageReader

    reader = QImageReader(str(ASSETS / name))
    found = []
    for _ in range(reader.imageCount()):
        image = reader.read()
        assert not image.isNull(), reader.errorString()
        found.append(image.width())
        reader.jumpToNextImage()
    assert sorted(found) == list(sizes)


def test_make_icons_reproduces_the_committed_pngs(qapp, tmp_path: Path) -> None:
    """The committed PNGs are what the SVG renders to (someone edited the SVG and forgot
    to regenerate, or the reverse, fails here)."""
    import importlib.util

    from PySide6.QtGui import QImage

    spec = importlib.util.spec_from_file_location("make_icons", ASSETS / "make_icons.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.make_icons(tmp_path)
    assert {p.name for p in written} >= {f"hearth-{s}.png" for s in SIZES}
    for size in (16, 128):
        fresh, committed = QImage(str(tmp_path / f"hearth-{size}.png")), QImage(
            str(ASSETS / f"hearth-{size}.png"))
        assert fresh == committed


def test_window_icon_is_set(qapp) -> None:
    """``hearth`` gives the app its icon (all sizes) — as main() does."""
    from PySide6.QtGui import QIcon

    from app.desktop_entry import ICON_SIZES, icon_png

    icon = QIcon()
    for size in ICON_SIZES:
        assert icon_png(size).is_file()
        icon.addFile(str(icon_png(size)))
    assert len(icon.availableSizes()) == len(SIZES)
