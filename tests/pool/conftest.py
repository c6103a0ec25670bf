"""One engine pool for the whole package, over two real models: the bundled Q4_K_M and its
Q8_0 variant. Loads are the slow part (seconds each on a loaded 2-core machine), so the
pool and what it has resident are shared; each test sets the budget it needs and asserts on
load counts relative to where it started."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.engine import (
    DoneEvent,
    EngineConfig,
    ErrorEvent,
    Event,
    GenerationRequest,
    SamplingParams,
    TextEvent,
)
from core.engine.pool import Catalog, EnginePool, MemoryBudget, predict_cost
from core.models.library import Library

GREEDY = SamplingParams.greedy()
N_CTX = 512


@dataclass
class Models:
    q4: EngineConfig
    q8: EngineConfig
    one: MemoryBudget  # holds either model (at any context these tests use), not both
    both: MemoryBudget


def ask(pool: EnginePool, model: Any, prompt: str, max_tokens: int = 6,
        **kwargs: Any) -> list[Event]:
    request = GenerationRequest(prompt=prompt, max_tokens=max_tokens, sampling=GREEDY,
                                logprobs=0, reuse_cache=False)
    return list(pool.generate(request, model, **kwargs))


def final(events: list[Event]) -> DoneEvent:
    assert events and isinstance(events[-1], DoneEvent), events[-1:]
    return events[-1]


def logprobs(events: list[Event]) -> list[float]:
    return [lp.logprob for e in events if isinstance(e, TextEvent) for lp in e.logprobs or []]


def errors(events: list[Event]) -> list[ErrorEvent]:
    return [e for e in events if isinstance(e, ErrorEvent)]


@pytest.fixture(scope="package")
def models(model_variants: dict[str, Path]) -> Models:
    q4 = EngineConfig(model_path=model_variants["Q4_K_M"], n_ctx=N_CTX, warmup=False,
                      validate=False)
    q8 = EngineConfig(model_path=model_variants["Q8_0"], n_ctx=N_CTX, warmup=False,
                      validate=False)
    largest = max(predict_cost(EngineConfig(model_path=c.model_path, n_ctx=2 * N_CTX),
                               False).host_bytes for c in (q4, q8))
    pair = predict_cost(q4, False).host_bytes + predict_cost(q8, False).host_bytes
    one = MemoryBudget(int(largest * 1.15))
    assert one.host_bytes < pair  # really room for one only
    return Models(q4, q8, one, MemoryBudget(8 * pair))


@pytest.fixture(scope="package")
def pool(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnginePool]:
    empty = tmp_path_factory.mktemp("no-hf-cache")
    library = Library(hf_cache=empty, ollama_roots=[], lmstudio_roots=[],
                      default_model=lambda: models.q4.model_path)
    with EnginePool(budget=models.both, defaults=models.q4, catalog=Catalog(library)) as p:
        yield p
