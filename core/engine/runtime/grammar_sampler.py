"""Grammar-constrained sampling as llama.cpp's common sampler does it: draw first, check after.

Applying a grammar means decoding every candidate's text against the grammar's stacks; with
Gemma's 262,144-token vocabulary that cost ~3x the rest of a decode step when the grammar
sits in the chain. llama.cpp's own tools (``common_sampler_sample`` with
``grammar_first=false``) instead run the chain *without* the grammar, check only the drawn
token against it, and apply the grammar to every candidate only when that token is refused
(then draw again). Under greedy the result is the same token: the argmax over all candidates,
when the grammar allows it, is also the argmax over the allowed ones.

The sampler is a custom ``llama_sampler`` (llama.cpp's documented extension point) wrapped in
an ordinary chain, so every caller keeps using ``llama_sampler_sample`` / ``_free`` on it:
the scheduler, the speculator and the draft loop need no change. Its callbacks are
module-level (they must outlive every sampler that points at them); each sampler's own parts
live in ``_parts`` under the integer its ``ctx`` carries.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import numpy as np

_ITEM = ctypes.sizeof(llama_cpp.llama_token_data)
log = logging.getLogger("hearth.engine")


# llama_token_data as numpy sees it (to read a few candidates without a Python loop).
_DTYPE = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
# Under greedy, a refused token is followed by checking the best TOP_K candidates only (one
# grammar pass over 64 tokens instead of 262,144); the full mask runs only when none of them
# is allowed, or the best allowed ties with the 64th (a token outside could then win).
TOP_K = 64
DEAD_END = ("The output format allows no next token here: the grammar (from the JSON schema, "
            "tool list or grammar given) reached a dead end that no token of this model can "
            "continue. The reply so far is kept; a simpler schema may avoid it.")


def _view(data: Any, size: int) -> np.ndarray:
    """The candidates at ``data`` as a numpy array (no copy)."""
    raw = (ctypes.c_char * (size * _ITEM)).from_address(ctypes.addressof(data.contents))
    return np.frombuffer(memoryview(raw), dtype=_DTYPE)


@dataclass(eq=False)
class _Parts:
    """One sampler's state: the chain without the grammar, the grammar, and scratch space.

    ``greedy``: the chain ends in llama.cpp's greedy sampler (maybe after penalties), so a
    refused token is replaced by the best allowed one; otherwise the chain changes the
    candidates (truncation, softmax), and a refused draw starts again from a copy."""

    chain: Any
    grammar: Any
    greedy: bool
    top_k: Any = None
    backup: Any = None
    one: Any = field(default_factory=llama_cpp.llama_token_data)
    one_array: Any = None
    drawn: int = 0  # tokens drawn
    refused: int = 0  # of them, refused by the grammar (and drawn again)
    full: int = 0  # of those, re-drawn with the grammar applied to every candidate
    checked: int = -1  # the last selected token the grammar is known to allow
    dead: bool = False  # the grammar allowed no token at all (see _accept)

    def __post_init__(self) -> None:
        self.one_array = llama_cpp.llama_token_data_array(ctypes.pointer(self.one), 1, -1,
                                                          False)
        if self.greedy:
            self.top_k = llama_cpp.llama_sampler_init_top_k(TOP_K)

    def keep_copy(self, data: Any, size: int) -> Any:
        """Copy the candidates into ``backup``; returns a pointer to the copy."""
        if self.backup is None or len(self.backup) < size * _ITEM:
            self.backup = (ctypes.c_byte * (size * _ITEM))()
        ctypes.memmove(self.backup, data, size * _ITEM)
        return ctypes.cast(self.backup, ctypes.POINTER(llama_cpp.llama_token_data))

    def allows(self, token: int) -> bool:
        """Whether the grammar accepts ``token`` next (it masks a one-candidate array)."""
        one, arr = self.one, self.one_array
        one.id, one.logit, one.p = token, 1.0, 0.0
        arr.size, arr.selected, arr.sorted = 1, -1, False
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(arr))
        return bool(one.logit != -math.inf)

    def free(self) -> None:
        for sampler in (self.grammar, self.chain, self.top_k):
            if sampler is not None:
                llama_cpp.llama_sampler_free(sampler)


_parts: dict[int, _Parts] = {}
_ids = itertools.count(1)
_NAME = ctypes.create_string_buffer(b"hearth-grammar-last")


def _of(smpl: Any) -> _Parts:
    return _parts[smpl.contents.ctx]


def _apply(smpl: Any, cur_p: Any) -> None:
    parts = _of(smpl)
    arr = cur_p.contents
    data, size, was_sorted = arr.data, arr.size, arr.sorted
    if not parts.greedy:
        parts.keep_copy(data, size)
    llama_cpp.llama_sampler_apply(parts.chain, cur_p)
    parts.drawn += 1
    drawn = arr.data[arr.selected].id
    if parts.allows(drawn):
        parts.checked = drawn
        return
    parts.refused += 1
    if parts.greedy:
        _best_allowed(parts, cur_p)
        return
    # llama.cpp's re-draw: from the original candidates, the grammar first, then the chain.
    parts.full += 1
    ctypes.memmove(data, parts.backup, size * _ITEM)
    arr.data, arr.size, arr.sorted, arr.selected = data, size, was_sorted, -1
    llama_cpp.llama_sampler_apply(parts.grammar, cur_p)
    llama_cpp.llama_sampler_apply(parts.chain, cur_p)


def _best_allowed(parts: _Parts, cur_p: Any) -> None:
    """Select what greedy over the grammar-masked candidates selects: the first (lowest
    position) of the highest allowed logits. The greedy chain has already run, so the
    candidates carry its penalties and are still in their original order."""
    arr = cur_p.contents
    size = arr.size
    top = llama_cpp.llama_token_data_array(parts.keep_copy(arr.data, size), size, -1, False)
    llama_cpp.llama_sampler_apply(parts.top_k, ctypes.byref(top))
    best = _view(top.data, top.size).copy()
    floor = float(best["logit"].min())
    llama_cpp.llama_sampler_apply(parts.grammar, ctypes.byref(top))
    allowed = _view(top.data, top.size)
    logits = allowed["logit"]
    high = float(logits.max())
    if high != -math.inf and (high > floor or top.size == size):
        ids = best["id"][logits == high]
        everything = _view(arr.data, size)["id"]
        first = int(ids.min())
        if ids.size == 1 and first < size and everything[first] == first:
            arr.selected = first  # candidates in vocabulary order (the usual layout)
        else:
            arr.selected = int(np.flatnonzero(np.isin(everything, ids))[0])
        return
    parts.full += 1
    llama_cpp.llama_sampler_apply(parts.grammar, cur_p)
    arr.selected = int(_view(arr.data, size)["logit"].argmax())


def _accept(smpl: Any, token: int) -> None:
    """Accept ``token`` into the grammar only if the grammar allows it. A grammar can reach
    a dead end — no candidate allowed and end of generation not allowed either (a schema
    whose next character no token's text can start; llama.cpp #12597, #18173) — and then
    llama.cpp throws from inside accept, which aborts the whole worker and every stream in
    it. Here the sampler is marked ``dead`` instead, and the scheduler ends that one request
    with a clear error (:func:`grammar_dead`)."""
    parts = _of(smpl)
    if token == parts.checked or parts.allows(token):
        llama_cpp.llama_sampler_accept(parts.grammar, token)
    else:
        if not parts.dead:
            log.warning("grammar dead end: no token allowed after %d drawn (token %d "
                        "refused); the request ends with a GrammarError", parts.drawn, token)
        parts.dead = True
    parts.checked = -1
    llama_cpp.llama_sampler_accept(parts.chain, token)


def _reset(smpl: Any) -> None:
    parts = _of(smpl)
    llama_cpp.llama_sampler_reset(parts.grammar)
    llama_cpp.llama_sampler_reset(parts.chain)


def _free(smpl: Any) -> None:
    parts = _parts.pop(smpl.contents.ctx, None)
    if parts is not None:
        parts.free()


def _name(_smpl: int) -> int:
    return ctypes.addressof(_NAME)


def _clone(smpl: int) -> int:
    parts = _parts[llama_cpp.llama_sampler.from_address(smpl).ctx]
    copy = _new(llama_cpp.llama_sampler_clone(parts.chain),
                llama_cpp.llama_sampler_clone(parts.grammar), parts.greedy)
    return ctypes.cast(copy, ctypes.c_void_p).value or 0


# ctypes cannot return a pointer type from a Python callback: name and clone are declared
# with void pointers and cast to the interface's types.
_ADDRESS_OF = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)
_CALLBACKS = (llama_cpp.llama_sampler_i_apply(_apply), llama_cpp.llama_sampler_i_accept(_accept),
              llama_cpp.llama_sampler_i_reset(_reset), llama_cpp.llama_sampler_i_free(_free),
              _ADDRESS_OF(_name), _ADDRESS_OF(_clone))
_IFACE = llama_cpp.llama_sampler_i(
    apply=_CALLBACKS[0], accept=_CALLBACKS[1], reset=_CALLBACKS[2], free=_CALLBACKS[3],
    name=ctypes.cast(_CALLBACKS[4], llama_cpp.llama_sampler_i_name),
    clone=ctypes.cast(_CALLBACKS[5], llama_cpp.llama_sampler_i_clone))


def _new(chain: Any, grammar: Any, greedy: bool) -> Any:
    key = next(_ids)
    _parts[key] = _Parts(chain, grammar, greedy)
    return llama_cpp.llama_sampler_init(ctypes.byref(_IFACE), key)


def grammar_last(chain: Any, grammar: Any, *, greedy: bool) -> Any:
    """A sampler chain that draws with ``chain`` and checks the token against ``grammar``,
    re-drawing over the grammar's allowed tokens only when it is refused. Takes ownership
    of both (``llama_sampler_free`` on the result frees them)."""
    outer = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    llama_cpp.llama_sampler_chain_add(outer, _new(chain, grammar, greedy))
    return outer


def _parts_of(sampler: Any) -> _Parts | None:
    """The parts of a :func:`grammar_last` chain; None for any other sampler."""
    inner = llama_cpp.llama_sampler_chain_get(sampler, 0)
    if not inner or ctypes.cast(inner.contents.iface, ctypes.c_void_p).value \
            != ctypes.addressof(_IFACE):
        return None
    return _parts[inner.contents.ctx]


def refusals(sampler: Any) -> tuple[int, int, int]:
    """(tokens drawn, refused by the grammar, re-drawn over every candidate) of a
    :func:`grammar_last` sampler: how often each slower path ran (for tests and
    benchmarks); zeros for any other sampler."""
    parts = _parts_of(sampler)
    return (0, 0, 0) if parts is None else (parts.drawn, parts.refused, parts.full)


def grammar_dead(sampler: Any) -> bool:
    """Whether the last token this sampler took was one its grammar refused: the grammar
    had reached a dead end, and the output no longer follows it."""
    parts = _parts_of(sampler)
    return parts is not None and parts.dead
