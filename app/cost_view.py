"""Tools › Cost: this machine against the cloud, per query and per month (the seed's analysis).

Inputs come from the settings (electricity, hardware price, amortization, maintenance, cloud
price, tokens per query) and are edited here; energy per query is the panel's measurement of
this session, or the benchmark's J/token for the loaded model, labelled "estimated" where the
power is modelled rather than metered. The plot draws the monthly cost of both against
queries per day, with the break-even marked. All figures come from
:class:`core.telemetry.cost.CostReport`; this view only renders them.

Signals: ``settingsChanged(Settings)`` when the user edits an input.
"""

from __future__ import annotations

from dataclasses import replace

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.settings import Settings
from core.telemetry.cost import CostInputs, CostReport, energy_per_query


def _dspin(lo: float, hi: float, value: float, step: float, decimals: int, suffix: str
           ) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    box.setSuffix(suffix)
    return box


def _usd(x: float) -> str:
    return f"${x:,.2f}" if abs(x) >= 1 else f"${x:.6f}".rstrip("0")


class CostView(QDialog):
    """``session``: (joules, generated tokens, label) of this session, or None;
    ``bench``: (J/token, label) measured by the benchmark, or None."""

    settingsChanged = Signal(object)

    def __init__(self, settings: Settings, session: tuple[float, int, str] | None = None,
                 bench: tuple[float, str] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Cost: this machine vs the cloud")
        self.resize(880, 560)
        self.settings = settings
        self._session, self._bench = session, bench
        s = settings
        row = QHBoxLayout(self)
        form = QFormLayout()
        self.price = _dspin(0, 10, s.electricity_price_kwh, 0.01, 3, " $/kWh")
        self.hardware = _dspin(0, 1e6, s.hardware_price_usd, 100, 0, " $")
        self.months = QSpinBox()
        self.months.setRange(1, 120)
        self.months.setValue(s.amortization_months)
        self.months.setSuffix(" months")
        self.maintenance = _dspin(0, 1e5, s.maintenance_usd_month, 10, 0, " $/month")
        self.cloud = _dspin(0, 10, s.cloud_usd_per_1k_tokens, 0.001, 4, " $/1K tokens")
        self.tokens = QSpinBox()
        self.tokens.setRange(1, 1 << 20)
        self.tokens.setValue(s.tokens_per_query)
        self.per_day = QSpinBox()
        self.per_day.setRange(1, 10_000_000)
        self.per_day.setValue(1000)
        self.per_day.setSuffix(" queries/day")
        for label, w in (("Electricity", self.price), ("Hardware price", self.hardware),
                         ("Amortized over", self.months), ("Maintenance", self.maintenance),
                         ("Cloud price", self.cloud), ("Tokens per query", self.tokens),
                         ("Figures at", self.per_day)):
            form.addRow(label, w)
            w.valueChanged.connect(self._changed)
        self.energy = QLabel()
        self.energy.setWordWrap(True)
        form.addRow("Energy per query", self.energy)
        self.figures: dict[str, QLabel] = {}
        for key, label in (("local_query", "Here, per query"), ("local_1k", "Here, per 1K tokens"),
                           ("energy_1k", "Electricity per 1K tokens"),
                           ("cloud_query", "Cloud, per query"), ("fixed", "Fixed, per month"),
                           ("break_even", "Break-even")):
            self.figures[key] = QLabel("—")
            self.figures[key].setObjectName(f"cost-{key}")
            form.addRow(label, self.figures[key])
        left = QVBoxLayout()
        left.addLayout(form)
        left.addStretch(1)
        row.addLayout(left)
        pg.setConfigOptions(antialias=False, background="w", foreground="k")
        self.plot = pg.PlotWidget(title="Monthly cost ($) against queries per day")
        self.plot.setLabel("bottom", "queries per day")
        self.plot.addLegend()
        self.local_curve = self.plot.plot(pen=pg.mkPen("#27ae60", width=2), name="this machine")
        self.cloud_curve = self.plot.plot(pen=pg.mkPen("#2980b9", width=2), name="cloud")
        dashed = pg.mkPen("#7f8c8d", style=Qt.PenStyle.DashLine)
        self.even_line = pg.InfiniteLine(angle=90, pen=dashed)
        self.plot.addItem(self.even_line)
        row.addWidget(self.plot, 1)
        self.report: CostReport | None = None
        self.refresh()

    def inputs(self) -> CostInputs | None:
        """The inputs as edited, or None when no energy per query has been measured."""
        tokens = self.tokens.value()
        session = self._session
        found = energy_per_query(
            tokens, session_joules=session[0] if session else None,
            session_tokens=session[1] if session else 0,
            session_label=session[2] if session else "",
            bench_j_per_token=self._bench[0] if self._bench else None,
            bench_label=self._bench[1] if self._bench else "")
        if found is None:
            return None
        joules, label, source = found
        return CostInputs(joules_per_query=joules, energy_label=label,
                          electricity_usd_per_kwh=self.price.value(),
                          hardware_usd=self.hardware.value(),
                          amortization_months=self.months.value(),
                          maintenance_usd_month=self.maintenance.value(),
                          cloud_usd_per_1k_tokens=self.cloud.value(), tokens_per_query=tokens,
                          energy_source=source)

    def _changed(self, *_: object) -> None:
        self.settings = replace(
            self.settings, electricity_price_kwh=self.price.value(),
            hardware_price_usd=self.hardware.value(), amortization_months=self.months.value(),
            maintenance_usd_month=self.maintenance.value(),
            cloud_usd_per_1k_tokens=self.cloud.value(), tokens_per_query=self.tokens.value())
        self.settingsChanged.emit(self.settings)
        self.refresh()

    def refresh(self) -> None:
        inputs = self.inputs()
        if inputs is None:
            self.report = None
            self.energy.setText("Not measured yet: send a message or run Tools › Benchmark.")
            for label in self.figures.values():
                label.setText("—")
            return
        r = self.report = CostReport(inputs)
        q = self.per_day.value()
        est = " (estimated)" if inputs.energy_label == "estimated" else " (measured)"
        self.energy.setText(f"{inputs.joules_per_query:.1f} J{est}, from {inputs.energy_source}")
        self.figures["local_query"].setText(_usd(r.local_usd_per_query(q)))
        self.figures["local_1k"].setText(_usd(r.local_usd_per_1k_tokens(q)))
        self.figures["energy_1k"].setText(_usd(r.energy_usd_per_1k_tokens))
        self.figures["cloud_query"].setText(_usd(r.cloud_usd_per_query))
        self.figures["fixed"].setText(_usd(r.fixed_usd_month))
        even = r.break_even_queries_per_day
        self.figures["break_even"].setText(
            f"{even:,.0f} queries/day" if even is not None
            else "never: a query's electricity costs more than the cloud")
        points = r.curve(r.plot_range())
        xs = [p[0] for p in points]
        self.local_curve.setData(xs, [p[1] for p in points])
        self.cloud_curve.setData(xs, [p[2] for p in points])
        self.even_line.setVisible(even is not None)
        if even is not None:
            self.even_line.setValue(even)
