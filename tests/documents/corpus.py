"""A corpus the tests write: 210 files in six formats, each holding one fact nobody else has.

Every file carries a made-up code name (``zq017ular``...) in a sentence about a city and a
year, buried in filler paragraphs, so a test can ask for that fact and know which file, page
and line must come back. PDFs are written with reportlab (the fact on page 2), Word files
with python-docx (the fact in a table for some), HTML with markup and a script block that
must not be indexed. Two files are in Chinese and Japanese.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

FORMATS = (("txt", 60), ("md", 40), ("rst", 30), ("html", 30), ("pdf", 25), ("docx", 25))
CITIES = ("Lisbon", "Oslo", "Kyoto", "Quito", "Accra", "Hanoi", "Tallinn", "Perth", "Lima",
          "Dakar", "Bergen", "Cusco", "Malmo", "Turin", "Leeds", "Split")
_FILLER_TEXT = ("river stone lantern harbor meadow copper signal window garden engine valley "
           "thread orbit candle marble pocket ladder silver forest bridge canvas saddle "
           "compass kettle meadow timber velvet anchor basket needle pepper")
_FILLER = _FILLER_TEXT.split()

CHINESE = ("量子计算机研究所位于杭州。该研究所成立于二零一九年，主要研究超导量子比特和"
           "纠错算法。研究所的图书馆收藏了大量关于密码学的书籍。")
JAPANESE = ("東京タワーは東京都港区芝公園にある総合電波塔です。高さは三百三十三メートルで、"
            "一九五八年に完成しました。展望台からは富士山が見えることがあります。")


@dataclass(frozen=True)
class Fact:
    path: Path
    code: str  # the unique word
    sentence: str
    page: int | None  # where the fact is (PDF), None for formats without pages


def code_name(i: int) -> str:
    return f"zq{i:03d}ular"


def fact_sentence(i: int) -> str:
    return (f"The {code_name(i)} archive has been kept in {CITIES[i % len(CITIES)]} "
            f"since {1900 + i}.")


def _paragraph(rng: random.Random, words: int = 60) -> str:
    return " ".join(rng.choice(_FILLER) for _ in range(words)).capitalize() + "."


def _lines(rng: random.Random, paragraphs: int) -> list[str]:
    out: list[str] = []
    for _ in range(paragraphs):
        text = _paragraph(rng)
        out += [text[i:i + 72] for i in range(0, len(text), 72)] + [""]
    return out


def _write_text(path: Path, i: int, rng: random.Random) -> None:
    head = {"md": f"# Notes {i}\n", "rst": f"Notes {i}\n{'=' * 12}\n"}.get(path.suffix[1:], "")
    body = [*_lines(rng, 3), fact_sentence(i), "", *_lines(rng, 2)]
    path.write_text(head + "\n".join(body), encoding="utf-8")


def _write_html(path: Path, i: int, rng: random.Random) -> None:
    paras = "".join(f"<p>{_paragraph(rng)}</p>\n" for _ in range(3))
    path.write_text(f"<html><head><title>Page {i}</title><script>var hidden = "
                    f"'scriptonlyword';</script></head><body><h1>Page {i}</h1>\n{paras}"
                    f"<ul><li>{fact_sentence(i)}</li></ul>\n<p>{_paragraph(rng)}</p>"
                    "</body></html>", encoding="utf-8")


def _write_pdf(path: Path, i: int, rng: random.Random) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)
    for page in (1, 2, 3):
        y = 800
        lines = _lines(rng, 2)
        if page == 2:
            lines = [*lines[:3], fact_sentence(i), *lines[3:]]
        for line in lines:
            pdf.drawString(40, y, line)
            y -= 14
        pdf.showPage()
    pdf.save()


def _write_docx(path: Path, i: int, rng: random.Random) -> None:
    import docx

    document = docx.Document()
    document.add_heading(f"Report {i}", level=1)
    for _ in range(2):
        document.add_paragraph(_paragraph(rng))
    if i % 2:
        table = document.add_table(rows=1, cols=2)
        table.rows[0].cells[0].text = "Fact"
        table.rows[0].cells[1].text = fact_sentence(i)
    else:
        document.add_paragraph(fact_sentence(i))
    document.add_paragraph(_paragraph(rng))
    document.save(str(path))


_WRITERS = {"txt": _write_text, "md": _write_text, "rst": _write_text, "html": _write_html,
            "pdf": _write_pdf, "docx": _write_docx}


def write_corpus(root: Path, seed: int = 17) -> list[Fact]:
    """Write the corpus under ``root`` (in sub-folders by format); returns its facts."""
    rng = random.Random(seed)
    facts: list[Fact] = []
    i = 0
    for suffix, count in FORMATS:
        folder = root / suffix
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            path = folder / f"doc{i:03d}.{suffix}"
            _WRITERS[suffix](path, i, rng)
            facts.append(Fact(path, code_name(i), fact_sentence(i),
                              2 if suffix == "pdf" else None))
            i += 1
    cjk = root / "cjk"
    cjk.mkdir(exist_ok=True)
    (cjk / "quantum.txt").write_text(CHINESE, encoding="utf-8")
    (cjk / "tower.md").write_text(JAPANESE, encoding="utf-8")
    (root / "txt" / ".hidden.txt").write_text("hiddenfileword", encoding="utf-8")
    (root / "txt" / "picture.png").write_bytes(b"\x89PNG not indexed")
    return facts


def corpus_files(root: Path) -> list[Path]:
    """The files the indexer should take (not hidden, supported types)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and p.suffix != ".png")
