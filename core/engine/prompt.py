"""A request's prompt as tokens: chat messages through the template, or raw text."""

from __future__ import annotations

import time
from dataclasses import dataclass

from core.engine.model import LoadedModel
from core.engine.protocol import GenerationRequest
from core.engine.templates import ChatTemplate, choose_template


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
            text = self.template.render(
                [{"role": m.role, "content": m.content} for m in request.messages],
                bos_token=model.token_text(model.bos) if model.bos >= 0 else "",
                eos_token=model.token_text(model.eos) if model.eos >= 0 else "",
                add_generation_prompt=request.add_generation_prompt,
            )
            t1 = time.perf_counter_ns()
            tokens = model.tokenize(text, add_special=False, parse_special=True)
            if model.add_bos and model.bos >= 0 and (not tokens or tokens[0] != model.bos):
                tokens.insert(0, model.bos)
            t2 = time.perf_counter_ns()
            return PromptTokens(tokens, self.template.name, t1 - t0, t2 - t1)
        t0 = time.perf_counter_ns()
        tokens = model.tokenize(request.prompt or "", add_special=True, parse_special=True)
        if not tokens and model.bos >= 0:
            tokens = [model.bos]
        return PromptTokens(tokens, None, 0, time.perf_counter_ns() - t0)
