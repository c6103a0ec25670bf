"""The transcript at the window's real size with the panel open: nothing overflows, code
scrolls inside itself, and a streamed piece costs the same at the end of a long paragraph as
at its start; the chat gets most of the width and the panel's place is remembered."""

from __future__ import annotations

import random

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication

from app.markdown_stream import BlockSplitter, split_blocks
from app.message_view import CodeBlock
from app.wording import plural

PARAGRAPH = " ".join(["The dragon spread its wings and felt the warm wind lift it higher"] * 70)
WIDE_CODE = ("Here it is:\n\n```python\nbanner = '" + "=" * 600 + "'\nprint(banner)\n```\n\n"
             "That prints one long line.")


def _no_sideways_scroll(window) -> None:
    view = window.view
    assert not view.horizontalScrollBar().isVisible()
    assert view.widget().width() <= view.viewport().width()
    for message in view.messages:
        assert message.width() <= view.viewport().width()
        assert message.copy_button.width() >= message.copy_button.sizeHint().width()


def _stream(window, text: str, piece: int = 4, check_every: int = 25):
    message = window.view.add("assistant")
    laid_out = []
    for i, start in enumerate(range(0, len(text), piece)):
        message.append(text[start:start + piece])
        laid_out.append(message.tail.laid_out)
        if i % check_every == 0:
            QApplication.processEvents()
            _no_sideways_scroll(window)
    QApplication.processEvents()
    _no_sideways_scroll(window)
    return message, laid_out


def test_a_4000_character_paragraph_streams_at_constant_cost_without_overflow(
        qtbot, make_window) -> None:
    window = make_window(load=False)
    window.resize(1280, 800)
    assert window.panel.isVisible()
    window.view.add("user", "Tell me about dragons.")
    text = PARAGRAPH[:4000]
    message, laid_out = _stream(window, text)
    # Only the last visual line and the new piece are laid out, at any length.
    assert max(laid_out[-100:]) <= max(laid_out[:100]) + 8
    assert max(laid_out) < 250, max(laid_out)
    assert message.tail.line_count() > 20  # it really was one long wrapped paragraph
    message.finish()
    QApplication.processEvents()
    _no_sideways_scroll(window)
    assert message.rendered_text() == text and message.raw == text


class _PaintedArea(QObject):
    """Sums the area of the paint events ``widget`` gets."""

    def __init__(self, widget) -> None:
        super().__init__()
        self.widget, self.area = widget, 0
        widget.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        if obj is self.widget and event.type() == QEvent.Type.Paint:
            self.area += event.rect().width() * event.rect().height()
        return False


def _taller_than_the_view(window, end: int):
    """A reply streamed until it is taller than the view (which follows its bottom);
    returns the message, the scroll bar and the pieces still to stream."""
    window.resize(1280, 800)
    window.view.add("user", "Tell me about dragons.")
    message = window.view.add("assistant")
    text = PARAGRAPH + " " + PARAGRAPH
    pieces = [text[i:i + 4] for i in range(0, end, 4)]
    for piece in pieces[:1250]:
        message.append(piece)
    for _ in range(3):
        QApplication.processEvents()
    bar = window.view.verticalScrollBar()
    assert bar.maximum() > 0 and bar.value() == bar.maximum()  # taller than the view
    return message, bar, pieces[1250:]


def _stream_following(message, pieces) -> None:
    for piece in pieces:
        message.append(piece)
        QApplication.processEvents()
        QApplication.processEvents()


def test_a_new_line_of_a_long_reply_repaints_a_strip_not_the_view(qtbot, make_window) -> None:
    """While the view follows the bottom of a reply taller than it, each new line costs a
    strip of paint: Qt scrolls by copying what is on screen, and a taller message repaints
    only its new part (before: the whole transcript at every line)."""
    window = make_window(load=False)
    message, bar, rest = _taller_than_the_view(window, 6400)
    lines, painted = message.tail.line_count(), _PaintedArea(message.tail)
    _stream_following(message, rest)
    added = message.tail.line_count() - lines
    assert added > 10 and bar.value() == bar.maximum()  # it followed the bottom
    strip = message.tail.width() * message.tail.fontMetrics().lineSpacing()
    view = window.view.viewport().width() * window.view.viewport().height()
    assert view > 20 * strip
    # Each line: its ~25 appends' new ends, the line before it, and the strip scrolled in.
    assert painted.area / added < 10 * strip, (painted.area / added / strip)


def test_a_wide_code_block_scrolls_inside_itself(qtbot, make_window) -> None:
    window = make_window(load=False)
    window.resize(1280, 800)
    message, _ = _stream(window, WIDE_CODE, piece=7, check_every=5)
    message.finish()
    QApplication.processEvents()
    _no_sideways_scroll(window)
    [code] = [w for w in message.segments() if isinstance(w, CodeBlock)]
    assert code.code() == "banner = '" + "=" * 600 + "'\nprint(banner)"
    bar = code.edit.horizontalScrollBar()
    assert bar.maximum() > 0 and bar.isVisible()  # its own scroll bar, not the message's
    assert code.width() <= message.width()
    assert "That prints one long line." in message.rendered_text()


def test_the_chat_gets_most_of_the_width_and_the_panel_is_remembered(qtbot,
                                                                     make_window) -> None:
    window = make_window(load=False)
    window.resize(1280, 800)
    qtbot.waitUntil(lambda: window.panel.width() > 0, timeout=5000)
    QApplication.processEvents()
    assert window.view.width() > window.panel.width()
    assert 0.2 <= window.panel.width() / window.width() <= 0.4
    settings = window.settings
    window.panel.toggleViewAction().trigger()  # the user collapses it
    assert not window.panel.isVisible()
    window.close()
    again = make_window(settings, load=False)
    QApplication.processEvents()
    assert not again.panel.isVisible()
    again.panel.toggleViewAction().trigger()
    assert again.panel.isVisible()


def test_blocks_come_out_the_same_however_the_text_is_cut() -> None:
    text = ("# Title\n\nSome *text*\nmore text\n\n```python\nx = 1\n\ny = 2\n```\n"
            "after\n\n- a\n- b\n\n~~~\nraw\n~~~\nend")
    whole, tail = split_blocks(text)
    assert [b.kind for b in whole] == ["prose", "prose", "code", "prose", "prose", "code"]
    assert whole[2].code == "x = 1\n\ny = 2" and whole[2].language == "python"
    assert tail == "end"
    rng = random.Random(7)
    for _ in range(50):
        splitter, got, i = BlockSplitter(), [], 0
        while i < len(text):
            n = rng.randint(1, 9)
            got += splitter.feed(text[i:i + n])
            i += n
        assert got == whole and splitter.growing() == tail
        assert [b.text for b in splitter.finish()] == ["end"]


def test_plurals() -> None:
    assert plural(1, "model") == "1 model" and plural(2, "model") == "2 models"
    assert plural(1, "reply", "replies") == "1 reply"
    assert plural(1200, "token") == "1,200 tokens"


class _TallPaints(QObject):
    """Counts paint events, anywhere in the app, of strips at least ``rows`` tall: Qt's
    raster engine splits such fills across its GUI thread pool (issue 18)."""

    def __init__(self, rows: int = 96) -> None:
        super().__init__()
        self.rows, self.count, self.widgets = rows, 0, set()
        QApplication.instance().installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Paint and event.rect().height() >= self.rows:
            self.count += 1
            self.widgets.add(type(obj).__name__)
        return False

    def stop(self) -> None:
        QApplication.instance().removeEventFilter(self)


def test_following_a_long_reply_repaints_no_tall_strip_per_line(qtbot, make_window) -> None:
    """The scroll bar's new range and value at each line repaint it at most once a
    second; what the user does with it shows at once. A figure of the panel relays out the
    panel alone (not the main window and the dock's separator)."""
    window = make_window(load=False)
    message, bar, rest = _taller_than_the_view(window, 8000)
    qtbot.wait(1300)  # the window's first layouts and paints are done
    lines, tall = message.tail.line_count(), _TallPaints()
    try:
        _stream_following(message, rest)
        added = message.tail.line_count() - lines
        assert added > 10 and bar.value() == bar.maximum()  # it followed the bottom
        assert tall.count <= added / 4, (tall.count, added, tall.widgets)  # was 12 a line
        qtbot.wait(1300)
        assert tall.count >= 1  # the bar shows where the view is, a moment later
        before = tall.count
        bar.setValue(0)  # the user scrolls to the top: at once
        QApplication.processEvents()
        assert tall.count > before and not window.view.follow
    finally:
        tall.stop()


def test_a_panel_figure_relays_out_the_panel_alone(qtbot, make_window) -> None:
    window = make_window(load=False)
    window.resize(1280, 800)
    qtbot.waitUntil(lambda: window.panel.width() > 0, timeout=5000)
    qtbot.wait(300)  # the window's own first layouts are done

    class Layouts(QObject):
        count = 0

        def eventFilter(self, obj, event) -> bool:
            if event.type() == QEvent.Type.LayoutRequest and obj is window:
                Layouts.count += 1
            return False

    seen = Layouts()
    QApplication.instance().installEventFilter(seen)
    label = window.panel.labels["cpu"]
    for text in ("12% of 2 cores", "13% of 2 cores",
                 "a much longer figure that wraps onto a second line " * 3):
        label.setText(text)
        QApplication.processEvents()
    QApplication.instance().removeEventFilter(seen)
    assert Layouts.count == 0
    assert label.text().startswith("a much longer")
