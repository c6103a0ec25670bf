"""The one rule for reusing a KV cache across requests, for the target and the draft."""

from __future__ import annotations

import llama_cpp


def keep_prefix(mem: llama_cpp.llama_memory_t, cached: list[int], tokens: list[int],
                n_swa: int) -> int:
    """Trim sequence 0 of ``mem`` (holding ``cached``) to the longest prefix it shares with
    ``tokens`` — never all of ``tokens``: the last one must be evaluated to have logits —
    and ``cached`` with it. Returns the tokens kept; 0 means the caller must clear the
    cache (nothing shared, a sliding window already evicted positions the new tokens
    attend to, or llama.cpp refused the partial removal)."""
    if len(cached) < len(tokens) and tokens[: len(cached)] == cached:
        return len(cached)  # a pure extension: nothing to remove, one compare in C
    n, limit = 0, min(len(cached), len(tokens) - 1)
    while n < limit and cached[n] == tokens[n]:
        n += 1
    if n == 0:
        return 0
    if n_swa > 0 and llama_cpp.llama_memory_seq_pos_min(mem, 0) > max(0, n - n_swa):
        return 0
    if not llama_cpp.llama_memory_seq_rm(mem, 0, n, -1):
        return 0
    del cached[n:]
    return n
