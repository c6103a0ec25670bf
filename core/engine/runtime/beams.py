"""Beam search on the scheduler: N hypotheses as N sequences of one context.

The seed's third decoding strategy, which llama.cpp no longer ships. The prompt is evaluated
once; its cells are shared with N-1 more sequences (``seq_cp``). Each step every live beam's
last token goes into the scheduler's one batch; then each beam proposes its N best next
tokens (log-softmax of its logits row), the N best of all N×N candidates by total
log-probability survive, and a survivor whose parent's sequence was taken by a sibling gets
a copy of the parent's cells. A candidate that ends generation becomes a finished hypothesis.
The search stops when N hypotheses are finished (or at the length limit, where the live
beams finish as they are); hypotheses are ranked by length-normalized log-probability
(the sum divided by the number of tokens), and the best one is the reply.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from core.engine.api import DoneEvent
from core.engine.runtime.job import Job, SchedulerParts
from core.engine.runtime.sequence import Sequence


@dataclass
class Beam:
    seq: Sequence
    tokens: list[int] = field(default_factory=list)  # generated so far (last = pending)
    logprob: float = 0.0


@dataclass
class BeamGroup:
    width: int
    beams: list[Beam] = field(default_factory=list)
    finished: list[tuple[float, list[int]]] = field(default_factory=list)  # (score, tokens)
    spare: list[Sequence] = field(default_factory=list)  # sequences of beams that died


def uses_beams(job: Job) -> bool:
    return job.request.beams > 1 or job.request.return_beams


def _log_softmax(row: np.ndarray) -> np.ndarray:
    peak = float(row.max())
    return row - (peak + float(np.log(np.exp(row - peak, dtype=np.float64).sum())))


def _is_end(sched: SchedulerParts, token: int) -> bool:
    return sched.model.is_eog(token) or token in sched.prompts.extra_stop_tokens


def first_step(sched: SchedulerParts, job: Job, index: int, extra: list[Sequence]) -> None:
    """The prompt is evaluated: fork the N first beams from its last logits row."""
    assert job.seq is not None
    width = job.request.beams
    lp = _log_softmax(sched.context.logits_row(index))
    group = BeamGroup(width)
    job.beam_group = group
    job.seq.t_first = job.seq.t_last = time.perf_counter_ns()
    order = np.argsort(lp)[::-1]
    seqs = [job.seq, *extra]
    for token in order[: width * 2]:
        token = int(token)
        if _is_end(sched, token):
            group.finished.append((float(lp[token]), []))
            continue
        if len(group.beams) == width:
            break
        seq = seqs[len(group.beams)]
        if seq is not job.seq:
            seq.copy_from(job.seq, len(job.seq.tokens))
        group.beams.append(Beam(seq, [token], float(lp[token])))
    group.spare = seqs[len(group.beams):]
    _maybe_finish(sched, job)


def outputs(job: Job) -> list[tuple[Beam, int, int]]:
    """(beam, token to evaluate, position) for every live beam of ``job``."""
    group = job.beam_group
    assert isinstance(group, BeamGroup)
    return [(b, b.tokens[-1], len(b.seq.tokens)) for b in group.beams]


def step(sched: SchedulerParts, job: Job, rows: list[tuple[Beam, int]]) -> None:
    """After a decode: commit each beam's evaluated token, keep the N best candidates."""
    group = job.beam_group
    assert isinstance(group, BeamGroup)
    width = group.width
    candidates: list[tuple[float, int, int]] = []  # (total logprob, parent, token)
    for parent, (beam, index) in enumerate(rows):
        beam.seq.tokens.append(beam.tokens[-1])
        lp = _log_softmax(sched.context.logits_row(index))
        best = np.argpartition(lp, -width)[-width:]
        candidates += [(beam.logprob + float(lp[t]), parent, int(t)) for t in best]
    candidates.sort(reverse=True)
    survivors: list[tuple[float, int, int]] = []
    for total, parent, token in candidates:
        if _is_end(sched, token):
            group.finished.append((total, list(rows[parent][0].tokens)))
        elif len(survivors) < width:
            survivors.append((total, parent, token))
        if len(survivors) == width:
            break
    _reassign(group, [b for b, _ in rows], survivors)
    assert job.seq is not None
    job.seq.t_last = time.perf_counter_ns()
    _maybe_finish(sched, job)


def _reassign(group: BeamGroup, old: list[Beam], survivors: list[tuple[float, int, int]]
              ) -> None:
    """New beams from their parents: the first child of a parent keeps its sequence, the
    others take sequences whose beams left no child and copy the parent's cells."""
    keeps: dict[int, Beam] = {}
    copies: list[tuple[int, float, int]] = []
    new: list[Beam] = []
    for total, parent, token in survivors:
        if parent not in keeps:
            beam = Beam(old[parent].seq, [*old[parent].tokens, token], total)
            keeps[parent] = beam
            new.append(beam)
        else:
            copies.append((parent, total, token))
    free = [b.seq for i, b in enumerate(old) if i not in keeps] + group.spare
    for parent, total, token in copies:
        seq = free.pop()
        src = old[parent].seq
        seq.copy_from(src, len(src.tokens))
        new.append(Beam(seq, [*old[parent].tokens, token], total))
    group.beams, group.spare = new, free


def _maybe_finish(sched: SchedulerParts, job: Job) -> None:
    group = job.beam_group
    assert isinstance(group, BeamGroup)
    longest = max((len(b.tokens) for b in group.beams), default=0)
    if len(group.finished) < group.width and group.beams and longest < job.request.max_tokens:
        return
    ended = [(score, toks) for score, toks in group.finished]
    ended += [(b.logprob, b.tokens) for b in group.beams]
    ranked = sorted(((score / max(1, len(toks)), toks) for score, toks in ended),
                    key=lambda item: item[0], reverse=True)[: group.width]
    texts = [(_detokenize(sched, toks, job.request.stop), score) for score, toks in ranked]
    finish = "length" if longest >= job.request.max_tokens and len(group.finished) < 1 else "eos"
    seq = job.seq
    assert seq is not None
    best_tokens = ranked[0][1] if ranked else []
    seq.metrics.decode_tokens = len(best_tokens)
    best = texts[0][0] if texts else ""
    seq.stream.text = best
    if best:
        job.emit_text(best)
    job.finish_metrics(time.perf_counter_ns())
    done = DoneEvent(finish, best, seq.metrics, job.prompt.template,  # type: ignore[arg-type]
                     texts if job.request.return_beams else None, list(best_tokens))
    job.sink(done)
    job.state = "done"
    for beam_seq in {b.seq.seq_id: b.seq for b in group.beams}.values():
        if beam_seq is not seq:
            beam_seq.end()
    for spare in group.spare:
        if spare is not seq:
            spare.end()
    seq.end()


def _detokenize(sched: SchedulerParts, tokens: list[int], stop: list[str]) -> str:
    text = b"".join(sched.model.piece(t) for t in tokens).decode("utf-8", "replace")
    cut = min((text.find(s) for s in stop if s and s in text), default=-1)
    return text[:cut] if cut >= 0 else text
