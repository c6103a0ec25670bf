"""Running several requests through one engine's scheduler, and explaining a divergence."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.engine import DoneEvent, Engine, ErrorEvent, Event, GenerationRequest, TextEvent
from core.engine.runtime.context import Batch


class Collector:
    """A sink that keeps one request's events."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    @property
    def final(self) -> DoneEvent | ErrorEvent | None:
        last = self.events[-1] if self.events else None
        return last if isinstance(last, DoneEvent | ErrorEvent) else None

    @property
    def texts(self) -> list[TextEvent]:
        return [e for e in self.events if isinstance(e, TextEvent)]


def run_together(engine: Engine, requests: Sequence[GenerationRequest],
                 max_steps: int = 100_000) -> list[Collector]:
    """Submit every request, then step the scheduler until all of them ended."""
    sinks = [Collector() for _ in requests]
    for request, sink in zip(requests, sinks, strict=True):
        engine.submit(request, sink)
    for _ in range(max_steps):
        if not engine.step():
            break
    assert all(s.final is not None for s in sinks), "a request never ended"
    return sinks


def run_alone(engine: Engine, request: GenerationRequest) -> DoneEvent:
    final = list(engine.generate(request))[-1]
    assert isinstance(final, DoneEvent), final
    return final


def logit_gap(engine: Engine, prompt: list[int], chosen: int, other: int) -> float:
    """|logit(chosen) - logit(other)| after ``prompt``, evaluated alone in one batch on a
    free sequence of ``engine`` (which it clears again)."""
    seq = engine.scheduler.slots[-1]
    seq.clear()
    batch = Batch(len(prompt))
    try:
        batch.add_run(prompt, 0, seq.seq_id, True)
        assert engine.context.decode(batch.ptr) == 0
        row = np.array(engine.context.logits_row(batch.n - 1))
    finally:
        batch.close()
        seq.clear()
    return abs(float(row[chosen]) - float(row[other]))
