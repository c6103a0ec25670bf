"""Speculative decoding against plain decoding of the same target, in one sitting.

Rows (decode tok/s over N_GEN greedy tokens; "reference" is the same target without
speculation, measured in alternating rounds so drift hits both alike):

* the F32 model with its quantized twin as the draft (Hearth's twin: Q4_K_M with 4-bit
  embeddings, see core/engine/twin.py) — goal >= 1.8x;
* the F32 model with the plain Q4_K_M file as the draft (the twin llama-quantize's
  defaults would make: Q8_0 embeddings), for comparison;
* prompt lookup on a copy-heavy RAG prompt (the answer quotes its context), on the bundled
  Q4_K_M model — goal >= 2.0x.

Every speculative run is also checked token for token against the plain run's text.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.engine_bench import Row, final_event
from core.engine import Engine, EngineConfig, GenerationRequest, SamplingParams
from core.engine.speculative.twin import ensure_twin

N_GEN = 256
STORY = "Write a long story about a dragon who learns to cook."
PASSAGE = (
    "The lighthouse at Point Arden was built in 1871 from granite quarried on the island. "
    "Its lamp was first lit with whale oil, later with kerosene, and since 1934 with "
    "electricity. The keeper's cottage, restored in 1998, now houses a small museum about the "
    "shipwrecks of the bay, including the schooner Mary Ellen, lost in the storm of 1889 with "
    "all eleven of her crew. Visitors can climb the 117 steps of the tower from May to "
    "September; the lamp room is closed to the public. The island is reached by a ferry that "
    "leaves the harbour at nine and returns at four, weather permitting. The museum's archive "
    "holds the keepers' logbooks from 1871 to 1962, when the light was automated."
)
RAG = (f"Context:\n{PASSAGE}\n\nQuestion: What does the context say? Answer by quoting the "
       f"context in full, word for word.\n\nAnswer: \"The lighthouse at Point Arden")


@dataclass
class SpecRow(Row):
    """A Row plus the speculation counters of each speculative run."""

    stats: list[dict[str, Any]] = field(default_factory=list)
    identical: bool = True


def _run(engine: Engine, prompt: str) -> tuple[float, str, dict[str, Any] | None]:
    request = GenerationRequest(prompt=prompt, max_tokens=N_GEN, ignore_eos=True,
                                reuse_cache=False, sampling=SamplingParams.greedy())
    done = final_event(engine.generate(request))
    return done.metrics.decode_tok_s, done.text, done.metrics.speculative


def _compare(name: str, target: Path, prompt: str, spec: dict[str, Any], rounds: int
             ) -> SpecRow:
    row = SpecRow(name, reference_name="same target, no speculation")
    base = {"model_path": target, "n_ctx": 2048, "n_batch": 512, "n_ubatch": 512}
    with Engine(EngineConfig(**base)) as plain, \
            Engine(EngineConfig(**base, **spec)) as fast:
        _run(plain, prompt), _run(fast, prompt)  # warm-up
        for _ in range(rounds):
            tok_s, plain_text, _ = _run(plain, prompt)
            row.reference.append(tok_s)
            tok_s, text, stats = _run(fast, prompt)
            row.hearth.append(tok_s)
            row.stats.append(stats or {})
            row.identical &= text == plain_text
    print(f"{name}: {row.hearth} vs {row.reference} tok/s", file=sys.stderr, flush=True)
    return row


def bench_speculative(variants: dict[str, Path], rounds: int) -> list[SpecRow]:
    """The three rows above; ``variants`` maps "F32" and "Q4_K_M" to files."""
    f32, q4 = variants["F32"], variants["Q4_K_M"]
    ensure_twin(f32)
    return [
        _compare("F32 + twin, decode (tok/s)", f32, STORY, {"draft": "twin", "draft_max": 16},
                 rounds),
        _compare("F32 + Q4_K_M draft (tok/s)", f32, STORY,
                 {"draft": "model", "draft_model_path": q4, "draft_max": 16}, rounds),
        _compare("Q4_K_M + lookup, RAG (tok/s)", q4, RAG, {"draft": "lookup", "draft_max": 16},
                 rounds),
    ]


def print_details(rows: list[SpecRow]) -> None:
    print(f"\n{'speculation':<34} {'accept':>7} {'mean len':>9} {'drafted':>8} "
          f"{'identical':>10}")
    for row in rows:
        drafted = sum(s.get("drafted", 0) for s in row.stats)
        accepted = sum(s.get("accepted", 0) for s in row.stats)
        rounds = sum(s.get("rounds", 0) for s in row.stats)
        rate = accepted / drafted if drafted else 0.0
        mean = accepted / rounds if rounds else 0.0
        print(f"{row.name:<34} {rate:>7.3f} {mean:>9.2f} {drafted:>8} "
              f"{'yes' if row.identical else 'NO':>10}")


def main(rounds: int = 3) -> list[SpecRow]:
    from tests.fixtures.variants import make_variants

    return bench_speculative(make_variants(types=("Q4_K_M", "F32")), rounds)
