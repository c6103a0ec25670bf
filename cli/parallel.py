"""``hearth-cli generate --prompt-file FILE --parallel N``: many prompts at once.

Every line of the file is a prompt (completion mode, or chat with ``--chat-lines``); all of
them are submitted at once from their own threads, the worker decodes up to ``--parallel``
of them in each step, and the replies are printed in the file's order as they finish (JSON
lines with ``--json``). The aggregate figures — requests, tokens, wall time, aggregate
decode tok/s, TTFT p50/p99 — go to stderr (or into a final ``summary`` JSON line).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

from core.engine import ChatMessage, DoneEvent, ErrorEvent, GenerationRequest
from core.engine.api import EngineBackend
from core.engine.push import submit
from core.errors import ConfigError


def read_prompts(path: Path) -> list[str]:
    """Non-empty lines of ``path`` (a one-line error when it cannot be read)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"Cannot read the prompt file {path} ({err}).") from err
    prompts = [line for line in lines if line.strip()]
    if not prompts:
        raise ConfigError(f"The prompt file {path} has no prompts (one per line).")
    return prompts


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run_parallel(args: argparse.Namespace, engine: EngineBackend,
                 base: GenerationRequest) -> int:
    """Run every prompt of ``args.prompt_file`` at once; ``base`` carries the sampling and
    length flags (its prompt is replaced per line)."""
    prompts = read_prompts(args.prompt_file)
    results: list[DoneEvent | ErrorEvent | None] = [None] * len(prompts)

    def worker(index: int, prompt: str) -> None:
        if args.chat_lines:
            request = _with(base, messages=[ChatMessage("user", prompt)], prompt=None)
        else:
            request = _with(base, prompt=prompt)
        # pushed: only the final event matters here, so no thread wakes per token
        results[index] = submit(engine, request, lambda _event: None).run()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i, p), daemon=True)
               for i, p in enumerate(prompts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - t0
    failures = 0
    for index, final in enumerate(results):
        failures += not isinstance(final, DoneEvent)
        _print_result(index, final, args.json)
    _print_summary([r for r in results if isinstance(r, DoneEvent)], len(prompts), wall,
                   args.json, getattr(args, "parallel", 1))
    return 1 if failures else 0


def _with(base: GenerationRequest, **changes: object) -> GenerationRequest:
    from dataclasses import replace

    return replace(base, **changes)  # type: ignore[arg-type]


def _print_result(index: int, final: DoneEvent | ErrorEvent | None, as_json: bool) -> None:
    if as_json:
        data = final.to_dict() if final is not None else {"event": "error",
                                                          "message": "no answer"}
        print(json.dumps({"index": index, **data}, ensure_ascii=False), flush=True)
    elif isinstance(final, DoneEvent):
        print(f"[{index}] {final.text.strip()}", flush=True)
    else:
        message = final.message if final is not None else "no answer"
        print(f"[{index}] error: {message}", file=sys.stderr, flush=True)


def _print_summary(done: list[DoneEvent], n: int, wall: float, as_json: bool,
                   parallel: int) -> None:
    tokens = sum(d.metrics.decode_tokens for d in done)
    ttft = [d.metrics.ttft_ms for d in done]
    summary = {
        "event": "summary", "requests": n, "completed": len(done), "parallel": parallel,
        "generated_tokens": tokens, "wall_s": round(wall, 3),
        "aggregate_tok_s": round(tokens / wall, 2) if wall > 0 else 0.0,
        "ttft_p50_ms": round(statistics.median(ttft), 1) if ttft else 0.0,
        "ttft_p99_ms": round(percentile(ttft, 99), 1),
    }
    if as_json:
        print(json.dumps(summary), flush=True)
    else:
        print(f"[{len(done)}/{n} requests, {tokens} tokens in {wall:.2f} s: "
              f"{summary['aggregate_tok_s']} tok/s aggregate with {parallel} sequences; "
              f"TTFT p50 {summary['ttft_p50_ms']} ms, p99 {summary['ttft_p99_ms']} ms]",
              file=sys.stderr)
