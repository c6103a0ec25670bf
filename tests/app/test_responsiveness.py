"""The GUI never freezes: while a reply streams at full speed and a model downloads at the
same time, the event loop keeps ticking and text reaches the screen within a frame."""

from __future__ import annotations

from pathlib import Path

from app.bridge import MAX_FRAME_MS
from app.responsiveness import LoopProbe, percentile
from core.models.library import Library
from core.settings import Settings
from tests.fixtures.app_window import app_settings
from tests.fixtures.hub_server import DEFAULT_REPO

FRAME_MS = 16.0
# The goal is one frame (16 ms) and `make bench` measures it (19.5-23.9 ms on 2 cores with
# the window over the pool and the documents pane). This test guards against regressions
# (a blocking call on the GUI thread costs 100s of ms): on 2 cores the GUI thread shares
# them with two engine threads, and in the full suite the worst tick was 25.7-33.8 ms.
STALL_BOUND_MS = 45.0
P99_BOUND_MS = 25.0  # loop-tick p99
# Text reaches the view within one update interval: 16 ms while the view is cheap, up to
# MAX_FRAME_MS (~30 updates a second) when one update costs the GUI more than its budget, so
# that a fast engine keeps its speed (issue 18). The median stays within a 60 Hz frame.
DELIVERY_P99_MS = MAX_FRAME_MS + 8.0


def test_event_loop_and_token_latency_while_streaming_and_downloading(
        qtbot, make_window, test_hub, default_model: Path, tmp_path: Path) -> None:
    from app.model_picker import ModelPicker

    window = make_window(app_settings(max_tokens=200))
    library = Library(default_model=lambda: default_model, ollama_roots=[], lmstudio_roots=[],
                      imported_dir=tmp_path / "imported")
    picker = ModelPicker(Settings(n_ctx=2048), library=library)
    qtbot.addWidget(picker)
    with qtbot.waitSignal(picker.filesListed, timeout=60_000):
        picker.list_files(DEFAULT_REPO)
    probe = LoopProbe()
    window.bridge.delivery_ms.clear()
    probe.start()
    picker.download()
    window.input.setPlainText("Tell me a long story about the sea.")
    with qtbot.waitSignal(window.replyFinished, timeout=120_000) as blocker:
        window.send_button.click()
    downloading = picker.cancel_button.isEnabled()
    probe.stop()
    qtbot.waitUntil(lambda: picker.download_button.isEnabled() or picker.downloaded is not None,
                    timeout=60_000)
    picker.cancel_download()
    delivery = window.bridge.delivery_ms
    p99 = percentile(delivery, 99)
    print(f"\nmax event-loop stall {probe.max_stall_ms:.1f} ms over {len(probe.stalls_ms)} "
          f"ticks; token-to-view p50 {percentile(delivery, 50):.1f} ms, p99 {p99:.1f} ms "
          f"({len(delivery)} pieces; download still running at the end: {downloading}); "
          f"GC {probe.gc_summary()}")
    assert blocker.args[0].metrics.decode_tokens > 20
    assert len(probe.stalls_ms) > 100
    assert probe.max_stall_ms <= STALL_BOUND_MS
    assert percentile(probe.stalls_ms, 99) <= P99_BOUND_MS
    assert p99 <= DELIVERY_P99_MS
    assert percentile(delivery, 50) <= FRAME_MS
