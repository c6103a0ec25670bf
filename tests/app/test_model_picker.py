"""The model picker against the local test hub: search, fit labels, download with
progress, cancel and resume, then load — and the library tab."""

from __future__ import annotations

from pathlib import Path

from core.models.library import Library
from tests.fixtures.hub_server import DEFAULT_REPO
from tests.paths import ARTIFACTS

TIMEOUT = 60_000


def _picker(qtbot, default_model: Path, tmp_path: Path):
    from app.model_picker import ModelPicker
    from core.settings import Settings

    library = Library(default_model=lambda: default_model, ollama_roots=[],
                      lmstudio_roots=[], imported_dir=tmp_path / "imported")
    picker = ModelPicker(Settings(n_ctx=2048), library=library)
    qtbot.addWidget(picker)
    picker.show()
    return picker


def test_library_tab_lists_the_default_model_with_a_fit_label(qtbot, default_model: Path,
                                                              tmp_path: Path) -> None:
    picker = _picker(qtbot, default_model, tmp_path)
    qtbot.waitUntil(lambda: picker.local_table.rowCount() >= 1, timeout=TIMEOUT)
    row = [picker.local_table.item(0, c).text() for c in range(picker.local_table.columnCount())]
    assert row[0] == default_model.name and row[1] == "Q4_K_M" and row[4] == "default"
    assert "CPU only" in row[5] and "GiB RAM" in row[5]  # this machine has no GPU
    rows = picker.local_table.rowCount()
    assert picker.status.text() == f"{rows} model{'' if rows == 1 else 's'} on this computer"


def test_search_download_cancel_resume_and_load(qtbot, test_hub, default_model: Path,
                                                tmp_path: Path) -> None:
    picker = _picker(qtbot, default_model, tmp_path)
    picker.tabs.setCurrentIndex(1)
    picker.query.setText("gemma")
    picker.search()
    qtbot.waitUntil(lambda: picker.repos.count() >= 1, timeout=TIMEOUT)
    with qtbot.waitSignal(picker.filesListed, timeout=TIMEOUT):
        picker.list_files(DEFAULT_REPO)
    name = picker.files.item(0, 0).text()
    verdict = picker.files.item(0, 3).text()
    assert "recommended" in verdict and "CPU only" in verdict
    assert picker.selected_file() == name  # the recommended file is pre-selected
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    picker.grab().save(str(ARTIFACTS / "model-picker.png"))

    size = default_model.stat().st_size
    test_hub.fault(DEFAULT_REPO, name, stall_at=[size // 2])
    picker.download()
    qtbot.waitUntil(test_hub.stalled.is_set, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: picker.progress.value() > 0, timeout=TIMEOUT)
    assert "MiB" in picker.progress.format()  # bytes and rate are shown
    picker.cancel_download()
    test_hub.release.set()
    qtbot.waitUntil(lambda: picker.download_button.isEnabled(), timeout=TIMEOUT)
    assert "cancel" in picker.status.text().lower()

    test_hub.faults.clear()
    picker.download()
    qtbot.waitUntil(lambda: picker.downloaded is not None, timeout=TIMEOUT)
    sent = sum(n for (repo, _f), n in test_hub.sent.items() if repo == DEFAULT_REPO)
    assert sent < 1.2 * size, f"resume re-sent too much: {sent} of {size}"
    assert picker.resumed_from > 0  # the second download started from the partial file

    chosen: list[str] = []
    picker.modelChosen.connect(chosen.append)
    picker.tabs.setCurrentIndex(1)
    picker.load_button.click()
    assert chosen and Path(chosen[0]).stat().st_size == size
