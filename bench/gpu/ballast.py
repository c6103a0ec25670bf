"""Hold GPU memory in a separate process, so a load meets a GPU with little free — as it
does when another program (a game, a second model, ollama) holds the VRAM.

Run as ``python -m bench.gpu.ballast LEAVE_FREE_BYTES``: it takes device 0's memory with
plain ``cudaMalloc`` (never managed memory, which can hang a GPU when oversubscribed) until
only ``LEAVE_FREE_BYTES`` are free, prints one JSON line ``{"free": …, "total": …, "held":
…}``, and holds it until its stdin closes. :class:`Ballast` is the parent's side.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

CHUNK = 64 << 20
CUDART_NAMES = ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0")


def _cudart() -> Any:
    errors = []
    for name in CUDART_NAMES:
        try:
            return ctypes.CDLL(name)
        except OSError as err:
            errors.append(str(err))
    raise OSError("no CUDA runtime library to allocate with (" + "; ".join(errors[:2]) + ")")


def hold(leave_free: int) -> None:
    rt = _cudart()
    free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)

    def meminfo() -> int:
        rc = rt.cudaMemGetInfo(ctypes.byref(free), ctypes.byref(total))
        if rc != 0:
            raise SystemExit(f"cudaMemGetInfo failed (error {rc})")
        return int(free.value)

    rt.cudaSetDevice(0)
    held: list[ctypes.c_void_p] = []
    held_bytes = 0
    first = meminfo() - leave_free - 4 * CHUNK
    sizes = [first] if first > 0 else []
    while True:
        size = sizes.pop() if sizes else CHUNK
        if meminfo() - size < leave_free:
            break
        ptr = ctypes.c_void_p()
        if rt.cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(size)) != 0:
            break
        held.append(ptr)
        held_bytes += size
    print(json.dumps({"free": meminfo(), "total": int(total.value), "held": held_bytes}),
          flush=True)
    sys.stdin.read()  # until the parent closes the pipe (or dies)


class Ballast:
    """``with Ballast(leave_free) as b:`` — ``b.free`` is what the GPU has left."""

    def __init__(self, leave_free: int) -> None:
        self.leave_free = leave_free
        self.info: dict[str, int] = {}
        self._proc: subprocess.Popen[str] | None = None

    @property
    def free(self) -> int:
        return self.info.get("free", 0)

    def __enter__(self) -> Ballast:
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ,
               "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        self._proc = subprocess.Popen([sys.executable, "-m", "bench.gpu.ballast",
                                       str(self.leave_free)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            err = self._proc.stderr.read() if self._proc.stderr else ""
            self._proc.wait(timeout=30)
            raise RuntimeError(f"the VRAM ballast did not start: {err.strip()[-400:]}")
        self.info = json.loads(line)
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


if __name__ == "__main__":
    hold(int(sys.argv[1]))
