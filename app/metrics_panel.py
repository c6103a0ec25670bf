"""The live latency and power panel: what every token costs, measured honestly.

A dock that polls the core's telemetry at 10 Hz (never faster): tok/s and per-token latency
over the current reply, power over the last minutes, the seed's time breakdown of the last
reply, energy and cost of the last reply and of the session, and CPU/GPU gauges. Every
power figure carries its label ("measured" or "estimated" with the formula).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QGridLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.telemetry import CostSettings, RequestAccounting, SessionLedger, TelemetrySampler
from core.telemetry import account as account_request
from core.telemetry.accounting import EnergyIntegral, accounting_for

REMOTE = "unknown (remote engine)"
POWER_TITLES = {False: "Power (W), last 3 minutes",
                True: "This computer's power (W), last 3 minutes; the remote engine's: unknown"}
UPDATE_MS = 100  # 10 Hz at most: the panel must never steal the event loop
POWER_WINDOW_S = 180
PHASE_COLORS = {"tokenize": "#8e44ad", "prefill": "#e67e22", "decode": "#2980b9",
                "detokenize": "#27ae60", "other": "#95a5a6"}


class BreakdownBar(QWidget):
    """A horizontal bar split into the phases of the last reply."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.phases: list[tuple[str, float, float]] = []  # name, ms, pct
        self.setMinimumHeight(22)

    def set_phases(self, phases: list[tuple[str, float, float]]) -> None:
        self.phases = phases
        self.setToolTip("\n".join(f"{n}: {ms:.1f} ms ({pct:.1f}%)" for n, ms, pct in phases))
        self.update()

    def paintEvent(self, _event: object) -> None:
        painter = QPainter(self)
        x, width = 0.0, float(self.width())
        for name, _ms, pct in self.phases:
            w = width * pct / 100
            painter.fillRect(QRectF(x, 0, w, self.height()), QColor(PHASE_COLORS.get(name,
                                                                                    "#777")))
            x += w
        painter.end()


class MetricsPanel(QDockWidget):
    """The dock. Feed it with :meth:`attach_pid` (worker restarts) and :meth:`finish`
    (each DoneEvent); it reads the bridge's token stamps and the sampler by itself."""

    def __init__(self, bridge, sampler: TelemetrySampler,
                 prices: CostSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__("Latency and power", parent)
        self.setObjectName("metrics-panel")
        self.bridge, self.sampler = bridge, sampler
        self.prices = prices or CostSettings()
        self.ledger = SessionLedger()
        self.last: RequestAccounting | None = None
        self.updates = 0
        self.refresh_cpu_ms: list[float] = []
        self._drawn_tokens = 0
        body = QWidget()
        col = QVBoxLayout(body)
        pg.setConfigOptions(antialias=False, background="w", foreground="k")
        self.speed_plot = pg.PlotWidget(title="This reply: tokens per second")
        self.speed_plot.setMinimumHeight(100)
        self.speed_curve = self.speed_plot.plot(pen=pg.mkPen("#2980b9", width=2))
        col.addWidget(self.speed_plot)
        self.latency_plot = pg.PlotWidget(title="This reply: latency per token (ms)")
        self.latency_plot.setMinimumHeight(100)
        self.latency_curve = self.latency_plot.plot(pen=pg.mkPen("#e67e22", width=1))
        self.latency_plot.setLabel("bottom", "token")
        col.addWidget(self.latency_plot)
        self.power_plot = pg.PlotWidget(title=POWER_TITLES[False])
        self._shown_remote = False
        self.power_plot.setMinimumHeight(110)
        self.power_curve = self.power_plot.plot(pen=pg.mkPen("#c0392b", width=2))
        self.power_plot.setLabel("bottom", "seconds ago")
        col.addWidget(self.power_plot)
        col.addWidget(QLabel("Last reply: tokenize · prefill · decode · detokenize · other"))
        self.bar = BreakdownBar()
        col.addWidget(self.bar)
        grid = QGridLayout()
        self.labels: dict[str, QLabel] = {}
        names = {"power": "Power", "cpu": "CPU", "gpu": "GPU", "ttft": "Time to first token",
                 "speed": "Speed", "energy": "Energy (last reply)", "cost": "Cost (last reply)",
                 "session": "This session", "speculation": "Speculation"}
        for i, (key, title) in enumerate(names.items()):
            name = QLabel(title)
            value = QLabel("—")
            value.setObjectName(f"panel-{key}")
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            grid.addWidget(name, i, 0)
            grid.addWidget(value, i, 1)
            self.labels[key] = value
        col.addLayout(grid)
        self.formula = QLabel(self.sampler.power.formula)
        self.formula.setWordWrap(True)
        self.formula.setObjectName("panel-formula")
        self.formula.setStyleSheet("color: palette(mid);")
        col.addWidget(self.formula)
        export = QPushButton("Export session as CSV…")
        export.clicked.connect(self.export_csv)
        col.addWidget(export)
        col.addStretch(1)
        self.setWidget(body)
        self._timer = QTimer(self)
        self._timer.setInterval(UPDATE_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()

    # -- inputs --------------------------------------------------------------------------
    def attach_pid(self, pid: int | None) -> None:
        self.sampler.set_pid(pid)

    def finish(self, done: object) -> RequestAccounting | None:
        """Account a finished request (a DoneEvent); errors are not accounted."""
        from core.engine import DoneEvent

        if not isinstance(done, DoneEvent):
            return None
        if self._remote():  # this machine's power says nothing about the remote one's
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
        """One update (10 Hz): current reply's speed, power history, gauges. Its CPU time
        on the GUI thread is recorded in ``refresh_cpu_ms`` (the panel's whole cost)."""
        t0 = time.thread_time()
        try:
            self._refresh()
        finally:
            self.refresh_cpu_ms.append((time.thread_time() - t0) * 1000)

    def _refresh(self) -> None:
        self.updates += 1
        pid = self.bridge.client.worker_pid
        if pid is not None and pid != self.sampler.pid:
            self.sampler.set_pid(pid)  # the worker was restarted
        # Redrawing a plot (axes, ticks, curve) is the panel's one real cost on the GUI
        # thread (~10-20 ms for all three at once on a 2-core machine): one plot per tick,
        # each refreshed at 10/3 Hz, keeps every tick well inside a frame.
        plot = self.updates % 3
        stamps = self.bridge.reply_stamps()
        if len(stamps) >= 2:
            gaps = [(b - a) / 1e6 for a, b in itertools.pairwise(stamps)]
            window = 8
            recent = gaps[-window:]
            self.labels["speed"].setText(f"{len(recent) / (sum(recent) / 1000):.1f} tok/s "
                                         f"(last {window} tokens)")
            if plot == 0 and len(stamps) != self._drawn_tokens:
                speed = [min(window, i + 1) / (sum(gaps[max(0, i - window + 1):i + 1]) / 1000)
                         for i in range(len(gaps))]
                self.speed_curve.setData(speed)
            elif plot == 1 and len(stamps) != self._drawn_tokens:
                self.latency_curve.setData(gaps)
                self._drawn_tokens = len(stamps)
        now = time.perf_counter_ns()
        samples = self.sampler.samples(now - POWER_WINDOW_S * 1_000_000_000)
        powered = [(s.t_ns, s.power_w) for s in samples if s.power_w is not None]
        if powered and plot == 2:
            self.power_curve.setData([(t - now) / 1e9 for t, _ in powered],
                                     [p for _, p in powered])
        latest = samples[-1] if samples else None
        remote = self._remote()
        if remote != self._shown_remote:  # the plot is this computer's, never the engine's
            self._shown_remote = remote
            self.power_plot.setTitle(POWER_TITLES[remote])
            if remote:
                self.labels["power"].setText(REMOTE)
        if latest is not None:
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
        head = f"{totals.requests} replies, {totals.generated_tokens} tokens"
        if remote == len(rows):
            return f"{head}; energy {REMOTE}"
        local = {r.energy.label for r in rows if r.energy.label != REMOTE}
        label = "measured" if local == {"measured"} else "estimated"
        text = f"{head}, {totals.joules:.1f} J, ${totals.cost_usd:.6f} ({label})"
        return text + (f"; energy of {remote} remote replies unknown" if remote else "")

    def _remote(self) -> bool:
        """Whether the engine is a remote one (its power and energy are unknown here)."""
        loaded = getattr(self.bridge.client, "loaded", None)
        return getattr(loaded, "source", "local") == "remote"

    def export_csv(self, path: str | None = None) -> Path | None:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export session", "hearth-session.csv",
                                                  "CSV (*.csv)")
        return self.ledger.write_csv(path) if path else None

    def close_sampler(self) -> None:
        self._timer.stop()
        self.sampler.close()
