"""The latency and power panel updates live during a stream, without stealing the loop,
labels CPU power as estimated with its formula, and accounts each reply."""

from __future__ import annotations

from pathlib import Path

from app.responsiveness import LoopProbe, percentile
from tests.fixtures.app_window import app_settings
from tests.paths import ARTIFACTS

# Goal: no gap over one frame (16 ms); `make bench` measures it. Here a regression guard:
# on 2 cores shared with two engine threads the worst tick reached 17-27 ms in full-suite
# runs (p99 17 ms), while a blocking call on the GUI thread would cost 100s of ms.
FRAME_MS = 16.0
STALL_BOUND_MS = 45.0
P99_BOUND_MS = 25.0


def points(curve) -> int:
    xs, _ys = curve.getData()
    return 0 if xs is None else len(xs)


def test_panel_updates_during_stream(qtbot, make_window, tmp_path: Path) -> None:
    window = make_window(app_settings(max_tokens=120))
    window.resize(1280, 800)
    qtbot.waitUntil(lambda: window.panel.sampler is not None, timeout=30_000)
    panel = window.panel
    assert panel.isVisible()
    updates_before = panel.updates
    probe = LoopProbe()
    probe.start()
    chunks: list[str] = []
    window.bridge.textReady.connect(chunks.append)
    window.input.setPlainText("Tell me about lighthouses.")
    with qtbot.waitSignal(window.replyFinished, timeout=120_000) as blocker:
        window.send_button.click()
        qtbot.waitUntil(lambda: len(chunks) >= 30, timeout=60_000)
        # The panel redraws one plot per tick (5 Hz): each token curve within a second.
        qtbot.waitUntil(lambda: min(points(panel.speed_curve), points(panel.latency_curve))
                        >= 10 or blocker.signal_triggered, timeout=5_000)
        mid_points, mid_latency = points(panel.speed_curve), points(panel.latency_curve)
        probe.stop()  # a screenshot blocks the loop on purpose: not a stall of the app
        spanned = len(panel.refresh_cpu_ms)  # a tick's cost runs to its paint: this one's
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(ARTIFACTS / "metrics-panel-mid-stream.png"))
        probe.start(reset=False)
    probe.stop()
    print(f"\npanel: {panel.updates - updates_before} updates, max loop stall "
          f"{probe.max_stall_ms:.1f} ms, GC {probe.gc_summary()}")
    assert mid_points >= 10, "the tok/s curve did not grow during the stream"
    assert mid_latency >= 10, "the latency curve did not grow during the stream"
    assert panel.updates - updates_before >= 5
    assert probe.max_stall_ms <= STALL_BOUND_MS
    assert percentile(probe.stalls_ms, 99) <= P99_BOUND_MS
    # What the panel itself costs the GUI thread (CPU time, not waiting), with the layout and
    # paints each tick causes: a frame for nine ticks in ten. Alone p50 8 ms, max 11; in a
    # full-suite run one tick read 16.7 ms (CPU time still grows when the other core's
    # cache and the memory bus are busy), so the worst tick gets a regression guard only:
    # a blocking call on the GUI thread costs 100s of ms.
    # (the tick whose paint waited behind the screenshot counts the screenshot: left out)
    cost = sorted(c for i, c in enumerate(panel.refresh_cpu_ms) if i != spanned)
    print(f"panel refresh CPU time: p50 {cost[len(cost) // 2]:.2f} ms, max {cost[-1]:.2f} ms")
    assert cost[len(cost) * 9 // 10] <= 16.0
    assert cost[-1] <= 32.0
    # This machine has no NVML and no readable RAPL: the figures say so.
    assert "estimated" in panel.formula.text()
    assert "TDP" in panel.formula.text()
    acc = panel.last
    assert acc is not None and acc.generated_tokens == blocker.args[0].metrics.decode_tokens
    assert "J" in panel.labels["energy"].text() and "estimated" in panel.labels["energy"].text()
    assert abs(sum(p.pct for p in acc.phases) - 100) <= 2
    # The breakdown bar says each part's milliseconds (the legend names the thin ones too).
    labels = panel.bar.labels()
    assert [label.split()[0] for label in labels] == [p.name for p in acc.phases]
    assert all(label.endswith(" ms") for label in labels)
    assert all(label.replace(" ", "&nbsp;") in panel.bar.legend.text() for label in labels)
    assert panel.labels["session"].text().startswith("1 reply,")
    csv = panel.export_csv(str(tmp_path / "session.csv"))
    assert csv is not None and len(csv.read_text().splitlines()) == 2  # header + one reply
    # A new reply: from the panel's next tick, neither token curve shows the last one.
    window.input.setPlainText("And about the sea.")
    with qtbot.waitSignal(window.replyFinished, timeout=120_000):
        window.send_button.click()
        ticks = panel.updates
        qtbot.waitUntil(lambda: panel.updates >= ticks + 1, timeout=10_000)
        drawn = max(points(panel.speed_curve), points(panel.latency_curve))
        assert drawn <= window.bridge.reply_pieces(), "a curve still shows the last reply"
