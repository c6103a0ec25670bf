"""Chat template choice and rendering (no model needed)."""

from __future__ import annotations

import pytest

from core.engine.runtime.templates import (
    FAMILY_TEMPLATES,
    TemplateError,
    choose_template,
    family_for,
)

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Why?"},
]


def test_gemma_family_template_matches_gemma_format() -> None:
    t = choose_template(None, "gemma3", lambda _: False)
    assert t.name == "gemma"
    assert t.render(CHAT, "<bos>", "<eos>") == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nWhy?<end_of_turn>\n<start_of_turn>model\n"
    )


@pytest.mark.parametrize("arch,family", [
    ("gemma", "gemma"), ("gemma2", "gemma"), ("qwen2", "chatml"), ("qwen3", "chatml"),
    ("mistral", "mistral"), ("phi3", "phi3"), ("somethingnew", "chatml"),
])
def test_family_by_architecture(arch: str, family: str) -> None:
    assert family_for(arch, lambda _: False).name == family


def test_llama_family_decided_by_vocabulary() -> None:
    assert family_for("llama", lambda t: t == "<|start_header_id|>").name == "llama3"
    assert family_for("llama", lambda _: False).name == "llama2"


@pytest.mark.parametrize("name", sorted(FAMILY_TEMPLATES))
def test_every_family_renders_each_turn_and_a_generation_prompt(name: str) -> None:
    t = choose_template(None, "x", lambda _: False)
    t = type(t)(name, FAMILY_TEMPLATES[name].source, FAMILY_TEMPLATES[name].end_of_turn)
    text = t.render(CHAT, "<s>", "</s>")
    for turn in ("Be brief.", "Hi", "Hello!", "Why?"):
        assert turn in text
    assert text.index("Hi") < text.index("Hello!") < text.index("Why?")
    without = t.render(CHAT, "<s>", "</s>", add_generation_prompt=False)
    assert text.startswith(without) and len(text) >= len(without)


def test_gguf_template_is_preferred_and_sandboxed() -> None:
    own = "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"
    t = choose_template(own, "gemma3", lambda _: False)
    assert t.name == "gguf"
    assert t.render(CHAT[1:2], "", "") == "[user]Hi"
    hostile = "{{ messages.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(TemplateError):
        choose_template(hostile, "gemma3", lambda _: False).render(CHAT, "", "")


def test_broken_gguf_template_falls_back_to_family() -> None:
    assert choose_template("{% for %}", "gemma3", lambda _: False).name == "gemma"
