"""Prompt lookup's n-gram index (pure Python) and the twin's file handling."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.engine import Engine, EngineConfig
from core.engine.speculative.lookup import PromptLookup
from core.engine.speculative.speculator import validate
from core.engine.speculative.twin import ensure_twin, is_twin_fresh, twin_path
from core.errors import ConfigError
from core.gguf.quantize import QuantizeProgress


def test_lookup_copies_what_followed_the_most_recent_match() -> None:
    lookup = PromptLookup(max_ngram=3, min_ngram=2)
    lookup.begin([1, 2, 3, 4, 5, 6, 9, 2, 3, 7, 8])
    lookup.extend([1, 2, 3])  # tail 1 2 3: the 3-gram occurs at the start
    assert lookup.draft(4) == [4, 5, 6, 9]
    lookup.extend([8])  # tail "3 8" never occurred, nor "2 3 8"
    assert lookup.draft(4) == []


def test_lookup_prefers_the_longest_ngram_then_the_latest() -> None:
    lookup = PromptLookup(max_ngram=3, min_ngram=2)
    lookup.begin([2, 3, 10, 9, 2, 3, 12, 2, 3, 11, 9, 2, 3])
    # The 3-gram "9 2 3" was followed by 12; the more recent 2-gram "2 3" by 11.
    assert lookup.draft(1) == [12], "the longer n-gram wins"
    lookup.begin([2, 3, 10, 2, 3, 11, 4, 2, 3])
    assert lookup.draft(1) == [11], "the most recent occurrence of the 2-gram wins"


def test_lookup_never_matches_the_tail_itself() -> None:
    lookup = PromptLookup()
    lookup.begin([1, 2, 3, 4])
    assert lookup.draft(3) == []


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="needs the draft's GGUF path"):
        validate(EngineConfig(draft="model"))
    with pytest.raises(ConfigError, match="between 1 and 63"):
        validate(EngineConfig(draft="lookup", draft_max=64, n_batch=64))
    with pytest.raises(ConfigError, match="Unknown draft kind"):
        validate(EngineConfig(draft="ngram"))  # type: ignore[arg-type]


def test_a_q4_model_gets_no_twin(default_model: Path) -> None:
    with pytest.raises(ConfigError, match="Q4_K_M; a quantized twin only speeds up"):
        ensure_twin(default_model)
    with pytest.raises(ConfigError, match="only speeds up F32, F16, BF16 or Q8_0"):
        Engine(EngineConfig(model_path=default_model, n_ctx=256, draft="twin"))


def test_twin_is_cached_next_to_the_model_and_remade_when_stale(
        model_variants: dict[str, Path]) -> None:
    target = model_variants["F32"]
    twin = ensure_twin(target)
    assert twin == twin_path(target) == target.with_name(f"{target.stem}.twin-q4.gguf")
    mtime = twin.stat().st_mtime_ns
    assert ensure_twin(target) == twin and twin.stat().st_mtime_ns == mtime, "not reused"
    assert is_twin_fresh(target, twin)
    old = target.stat().st_mtime - 10
    os.utime(twin, (old, old))
    assert not is_twin_fresh(target, twin)
    seen: list[QuantizeProgress] = []
    assert ensure_twin(target, progress=seen.append) == twin and is_twin_fresh(target, twin)
    assert seen and seen[-1].done == seen[-1].total > 100, "one progress event per tensor"
