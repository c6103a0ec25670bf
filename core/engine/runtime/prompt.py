"""A request's prompt as tokens: chat messages through the template, or raw text."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from core.engine.api import GenerationRequest
from core.engine.runtime.model import LoadedModel
from core.engine.runtime.templates import ChatTemplate, choose_template, family_for


@dataclass
class PromptTokens:
    """The tokens to evaluate and how they were made."""

    tokens: list[int]
    template: str | None  # template name for chat requests, None for raw prompts
    template_ns: int = 0
    tokenize_ns: int = 0


class PromptBuilder:
    """Knows a model's template and special tokens; turns requests into tokens."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.template: ChatTemplate = choose_template(
            model.chat_template, model.architecture, lambda t: model.single_token(t) is not None
        )
        # A family template's end-of-turn marker ends generation even where the vocabulary
        # does not flag it as end-of-generation.
        self.extra_stop_tokens: frozenset[int] = frozenset()
        if self.template.end_of_turn:
            tok = model.single_token(self.template.end_of_turn)
            if tok is not None:
                self.extra_stop_tokens = frozenset({tok})

    def build(self, request: GenerationRequest) -> PromptTokens:
        model = self.model
        if request.prompt_tokens is not None:
            return PromptTokens(list(request.prompt_tokens), None)
        if request.messages is not None:
            t0 = time.perf_counter_ns()
            text, name = self._render(request)
            t1 = time.perf_counter_ns()
            tokens = model.tokenize(text, add_special=False, parse_special=True)
            if model.add_bos and model.bos >= 0 and (not tokens or tokens[0] != model.bos):
                tokens.insert(0, model.bos)
            t2 = time.perf_counter_ns()
            return PromptTokens(tokens, name, t1 - t0, t2 - t1)
        t0 = time.perf_counter_ns()
        tokens = model.tokenize(request.prompt or "", add_special=True, parse_special=True)
        if not tokens and model.bos >= 0:
            tokens = [model.bos]
        return PromptTokens(tokens, None, 0, time.perf_counter_ns() - t0)

    def _render(self, request: GenerationRequest) -> tuple[str, str]:
        """The prompt text and the name of the template that made it. A template from the
        file that fails at render time (``raise_exception``, an undefined attribute, a
        Python error inside an expression) must not end the request, let alone the
        worker: the family template renders instead, and its name says so."""
        model = self.model
        messages = [{"role": m.role, "content": m.content} for m in request.messages or []]
        tokens: dict[str, Any] = {
            "bos_token": model.token_text(model.bos) if model.bos >= 0 else "",
            "eos_token": model.token_text(model.eos) if model.eos >= 0 else "",
            "add_generation_prompt": request.add_generation_prompt, "tools": request.tools}
        try:
            return self.template.render(messages, **tokens), self.template.name
        except Exception:  # TemplateError, or any error raised by hostile template code
            if self.template.name != "gguf":
                raise
        family = family_for(model.architecture, lambda t: model.single_token(t) is not None)
        fallback = ChatTemplate(family.name, family.source, family.end_of_turn)
        return (fallback.render(messages, **tokens),
                f"{family.name} (fallback: the model's own template failed to render)")
