"""The inference engine: a GGUF model on llama.cpp's low-level API, streaming events."""

from core.engine.metrics import RequestMetrics
from core.engine.protocol import (
    ChatMessage,
    DoneEvent,
    ErrorEvent,
    Event,
    GenerationRequest,
    TextEvent,
)
from core.engine.sampling import SamplingParams
from core.engine.session import Engine, EngineConfig

__all__ = [
    "ChatMessage",
    "DoneEvent",
    "Engine",
    "EngineConfig",
    "ErrorEvent",
    "Event",
    "GenerationRequest",
    "RequestMetrics",
    "SamplingParams",
    "TextEvent",
]
