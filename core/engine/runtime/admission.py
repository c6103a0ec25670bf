"""Which waiting request starts next, on which sequence, with which cells reused.

Admission is by KV budget: a request starts when its prompt plus its maximum reply fits in
the context beside what the running requests have reserved (a request alone always starts:
it ends with finish "context" if it outgrows the cache). Interactive requests go before bulk
ones; within a lane, first come first served (a large request is not overtaken forever).

Prefix sharing, losslessly (the seed's request coalescing): the new request's prompt is
compared with every sequence's cells — idle ones (a finished chat turn) and busy ones (a
system prompt another request is evaluating right now). The longest match wins: an idle
sequence is reused in place; a busy one lends its cells through ``llama_memory_seq_cp`` as
soon as it has evaluated them, so a prefix shared by N concurrent requests is evaluated once.
"""

from __future__ import annotations

import time

import llama_cpp

from core.engine.metrics import NS_PER_MS, RequestMetrics
from core.engine.runtime.context import Context
from core.engine.runtime.job import Job, SchedulerParts
from core.engine.runtime.sequence import Sequence
from core.errors import HearthError

MIN_SHARE = 16  # shorter common prefixes are not worth a copy


def common_prefix(a: list[int], b: list[int], limit: int) -> int:
    n = 0
    limit = min(limit, len(a), len(b))
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def admit(sched: SchedulerParts) -> None:
    """Start waiting requests while sequences and KV room allow. Cells left by requests
    that opted out of the cache go first: idle cells are not free, since llama.cpp's
    attention walks every cell up to the highest one in use (two streams decoded 20% slower
    beside a cache left full by sixteen cold requests)."""
    n_ctx = sched.context.n_ctx
    if any(sched.waiting.values()):
        for seq in sched.slots:
            if seq.disposable and not seq.busy:
                seq.clear()
    for lane in ("interactive", "bulk"):
        queue = sched.waiting[lane]
        while queue:
            job = queue[0]
            free = [s for s in sched.slots if not s.busy]
            if len(free) < job.request.beams:
                return
            reserved = sum(j.reserved for j in sched.running)
            if sched.running and reserved + job.reserved > n_ctx:
                return
            queue.popleft()
            seq, source, share = _choose(sched, job, free)
            _make_room(sched, job, seq, source)
            start(sched, job, seq, source=source, share=share)


def _choose(sched: SchedulerParts, job: Job, free: list[Sequence]
            ) -> tuple[Sequence, Sequence | None, int]:
    """The sequence to run ``job`` on, and a busy sequence to copy a prefix from."""
    tokens, limit = job.tokens, len(job.tokens) - 1
    reuse = job.request.reuse_cache
    best_free, best_free_n = None, 0
    for seq in free:
        n = common_prefix(seq.tokens, tokens, limit) if reuse else 0
        if n > best_free_n and seq.usable_prefix(n):
            best_free, best_free_n = seq, n
    best_src, best_src_n = None, 0
    for other in sched.running:
        if other.seq is None or not reuse:
            continue
        n = common_prefix(other.tokens, tokens, limit)
        if n > best_src_n:
            best_src, best_src_n = other.seq, n
    if best_src is not None and best_src_n >= max(MIN_SHARE, best_free_n + MIN_SHARE):
        target = next((s for s in free if not s.tokens), None) or min(
            free, key=lambda s: s.last_used)
        return target, best_src, best_src_n
    if best_free is not None:
        return best_free, None, 0
    empty = next((s for s in free if not s.tokens), None)
    return (empty or min(free, key=lambda s: s.last_used)), None, 0


def _make_room(sched: SchedulerParts, job: Job, seq: Sequence, source: Sequence | None) -> None:
    """Evict idle sequences' cached cells (least recently used first) until the running
    reservations, this request's and the cells kept for reuse fit the context."""
    running = sum(j.reserved for j in sched.running) + job.reserved
    idle = [s for s in sched.slots if not s.busy and s is not seq and s is not source
            and s.tokens]
    kept = sum(len(s.tokens) for s in idle)
    for victim in sorted(idle, key=lambda s: s.last_used):
        if running + kept <= sched.context.n_ctx:
            break
        kept -= len(victim.tokens)
        victim.clear()


def evict_idle(sched: SchedulerParts, need: int) -> bool:
    """Free the least recently used idle sequence's cells; False when none holds any."""
    idle = [s for s in sched.slots if not s.busy and s.tokens]
    if not idle:
        return False
    min(idle, key=lambda s: s.last_used).clear()
    return True


def start(sched: SchedulerParts, job: Job, seq: Sequence, *, source: Sequence | None = None,
          share: int = 0) -> None:
    """Bind ``job`` to ``seq``: its sampler chain, its metrics, the cells it reuses."""
    job.seq = seq
    try:
        chain = sched.chain_for(job)
    except HearthError as err:
        seq.begin(job.request, None, job.cancel, job.t_submit)
        job.state = "prefill"
        sched.running.append(job)
        sched.fail(job, type(err).__name__, str(err))
        return
    seq.begin(job.request, chain, job.cancel, job.t_submit)
    if job.request.beams > 1 or job.request.return_beams:
        job.extra_seqs = [s for s in sched.slots if not s.busy][: job.request.beams - 1]
        for beam_seq in job.extra_seqs:
            beam_seq.begin(job.request, None, job.cancel, job.t_submit)
    m = seq.metrics
    m.template_ms = job.prompt.template_ns / NS_PER_MS
    m.tokenize_ms = job.prompt.tokenize_ns / NS_PER_MS
    m.prompt_tokens = len(job.tokens)
    m.queued_ms = max(0.0, (time.perf_counter_ns() - job.t_submit) / NS_PER_MS)
    if source is not None:
        seq.clear()
        job.source, job.share = source, share
        job.source_target = list(job.tokens[:share])
    elif job.request.reuse_cache:
        job.done_prefix = seq.keep_prefix(job.tokens)
    else:
        seq.clear()
    m.cached_tokens = job.done_prefix
    job.state = "prefill"
    if sched.running:
        job.alone = False
        for other in sched.running:
            other.alone = False
    else:
        llama_cpp.llama_perf_context_reset(sched.context.ptr)
    sched.running.append(job)


def ready(job: Job) -> bool:
    """Whether a prefilling job can put tokens into this step: always, unless it waits for
    a prefix another sequence is still evaluating (copied the moment it is there)."""
    source = job.source
    if source is None:
        return True
    seq = job.seq
    assert seq is not None
    target = job.source_target
    held = source.tokens
    if len(held) >= job.share and held[: job.share] == target and source.usable_prefix(job.share):
        seq.copy_from(source, job.share)
        job.done_prefix = job.share
        seq.metrics.cached_tokens = job.share
        job.source = None
        return True
    if source.busy and len(held) < job.share and held == target[: len(held)]:
        return False  # still evaluating the shared prefix
    job.source = None  # the lender moved on or was evicted: evaluate it ourselves
    job.done_prefix = 0
    return True


def copy_llama_counters(context: Context, metrics: RequestMetrics) -> None:
    """llama.cpp's own prefill/decode counters (reset when the request started alone): the
    cross-check that no time leaks outside the kernels."""
    perf = llama_cpp.llama_perf_context(context.ptr)
    metrics.llama_prefill_ms = perf.t_p_eval_ms
    metrics.llama_prefill_tokens = perf.n_p_eval
    metrics.llama_decode_ms = perf.t_eval_ms
    metrics.llama_decode_tokens = perf.n_eval
