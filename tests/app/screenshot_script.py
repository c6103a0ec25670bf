"""Screenshots of the real window on an X server (run by tests/app/test_real_display.py
under Xvfb): for each size, a reply mid-stream with the panel open, a long code block, and
the panel closed. ``python -m tests.app.screenshot_script OUT_DIR MODEL``; prints one JSON
line of what it checked."""

from __future__ import annotations

import json
import sys
from pathlib import Path

SIZES = [(1280, 800), (1920, 1080)]
PROMPT = "Write a Python function that checks whether a word is a palindrome, and explain it."
LONG_CODE = (
    "Here is a longer example:\n\n```python\n"
    + "".join(f"def step_{i}(values: list[int], scale: float = {i}.5) -> list[float]:  "
              f"# {'a long comment that runs past the edge ' * 3}\n"
              f"    return [v * scale + {i} for v in values if v % {i + 2} != 0]\n\n"
              for i in range(12))
    + "```\n\nEach function scales the values it keeps.")


def main(out: Path, model: Path) -> int:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app.main import launch, parse_args

    app = QApplication([])
    launched = launch(app, parse_args(["--model", str(model)]))
    window = launched.window
    window.settings.max_tokens = 160
    report: dict[str, object] = {"shots": [], "hscroll": []}

    def wait(ms: int) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def until(check, timeout_ms: int = 120_000) -> None:
        waited = 0
        while not check() and waited < timeout_ms:
            wait(50)
            waited += 50

    def shot(name: str) -> None:
        app.processEvents()
        path = out / name
        window.grab().save(str(path))
        report["shots"].append(name)  # type: ignore[union-attr]
        report["hscroll"].append(window.view.horizontalScrollBar().isVisible())  # type: ignore[union-attr]

    until(lambda: window.loaded is not None)
    for width, height in SIZES:
        window.new_chat()
        window.panel.show()
        window.resize(width, height)
        wait(300)
        chunks: list[str] = []
        window.bridge.textReady.connect(chunks.append)
        window.input.setPlainText(PROMPT)
        window.send()
        until(lambda c=chunks: len(c) >= 40 or not window.bridge.busy)
        shot(f"chat-{width}x{height}-streaming-panel-open.png")
        until(lambda: not window.bridge.busy)
        window.bridge.textReady.disconnect(chunks.append)
        message = window.view.add("assistant", LONG_CODE)
        message.finish()
        wait(200)
        shot(f"chat-{width}x{height}-long-code-panel-open.png")
        window.panel.hide()
        wait(200)
        shot(f"chat-{width}x{height}-long-code-panel-closed.png")
    print(json.dumps(report), flush=True)
    launched.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
