"""Speculative decoding: a cheap source guesses k tokens, the target checks them in one pass.

Draft sources: a draft model (:mod:`core.engine.speculative.draft`; ``"model"``), the target's own
Q4_K_M twin as that model (:mod:`core.engine.speculative.twin`; ``"twin"``), or n-gram prompt lookup
(:mod:`core.engine.speculative.lookup`; ``"lookup"``, no second model).

One round, with ``last`` the target's last sampled (already emitted, not yet evaluated)
token and ``d1..dk`` the guesses:

1. the target evaluates ``[last, d1..dk]`` in one ``llama_decode`` batch, with logits
   requested for those k+1 positions only (never a full-vocabulary row into Python);
2. position i is sampled in C with the request's own chain (``llama_sampler_sample(chain,
   ctx, i)``); while the sample equals ``d(i+1)`` the guess is accepted; the first sample
   that differs (or the one after the last guess) is the target's own next token;
3. the rejected tail is removed from both KV caches with ``llama_memory_seq_rm``, so the
   engine's list of cached tokens stays exactly what the cache holds (the next chat turn's
   prefix reuse depends on it).

Every emitted token is a token the target's chain sampled given the exact preceding text,
so the output follows the target's distribution at any temperature. This is token matching
as llama.cpp's ``common_sampler_sample_and_accept_n`` does, not rejection sampling over
draft probabilities: with temperature > 0 acceptance is lower than it could be, but each
sample is used exactly once, so a seeded run draws the same random numbers as a plain one.
With greedy decoding the output is the target's plain greedy output (up to batched kernels
rounding differently on a near-tie between the top two logits).

k adapts as Hugging Face's "heuristic" schedule does: +2 after a fully accepted draft, -1
otherwise, within [1, draft_max]. On top of that a running acceptance rate (exponential
average over rounds) below ``PAUSE_BELOW`` pauses drafting for ``PAUSE_STEPS`` plain steps,
then drafting resumes at k=1: on this CPU each verified position costs the output layer
over Gemma's 262,144-token vocabulary (a quarter of a plain token), so guesses that keep
failing (sampling at a high temperature, a prompt with nothing to copy) would make decoding
slower than plain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import llama_cpp

from core.engine.config import EngineConfig
from core.engine.metrics import NS_PER_MS
from core.engine.runtime.context import Batch, Context
from core.engine.runtime.job import Job
from core.engine.runtime.model import LoadedModel
from core.engine.runtime.prompt import PromptBuilder
from core.engine.runtime.sequence import Sequence
from core.engine.speculative.draft import DraftModel
from core.engine.speculative.lookup import PromptLookup
from core.errors import ConfigError, EngineError

DraftKind = Literal["model", "twin", "lookup"]
DRAFT_KINDS: tuple[DraftKind, ...] = ("model", "twin", "lookup")
DEFAULT_DRAFT_MAX = 16
PAUSE_BELOW = 0.3
PAUSE_STEPS = 16
EMA_WEIGHT = 0.3


@dataclass
class SpeculationStats:
    """Counters for one request; ``to_dict`` is what RequestMetrics.speculative carries."""

    kind: str
    draft_name: str
    rounds: int = 0  # target verification passes that carried at least one guess
    plain_steps: int = 0  # passes without a guess (nothing to draft)
    drafted: int = 0
    accepted: int = 0
    draft_ms: float = 0.0
    verify_ms: float = 0.0

    def to_dict(self, decode_tok_s: float, baseline_tok_s: float) -> dict[str, Any]:
        rate = self.accepted / self.drafted if self.drafted else 0.0
        return {
            "kind": self.kind, "draft": self.draft_name, "rounds": self.rounds,
            "plain_steps": self.plain_steps, "drafted": self.drafted,
            "accepted": self.accepted, "acceptance_rate": round(rate, 4),
            "mean_accepted_length": round(self.accepted / self.rounds, 3) if self.rounds else 0.0,
            "draft_ms": round(self.draft_ms, 3), "verify_ms": round(self.verify_ms, 3),
            "baseline_tok_s": round(baseline_tok_s, 3),
            "speedup": round(decode_tok_s / baseline_tok_s, 3) if baseline_tok_s else None,
        }


def validate(config: EngineConfig) -> None:
    """Refuse an impossible speculation setting before anything is loaded."""
    if config.draft not in (None, *DRAFT_KINDS):
        raise ConfigError(f"Unknown draft kind {config.draft!r}; use model, twin or lookup.")
    if config.draft == "model" and config.draft_model_path is None:
        raise ConfigError("Speculation with a draft model needs the draft's GGUF path.")
    if config.draft is not None and not 1 <= config.draft_max < config.n_batch:
        raise ConfigError(f"--draft-max must be between 1 and {config.n_batch - 1} "
                          f"(the batch size minus one), got {config.draft_max}.")


class Speculator:
    """Runs the decode loop of one sequence with a draft source; owns the draft."""

    def __init__(self, model: LoadedModel, context: Context, prompts: PromptBuilder,
                 config: EngineConfig) -> None:
        validate(config)
        self.model, self.context, self.prompts = model, context, prompts
        assert config.draft is not None
        self.kind: DraftKind = config.draft
        self.draft_max = config.draft_max
        self.k = config.draft_max
        self.rate = 1.0  # running acceptance rate
        self.pause = 0  # plain steps left before drafting again
        self.draft_model: DraftModel | None = None
        self.lookup: PromptLookup | None = None
        if self.kind == "lookup":
            self.lookup = PromptLookup()
            self.draft_name = "prompt lookup"
        else:
            path = self._draft_path(model.path, config)
            self.draft_model = DraftModel(path, context.n_ctx, config.n_batch, context.threads,
                                          config.n_gpu_layers)
            self.draft_name = self.draft_model.name
        self._batch = Batch(config.draft_max + 1)
        self.baseline_tok_s = self._measure_plain_decode()

    @staticmethod
    def _draft_path(target: Path, config: EngineConfig) -> Path:
        from core.engine.speculative.compat import check_files

        if config.draft == "twin":
            from core.engine.speculative.twin import ensure_twin

            return ensure_twin(target)  # the target's own quantization: same vocabulary
        assert config.draft_model_path is not None
        path = Path(config.draft_model_path)
        check_files(target, path)
        return path

    def _measure_plain_decode(self, n: int = 8) -> float:
        """The target's own tok/s on one-token decodes (the baseline for ``speedup``),
        measured once at load on an empty cache, which it leaves empty."""
        model, ctx = self.model, self.context
        tok = (llama_cpp.llama_token * 1)(model.bos if model.bos >= 0 else 0)
        one = llama_cpp.llama_batch_get_one(tok, 1)
        try:
            llama_cpp.llama_decode(ctx.ptr, one)  # warm-up, as llama-bench does
            t0 = time.perf_counter_ns()
            for _ in range(n):
                if llama_cpp.llama_decode(ctx.ptr, one) != 0:
                    return 0.0
            return n / ((time.perf_counter_ns() - t0) / 1e9)
        finally:
            ctx.clear()

    # -- rounds, driven by the scheduler ------------------------------------------------
    def round(self, job: Job) -> list[int]:
        """One speculative round for a lone decoding request: draft from its pending token,
        verify on the target, return the tokens to emit (the accepted guesses and the
        target's own next token, which becomes the new pending one)."""
        seq, request = job.seq, job.request
        assert seq is not None and job.emitter is not None
        state = job.speculation
        if not isinstance(state, SpeculationStats):
            state = job.speculation = SpeculationStats(self.kind, self.draft_name)
            if self.lookup is not None:
                self.lookup.begin(seq.tokens)
        n_gen = job.emitter.n_gen
        last = job.pending
        room = min(self.k, request.max_tokens - n_gen - 1,
                   self.context.n_ctx - len(seq.tokens) - 2)
        if self.pause:
            self.pause -= 1
            room = 0
        t0 = time.perf_counter_ns()
        drafts = self._draft(seq, last, room) if room > 0 else []
        t1 = time.perf_counter_ns()
        out = self._verify(seq, last, drafts, state)
        state.draft_ms += (t1 - t0) / NS_PER_MS
        state.verify_ms += (time.perf_counter_ns() - t1) / NS_PER_MS
        job.evaluated += 1 + len(drafts)
        job.share_ms += (time.perf_counter_ns() - t0) / NS_PER_MS
        return out

    def end(self, job: Job) -> None:
        """Put the request's speculation figures into its metrics; the draft follows the
        target's cache (already trimmed by the scheduler)."""
        seq, state = job.seq, job.speculation
        if seq is None or not isinstance(state, SpeculationStats):
            return
        m = seq.metrics
        n, secs = m.decode_tokens - 1, (seq.t_last - seq.t_first) / 1e9
        tok_s = n / secs if n > 0 and secs > 0 else 0.0  # as RequestMetrics.decode_tok_s
        m.speculative = state.to_dict(tok_s, self.baseline_tok_s)
        if self.draft_model is not None:
            self.draft_model.rollback(len(seq.tokens))

    def _draft(self, seq: Sequence, last: int, k: int) -> list[int]:
        history = [*seq.tokens, last]
        if self.lookup is not None:
            self.lookup.extend(history[len(self.lookup.history):])
            drafts = self.lookup.draft(k)
        else:
            assert self.draft_model is not None
            drafts = self.draft_model.draft(history, k)
        n_vocab = self.model.n_vocab
        for i, tok in enumerate(drafts):  # a draft vocabulary may be up to 128 tokens larger
            if not 0 <= tok < n_vocab:
                return drafts[:i]
        return drafts

    def _verify(self, seq: Sequence, last: int, drafts: list[int],
                stats: SpeculationStats) -> list[int]:
        """Evaluate ``[last, *drafts]`` on the target; returns the accepted guesses plus the
        target's own next token, with the cache rolled back past the first rejection."""
        ctx, batch = self.context, self._batch
        n_past = len(seq.tokens)
        tokens = [last, *drafts]
        batch.clear()
        for i, tok in enumerate(tokens):
            batch.add(tok, n_past + i, seq.seq_id, True)
        rc = ctx.decode(batch.ptr)
        if rc != 0:
            seq.clear()
            if self.draft_model is not None:
                self.draft_model.reset()
            raise EngineError(f"llama.cpp failed to decode (code {rc}).")
        sample, ptr, chain = llama_cpp.llama_sampler_sample, ctx.ptr, seq.chain
        out: list[int] = []
        for i in range(len(tokens)):
            token = sample(chain, ptr, i)
            out.append(token)
            if i == len(drafts) or token != drafts[i]:
                break
        n_accepted = len(out) - 1
        seq.tokens.extend(tokens[: n_accepted + 1])
        self._truncate(seq, len(seq.tokens))
        if drafts:
            stats.rounds += 1
            stats.drafted += len(drafts)
            stats.accepted += n_accepted
            full = n_accepted == len(drafts)
            self.k = min(self.k + 2, self.draft_max) if full else max(self.k - 1, 1)
            self.rate += EMA_WEIGHT * (n_accepted / len(drafts) - self.rate)
            if self.rate < PAUSE_BELOW:
                self.pause, self.k, self.rate = PAUSE_STEPS, 1, PAUSE_BELOW
        else:
            stats.plain_steps += 1
        return out

    def _truncate(self, seq: Sequence, n_keep: int) -> None:
        """Drop everything past ``n_keep`` tokens from the target's and the draft's caches
        (the target's cells past the sequence's tokens too: rejected guesses)."""
        held = self.context.seq_pos_max(seq.seq_id) + 1
        if n_keep < held and not self.context.seq_rm(seq.seq_id, n_keep, -1):
            seq.clear()
            n_keep = 0
        del seq.tokens[n_keep:]
        if self.draft_model is not None:
            self.draft_model.rollback(n_keep)

    def close(self) -> None:
        if getattr(self, "_batch", None) is not None:
            self._batch.close()
        if self.draft_model is not None:
            self.draft_model.close()
            self.draft_model = None
