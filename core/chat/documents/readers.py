"""Files to text: one reader per format, each giving the text of every page it has.

Kept libraries do the parsing: pypdf (PDF), python-docx (Word), inscriptis (HTML, laid out
as a browser would show it, so tables and lists keep their lines). Plain text formats are
read as they are (Markdown and reStructuredText markup is harmless to BM25 and keeps the
line numbers true to the file). A reader raises :class:`ReadError` with the reason; the
indexer records it and goes on with the other files.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from core.chat.documents.errors import ReadError

log = logging.getLogger("hearth.documents")

TEXT_SUFFIXES = frozenset({".txt", ".text", ".md", ".markdown", ".rst", ".log", ".csv"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx"}


@dataclass(frozen=True)
class Section:
    """Text with its place: ``page`` is 1-based for PDFs and None for formats without
    pages; line numbers within a section count from 1."""

    text: str
    page: int | None = None


def supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with a BOM, else Latin-1 (which cannot fail,
    so a legacy-encoded file is indexed with its odd characters rather than dropped)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _text(path: Path, data: bytes) -> list[Section]:
    return [Section(_normalize(decode_text(data)))]


def _html(path: Path, data: bytes) -> list[Section]:
    from inscriptis import get_text  # type: ignore[import-untyped]  # ships no types

    return [Section(_normalize(get_text(decode_text(data))))]


def _pdf(path: Path, data: bytes) -> list[Section]:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ReadError(f"{path.name} is encrypted; save an unprotected copy to index it.")
        pages = [Section(_normalize(page.extract_text() or ""), i + 1)
                 for i, page in enumerate(reader.pages)]
    except ReadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as err:
        raise ReadError(f"{path.name} is not a readable PDF ({err}).") from err
    if not any(s.text.strip() for s in pages):
        raise ReadError(f"{path.name} has no text layer (a scanned PDF?); "
                        "Hearth cannot read text from images.")
    return pages


def _docx(path: Path, data: bytes) -> list[Section]:
    import io
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as err:
        raise ReadError(f"{path.name} is not a readable Word document ({err}).") from err
    lines = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            lines.append(" | ".join(cell.text for cell in row.cells))
    return [Section(_normalize("\n".join(lines)))]


_PARSERS = {**{s: ("inscriptis",) for s in HTML_SUFFIXES}, ".pdf": ("pypdf",),
            ".docx": ("docx",)}


def load_parsers(suffixes: Iterable[str]) -> None:
    """Import the parsing libraries that files with these ``suffixes`` need, on the calling
    thread, before the indexer reads two files at a time: otherwise a library's first import
    runs on both of its threads at once. (A guess at a failure seen once and not reproduced:
    the first HTML file of a corpus indexed empty, without an error; session 6's note.) A
    library that cannot be imported is left to fail on its files, with their error."""
    for module in sorted({m for s in suffixes for m in _PARSERS.get(s.lower(), ())}):
        try:
            importlib.import_module(module)
        except ImportError as err:
            log.warning("cannot import %s: %s", module, err)


_READERS: dict[str, Callable[[Path, bytes], list[Section]]] = {
    **{s: _text for s in TEXT_SUFFIXES},
    **{s: _html for s in HTML_SUFFIXES},
    ".pdf": _pdf,
    ".docx": _docx,
}


def read_sections(path: Path, data: bytes) -> list[Section]:
    """The sections of a file whose bytes are ``data`` (read once by the indexer, which
    hashes the same bytes). :class:`ReadError` when the file cannot be read."""
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise ReadError(f"{path.name}: Hearth cannot read {path.suffix or 'extension-less'} "
                        f"files (supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}).")
    try:
        return reader(path, data)
    except ReadError:
        raise
    except Exception as err:  # a parser's own bug on a strange file: that file fails only
        log.exception("reading %s failed", path)
        raise ReadError(f"{path.name} could not be read ({type(err).__name__}: {err}).") from err


def _normalize(text: str) -> str:
    """One newline convention and no NULs (SQLite FTS stops at them)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
