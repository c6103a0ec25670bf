"""Perplexity and KL divergence over a fixed text, as llama.cpp's ``llama-perplexity`` does.

The text's tokens are cut into chunks of ``n_ctx``; each chunk is evaluated from an empty
cache (its first token replaced by BOS when the model adds one), and only the second half of
each chunk is scored, so every scored token sees at least ``n_ctx / 2`` tokens of context —
``llama-perplexity``'s rule, so the figures compare with its output.

Logits are requested only for the scored positions (Gemma 3's rows are 262,144 floats:
1 MiB each) and read as a numpy view of llama.cpp's own output buffer, never copied whole;
the log-softmax runs over blocks of rows in float32. For KL divergence the reference model
(the highest-precision variant) is run first and its log-probabilities are kept the way
``llama-perplexity --kl-divergence-base`` keeps them: per row, the log-probs within 16 nats
of the top, linearly coded as uint16 (half a MiB per Gemma row) in a file, so only one model
is ever loaded at a time. A quant's run then reads the rows back and adds up
``KL(P_ref || P_quant) = Σ p_ref (log p_ref − log p_quant)`` per scored token.
"""

from __future__ import annotations

import ctypes
import math
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from core.engine.runtime.context import Batch, Context
from core.engine.runtime.model import LoadedModel
from core.engine.runtime.resources import default_threads
from core.errors import ConfigError, EngineError, HearthError

ROWS_PER_BLOCK = 16  # rows softmaxed at once: 16 MiB of float32 for Gemma's vocabulary
LOGPROB_FLOOR = 16.0  # nats below the top that the reference keeps (llama-perplexity's 16)

Progress = Callable[[int, int], None]  # (chunks done, chunks in all)


class Cancelled(HearthError):
    """The measurement was cancelled; nothing was stored."""


@dataclass
class KLStats:
    """How far a model's next-token distributions are from the reference's, per token."""

    mean: float
    stderr: float
    median: float
    p99: float
    maximum: float
    same_top_pct: float  # share of positions where both models' most likely token agree
    rms_dp_pct: float  # RMS of the change in the probability of the text's actual token

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 6) for k, v in asdict(self).items()}


@dataclass
class QualityResult:
    """One model's score over the text; ``kl`` is set when a reference was given."""

    model: str
    n_ctx: int
    n_chunks: int
    n_scored: int
    nll_mean: float
    nll_stderr: float
    seconds: float
    kl: KLStats | None = None
    reference: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll_mean)

    @property
    def perplexity_stderr(self) -> float:
        """Standard error of the perplexity (delta method, as llama-perplexity prints)."""
        return self.perplexity * self.nll_stderr

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "n_ctx": self.n_ctx, "n_chunks": self.n_chunks,
                "n_scored": self.n_scored, "perplexity": round(self.perplexity, 5),
                "perplexity_stderr": round(self.perplexity_stderr, 5),
                "nll_mean": round(self.nll_mean, 6), "seconds": round(self.seconds, 3),
                "reference": self.reference,
                "kl_divergence": self.kl.to_dict() if self.kl else None, **self.extra}


class ReferenceLogprobs:
    """The reference model's log-probabilities at every scored position, coded as
    ``llama-perplexity`` codes them, in a file (``np.memmap``) under ``folder``."""

    def __init__(self, n_rows: int, n_vocab: int, tokens: list[int], model: str,
                 folder: Path | None = None) -> None:
        self._tmp = None if folder is not None else tempfile.TemporaryDirectory(
            prefix="hearth-kl-")
        base = Path(folder) if folder is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        base.mkdir(parents=True, exist_ok=True)
        self.path = base / "reference-logprobs.u16"
        self.n_rows, self.n_vocab, self.tokens, self.model = n_rows, n_vocab, tokens, model
        self.codes = np.memmap(self.path, dtype=np.uint16, mode="w+",
                               shape=(max(1, n_rows), n_vocab))
        self.scale = np.zeros(max(1, n_rows), dtype=np.float32)
        self.low = np.zeros(max(1, n_rows), dtype=np.float32)

    def store(self, row0: int, logits: np.ndarray, log_z: np.ndarray) -> None:
        """Code rows ``row0..`` from their logits and log-normalizers."""
        top = logits.max(axis=1)
        low = np.maximum(logits.min(axis=1), top - LOGPROB_FLOOR)
        scale = (top - low) / 65535.0
        inv = np.where(scale > 0, 1.0 / np.where(scale > 0, scale, 1.0), 0.0).astype(np.float32)
        codes = np.rint((logits - low[:, None]) * inv[:, None])
        codes[logits <= low[:, None]] = 0
        n = len(logits)
        self.codes[row0 : row0 + n] = codes.astype(np.uint16)
        self.scale[row0 : row0 + n] = scale
        self.low[row0 : row0 + n] = low - log_z  # the log-prob that code 0 stands for

    def logprobs(self, row0: int, n: int) -> np.ndarray:
        """Rows ``row0..row0+n`` decoded back to log-probabilities (float32)."""
        codes = np.asarray(self.codes[row0 : row0 + n], dtype=np.float32)
        return codes * self.scale[row0 : row0 + n, None] + self.low[row0 : row0 + n, None]

    def close(self) -> None:
        self.codes = None  # type: ignore[assignment]  # the map closes with its last reference
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ReferenceLogprobs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def text_tokens(model: LoadedModel, text: str) -> list[int]:
    """The text as ``llama-perplexity`` tokenizes it: BOS first when the model adds one,
    special-token names left as plain text."""
    return model.tokenize(text, add_special=True, parse_special=False)


def chunks_of(tokens: list[int], n_ctx: int) -> int:
    """How many whole chunks of ``n_ctx`` tokens the text holds."""
    return len(tokens) // n_ctx


def scored_per_chunk(n_ctx: int) -> int:
    """Positions scored per chunk: ``first = n_ctx // 2`` up to the second-to-last."""
    return n_ctx - 1 - n_ctx // 2


class _Tally:
    """Running sums over scored tokens (NLL; KL and friends when comparing)."""

    def __init__(self) -> None:
        self.nll: list[np.ndarray] = []
        self.kl: list[np.ndarray] = []
        self.same_top = 0
        self.dp: list[np.ndarray] = []

    def result(self, model: str, n_ctx: int, n_chunks: int, seconds: float,
               reference: str | None) -> QualityResult:
        nll = np.concatenate(self.nll) if self.nll else np.zeros(0)
        n = len(nll)
        if n == 0:
            raise ConfigError("The text is too short to score; it needs at least one chunk.")
        stderr = float(nll.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
        kl = None
        if self.kl:
            k = np.concatenate(self.kl).astype(np.float64)
            dp = np.concatenate(self.dp).astype(np.float64)
            kl = KLStats(mean=float(k.mean()),
                         stderr=float(k.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0,
                         median=float(np.median(k)), p99=float(np.percentile(k, 99)),
                         maximum=float(k.max()), same_top_pct=100.0 * self.same_top / n,
                         rms_dp_pct=100.0 * float(np.sqrt(np.mean(dp * dp))))
        return QualityResult(model=model, n_ctx=n_ctx, n_chunks=n_chunks, n_scored=n,
                             nll_mean=float(nll.mean()), nll_stderr=stderr, seconds=seconds,
                             kl=kl, reference=reference)


def _score_block(logits: np.ndarray, targets: np.ndarray, tally: _Tally, row0: int,
                 record: ReferenceLogprobs | None, compare: ReferenceLogprobs | None) -> None:
    """Log-softmax ``logits`` (a view of llama.cpp's rows) and add them to the tally."""
    top = logits.max(axis=1)
    shifted = logits - top[:, None]  # the one float32 copy of the block
    log_z = top + np.log(np.exp(shifted).sum(axis=1, dtype=np.float64)).astype(np.float32)
    picked = logits[np.arange(len(logits)), targets]
    tally.nll.append((log_z - picked).astype(np.float64))
    if record is not None:
        record.store(row0, logits, log_z)
    if compare is not None:
        ref = compare.logprobs(row0, len(logits))
        mine = shifted
        mine -= (log_z - top)[:, None]  # now this model's log-probs, in place
        kept = ref > -LOGPROB_FLOOR  # llama-perplexity's cut: p_ref below e^-16 is dropped
        p_ref = np.where(kept, np.exp(ref), 0.0)
        tally.kl.append((p_ref * (ref - mine)).sum(axis=1, dtype=np.float64))
        tally.same_top += int((ref.argmax(axis=1) == logits.argmax(axis=1)).sum())
        rows = np.arange(len(logits))
        tally.dp.append(np.exp(mine[rows, targets]) - np.exp(ref[rows, targets]))


class _Outputs:
    """Every output row of the last decode, as one (n_outputs, n_vocab) view."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def rows(self, n: int) -> np.ndarray:
        ptr = llama_cpp.llama_get_logits(self.ctx.ptr)
        if not ptr:
            raise EngineError("llama.cpp returned no logits for the scored positions.")
        flat = ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float))
        return np.ctypeslib.as_array(flat, shape=(n, self.ctx.model.n_vocab))


def score_text(model_path: Path, tokens: list[int], *, n_ctx: int = 512,
               n_batch: int = 512, threads: int | None = None, n_gpu_layers: int = 0,
               record: ReferenceLogprobs | None = None,
               compare: ReferenceLogprobs | None = None, progress: Progress | None = None,
               cancel: threading.Event | None = None, model: LoadedModel | None = None
               ) -> QualityResult:
    """Perplexity of ``model_path`` over ``tokens`` (and KL from ``compare``'s reference).

    ``record`` receives this model's coded log-probs (run the reference with it first);
    ``compare`` must have been recorded over the same tokens. ``model`` reuses a loaded
    model instead of loading ``model_path``. Raises :class:`Cancelled` when ``cancel``
    is set between two decodes."""
    if n_ctx < 8:
        raise ConfigError("The scoring context must be at least 8 tokens.")
    n_chunks = chunks_of(tokens, n_ctx)
    if n_chunks == 0:
        raise ConfigError(f"The text has {len(tokens)} tokens, fewer than one {n_ctx}-token "
                          f"chunk; use a shorter context or a longer text.")
    owned = model is None
    loaded = model or LoadedModel(Path(model_path), n_gpu_layers)
    try:
        for ref in (record, compare):
            if ref is not None and ref.n_vocab != loaded.n_vocab:
                raise ConfigError(
                    f"{loaded.path.name} has a {loaded.n_vocab:,}-token vocabulary but the "
                    f"reference {ref.model} has {ref.n_vocab:,}; KL divergence needs models "
                    f"that share one tokenizer.")
        if compare is not None and compare.tokens != tokens[: n_chunks * n_ctx]:
            raise ConfigError(f"{loaded.path.name} splits the text into other tokens than "
                              f"the reference {compare.model}; they are not the same model.")
        return _run(loaded, tokens, n_ctx, min(n_batch, n_ctx), threads or default_threads(),
                    record, compare, progress, cancel)
    finally:
        if owned:
            loaded.close()


def _run(model: LoadedModel, tokens: list[int], n_ctx: int, n_batch: int, threads: int,
         record: ReferenceLogprobs | None, compare: ReferenceLogprobs | None,
         progress: Progress | None, cancel: threading.Event | None) -> QualityResult:
    n_chunks = chunks_of(tokens, n_ctx)
    first = n_ctx // 2
    ctx = Context(model, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch, n_seq_max=1,
                  threads=threads, perf=False)
    batch = Batch(n_batch)
    outputs = _Outputs(ctx)
    tally = _Tally()
    row = 0
    t0 = time.perf_counter()
    try:
        for c in range(n_chunks):
            chunk = tokens[c * n_ctx : (c + 1) * n_ctx]
            targets = np.asarray(chunk[first + 1 :], dtype=np.int64)
            if model.add_bos and model.bos >= 0:
                chunk = [model.bos, *chunk[1:]]
            ctx.clear()
            done = 0  # scored positions of this chunk handled so far
            for start in range(0, n_ctx, n_batch):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("The quality measurement was cancelled.")
                batch.clear()
                n_out = 0
                for pos in range(start, min(start + n_batch, n_ctx)):
                    wanted = first <= pos < n_ctx - 1
                    batch.add(chunk[pos], pos, 0, wanted)
                    n_out += wanted
                if batch.n and ctx.decode(batch.ptr) != 0:
                    raise EngineError(f"llama.cpp failed to evaluate chunk {c + 1} of the text.")
                if n_out == 0:
                    continue
                rows = outputs.rows(n_out)
                for b0 in range(0, n_out, ROWS_PER_BLOCK):
                    block = rows[b0 : b0 + ROWS_PER_BLOCK]
                    tgt = targets[done + b0 : done + b0 + len(block)]
                    _score_block(block, tgt, tally, row + done + b0, record, compare)
                done += n_out
            row += done
            if progress is not None:
                progress(c + 1, n_chunks)
    finally:
        batch.close()
        ctx.close()
    return tally.result(model.path.name, n_ctx, n_chunks, time.perf_counter() - t0,
                        compare.model if compare is not None else None)


def reference_for(model: LoadedModel, tokens: list[int], n_ctx: int,
                  folder: Path | None = None) -> ReferenceLogprobs:
    """An empty store sized for ``model`` scoring ``tokens`` in ``n_ctx`` chunks."""
    n_chunks = chunks_of(tokens, n_ctx)
    return ReferenceLogprobs(n_chunks * scored_per_chunk(n_ctx), model.n_vocab,
                             tokens[: n_chunks * n_ctx], model.path.name, folder)
