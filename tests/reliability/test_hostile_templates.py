"""Chat templates carried by a model file that fail at render time: the reply still comes,
through the family template, and says so; nothing crashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.engine import Engine, EngineConfig
from core.engine.api import ChatMessage, DoneEvent, GenerationRequest
from tests.fixtures.crashing_models import make_tiny_llama

HOSTILE = {
    "raise_exception": "{{ raise_exception('roles must alternate') }}",
    "undefined": "{{ messages[0].content.nope.deeper }}",
    "python-error": "{% for m in messages %}{{ 1 // 0 }}{% endfor %}",
    "type-error": "{{ messages + 1 }}",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_render_failure_falls_back_to_family_template(tmp_path: Path, name: str) -> None:
    path = make_tiny_llama(tmp_path / f"{name}.gguf",
                           extra_metadata={"tokenizer.chat_template": HOSTILE[name]})
    with Engine(EngineConfig(model_path=path, n_ctx=128, n_gpu_layers=0)) as engine:
        assert engine.template_name == "gguf"  # it compiles; it fails only when rendered
        events = list(engine.generate(GenerationRequest(
            messages=[ChatMessage("user", "hi")], max_tokens=2)))
    done = events[-1]
    assert isinstance(done, DoneEvent), done
    assert done.template is not None and "fallback" in done.template
    assert done.template.startswith("llama")  # the llama family's template rendered it
