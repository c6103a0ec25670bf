"""Chat templates: the GGUF's own Jinja template when it has one, else the family's.

The model's template is rendered in Jinja's immutable sandbox (templates come from files
downloaded off the internet). When a GGUF carries no template — the bundled Gemma 3 270M
does not — the template is chosen by ``general.architecture``; the name of what was used is
reported with every reply so a wrong guess is visible rather than silent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from core.errors import HearthError

# Built-in templates use no whitespace control and never put a newline right after a block
# tag, so they render the same under trim_blocks/lstrip_blocks (which GGUF templates expect).
_SPLIT_SYSTEM = (
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set sys = messages[0]['content'] %}{% set msgs = messages[1:] %}"
    "{% else %}{% set sys = '' %}{% set msgs = messages %}{% endif %}"
)
_GEMMA = (
    "{{ bos_token }}" + _SPLIT_SYSTEM + "{% for m in msgs %}"
    "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{% if loop.first and sys %}{{ sys | trim }}\n\n{% endif %}"
    "{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
_LLAMA3 = (
    "{{ bos_token }}{% for m in messages %}"
    "<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
_LLAMA2 = (
    _SPLIT_SYSTEM + "{% for m in msgs %}{% if m['role'] == 'user' %}{{ bos_token }}[INST] "
    "{% if loop.first and sys %}<<SYS>>\n{{ sys | trim }}\n<</SYS>>\n\n{% endif %}"
    "{{ m['content'] | trim }} [/INST]"
    "{% else %} {{ m['content'] | trim }} {{ eos_token }}{% endif %}{% endfor %}"
)
_MISTRAL = (
    "{{ bos_token }}" + _SPLIT_SYSTEM + "{% for m in msgs %}{% if m['role'] == 'user' %}[INST] "
    "{% if loop.first and sys %}{{ sys | trim }}\n\n{% endif %}{{ m['content'] | trim }}[/INST]"
    "{% else %}{{ m['content'] | trim }}{{ eos_token }}{% endif %}{% endfor %}"
)
_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] | trim }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_PHI3 = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] | trim }}<|end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class FamilyTemplate:
    """A built-in template and the marker that ends one of its turns."""

    name: str
    source: str
    end_of_turn: str


FAMILY_TEMPLATES: dict[str, FamilyTemplate] = {
    t.name: t
    for t in (
        FamilyTemplate("gemma", _GEMMA, "<end_of_turn>"),
        FamilyTemplate("llama3", _LLAMA3, "<|eot_id|>"),
        FamilyTemplate("llama2", _LLAMA2, "</s>"),
        FamilyTemplate("mistral", _MISTRAL, "</s>"),
        FamilyTemplate("chatml", _CHATML, "<|im_end|>"),
        FamilyTemplate("phi3", _PHI3, "<|end|>"),
    )
}

_ARCH_FAMILY = {
    "gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3n": "gemma",
    "mistral": "mistral", "mistral3": "mistral",
    "qwen": "chatml", "qwen2": "chatml", "qwen2moe": "chatml", "qwen3": "chatml",
    "qwen3moe": "chatml", "phi2": "chatml", "phi3": "phi3", "phimoe": "phi3",
}


class TemplateError(HearthError):
    """The model's chat template cannot be rendered."""


@dataclass(frozen=True)
class ChatTemplate:
    """A compiled template with its name ("gguf" or a family name)."""

    name: str
    source: str
    end_of_turn: str | None = None

    @property
    def supports_tools(self) -> bool:
        """Whether the template renders tool definitions itself (it reads ``tools``)."""
        return template_supports_tools(self.source)

    def render(
        self,
        messages: Sequence[dict[str, str]],
        bos_token: str,
        eos_token: str,
        add_generation_prompt: bool = True,
        tools: list[dict[str, Any]] | None = None,
    ) -> str:
        """The prompt text for ``messages``; :class:`TemplateError` if rendering fails.
        ``tools`` (OpenAI function definitions) are passed as the ``tools`` variable, as
        Hugging Face's ``apply_chat_template`` does; templates that never read it ignore it."""
        extra = {"tools": tools} if tools else {}
        try:
            template = _environment().from_string(self.source)
            return template.render(
                messages=list(messages),
                bos_token=bos_token,
                eos_token=eos_token,
                add_generation_prompt=add_generation_prompt,
                **extra,
            )
        except jinja2.TemplateError as err:
            raise TemplateError(
                f"The model's chat template ({self.name}) failed to render: {err}. "
                "Use raw-prompt mode or another model."
            ) from err


_TOOLS_VARIABLE = re.compile(r"\btools\b")


def template_supports_tools(source: str | None) -> bool:
    """True when a chat template's source reads the ``tools`` variable (Llama 3.1+, Qwen,
    Mistral, Hermes...): tool definitions then go through the model's own format. Built-in
    family templates never do, so tools there need a generic, grammar-constrained form."""
    return bool(source) and _TOOLS_VARIABLE.search(source or "") is not None


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def family_for(architecture: str, has_token: Callable[[str], bool]) -> FamilyTemplate:
    """The built-in template for an architecture. ``llama`` covers both Llama 2 and 3 (and
    many fine-tunes); the vocabulary decides which. Unknown families get ChatML, the most
    common format among fine-tunes."""
    if architecture == "llama":
        return FAMILY_TEMPLATES["llama3" if has_token("<|start_header_id|>") else "llama2"]
    return FAMILY_TEMPLATES[_ARCH_FAMILY.get(architecture, "chatml")]


def choose_template(
    gguf_template: str | None, architecture: str, has_token: Callable[[str], bool]
) -> ChatTemplate:
    """The GGUF's own template when it has one that compiles, else the family's."""
    if gguf_template:
        try:
            _environment().from_string(gguf_template)
            return ChatTemplate("gguf", gguf_template)
        except jinja2.TemplateError:
            pass  # a broken embedded template falls back to the family's (reported by name)
    family = family_for(architecture, has_token)
    return ChatTemplate(family.name, family.source, family.end_of_turn)
