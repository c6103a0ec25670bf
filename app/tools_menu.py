"""The Tools menu (Benchmark…, Cost…) and each chat's profile, installed on the main window.

Kept out of ``main_window.py`` so the window only calls :func:`install_tools`; everything
blocking (scanning the library, planning a profile) runs on a :class:`Background` thread.
A chat's profile sets its sampling preset at once (:func:`chat_sampling`) and, when the
profile's plan picks another model file for this machine, loads that file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtGui import QAction, QActionGroup

from app.bridge import Background
from core.engine.sampling import SamplingParams
from core.settings import Settings, save_settings


def chat_sampling(settings: Settings, chat_id: int | None) -> SamplingParams:
    """The sampling of a chat: its profile's preset and temperature over the settings'
    other knobs, or the settings alone when the chat has no profile."""
    name = settings.profile_for_chat(chat_id)
    profile = settings.all_profiles().get(name) if name else None
    if profile is None:
        return settings.sampling()
    preset = "greedy" if profile.temperature == 0 else profile.sampling
    return SamplingParams(preset=preset, temperature=profile.temperature,  # type: ignore[arg-type]
                          top_k=settings.top_k, top_p=settings.top_p, min_p=settings.min_p,
                          repeat_penalty=settings.repeat_penalty)


def install_tools(window: Any) -> None:
    """Add Tools (Benchmark…, Cost…, Profile for this chat ▸) to ``window``'s menu bar."""
    window.tools_jobs = Background("tools", window, report=window.report_error)
    menu = window.menuBar().addMenu("&Tools")
    bench = QAction("&Benchmark…", window)
    bench.triggered.connect(lambda: open_benchmark(window))
    menu.addAction(bench)
    cost = QAction("&Cost…", window)
    cost.triggered.connect(lambda: open_cost(window))
    menu.addAction(cost)
    window.profile_menu = menu.addMenu("&Profile for this chat")
    window.profile_menu.aboutToShow.connect(lambda: _fill_profiles(window))


def _fill_profiles(window: Any) -> None:
    menu = window.profile_menu
    menu.clear()
    group = QActionGroup(menu)
    current = window.settings.profile_for_chat(window.conversation.chat_id)
    for name, title in [("", "None (use Preferences)"),
                        *[(n, p.title) for n, p in window.settings.all_profiles().items()]]:
        act = QAction(title, menu, checkable=True)
        act.setChecked(name == current)
        act.triggered.connect(lambda _=False, n=name: choose_chat_profile(window, n))
        group.addAction(act)
        menu.addAction(act)


def choose_chat_profile(window: Any, name: str) -> None:
    """Give the current chat (or new chats, before the first message) profile ``name``;
    load the file its plan picks when that is not the loaded one."""
    settings: Settings = window.settings
    chat_id = window.conversation.chat_id
    if chat_id is None:
        settings.chat_profile = name
    elif name:
        settings.chat_profiles[str(chat_id)] = name
    else:
        settings.chat_profiles.pop(str(chat_id), None)
    window.tools_jobs.run(lambda s=settings: save_settings(s))
    if not name:
        return

    def plan() -> Any:
        from core.settings import plan_named_profile

        return plan_named_profile(settings, name)

    def apply(result: Any) -> None:
        window.statusBar().showMessage(f"Profile {result.profile.title}: "
                                       + "; ".join(result.reasons[:2]), 15000)
        loaded = getattr(window, "loaded", None)
        if result.path and (loaded is None or Path(loaded.path) != Path(result.path)):
            window.load_model(Path(result.path))

    window.tools_jobs.run(plan, apply, lambda err: window.statusBar().showMessage(str(err)))


def open_benchmark(window: Any) -> None:
    from app.benchmark_dialog import BenchmarkDialog

    def files() -> list[Path]:
        from core.models.library import Library

        return [e.path for e in Library().models() if e.usable]

    def show(paths: list[Path]) -> None:
        dialog = BenchmarkDialog(paths, window)
        window.benchmark_dialog = dialog
        dialog.open()

    window.tools_jobs.run(files, show, lambda err: window.statusBar().showMessage(str(err)))


def open_cost(window: Any) -> None:
    from app.cost_view import CostView
    from core.planning.measured import MeasurementStore

    panel = getattr(window, "panel", None)
    session = None
    if panel is not None:
        totals = panel.ledger.totals()
        if totals.requests and totals.generated_tokens:
            session = (totals.joules, totals.generated_tokens, totals.label)

    def bench() -> tuple[float, str] | None:
        loaded = getattr(window, "loaded", None)
        row = MeasurementStore().latest(Path(loaded.path)) if loaded else None
        return (row.j_per_token, row.energy_label) if row and row.j_per_token else None

    def show(measured: tuple[float, str] | None) -> None:
        view = CostView(window.settings, session, measured, window)
        view.settingsChanged.connect(lambda s: _keep_settings(window, s))
        window.cost_view = view
        view.open()

    window.tools_jobs.run(bench, show)


def _keep_settings(window: Any, settings: Settings) -> None:
    window.settings = settings
    window.tools_jobs.run(lambda s=settings: save_settings(s))
