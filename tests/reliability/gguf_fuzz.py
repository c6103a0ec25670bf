"""Fuzzing model files: mutate the real default model's header, truncate it, write noise.

A case is a small JSON-able recipe (a base file and a list of byte edits), so any input
the fuzzer finds can be saved as a regression case of a few hundred bytes instead of a
253 MB file. Cases on the default model are applied to one *sparse* working copy: its
header region (the first ~6.5 MB: metadata, the 262k-token vocabulary, tensor infos) is
real, its tensor data is a hole of zeros of the right size. Applying a case writes only the
bytes it changes and restoring writes them back, so a thousand cases cost a few MB of I/O,
and what the validator reads is exactly what llama.cpp would load (the weights' values do
not matter to a loader; all-zero blocks are valid in every quant type).

Every input goes through :func:`core.validate.validate_gguf`, the same call every load
makes. Inputs it accepts are loaded in a real worker (:class:`EngineClient`, CPU, small
context) and asked for one token: a worker that dies there is a validator gap.

Run ``python -m tests.reliability.gguf_fuzz --cases 20000`` (``make fuzz``) for a long run;
crashing cases are written to ``test-artifacts/fuzz-crashes/`` as JSON, ready to be copied
into ``tests/reliability/cases/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import HearthError, ModelFileError
from core.validate import validate_gguf

# Single-value edits that break parsers: zero, one, sign bits, all ones, powers of two.
_INTERESTING_64 = (0, 1, 2, 7, 63, 64, 255, 256, 4096, 65535, 65536, (1 << 31) - 1,
                   1 << 31, (1 << 32) - 1, 1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 1)
_INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF)
# 32-bit patterns that are also interesting floats: NaN, +-inf, -1.0, -0.0.
_INTERESTING_32 = (0x7FC00000, 0x7F800000, 0xFF800000, 0xBF800000, 0x80000000)
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


@dataclass(frozen=True)
class FieldRef:
    """A structural field of the base header: where, how wide, and what it is."""

    offset: int
    width: int
    label: str
    structural: bool  # a length, count, type or offset (vs. a metadata value)


@dataclass
class Layout:
    """Where things are in the base file's header, found by walking it once."""

    header_end: int  # end of the tensor infos (the data starts at the next alignment)
    vocab: tuple[int, int]  # byte range of the vocabulary strings
    fields: list[FieldRef] = field(default_factory=list)
    regions: dict[str, tuple[int, int]] = field(default_factory=dict)


def walk_layout(buf: bytes) -> Layout:
    """Walk a well-formed GGUF header and record its fields (test-side, independent of
    the validator, so the two cannot share a blind spot)."""
    u32 = lambda o: struct.unpack_from("<I", buf, o)[0]  # noqa: E731
    u64 = lambda o: struct.unpack_from("<Q", buf, o)[0]  # noqa: E731
    fields = [FieldRef(4, 4, "version", True), FieldRef(8, 8, "n_tensors", True),
              FieldRef(16, 8, "n_kv", True)]
    n_tensors, n_kv = u64(8), u64(16)
    off, vocab, first_kv_end = 24, (0, 0), 0
    for _ in range(n_kv):
        key_len = u64(off)
        key = buf[off + 8:off + 8 + key_len].decode()
        fields.append(FieldRef(off, 8, f"{key}: key length", True))
        off += 8 + key_len
        fields.append(FieldRef(off, 4, f"{key}: type", True))
        kind = u32(off)
        off += 4
        if kind == 8:
            fields.append(FieldRef(off, 8, f"{key}: string length", True))
            off += 8 + u64(off)
        elif kind == 9:
            item, count = u32(off), u64(off + 4)
            fields.append(FieldRef(off, 4, f"{key}: item type", True))
            fields.append(FieldRef(off + 4, 8, f"{key}: item count", True))
            off += 12
            if item == 8:
                start = off
                for i in range(count):
                    if i < 4 or i == count - 1:
                        fields.append(FieldRef(off, 8, f"{key}[{i}]: length", True))
                    off += 8 + u64(off)
                if key == "tokenizer.ggml.tokens":
                    vocab = (start, off)
            else:
                off += count * _SCALAR_SIZES[item]
        else:
            size = _SCALAR_SIZES[kind]
            fields.append(FieldRef(off, size, f"{key}: value", False))
            off += size
        if key == "tokenizer.ggml.pre":
            first_kv_end = off
    infos_start = off
    for _ in range(n_tensors):
        name_len = u64(off)
        name = buf[off + 8:off + 8 + name_len].decode()
        fields.append(FieldRef(off, 8, f"tensor {name}: name length", True))
        off += 8 + name_len
        n_dims = u32(off)
        fields.append(FieldRef(off, 4, f"tensor {name}: n_dims", True))
        off += 4
        for d in range(n_dims):
            fields.append(FieldRef(off, 8, f"tensor {name}: ne[{d}]", True))
            off += 8
        fields.append(FieldRef(off, 4, f"tensor {name}: type", True))
        fields.append(FieldRef(off + 4, 8, f"tensor {name}: offset", True))
        off += 12
    regions = {"header": (0, 24), "metadata": (24, first_kv_end or vocab[0]),
               "vocabulary": vocab, "tail-metadata": (vocab[1], infos_start),
               "tensor-infos": (infos_start, off)}
    return Layout(off, vocab, fields, regions)


# --- cases ---------------------------------------------------------------------------------


@dataclass
class Case:
    """A recipe: ``base`` is "default" (the real model), "tiny" (make_tiny_llama with
    ``tiny`` overrides) or "none" (the edits alone make the file)."""

    base: str
    kind: str
    ops: list[dict[str, Any]]
    note: str = ""
    tiny: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"base": self.base, "kind": self.kind, "ops": self.ops,
                                "note": self.note}
        if self.tiny:
            data["tiny"] = self.tiny
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Case:
        return cls(data["base"], data["kind"], data["ops"], data.get("note", ""),
                   data.get("tiny", {}))

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()


def _write(at: int, data: bytes) -> dict[str, Any]:
    return {"op": "write", "at": at, "hex": data.hex()}


def _value_for(ref: FieldRef, old: int, rng: random.Random) -> int:
    if ref.width == 4 and rng.random() < 0.3:
        return rng.choice(_INTERESTING_32)
    choices = [*_INTERESTING_64, old + 1, old - 1, old * 2, old // 2, old ^ (1 << rng.randrange(
        ref.width * 8)), rng.getrandbits(ref.width * 8)]
    return rng.choice(choices) % (1 << (ref.width * 8))


class CaseGenerator:
    """Seeded mutations of the default model's header (and a share of pure noise).

    The mix is weighted toward structure (lengths, counts, types, offsets): that is where
    parsers break, and such inputs are nearly always rejected, which keeps the number of
    real loads (the slow part, ~0.7 s each) small enough for ``make test``."""

    def __init__(self, base_header: bytes, base_size: int, layout: Layout,
                 rng: random.Random) -> None:
        self.hdr, self.size, self.layout, self.rng = base_header, base_size, layout, rng
        self.structural = [f for f in layout.fields if f.structural]
        self.values = [f for f in layout.fields if not f.structural]

    def __iter__(self) -> Iterator[Case]:
        kinds = ("field", "value", "flip", "splice", "truncate", "noise")
        weights = (48, 3, 10, 8, 18, 13)
        while True:
            kind = self.rng.choices(kinds, weights)[0]
            yield getattr(self, f"_{kind}")()

    def _field(self) -> Case:
        ref = self.rng.choice(self.structural)
        old = int.from_bytes(self.hdr[ref.offset:ref.offset + ref.width], "little")
        new = _value_for(ref, old, self.rng)
        return Case("default", "field", [_write(ref.offset, new.to_bytes(ref.width, "little"))],
                    f"{ref.label}: {old} -> {new}")

    def _value(self) -> Case:
        ref = self.rng.choice(self.values)
        old = int.from_bytes(self.hdr[ref.offset:ref.offset + ref.width], "little")
        new = _value_for(ref, old, self.rng)
        return Case("default", "value", [_write(ref.offset, new.to_bytes(ref.width, "little"))],
                    f"{ref.label}: {old:#x} -> {new:#x}")

    def _flip(self) -> Case:
        names = ("header", "metadata", "tail-metadata", "tensor-infos", "vocabulary")
        region = self.rng.choices(names, (4, 3, 1, 8, 0.5))[0]
        lo, hi = self.layout.regions[region]
        ops = []
        for _ in range(self.rng.choice((1, 1, 2, 4))):
            at = self.rng.randrange(lo, hi)
            if self.rng.random() < 0.5:
                byte = self.hdr[at] ^ (1 << self.rng.randrange(8))
            else:
                byte = self.rng.choice((*_INTERESTING_BYTES, self.rng.randrange(256)))
            ops.append(_write(at, bytes([byte])))
        return Case("default", "flip", ops, f"{len(ops)} byte(s) in the {region}")

    def _splice(self) -> Case:
        region = self.rng.choice(("metadata", "tensor-infos", "header"))
        lo, hi = self.layout.regions[region]
        at = self.rng.randrange(lo, hi)
        if self.rng.random() < 0.5:
            data = self.rng.randbytes(self.rng.choice((1, 2, 4, 8, 13)))
            return Case("default", "splice", [{"op": "insert", "at": at, "hex": data.hex()}],
                        f"{len(data)} byte(s) inserted in the {region}")
        n = self.rng.choice((1, 2, 4, 8, 13))
        return Case("default", "splice", [{"op": "delete", "at": at, "n": n}],
                    f"{n} byte(s) deleted from the {region}")

    def _truncate(self) -> Case:
        if self.rng.random() < 0.4:
            size = self.rng.randrange(0, self.layout.header_end)
        else:
            size = self.rng.randrange(self.layout.header_end, self.size)
        return Case("default", "truncate", [{"op": "truncate", "size": size}],
                    f"cut at {size:,} of {self.size:,} bytes")

    def _noise(self) -> Case:
        rng = self.rng
        style = rng.choice(("random", "magic", "header", "html", "copy-head"))
        n = rng.choice((0, 1, 3, 4, 23, 24, 100, 4096))
        body = rng.randbytes(n)
        if style == "magic":
            body = b"GGUF" + body
        elif style == "header":
            body = struct.pack("<4sIQQ", b"GGUF", rng.choice((1, 2, 3, 4, 0xFFFFFFFF)),
                               rng.choice(_INTERESTING_64), rng.choice(_INTERESTING_64)) + body
        elif style == "html":
            body = b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n"
        elif style == "copy-head":
            body = self.hdr[:rng.randrange(24, 4096)] + body
        return Case("none", "noise", [_write(0, body)] if body else [], f"{style}, {len(body)} B")


# --- applying cases to files ---------------------------------------------------------------


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
        from core.engine.client import EngineClient

        self.client = EngineClient()
        self.timeout_s = timeout_s

    def close(self) -> None:
        self.client.close()

    def run(self, path: Path) -> tuple[str, str]:
        from core.engine.client import WorkerDied
        from core.engine.protocol import ErrorEvent, GenerationRequest
        from core.engine.session import EngineConfig

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
    from core.defaults import default_model_path
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
