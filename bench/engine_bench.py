"""Hearth's engine against llama-bench: decode (tg) and prefill (pp) tokens per second.

Both sides run the same model, thread count and batch sizes, in one sitting, alternating
rounds so drift (thermal, other load) hits both alike. The engine is measured through its
public API — a request with exact prompt tokens, greedy sampling in C, events streamed —
so the figure includes everything a user's request pays per token.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bench.llama_bench import ensure_llama_bench, run_llama_bench
from bench.stats import median, paired_ratio
from core.engine import (
    DoneEvent,
    Engine,
    EngineConfig,
    Event,
    GenerationRequest,
    SamplingParams,
)
from core.engine.process.client import EngineClient

N_GEN = 128
N_PROMPT = 512
Generate = Callable[[GenerationRequest], Iterable[Event]]


@dataclass
class Row:
    """One comparison: samples of tok/s for Hearth and for the reference."""

    name: str
    hearth: list[float] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    reference_name: str = "llama-bench"

    @property
    def ratio(self) -> float:
        """Median of the paired ratios (:func:`bench.stats.paired_ratio`)."""
        return paired_ratio(self.hearth, self.reference)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "hearth_tok_s": self.hearth,
                "reference_tok_s": self.reference, "reference": self.reference_name,
                "hearth_median": median(self.hearth),
                "reference_median": median(self.reference), "ratio": self.ratio}


def final_event(events: Iterable[Event]) -> DoneEvent:
    """The last event of a stream, which must be a DoneEvent."""
    *_, final = events
    assert isinstance(final, DoneEvent), final
    return final


def decode_tok_s(generate: Generate, bos: int) -> float:
    """tok/s over N_GEN decoded tokens after a one-token prompt (llama-bench's tg)."""
    request = GenerationRequest(prompt_tokens=[bos], max_tokens=N_GEN + 1, ignore_eos=True,
                                reuse_cache=False, sampling=SamplingParams.greedy())
    return final_event(generate(request)).metrics.decode_tok_s


def prefill_tok_s(generate: Generate, tokens: list[int]) -> float:
    """tok/s evaluating N_PROMPT tokens from an empty cache (llama-bench's pp)."""
    request = GenerationRequest(prompt_tokens=tokens, max_tokens=0, reuse_cache=False,
                                sampling=SamplingParams.greedy())
    return final_event(generate(request)).metrics.prefill_tok_s


def bench_engine(model: Path, rounds: int, reps: int) -> tuple[list[Row], dict[str, object]]:
    """Alternate llama-bench, the in-process engine and the engine in its worker process
    (through EngineClient, events over the pipe); returns the rows and the setup."""
    exe = ensure_llama_bench()
    config = EngineConfig(model_path=model, n_ctx=N_PROMPT + N_GEN, n_batch=N_PROMPT,
                          n_ubatch=N_PROMPT)
    tg = Row(f"decode tg{N_GEN} (tok/s)")
    pp = Row(f"prefill pp{N_PROMPT} (tok/s)")
    worker = Row(f"worker decode tg{N_GEN} (tok/s)", reference_name="in-process engine")
    with Engine(config) as engine, EngineClient() as client:
        client.load(config)
        rng = random.Random(0)
        prompt = [rng.randrange(1000, engine.model.n_vocab) for _ in range(N_PROMPT)]
        bos = engine.model.bos
        decode_tok_s(engine.generate, bos)  # warm-up, as llama-bench does
        prefill_tok_s(engine.generate, prompt)
        decode_tok_s(client.generate, bos)
        threads = engine.n_threads

        def ours(row: Row, measure: Callable[[], float]) -> Callable[[], None]:
            return lambda: row.hearth.extend(measure() for _ in range(reps))

        def theirs(row: Row, n_prompt: int, n_gen: int) -> Callable[[], None]:
            return lambda: row.reference.extend(
                run_llama_bench(exe, model, threads, n_prompt, n_gen, reps).samples_ts)

        pairs = [(theirs(tg, 0, N_GEN), ours(tg, lambda: decode_tok_s(engine.generate, bos))),
                 (theirs(pp, N_PROMPT, 0),
                  ours(pp, lambda: prefill_tok_s(engine.generate, prompt)))]
        for r in range(rounds):  # each pair back to back, the order alternating by round
            for first, second in pairs:
                for measure in (first, second) if r % 2 == 0 else (second, first):
                    measure()
            for _ in range(reps):
                worker.hearth.append(decode_tok_s(client.generate, bos))
                worker.reference.append(decode_tok_s(engine.generate, bos))
        setup = {"model": model.name, "threads": engine.n_threads, "n_batch": N_PROMPT,
                 "n_ubatch": N_PROMPT, "rounds": rounds, "reps_per_round": reps,
                 "llama_bench": str(exe)}
    return [tg, pp, worker], setup
