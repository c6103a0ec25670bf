"""Small helpers for engine tests."""

from __future__ import annotations

from core.engine import DoneEvent, Engine, ErrorEvent, GenerationRequest, TextEvent


def run(engine: Engine, request: GenerationRequest) -> tuple[list[TextEvent], DoneEvent]:
    """All events of a request; fails the test if it ended in an error."""
    events = list(engine.generate(request))
    final = events[-1]
    assert not isinstance(final, ErrorEvent), final.message
    assert isinstance(final, DoneEvent)
    texts = [e for e in events[:-1] if isinstance(e, TextEvent)]
    assert len(texts) == len(events) - 1, "only text events may precede the final event"
    return texts, final
