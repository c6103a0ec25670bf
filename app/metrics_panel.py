"""The live latency and power panel: what every token costs, measured honestly.

A dock that polls the core's telemetry at 5 Hz at most (2.5 while a reply streams): tok/s
and per-token latency over the current reply, power over the last minutes, the seed's time
breakdown of the last reply, energy and cost of the last reply and of the session, and CPU/GPU
gauges. Every power figure carries its label ("measured" or "estimated" with the formula).

Its cost on the GUI thread is taken from the engine on a small machine, so it is bounded:
the curves are computed incrementally and drawn with at most ``MAX_POINTS`` points, one plot
per tick, and a tick that cost more than its share of the time stretches the next interval.
That cost includes the layout and painting Qt does after a tick (the plots' above all: a
zero timer marks when they are done). The axes' ranges move in 1-2-5 steps, set by the panel
(pyqtgraph's auto-range re-reads every curve and rebuilds the axes' ticks at every paint,
which measured 3-4 ms per update, more than the rest of the panel), so a plot whose data
grew only repaints its curve. What rarely changes (the worker's pid, whether the engine is
remote: each a path resolution in the pool) is read once a second, and a closed panel does
no work at all.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QGridLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.breakdown_bar import BreakdownBar
from core.engine import DoneEvent
from core.telemetry import CostSettings, RequestAccounting, SessionLedger, TelemetrySampler
from core.telemetry import account as account_request
from core.telemetry.accounting import EnergyIntegral, accounting_for

UPDATE_MS = 200  # 5 Hz at most: live to the eye, and little taken from the engine
STREAMING_MS = 400  # while a reply streams: it took 1/4 of the window's CPU per token
PANEL_BUDGET = 0.02  # share of the GUI thread's time the panel may take
POWER_WINDOW_S = 180
PLOT_HEIGHT = 110  # each plot's preferred height (px); it grows with the dock
MAX_POINTS = 240  # per curve: drawing cost must not grow with the reply
SPEED_WINDOW = 8  # tokens in the rolling tok/s
SLOW_EVERY = 5  # ticks between reads of what rarely changes (pid, remote)

REMOTE = "unknown (remote engine)"
POWER_TITLES = {False: "Power (W), last 3 minutes",
                True: "This computer's power (W), last 3 minutes; the remote engine's: unknown"}


def bounded(values: list[float], n: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """``values`` as at most ``n`` (x, y) points: bucket means, x at each bucket's middle."""
    if len(values) <= n:
        return [float(i) for i in range(len(values))], values
    step = len(values) / n
    xs, ys = [], []
    for b in range(n):
        lo, hi = int(b * step), int((b + 1) * step)
        chunk = values[lo:hi] or values[lo:lo + 1]
        xs.append((lo + hi - 1) / 2)
        ys.append(sum(chunk) / len(chunk))
    return xs, ys


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 × 10^k that is ≥ ``value`` (an axis end that seldom moves)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exp = math.floor(math.log10(value))
    for step in (1.0, 2.0, 5.0, 10.0):
        if step * 10.0 ** exp >= value * (1 - 1e-9):
            return step * 10.0 ** exp
    return 10.0 ** (exp + 1)


class _Plot(pg.PlotWidget):
    """A plot whose view range only moves when :meth:`show_range` is given a different
    one, and never by the mouse (the panel is a display)."""

    def __init__(self, title: str) -> None:
        super().__init__(title=title)
        self._range: tuple[float, float, float, float] | None = None
        self.setMenuEnabled(False)
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.getPlotItem().getViewBox().disableAutoRange()
        for side in ("left", "bottom"):
            self.getAxis(side).enableAutoSIPrefix(False)

    def sizeHint(self) -> QSize:
        """Short: the panel's scroll area lays its column out at the preferred heights, and
        the three plots share whatever height the dock has beyond them (they expand)."""
        return QSize(super().sizeHint().width(), PLOT_HEIGHT)

    def show_range(self, x0: float, x1: float, y0: float, y1: float) -> None:
        if (x0, x1, y0, y1) != self._range:
            self._range = (x0, x1, y0, y1)
            self.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)


def _value_label(key: str) -> QLabel:
    value = QLabel("—")
    value.setObjectName(f"panel-{key}")
    value.setWordWrap(True)  # long figures wrap: the dock never forces its width
    value.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return value


def _scrolled(body: QWidget) -> QScrollArea:
    """The panel's contents in a scroll area: on a short screen they scroll instead of
    squeezing the plots, and a figure whose text changes relays out the panel alone. Put
    straight in the dock, each tick's new label text went up to the main window's layout
    and repainted the dock's separator, a 754-row strip that Qt fills on its GUI thread pool:
    on 2 cores every such fill wakes threads that preempt the engine (issue 18)."""
    area = QScrollArea()
    area.setObjectName("panel-scroll")
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(body)
    area.setMinimumWidth(body.minimumWidth() + area.verticalScrollBar().sizeHint().width())
    return area


class MetricsPanel(QDockWidget):
    """The dock. :meth:`attach_sampler` once the power sources are probed (off the GUI
    thread); :meth:`finish` with each DoneEvent. It reads the bridge's token stamps and
    follows the worker's pid by itself."""

    def __init__(self, bridge, sampler: TelemetrySampler | None = None,
                 prices: CostSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__("Latency and power", parent)
        self.setObjectName("metrics-panel")
        self.bridge, self.sampler = bridge, None
        self.prices = prices or CostSettings()
        self.ledger = SessionLedger()
        self.last: RequestAccounting | None = None
        self.updates = 0
        self.refresh_cpu_ms: deque[float] = deque(maxlen=1000)  # the latest ticks
        self._stamps: list[int] = []
        self._gaps: list[float] = []
        self._speeds: list[float] = []
        self._drawn = [-1, -1]  # tokens drawn on the speed and latency curves
        self._pid: int | None = None
        self._remote_now = False
        body = QWidget()
        col = QVBoxLayout(body)
        pg.setConfigOptions(antialias=False, background="w", foreground="k")
        self.speed_plot, self.speed_curve = self._plot(col, "This reply: tokens per second",
                                                       "#2980b9", 2)
        self.latency_plot, self.latency_curve = self._plot(
            col, "This reply: latency per token (ms)", "#e67e22", 1, bottom="token")
        self.power_plot, self.power_curve = self._plot(col, POWER_TITLES[False],
                                                       "#c0392b", 2, bottom="seconds ago")
        self._shown_remote = False
        col.addWidget(QLabel("Last reply: where the time went"))
        self.bar = BreakdownBar()
        col.addWidget(self.bar)
        grid = QGridLayout()
        grid.setColumnStretch(1, 1)
        self.labels: dict[str, QLabel] = {}
        names = {"power": "Power", "cpu": "CPU", "gpu": "GPU", "ttft": "Time to first token",
                 "speed": "Speed", "energy": "Energy (last reply)", "cost": "Cost (last reply)",
                 "session": "This session", "speculation": "Speculation"}
        for i, (key, title) in enumerate(names.items()):
            name = QLabel(title)
            name.setAlignment(Qt.AlignmentFlag.AlignTop)
            grid.addWidget(name, i, 0)
            self.labels[key] = _value_label(key)
            grid.addWidget(self.labels[key], i, 1)
        col.addLayout(grid)
        self.formula = QLabel("Measuring power sources…")
        self.formula.setWordWrap(True)
        self.formula.setObjectName("panel-formula")
        self.formula.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.formula.setStyleSheet("color: palette(mid);")
        col.addWidget(self.formula)
        export = QPushButton("Export session as CSV…")
        export.clicked.connect(self.export_csv)
        col.addWidget(export)
        body.setMinimumWidth(240)
        self.setWidget(_scrolled(body))
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)
        self._painted = QTimer(self)  # fires once what a tick posted (layout, paint) is done
        self._painted.setSingleShot(True)
        self._painted.setInterval(0)
        self._painted.timeout.connect(self._on_painted)
        self._tick_cpu = 0.0
        if sampler is not None:
            self.attach_sampler(sampler)

    def _plot(self, col: QVBoxLayout, title: str, color: str, width: int,
              bottom: str | None = None) -> tuple[_Plot, pg.PlotDataItem]:
        plot = _Plot(title)
        plot.setMinimumHeight(100)
        plot.setMinimumWidth(120)
        if bottom:
            plot.setLabel("bottom", bottom)
        col.addWidget(plot, 1)  # the plots take the height the dock has to spare
        curve = plot.plot(pen=pg.mkPen(color, width=width))
        curve.setSkipFiniteCheck(True)  # the panel's own figures: always finite
        return plot, curve

    # -- inputs --------------------------------------------------------------------------
    def attach_sampler(self, sampler: TelemetrySampler) -> None:
        """Start showing ``sampler``'s readings (it was probed off the GUI thread)."""
        self.sampler = sampler
        self.formula.setText(sampler.power.formula)
        self._timer.start(UPDATE_MS)

    def attach_pid(self, pid: int | None) -> None:
        if self.sampler is not None:
            self.sampler.set_pid(pid)

    def finish(self, done: object) -> RequestAccounting | None:
        """Account a finished request (a DoneEvent; errors are not). The engine and its
        process are read again: the next tick's gauges follow an engine switch at once."""
        if not isinstance(done, DoneEvent) or self.sampler is None:
            return None
        self._remote_now, self._pid = self._remote(), self.bridge.worker_pid
        if self._remote_now:  # this machine's power says nothing about the remote one's
            acc = replace(accounting_for(done, [], formula=REMOTE, prices=self.prices),
                          energy=EnergyIntegral(None, REMOTE, 0, 0.0, None))
        else:
            acc = account_request(self.sampler, done, prices=self.prices)
        self.ledger.add(acc)
        self.last = acc
        self._show_last(acc, done.metrics.speculative)
        return acc

    # -- drawing -------------------------------------------------------------------------
    def refresh(self) -> None:
        """One update: current reply's speed, power history, gauges. Its CPU time on the
        GUI thread, with the layout and paints it causes, is recorded in ``refresh_cpu_ms``
        (the panel's whole cost); the next one comes after UPDATE_MS (STREAMING_MS while a
        reply streams), or later if it cost more than PANEL_BUDGET. Closed: waits a tick."""
        if not self.isVisible():
            if self.sampler is not None:
                self._timer.start(UPDATE_MS)
            return
        self._tick_cpu = time.thread_time()
        try:
            self._refresh()
        finally:
            self._painted.start()

    def _on_painted(self) -> None:
        cost = (time.thread_time() - self._tick_cpu) * 1000
        self.refresh_cpu_ms.append(cost)
        if self.sampler is not None:
            every = STREAMING_MS if self.bridge.busy else UPDATE_MS
            self._timer.start(max(every, int(cost / PANEL_BUDGET)))

    def _take_stamps(self) -> None:
        """Extend the gap and speed series with the pieces that arrived since last time."""
        head = self.bridge.reply_stamps(0, 1)
        if head != self._stamps[:1] or self.bridge.reply_pieces() < len(self._stamps):
            self._stamps, self._gaps, self._speeds = [], [], []  # a new reply: neither
            self._drawn = [-1, -1]  # curve goes on showing the last one until its turn
            for curve in (self.speed_curve, self.latency_curve):
                curve.setData([], [])
        for t in self.bridge.reply_stamps(len(self._stamps)):
            if self._stamps:
                self._gaps.append((t - self._stamps[-1]) / 1e6)
                recent = self._gaps[-SPEED_WINDOW:]
                self._speeds.append(len(recent) / (sum(recent) / 1000 or 1e-9))
            self._stamps.append(t)

    def _refresh(self) -> None:
        assert self.sampler is not None
        self.updates += 1
        if self.updates % SLOW_EVERY == 1:
            self._pid = self.bridge.worker_pid
            self._remote_now = self._remote()
        if self._pid is not None and self._pid != self.sampler.pid:
            self.sampler.set_pid(self._pid)  # the worker was restarted
        self._take_stamps()
        # Redrawing a plot is the panel's one real cost on the GUI thread (2-5 ms): one plot
        # per tick, each only when it has something new. Of 8 ticks, tok/s gets 4, latency 3
        # (the two token curves stay within a few tenths of a second of each other) and the
        # power curve, whose samples come about once a second, 1.
        n, cycle = len(self._gaps), self.updates % 8
        turn = 0 if cycle % 2 == 0 else (3 if cycle == 7 else 1)
        if self._speeds:
            self.labels["speed"].setText(f"{self._speeds[-1]:.1f} tok/s "
                                         f"(last {SPEED_WINDOW} tokens)")
        if turn == 0 and n != self._drawn[0]:
            self._draw_tokens(self.speed_plot, self.speed_curve, self._speeds)
            self._drawn[0] = n
        elif turn == 1 and n != self._drawn[1]:
            self._draw_tokens(self.latency_plot, self.latency_curve, self._gaps)
            self._drawn[1] = n
        latest = self.sampler.latest()
        if turn == 3:
            now = time.perf_counter_ns()
            samples = self.sampler.samples(now - POWER_WINDOW_S * 1_000_000_000)
            powered = [((s.t_ns - now) / 1e9, s.power_w) for s in samples
                       if s.power_w is not None]
            if powered:
                step = max(1, len(powered) // MAX_POINTS)
                self.power_curve.setData([t for t, _ in powered[::step]],
                                         [p for _, p in powered[::step]])
                top = max(p for _, p in powered)
                self.power_plot.show_range(-POWER_WINDOW_S, 0, 0, nice_ceiling(top * 1.1))
        remote = self._remote_now
        if remote != self._shown_remote:  # the plot is this computer's, never the engine's
            self._shown_remote = remote
            self.power_plot.setTitle(POWER_TITLES[remote])
            if remote:
                self.labels["power"].setText(REMOTE)
        if latest is not None:
            self._gauges(latest, remote)

    @staticmethod
    def _draw_tokens(plot: _Plot, curve: pg.PlotDataItem, values: list[float]) -> None:
        """A per-token curve, its axes ending at the next 1-2-5 step past its data."""
        xs, ys = bounded(values)
        curve.setData(xs, ys)
        plot.show_range(0, nice_ceiling(max(len(values), 10)), 0,
                        nice_ceiling(max(ys, default=1.0) * 1.1))

    def _gauges(self, latest, remote: bool) -> None:
        if latest.power_w is not None and not remote:
            self.labels["power"].setText(f"{latest.power_w:.1f} W ({latest.label})")
        cpu = f"{latest.cpu_percent:.0f}%" if latest.cpu_percent is not None else "—"
        rss = f"{latest.rss_bytes / 2**20:.0f} MiB" if latest.rss_bytes else "—"
        self.labels["cpu"].setText(f"engine CPU {cpu}, memory {rss}")
        if latest.gpu_util_pct is not None:
            vram = (f"{latest.vram_used_bytes / 2**30:.1f}/"
                    f"{latest.vram_total_bytes / 2**30:.1f} GiB"
                    if latest.vram_used_bytes and latest.vram_total_bytes else "")
            temp = f", {latest.gpu_temp_c:.0f} °C" if latest.gpu_temp_c is not None else ""
            self.labels["gpu"].setText(f"{latest.gpu_util_pct:.0f}% {vram}{temp}")
        else:
            self.labels["gpu"].setText("no NVIDIA GPU in use")

    def _show_last(self, acc: RequestAccounting, speculative: dict | None) -> None:
        self.bar.set_phases([(p.name, p.ms, p.pct) for p in acc.phases])
        self.labels["ttft"].setText(f"{acc.ttft_ms:.0f} ms")
        self.labels["speed"].setText(f"{acc.decode_tok_s:.1f} tok/s decode, "
                                     f"{acc.prefill_tok_s:.0f} tok/s prefill")
        label = acc.energy.label
        if acc.joules is not None:
            per = f", {acc.j_per_token:.2f} J/token" if acc.j_per_token is not None else ""
            self.labels["energy"].setText(f"{acc.joules:.1f} J{per} ({label})")
            per_1k = acc.usd_per_1k_tokens or 0.0
            self.labels["cost"].setText(
                f"${acc.cost_usd:.6f} (${per_1k:.5f}/1k tokens; cloud reference "
                f"${self.prices.cloud_usd_per_1k_tokens:.3f}/1k)")
        elif label == REMOTE:
            self.labels["energy"].setText(REMOTE)
            self.labels["cost"].setText(REMOTE)
        self.labels["session"].setText(self._session_text())
        if speculative:
            rate = speculative.get("acceptance_rate", 0.0)
            self.labels["speculation"].setText(f"{100 * rate:.0f}% of drafted tokens accepted")
        self.formula.setText(acc.formula)

    def _session_text(self) -> str:
        """The session's totals; remote replies count in tokens, never in energy."""
        totals, rows = self.ledger.totals(), self.ledger.requests()
        remote = sum(r.energy.label == REMOTE for r in rows)
        replies = "reply" if totals.requests == 1 else "replies"
        head = f"{totals.requests} {replies}, {totals.generated_tokens} tokens"
        if remote == len(rows):
            return f"{head}; energy {REMOTE}"
        local = {r.energy.label for r in rows if r.energy.label != REMOTE}
        label = "measured" if local == {"measured"} else "estimated"
        text = f"{head}, {totals.joules:.1f} J, ${totals.cost_usd:.6f} ({label})"
        return text + (f"; energy of {remote} remote replies unknown" if remote else "")

    def _remote(self) -> bool:
        """Whether the engine is a remote one (its power and energy are unknown here)."""
        return getattr(getattr(self.bridge.client, "loaded", None), "source", "") == "remote"

    def export_csv(self, path: str | None = None) -> Path | None:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export session", "hearth-session.csv",
                                                  "CSV (*.csv)")
        return self.ledger.write_csv(path) if path else None

    def close_sampler(self) -> None:
        self._timer.stop()
        if self.sampler is not None:
            self.sampler.close()
