"""The inference engine: a GGUF model on llama.cpp's low-level API, streaming events."""

from core.engine.api import (
    ChatMessage,
    DoneEvent,
    ErrorEvent,
    Event,
    GenerationRequest,
    TextEvent,
)
from core.engine.config import EngineConfig
from core.engine.metrics import RequestMetrics
from core.engine.runtime.session import Engine
from core.engine.sampling import SamplingParams

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
