"""Tools › Benchmark and Tools › Cost in the real app, offscreen, with the real model."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.planning.measured import MeasurementStore
from core.settings import Settings
from core.telemetry.cost import CostInputs, CostReport
from tests.paths import ARTIFACTS

SMALL = ["--reps", "1", "--n-prompt", "32", "--n-gen", "8", "--quality-ctx", "64",
         "--quality-tokens", "128"]


def test_benchmark_dialog_runs_stores_and_cancels(qtbot, default_model: Path) -> None:
    from app.benchmark_dialog import BenchmarkDialog

    dialog = BenchmarkDialog([default_model])
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.selected_files() == [default_model]
    with qtbot.waitSignal(dialog.finished, timeout=300_000) as done:
        dialog.start(SMALL)
        qtbot.waitUntil(lambda: dialog.progress.value() > 0, timeout=120_000)  # progress
    rows = done.args[0]
    assert len(rows) == 1 and rows[0].decode_tok_s > 0 and rows[0].perplexity > 1
    assert MeasurementStore().latest(default_model) is not None  # what the picker reads
    cells = [dialog.table.item(0, c).text() for c in range(dialog.table.columnCount())]
    assert cells[0] == default_model.name and cells[1] == "Q4_K_M" and "—" not in cells[:8]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dialog.grab().save(str(ARTIFACTS / "benchmark-dialog.png"))

    with qtbot.waitSignal(dialog.finished, timeout=120_000):
        dialog.start(["--reps", "20", "--n-gen", "256"])
        qtbot.waitUntil(lambda: dialog.progress.maximum() > 1, timeout=120_000)  # running
        dialog.cancel()
    assert "Cancelled" in dialog.status.text()
    assert dialog.start_button.isEnabled() and dialog.process is None


def test_cost_view_shows_the_reports_figures_and_plots_both(qtbot) -> None:
    from app.cost_view import CostView

    settings = Settings(hardware_price_usd=1200, amortization_months=12,
                        electricity_price_kwh=0.2, cloud_usd_per_1k_tokens=0.01,
                        tokens_per_query=100)
    view = CostView(settings, session=(50.0, 25, "estimated"))  # 2 J per token
    qtbot.addWidget(view)
    view.show()
    expected = CostReport(CostInputs(joules_per_query=200.0, energy_label="estimated",
                                     electricity_usd_per_kwh=0.2, hardware_usd=1200,
                                     amortization_months=12))
    assert view.report is not None
    even = expected.break_even_queries_per_day
    assert view.report.break_even_queries_per_day == pytest.approx(even)
    assert view.figures["break_even"].text() == f"{even:,.0f} queries/day"
    assert "estimated" in view.energy.text() and "this session" in view.energy.text()
    xs, ys = view.local_curve.getData()
    assert ys[0] == pytest.approx(100.0) and xs[-1] == pytest.approx(2.5 * even)
    changed: list[Settings] = []
    view.settingsChanged.connect(changed.append)
    view.hardware.setValue(2400)
    assert changed and changed[-1].hardware_price_usd == 2400
    assert view.report.break_even_queries_per_day == pytest.approx(
        (2400 / 12) / (30 * (0.001 - 200 / 3.6e6 * 0.2)))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    view.grab().save(str(ARTIFACTS / "cost-view.png"))


def test_tools_menu_and_a_chat_profile(qtbot, make_window) -> None:
    from app.tools_menu import chat_sampling, choose_chat_profile

    window = make_window()
    titles = [a.text() for a in window.menuBar().actions()]
    assert "&Tools" in titles
    choose_chat_profile(window, "bulk-processing")  # before any message: new chats' default
    assert window.settings.chat_profile == "bulk-processing"
    params = chat_sampling(window.settings, None)
    assert params.preset == "greedy" and params.temperature == 0.0
    qtbot.waitUntil(lambda: "Bulk processing" in window.statusBar().currentMessage(),
                    timeout=60_000)
