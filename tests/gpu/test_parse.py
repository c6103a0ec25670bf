"""The reference tools' output (real runs, tests/gpu/data) read into records."""

from __future__ import annotations

import statistics

import pytest

from bench.gpu.parse import (
    aggregate_decode,
    find_test,
    parse_batched_bench,
    parse_llama_bench_json,
)
from tests.gpu.helpers import DATA


def test_llama_bench_json_gives_both_tests_with_their_samples() -> None:
    tests = parse_llama_bench_json((DATA / "llama-bench-cpu.json").read_text())
    assert [t.kind for t in tests] == ["pp32", "tg16"]
    for t in tests:
        assert len(t.samples_ts) == 2
        assert t.avg_ts == pytest.approx(statistics.mean(t.samples_ts), rel=1e-3)
        assert t.backends == "CPU" and t.n_gpu_layers == -1 and t.n_threads == 2
    assert find_test(tests, 0, 16).n_gen == 16


def test_llama_bench_json_after_log_lines_still_parses() -> None:
    """A tool whose log lands on stdout before the JSON (ggml's CUDA init does)."""
    log = (DATA / "batched-bench-cpu.md.txt").read_text().splitlines()[0]
    text = log + "\n" + (DATA / "llama-bench-cpu.json").read_text()
    assert len(parse_llama_bench_json(text)) == 2


def test_missing_test_names_what_ran() -> None:
    tests = parse_llama_bench_json((DATA / "llama-bench-cpu.json").read_text())
    with pytest.raises(ValueError, match=r"no pp512/tg0 test \(it ran pp32, tg16\)"):
        find_test(tests, 512, 0)


@pytest.mark.parametrize("text", ["", "main: error: unable to load model\n", "[1, 2"])
def test_a_failed_llama_bench_is_never_a_measurement(text: str) -> None:
    with pytest.raises(ValueError):
        parse_llama_bench_json(text)


@pytest.mark.parametrize(("fixture", "parallel"), [("batched-bench-cpu.jsonl", [1, 2, 4]),
                                                    ("batched-bench-cpu.md.txt", [1, 2])])
def test_batched_bench_rows_in_either_format(fixture: str, parallel: list[int]) -> None:
    rows = parse_batched_bench((DATA / fixture).read_text())
    assert [r.pl for r in rows] == parallel
    for r in rows:
        # the tool's own definitions: every sequence's tokens over the phase's time
        assert r.speed_tg == pytest.approx(r.pl * r.tg / r.t_tg, rel=0.01)
        assert r.n_kv == r.pl * (r.pp + r.tg)
    agg = aggregate_decode(rows)
    assert sorted(agg) == parallel and all(v > 0 for v in agg.values())


def test_batched_bench_without_rows_is_an_error() -> None:
    with pytest.raises(ValueError, match="no result row"):
        parse_batched_bench("llama_batched_bench: error: failed to create the llama_context\n")
