"""Render ``hearth.svg`` into the PNG sizes, ICO (Windows) and ICNS (macOS) the app uses.

Run ``python assets/make_icons.py`` after editing the SVG and commit the results: the app,
the desktop entry and the bundles read the files, so nothing renders SVG at start-up and
the bundles need no image tools. Qt's own SVG renderer and ICO/ICNS writers do the work,
so no extra dependency is needed.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

ASSETS = Path(__file__).resolve().parent
SVG = ASSETS / "hearth.svg"
SIZES: tuple[int, ...] = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES: tuple[int, ...] = (16, 24, 32, 48, 64, 128, 256)


def png_path(size: int, folder: Path = ASSETS) -> Path:
    """Where the ``size`` x ``size`` PNG lives (``hearth-<size>.png``)."""
    return folder / f"hearth-{size}.png"


def render(size: int):
    """The SVG drawn at ``size`` pixels square, antialiased, on transparency (a QImage)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        raise ValueError(f"{SVG} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    return image


ICNS_TYPES: dict[int, bytes] = {16: b"icp4", 32: b"icp5", 64: b"icp6", 128: b"ic07",
                                 256: b"ic08", 512: b"ic09"}


def _png_bytes(image) -> bytes:
    from PySide6.QtCore import QBuffer, QIODevice

    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise OSError("could not encode a PNG")
    return bytes(buffer.data().data())


def ico_bytes(pngs: dict[int, bytes]) -> bytes:
    """A Windows ICO holding each size as PNG (supported since Windows Vista): header,
    one 16-byte directory entry per image, then the images."""
    header = struct.pack("<HHH", 0, 1, len(pngs))
    offset = len(header) + 16 * len(pngs)
    entries, blobs = b"", b""
    for size, data in sorted(pngs.items()):
        side = 0 if size >= 256 else size  # 0 means 256 in an ICO directory
        entries += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(data), offset)
        offset += len(data)
        blobs += data
    return header + entries + blobs


def icns_bytes(pngs: dict[int, bytes]) -> bytes:
    """A macOS ICNS: big-endian ``icns`` header, then one PNG element per size."""
    body = b"".join(ICNS_TYPES[s] + struct.pack(">I", len(d) + 8) + d
                    for s, d in sorted(pngs.items()))
    return b"icns" + struct.pack(">I", len(body) + 8) + body


def make_icons(folder: Path = ASSETS) -> list[Path]:
    """Write every PNG size plus ``hearth.ico`` and ``hearth.icns`` into ``folder``.

    ICO and ICNS are written here (a few lines of ``struct``) rather than by Qt's image
    writers, which store one size only (ICO) or a table of contents Qt's own reader
    rejects (ICNS)."""
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication.instance() or QGuiApplication([])  # image plugins need an app
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    pngs = {size: _png_bytes(render(size)) for size in SIZES}
    for size, data in pngs.items():
        path = png_path(size, folder)
        path.write_bytes(data)
        written.append(path)
    ico = folder / "hearth.ico"
    ico.write_bytes(ico_bytes({s: pngs[s] for s in ICO_SIZES}))
    icns = folder / "hearth.icns"
    icns.write_bytes(icns_bytes({s: pngs[s] for s in ICNS_TYPES}))
    return [*written, ico, icns]


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    for p in make_icons():
        print(p.relative_to(ASSETS.parent))
