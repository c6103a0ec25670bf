"""The in-app benchmark: speed, energy, memory and quality of each model file, measured here.

Speed is measured on the path a chat takes: the model in its worker process
(:class:`EngineClient`), requests with exact token counts, events streamed back. The tests
are llama-bench's: decode ``tg{n_gen}`` (tokens after the first, one at a time, from a
one-token prompt) and prefill ``pp{n_prompt}`` from an empty cache; the prefill request also
samples one token, which gives the time to first token for that prompt. Energy per token is
the sampled power over each decode request (:mod:`core.telemetry.accounting`), labelled
"measured" or "estimated" as its source is; memory is the worker's peak resident set.

Quality (:mod:`core.engine.runtime.perplexity`): perplexity over the held-out text that ships
with Hearth, and the KL divergence of each file's next-token distribution from the
highest-precision file's, as ``llama-perplexity --kl-divergence`` computes it. A reference
that was itself made from a lower-precision file (``hearth.requantized_from`` in its header)
is reported as such: its KL figures then measure the rounding each file adds, not the loss
from the original weights.

Results go to :class:`MeasurementStore` (what the picker and the planner read).
"""

from __future__ import annotations

import logging
import statistics
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.engine import DoneEvent, EngineConfig, Event, GenerationRequest, SamplingParams
from core.engine.api import LoadedModelInfo
from core.engine.process.client import EngineClient
from core.engine.runtime import perplexity as ppl
from core.engine.runtime.model import LoadedModel
from core.errors import EngineError
from core.gguf.quantize import REQUANTIZED_KEY
from core.gguf.reader import read_local
from core.planning.measured import Measurement, MeasurementStore, file_key
from core.planning.profiles import file_bits
from core.telemetry.accounting import account
from core.telemetry.sampler import TelemetrySampler

log = logging.getLogger("hearth.bench")

HELDOUT_TEXT = Path(ppl.__file__).with_name("heldout.txt")


def heldout_text() -> str:
    """The fixed text perplexity is measured on (original prose written for Hearth and
    dedicated to the public domain, CC0: no model has trained on it)."""
    return HELDOUT_TEXT.read_text(encoding="utf-8")


@dataclass
class BenchOptions:
    """What to measure. ``widths``: parallel widths for the aggregate decode speed."""

    reps: int = 3
    n_prompt: int = 512
    n_gen: int = 128
    widths: tuple[int, ...] = (1,)
    threads: int | None = None
    n_gpu_layers: int = -1
    speed: bool = True
    quality: bool = True
    quality_ctx: int = 512
    quality_tokens: int | None = None  # None: the whole text
    reference: Path | None = None  # None: the highest-precision file measured


@dataclass(frozen=True)
class BenchProgress:
    """One step: ``stage`` ("speed", "quality", "done"), the file, ``done`` of ``total``
    steps of the whole run, and a sentence for a status line."""

    stage: str
    file: str
    done: int
    total: int
    message: str

    def to_dict(self) -> dict[str, object]:
        return {"event": "progress", "stage": self.stage, "file": self.file,
                "done": self.done, "total": self.total, "message": self.message}


class BenchCancelled(ppl.Cancelled):
    """The benchmark was cancelled; files already measured were stored."""


@dataclass
class _Steps:
    total: int
    done: int = 0
    progress: Callable[[BenchProgress], None] | None = None

    def tick(self, stage: str, file: str, message: str, n: int = 1) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(BenchProgress(stage, file, min(self.done, self.total), self.total,
                                        message))


class Decoder(Protocol):
    """What the speed tests need of a backend (EngineClient, an engine pool...)."""

    @property
    def loaded(self) -> LoadedModelInfo | None: ...

    def generate(self, request: GenerationRequest) -> Iterator[Event]: ...


def _final(events: Iterator[Event]) -> DoneEvent:
    final: Event | None = None
    for event in events:
        final = event
    if not isinstance(final, DoneEvent):
        raise EngineError(f"The benchmark request failed: {getattr(final, 'message', final)}")
    return final


def decode_request(bos: int, n_gen: int) -> GenerationRequest:
    """llama-bench's tg: ``n_gen`` tokens decoded after a one-token prompt, greedy."""
    return GenerationRequest(prompt_tokens=[bos], max_tokens=n_gen + 1, ignore_eos=True,
                             reuse_cache=False, sampling=SamplingParams.greedy())


def prefill_request(tokens: list[int]) -> GenerationRequest:
    """llama-bench's pp from an empty cache, plus one sampled token (for the TTFT)."""
    return GenerationRequest(prompt_tokens=tokens, max_tokens=1, ignore_eos=True,
                             reuse_cache=False, sampling=SamplingParams.greedy())


def aggregate_decode_tok_s(backend: Decoder, width: int, bos: int,
                           n_gen: int) -> float | None:
    """Aggregate decode tok/s of ``width`` greedy requests decoding at once.

    **Where the parallel widths plug in.** Width 1 is one request (the decode test). Wider
    runs need a backend that decodes ``width`` sequences together (a loaded model with
    ``n_seq_max >= width``: the continuous-batching engine); until the loaded backend says so
    this returns None rather than a figure of requests queued one behind another. The
    count: every request's tokens after its first, over the span from the first first-token
    to the last token."""
    loaded = backend.loaded
    if width > 1 and (loaded is None or loaded.n_seq_max < width):
        return None
    results: list[DoneEvent] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(_final(backend.generate(decode_request(bos, n_gen))))
        except BaseException as err:  # reported below, in the caller's thread
            errors.append(err)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(width)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    tokens = sum(max(0, d.metrics.decode_tokens - 1) for d in results)
    firsts = [d.metrics.t_start_ns + d.metrics.ttft_ms * 1e6 for d in results]
    lasts = [f + d.metrics.decode_ms * 1e6 for f, d in zip(firsts, results, strict=True)]
    span_s = (max(lasts) - min(firsts)) / 1e9
    return tokens / span_s if span_s > 0 else None


def peak_rss(pid: int | None, sampled: list[int]) -> int | None:
    """The worker's peak resident set: the kernel's high-water mark where it keeps one
    (Linux VmHWM), else the largest sampled RSS."""
    if pid is not None:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
    return max(sampled) if sampled else None


class Benchmark:
    """Runs :class:`BenchOptions` over model files; :meth:`cancel` from any thread.
    ``progress`` is called from the running thread with :class:`BenchProgress`."""

    def __init__(self, options: BenchOptions | None = None, *,
                 progress: Callable[[BenchProgress], None] | None = None,
                 store: MeasurementStore | None = None, machine: str = "") -> None:
        self.options = options or BenchOptions()
        self.progress = progress
        self.store = store or MeasurementStore()
        self.machine = machine
        self._cancel = threading.Event()
        self._client: EngineClient | None = None

    def cancel(self) -> None:
        self._cancel.set()
        client = self._client
        if client is not None:
            client.cancel()

    def _check(self) -> None:
        if self._cancel.is_set():
            raise BenchCancelled("The benchmark was cancelled.")

    def run(self, files: list[Path]) -> list[Measurement]:
        """Measure every file; each finished file is stored at once (a cancel keeps them)."""
        opts = self.options
        files = [Path(f) for f in files]
        speed_steps = (2 * opts.reps + len(opts.widths)) if opts.speed else 0
        steps = _Steps(total=len(files) * (speed_steps + (1 if opts.quality else 0)),
                       progress=self.progress)
        rows = {f: self._row(f) for f in files}
        if opts.speed:
            for f in files:
                self._speed(f, rows[f], steps)
                self.store.add(rows[f])
        if opts.quality:
            self._quality(files, rows, steps)
        steps.tick("done", "", "benchmark finished", 0)
        return [rows[f] for f in files]

    def _row(self, path: Path) -> Measurement:
        key = file_key(path)
        info = read_local(path)
        return Measurement(path=key[0], size=key[1], mtime_ns=key[2], file=path.name,
                           quant=info.file_type_name, machine=self.machine)

    # -- speed -------------------------------------------------------------------------
    def _speed(self, path: Path, row: Measurement, steps: _Steps) -> None:
        opts = self.options
        width = max(opts.widths, default=1)
        config = EngineConfig(model_path=path, n_ctx=(opts.n_prompt + opts.n_gen + 8) * width,
                              n_batch=max(opts.n_prompt, 512), n_ubatch=opts.n_prompt,
                              n_threads=opts.threads, n_gpu_layers=opts.n_gpu_layers,
                              n_seq_max=width)
        with EngineClient() as client:
            self._client = client
            try:
                loaded = client.load(config)
                row.threads, row.n_gpu_layers = loaded.n_threads, loaded.gpu_layers
                row.notes += loaded.notes
                with TelemetrySampler(hz=10, pid=loaded.worker_pid) as sampler:
                    self._measure(client, path, row, steps, sampler)
                    rss = [s.rss_bytes for s in sampler.samples() if s.rss_bytes]
                    row.peak_rss_bytes = peak_rss(client.worker_pid, rss)
            finally:
                self._client = None

    def _measure(self, client: EngineClient, path: Path, row: Measurement, steps: _Steps,
                 sampler: TelemetrySampler) -> None:
        opts = self.options
        info = read_local(path)  # the header has the BOS id and the vocabulary's size
        bos = int(info.metadata.get("tokenizer.ggml.bos_token_id", 0) or 0)
        n_vocab = max(info.vocab_size, 2000)
        # Ordinary tokens spread over the vocabulary, the same every run (like llama-bench's
        # random prompt: the prefill cost does not depend on which tokens they are).
        prompt = [500 + (7919 * i) % (n_vocab - 1000) for i in range(opts.n_prompt)]
        _final(client.generate(decode_request(bos, 16)))  # warm-up, as llama-bench's
        _final(client.generate(prefill_request(prompt)))
        decode, joules, prefill, ttft = [], [], [], []
        labels: set[str] = set()
        for i in range(opts.reps):
            self._check()
            done = _final(client.generate(decode_request(bos, opts.n_gen)))
            decode.append(done.metrics.decode_tok_s)
            acc = account(sampler, done)
            if acc.j_per_token is not None:
                joules.append(acc.j_per_token)
                labels.add(acc.energy.label)
                row.mean_power_w = acc.energy.mean_w
            steps.tick("speed", path.name, f"{path.name}: decode {i + 1}/{opts.reps} "
                       f"({decode[-1]:.1f} tok/s)")
            self._check()
            done = _final(client.generate(prefill_request(prompt)))
            prefill.append(done.metrics.prefill_tok_s)
            ttft.append(done.metrics.ttft_ms)
            steps.tick("speed", path.name, f"{path.name}: prefill {i + 1}/{opts.reps} "
                       f"({prefill[-1]:.1f} tok/s)")
        row.decode_tok_s = statistics.mean(decode)
        row.prefill_tok_s = statistics.mean(prefill)
        row.ttft_ms = statistics.median(ttft)
        row.ttft_prompt_tokens = opts.n_prompt
        row.j_per_token = statistics.mean(joules) if joules else None
        row.energy_label = "estimated" if "estimated" in labels or not labels else "measured"
        for width in opts.widths:
            self._check()
            tok_s = aggregate_decode_tok_s(client, width, bos, opts.n_gen)
            row.parallel[str(width)] = tok_s
            if tok_s is None:
                note = (f"width {width}: needs the continuous-batching engine "
                        f"(a model loaded with {width} sequences)")
                if note not in row.notes:
                    row.notes.append(note)
            steps.tick("speed", path.name, f"{path.name}: {width} at once: "
                       + (f"{tok_s:.1f} tok/s" if tok_s else "not measured"))

    # -- quality -----------------------------------------------------------------------
    def _quality(self, files: list[Path], rows: dict[Path, Measurement], steps: _Steps) -> None:
        opts = self.options
        reference = opts.reference or max(files, key=lambda f: file_bits(read_local(f)))
        order = [reference] + [f for f in files if f != reference]
        note = reference_note(reference)
        text = heldout_text()
        with LoadedModel(reference, opts.n_gpu_layers) as model:
            tokens = ppl.text_tokens(model, text)[: opts.quality_tokens]
            store = ppl.reference_for(model, tokens, opts.quality_ctx)
            try:
                for path in order:
                    self._check()
                    steps.tick("quality", path.name, f"{path.name}: perplexity"
                               + (" (reference)" if path == reference else " and KL"), 0)
                    result = ppl.score_text(
                        path, tokens, n_ctx=opts.quality_ctx, threads=opts.threads,
                        record=store if path == reference else None,
                        compare=None if path == reference else store, cancel=self._cancel,
                        n_gpu_layers=opts.n_gpu_layers,
                        model=model if path == reference else None)
                    row = rows.get(path) or self._row(path)
                    rows[path] = row
                    row.perplexity, row.perplexity_stderr = (result.perplexity,
                                                             result.perplexity_stderr)
                    row.quality_tokens, row.quality_ctx = result.n_scored, result.n_ctx
                    row.reference, row.reference_note = reference.name, note
                    if result.kl is not None:
                        row.kl_mean, row.kl_p99 = result.kl.mean, result.kl.p99
                        row.same_top_pct = result.kl.same_top_pct
                    elif path == reference:
                        row.kl_mean, row.kl_p99, row.same_top_pct = 0.0, 0.0, 100.0
                    self.store.add(row)  # each file as it is done: a cancel keeps it
                    steps.tick("quality", path.name, f"{path.name}: PPL "
                               f"{result.perplexity:.3f}" + (f", KL {result.kl.mean:.5f}"
                                                            if result.kl else ""))
            except ppl.Cancelled as err:
                raise BenchCancelled(str(err)) from None
            finally:
                store.close()


def reference_note(path: Path) -> str:
    """Why a reference's KL figures may not be a quant's loss from the original."""
    origin = read_local(path).metadata.get(REQUANTIZED_KEY)
    if not origin:
        return ""
    return (f"{path.name} was made from a {origin} file: it holds {origin}'s weights at more "
            f"bits, so KL here measures the rounding each file adds, not the loss from the "
            f"original model")


def make_variants(source: Path, types: list[str], folder: Path,
                  progress: Callable[[str, float], None] | None = None) -> dict[str, Path]:
    """The source in other precisions (Q8_0, F16, F32...), made with Hearth's quantizer and
    kept in ``folder``; a variant already there (same source size and time) is reused."""
    from core.gguf.quantize import QuantizeProgress, quantize_model

    out: dict[str, Path] = {}
    src_type = read_local(source).file_type_name
    stamp = int(source.stat().st_mtime)
    for qtype in types:
        if qtype.upper() == src_type:
            out[qtype] = source
            continue
        dst = folder / f"{source.stem}.{qtype.lower()}-{stamp}.gguf"
        if not dst.is_file():
            def show(p: QuantizeProgress, name: str = qtype) -> None:
                if progress is not None:
                    progress(name, p.fraction)
            log.info("making the %s variant of %s", qtype, source.name)
            quantize_model(source, dst, qtype, allow_requantize=True, progress=show)
        out[qtype] = dst
    return out
