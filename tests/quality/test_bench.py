"""``hearth-cli bench`` on the default model and a variant: figures, storage, the picker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli import main
from core.models.library import Library
from core.planning.measured import MeasurementStore

ARGS = ["--reps", "1", "--n-prompt", "32", "--n-gen", "8", "--quality-ctx", "64",
        "--quality-tokens", "256", "--widths", "1,2"]


@pytest.fixture(scope="module")
def bench_run(default_model: Path, tmp_path_factory, request) -> tuple[dict, Path]:
    """One small run over the default model and its Q8_0 variant, in its own home."""
    home = tmp_path_factory.mktemp("bench-home")
    monkeypatch = pytest.MonkeyPatch()
    request.addfinalizer(monkeypatch.undo)
    monkeypatch.setenv("HEARTH_HOME", str(home))
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["bench", "--model", str(default_model), "--variants", "Q8_0", "--json",
                     *ARGS])
    assert code == 0
    return json.loads(out.getvalue()), home


def test_bench_reports_speed_energy_memory_and_quality(bench_run, default_model) -> None:
    data, _ = bench_run
    rows = {r["quant"]: r for r in data["results"]}
    assert set(rows) == {"Q4_K_M", "Q8_0"}
    for r in rows.values():
        assert r["decode_tok_s"] > 0 and r["prefill_tok_s"] > 0 and r["ttft_ms"] > 0
        assert r["ttft_prompt_tokens"] == 32
        assert r["j_per_token"] > 0 and r["energy_label"] in ("measured", "estimated")
        assert r["peak_rss_bytes"] > 100 * 2**20  # the model's weights at least
        assert 1 < r["perplexity"] < 1000 and r["quality_tokens"] == 4 * 31
        assert r["parallel"]["1"] > 0  # width 1 through the same code path
        # Width 2 decodes two sequences per llama_decode (the batching engine), so it is
        # measured, and no "needs the batching engine" note is left behind.
        assert r["parallel"]["2"] is not None and r["parallel"]["2"] > 0
        assert not any("width 2" in n for n in r["notes"])
    # Q8_0 is the highest precision here: the reference, and the Q4_K_M is measured from it.
    assert rows["Q8_0"]["kl_mean"] == 0.0 and rows["Q8_0"]["same_top_pct"] == 100.0
    assert rows["Q4_K_M"]["reference"] == rows["Q8_0"]["file"]
    assert 0 < rows["Q4_K_M"]["kl_mean"] < 0.1
    # That Q8_0 was made from the Q4_K_M: the report says its KL is not a loss from an original.
    assert "made from a Q4_K_M file" in rows["Q4_K_M"]["reference_note"]


def test_results_are_stored_and_the_picker_shows_them(bench_run, default_model, qtbot,
                                                      monkeypatch, tmp_path) -> None:
    data, home = bench_run
    monkeypatch.setenv("HEARTH_HOME", str(home))
    stored = MeasurementStore().latest(default_model)
    assert stored is not None and stored.decode_tok_s == pytest.approx(
        next(r for r in data["results"] if r["quant"] == "Q4_K_M")["decode_tok_s"])

    from app.model_picker import ModelPicker
    from core.settings import Settings

    library = Library(default_model=lambda: default_model, ollama_roots=[], lmstudio_roots=[],
                      imported_dir=tmp_path / "imported", hf_cache=tmp_path / "hf")
    picker = ModelPicker(Settings(n_ctx=2048), library=library)
    qtbot.addWidget(picker)
    qtbot.waitUntil(lambda: picker.local_table.rowCount() >= 1, timeout=60_000)
    cells = [picker.local_table.item(0, c).text() for c in range(7)]
    assert "CPU only" in cells[5]  # the prediction...
    assert "tok/s" in cells[6] and "PPL" in cells[6] and "KL" in cells[6]  # ...and beside it


def test_bench_bad_options_are_one_line(capsys) -> None:
    assert main(["bench", "--model", "/nonexistent.gguf"]) == 1
    assert "does not exist" in capsys.readouterr()[1]
    with pytest.raises(SystemExit):
        main(["bench", "--widths", "1,0"])
