"""Fuzzing model files: mutate the real default model's header, truncate it, write noise.

A case is a small JSON-able recipe (a base file and a list of byte edits), so any input
the fuzzer finds can be saved as a regression case of a few hundred bytes instead of a
253 MB file. Cases on the default model are applied to one *sparse* working copy: its
header region (the first ~6.5 MB: metadata, the 262k-token vocabulary, tensor infos) is
real, its tensor data is a hole of zeros of the right size. Applying a case writes only the
bytes it changes and restoring writes them back, so a thousand cases cost a few MB of I/O,
and what the validator reads is exactly what llama.cpp would load (the weights' values do
not matter to a loader; all-zero blocks are valid in every quant type).

Every input goes through :func:`core.gguf.validate.validate_gguf`, the same call every load
makes. Inputs it accepts are loaded in a real worker (:class:`EngineClient`, CPU, small
context) and asked for one token: a worker that dies there is a validator gap.

Run ``python -m tests.reliability.gguf_fuzz --cases 20000`` (``make fuzz``) for a long run;
crashing cases are written to ``test-artifacts/fuzz-crashes/`` as JSON, ready to be copied
into ``tests/reliability/cases/``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from core.errors import HearthError, ModelFileError
from core.gguf.validate import validate_gguf
from tests.reliability.gguf_cases import (
    Case,
    CaseGenerator,
    walk_layout,
)


def _zero_padded(buf: bytes | bytearray, lo: int, hi: int) -> bytes:
    return bytes(buf[lo:hi]).ljust(hi - lo, b"\0")


class Workbench:
    """Materializes cases as files: a sparse working copy of the default model (edited in
    place and restored), and small files for the other bases."""

    def __init__(self, default_model: Path, work_dir: Path) -> None:
        self.base_size = default_model.stat().st_size
        with default_model.open("rb") as fh:
            probe = fh.read(16 << 20)
        self.layout = walk_layout(probe)
        data_start = -(-self.layout.header_end // 32) * 32
        self.base_header = probe[:data_start]
        work_dir.mkdir(parents=True, exist_ok=True)
        self.path = work_dir / "default-sparse.gguf"
        with self.path.open("wb") as fh:
            fh.write(self.base_header)
            fh.truncate(self.base_size)  # the tensor data: a hole, read as zeros
        self.small_path = work_dir / "small.gguf"
        self._fd = os.open(self.path, os.O_RDWR)
        self._undo: list[tuple[int, int]] = []
        self._resized = False

    def close(self) -> None:
        os.close(self._fd)

    def apply(self, case: Case) -> Path:
        """Write the case's file; returns its path (call :meth:`restore` afterwards)."""
        if case.base != "default":
            self.small_path.write_bytes(materialize_small(case))
            return self.small_path
        hdr = bytearray(self.base_header)
        size = self.base_size
        dirty: list[tuple[int, int]] = []
        for op in case.ops:
            if op["op"] == "write":
                data = bytes.fromhex(op["hex"])
                hdr[op["at"]:op["at"] + len(data)] = data
                dirty.append((op["at"], op["at"] + len(data)))
            elif op["op"] == "insert":
                hdr[op["at"]:op["at"]] = bytes.fromhex(op["hex"])
                dirty.append((op["at"], len(hdr)))
            elif op["op"] == "delete":
                del hdr[op["at"]:op["at"] + op["n"]]
                dirty.append((op["at"], len(self.base_header)))
            elif op["op"] == "truncate":
                size = op["size"]
        for lo, hi in dirty:
            os.pwrite(self._fd, _zero_padded(hdr, lo, hi), lo)
        if size != self.base_size:
            os.ftruncate(self._fd, size)
            self._resized = True
            dirty.append((min(size, len(self.base_header)), len(self.base_header)))
        self._undo = dirty
        return self.path

    def restore(self) -> None:
        if self._resized:
            os.ftruncate(self._fd, self.base_size)
            self._resized = False
        for lo, hi in self._undo:
            os.pwrite(self._fd, _zero_padded(self.base_header, lo, hi), lo)
        self._undo = []


def materialize_small(case: Case) -> bytes:
    """The bytes of a case on the "tiny" or "none" base."""
    buf = bytearray()
    if case.base == "tiny":
        import tempfile

        from tests.fixtures.crashing_models import make_tiny_llama

        with tempfile.TemporaryDirectory() as tmp:
            buf = bytearray(make_tiny_llama(Path(tmp) / "tiny.gguf", **case.tiny).read_bytes())
    for op in case.ops:
        if op["op"] == "write":
            data = bytes.fromhex(op["hex"])
            buf[op["at"]:op["at"] + len(data)] = data
        elif op["op"] == "insert":
            buf[op["at"]:op["at"]] = bytes.fromhex(op["hex"])
        elif op["op"] == "delete":
            del buf[op["at"]:op["at"] + op["n"]]
        elif op["op"] == "truncate":
            del buf[op["size"]:]
    return bytes(buf)


# --- running -------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What happened to one input: "rejected" (validator), "refused" (llama.cpp, clean
    error), "ran" (loaded and generated), or "crashed" (the worker died or hung)."""

    case: Case
    verdict: str
    message: str = ""


class Loader:
    """One long-lived worker that loads accepted inputs; a watchdog kills it on a hang."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        from core.engine.process.client import EngineClient

        self.client = EngineClient()
        self.timeout_s = timeout_s

    def close(self) -> None:
        self.client.close()

    def run(self, path: Path) -> tuple[str, str]:
        from core.engine.api import ErrorEvent, GenerationRequest
        from core.engine.config import EngineConfig
        from core.engine.process.client import WorkerDied

        hung = threading.Event()

        def kill() -> None:
            pid = self.client.worker_pid
            if pid is not None:
                hung.set()
                os.kill(pid, signal.SIGKILL)

        timer = threading.Timer(self.timeout_s, kill)
        timer.start()
        try:
            self.client.load(EngineConfig(model_path=path, n_ctx=64, n_gpu_layers=0,
                                          n_threads=1))
            events = list(self.client.generate(GenerationRequest(prompt="hi", max_tokens=1)))
            self.client.unload()
        except WorkerDied as died:
            return "crashed", ("hung" if hung.is_set() else str(died))
        except HearthError as err:
            return "refused", str(err)
        finally:
            timer.cancel()
        last = events[-1]
        if isinstance(last, ErrorEvent) and last.kind == "WorkerDied":
            return "crashed", "hung" if hung.is_set() else last.message
        return "ran", getattr(last, "message", "")


def run_case(case: Case, bench: Workbench, loader: Loader) -> Outcome:
    path = bench.apply(case)
    try:
        try:
            validate_gguf(path)
        except ModelFileError as err:
            return Outcome(case, "rejected", str(err))
        verdict, message = loader.run(path)
        return Outcome(case, verdict, message)
    finally:
        if case.base == "default":
            bench.restore()


@dataclass
class FuzzReport:
    outcomes: list[Outcome]
    seconds: float

    @property
    def counts(self) -> Counter[str]:
        return Counter(o.verdict for o in self.outcomes)

    def crashes(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.verdict == "crashed"]

    def summary(self) -> str:
        c = self.counts
        return (f"{len(self.outcomes)} inputs in {self.seconds:.1f} s: {c['rejected']} rejected "
                f"by the validator, {c['refused']} refused by llama.cpp, {c['ran']} loaded "
                f"and ran, {c['crashed']} crashed the worker")


def fuzz(default_model: Path, work_dir: Path, n_cases: int, seed: int,
         progress: bool = False) -> FuzzReport:
    """Run ``n_cases`` seeded inputs; every accepted one is loaded in one worker."""
    bench = Workbench(default_model, work_dir)
    loader = Loader()
    gen = iter(CaseGenerator(bench.base_header, bench.base_size, bench.layout,
                             random.Random(seed)))
    outcomes: list[Outcome] = []
    t0 = time.perf_counter()
    try:
        for i in range(n_cases):
            outcomes.append(run_case(next(gen), bench, loader))
            if progress and (i + 1) % 500 == 0:
                print(FuzzReport(outcomes, time.perf_counter() - t0).summary(), flush=True)
    finally:
        loader.close()
        bench.close()
    return FuzzReport(outcomes, time.perf_counter() - t0)


def save_crash(outcome: Outcome, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{outcome.case.kind}-{outcome.case.digest[:12]}.json"
    data = {**outcome.case.to_json(), "expect": "no-crash", "found": outcome.message}
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    from core.models.bundled import default_model_path
    from tests.paths import ARTIFACTS, MODEL_CACHE

    parser = argparse.ArgumentParser(description="Fuzz Hearth's GGUF validator and loader.")
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    print(f"seed {seed}", flush=True)
    work = ARTIFACTS / "fuzz-work"
    report = fuzz(default_model_path(MODEL_CACHE), work, args.cases, seed, progress=True)
    print(report.summary())
    for outcome in report.crashes():
        print(f"CRASH {outcome.case.note}: {outcome.message} -> "
              f"{save_crash(outcome, ARTIFACTS / 'fuzz-crashes')}")
    return 1 if report.crashes() else 0


if __name__ == "__main__":
    sys.exit(main())
