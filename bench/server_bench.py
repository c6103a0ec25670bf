"""Hearth's server against ``llama-server``: the same model, threads, context and parallel
slots (8), the same load generator, in one run, alternating sides.

The load generator is an asyncio client of its own (httpx): C concurrent clients, each
streaming greedy 64-token completions one after another; aggregate tok/s over the phase,
and time to first token (request sent → first text chunk) p50/p99, at C = 1, 4, 8. Then the
shared-prefix load: 8 clients at once, one ~500-token system prompt (new each round) and a
question of their own; TTFT p50. Both servers are separate processes (``hearth-cli serve``
as a user starts it), so the generator's Python never competes inside either.

Goals (issue 15): throughput ≥ 0.95× llama-server at every C, TTFT p50 ≤ 1.1× its; with a
shared prefix, TTFT p50 ≤ 0.5× its. Run ``python -m bench.server_bench`` alone, or as part
of ``make bench``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.llama_bench import REPO_ROOT, ensure_tool
from bench.stats import paired_ratio
from core.engine.runtime.resources import default_threads

N_GEN = 64
SLOTS = 8
CTX = 8192
WIDTHS = (1, 4, 8)
QUESTIONS = ["What is {n} plus {n}?", "Name a city with {n} letters.", "Why is {n} odd?",
             "Spell {n}.", "Is {n} prime?", "Count to {n}.", "Double {n}.", "Halve {n}."]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Side:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    model: str = ""

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _wait_ready(side: Side, timeout: float = 300) -> Side:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if side.process.poll() is not None:
            raise RuntimeError(f"{side.name} exited with code {side.process.returncode}")
        try:
            if httpx.get(f"{side.url}/health", timeout=2).status_code == 200:
                models = httpx.get(f"{side.url}/v1/models", timeout=5).json()["data"]
                side.model = models[0]["id"]
                return side
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{side.name} did not become ready")


def start_llama_server(model: Path, threads: int) -> Side:
    exe = ensure_tool("llama-server")
    port = _free_port()
    env = {**os.environ, "LD_LIBRARY_PATH": str(exe.parent)}
    proc = subprocess.Popen([str(exe), "-m", str(model), "-t", str(threads), "-tb",
                             str(threads), "-c", str(CTX), "-np", str(SLOTS), "--host",
                             "127.0.0.1", "--port", str(port), "--no-webui"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _wait_ready(Side("llama-server", f"http://127.0.0.1:{port}", proc))


def start_hearth(model: Path, threads: int, home: Path) -> Side:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HEARTH_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port),
                             "--model", str(model), "--threads", str(threads), "--ctx",
                             str(CTX), "--parallel", str(SLOTS)], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _wait_ready(Side("Hearth", f"http://127.0.0.1:{port}", proc))


@dataclass
class Phase:
    tokens: int = 0
    wall_s: float = 0.0
    ttft_ms: list[float] = field(default_factory=list)

    @property
    def tok_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s else 0.0


async def _one(client: httpx.AsyncClient, side: Side, body: dict, phase: Phase) -> None:
    t0 = time.perf_counter()
    first, tokens, usage = None, 0, None
    async with client.stream("POST", f"{side.url}{body.pop('_path')}", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                piece = choice.get("text") or (choice.get("delta") or {}).get("content")
                if piece:
                    tokens += 1
                    if first is None:
                        first = time.perf_counter()
    phase.ttft_ms.append(((first or time.perf_counter()) - t0) * 1000)
    phase.tokens += usage["completion_tokens"] if usage else tokens


def _completion(side: Side, prompt: str) -> dict:
    return {"_path": "/v1/completions", "model": side.model, "prompt": prompt,
            "max_tokens": N_GEN, "temperature": 0, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}, "cache_prompt": True}


async def _load(side: Side, width: int, per_client: int, round_no: int) -> Phase:
    phase = Phase()
    limits = httpx.Limits(max_connections=width + 2)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        async def user(u: int) -> None:
            for r in range(per_client):
                prompt = f"Story {round_no}.{u}.{r}: Once upon a time, in a land far away,"
                await _one(client, side, _completion(side, prompt), phase)

        t0 = time.perf_counter()
        await asyncio.gather(*(user(u) for u in range(width)))
        phase.wall_s = time.perf_counter() - t0
    return phase


def _system_prompt(round_no: int) -> str:
    # ~500 tokens (about 9 per rule): with 8 slots of 1,024 cells each, llama-server has
    # room for it, a question and the reply in every slot
    words = " ".join(f"rule{round_no}-{i} applies to every answer;" for i in range(52))
    return f"You are a careful assistant (session {round_no}). {words}"


async def _shared(side: Side, round_no: int) -> Phase:
    phase = Phase()
    system = _system_prompt(round_no)
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=10)) as c:
        bodies = [{"_path": "/v1/chat/completions", "model": side.model, "max_tokens": N_GEN,
                   "temperature": 0, "ignore_eos": True, "stream": True,
                   "stream_options": {"include_usage": True},
                   "messages": [{"role": "system", "content": system},
                                {"role": "user", "content": q.format(n=round_no * 10 + i)}]}
                  for i, q in enumerate(QUESTIONS)]
        t0 = time.perf_counter()
        await asyncio.gather(*(_one(c, side, b, phase) for b in bodies))
        phase.wall_s = time.perf_counter() - t0
    return phase


@dataclass
class Result:
    name: str
    hearth: list[float] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    higher_is_better: bool = True
    goal: float = 1.0

    @property
    def ratio(self) -> float:
        """Median of the paired ratios (:func:`bench.stats.paired_ratio`)."""
        return paired_ratio(self.hearth, self.reference)

    @property
    def met(self) -> bool:
        return self.ratio >= self.goal if self.higher_is_better else self.ratio <= self.goal

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "hearth": self.hearth, "reference": self.reference,
                "ratio": self.ratio, "goal": self.goal, "met": self.met}


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _log(msg: str) -> None:
    print(f"[server-bench] {msg}", file=sys.stderr, flush=True)


def run(model: Path, rounds: int = 2, per_client: int = 2,
        widths: tuple[int, ...] = WIDTHS, shared: bool = True) -> list[Result]:
    threads = default_threads()
    home = REPO_ROOT / ".cache" / "server-bench-home"
    sides = [start_hearth(model, threads, home), start_llama_server(model, threads)]
    results: dict[str, Result] = {}

    def add(name: str, side: Side, value: float, higher: bool, goal: float) -> None:
        row = results.setdefault(name, Result(name, higher_is_better=higher, goal=goal))
        (row.hearth if side.name == "Hearth" else row.reference).append(value)

    try:
        for side in sides:  # warm both (first requests pay page faults)
            asyncio.run(_load(side, 1, 1, -1))
        for r in range(rounds):  # each phase a pair: both sides back to back, alternating
            for i, width in enumerate(widths):
                for side in sides if (r + i) % 2 == 0 else sides[::-1]:
                    phase = asyncio.run(_load(side, width, per_client, r))
                    _log(f"round {r} {side.name} C={width}: {phase.tok_s:.1f} tok/s, TTFT "
                         f"p50 {statistics.median(phase.ttft_ms):.0f} ms")
                    add(f"C={width} aggregate tok/s", side, phase.tok_s, True, 0.95)
                    add(f"C={width} TTFT p50 ms", side, statistics.median(phase.ttft_ms),
                        False, 1.1)
                    add(f"C={width} TTFT p99 ms", side, _p(phase.ttft_ms, 0.99), False,
                        float("inf"))
            if not shared:
                continue
            for side in sides if r % 2 == 0 else sides[::-1]:
                prefix = asyncio.run(_shared(side, r))
                _log(f"round {r} {side.name} shared prefix: TTFT p50 "
                     f"{statistics.median(prefix.ttft_ms):.0f} ms")
                add("shared 500-tok prefix, 8 clients: TTFT p50 ms", side,
                    statistics.median(prefix.ttft_ms), False, 0.5)
    finally:
        for side in sides:
            side.close()
    return list(results.values())


def print_results(rows: list[Result], threads: int) -> None:
    print(f"\nLocal server vs llama-server — {threads} threads, {SLOTS} slots, "
          f"{N_GEN}-token greedy streams (medians; ratio: median of paired rounds)")
    print(f"{'measure':<48} {'Hearth':>10} {'llama-server':>13} {'ratio':>7} {'goal':>7}")
    for row in rows:
        goal = "—" if row.goal == float("inf") else \
            (f"≥{row.goal:g}" if row.higher_is_better else f"≤{row.goal:g}")
        mark = "" if row.goal == float("inf") else (" ok" if row.met else " MISSED")
        print(f"{row.name:<48} {statistics.median(row.hearth):>10.1f} "
              f"{statistics.median(row.reference):>13.1f} {row.ratio:>7.3f} {goal:>7}{mark}")


def main(argv: list[str] | None = None) -> list[Result]:
    import argparse

    from core.models.bundled import default_model_path

    parser = argparse.ArgumentParser(prog="python -m bench.server_bench")
    parser.add_argument("--model", type=Path)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-client", type=int, default=2,
                        help="requests each client sends one after another per phase")
    parser.add_argument("--widths", default=",".join(map(str, WIDTHS)),
                        help="concurrent clients per phase, comma-separated")
    parser.add_argument("--no-shared", action="store_true", help="skip the shared prefix")
    args = parser.parse_args(argv)
    widths = tuple(int(w) for w in args.widths.split(","))
    rows = run(args.model or default_model_path(), args.rounds, args.per_client, widths,
               not args.no_shared)
    print_results(rows, default_threads())
    return rows


if __name__ == "__main__":
    from bench.__main__ import save

    found = main()
    print(f"\nraw samples: {save('server', {'rows': [r.to_dict() for r in found]})}",
          file=sys.stderr)
