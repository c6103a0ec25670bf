"""A background thread that samples power and the worker's resources at 5–10 Hz.

It runs in the process that shows the figures (the GUI's or the CLI's), not in the worker,
so a busy or crashed worker cannot stop the readings, and it watches the worker by pid
(:meth:`TelemetrySampler.set_pid` when the worker restarts). With an engine pool there are
several workers: :meth:`set_pids` watches them all from the same thread, so the machine's
power is read once per tick and shared out by each worker's CPU (``Sample.procs``), never
counted once per worker as one sampler per worker would. Timestamps are
``time.perf_counter_ns`` — CLOCK_MONOTONIC, the clock :class:`RequestMetrics` and
``TextEvent.t_ns`` use in every process — so a request's window can be cut out of the ring
buffer directly. A sample is one small frozen dataclass; sources keep their handles open
between samples, so a tick is a handful of syscalls.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from core.telemetry.power.base import Label, PowerSetup
from core.telemetry.power.detect import detect_power
from core.telemetry.power.nvml import GpuStats

_NO_GPU = GpuStats(None, None, None, None)


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """One watched process at one instant (``cpu_percent``: 100 = one core busy)."""

    pid: int
    cpu_percent: float | None
    rss_bytes: int | None


@dataclass(frozen=True, slots=True)
class Sample:
    """One instant. Power in watts (None where no source had a reading), ``cpu_percent``
    of the worker as ``top`` shows it (100 = one core busy), sizes in bytes."""

    t_ns: int
    power_w: float | None
    label: Label
    cpu_w: float | None
    gpu_w: float | None
    cpu_percent: float | None
    rss_bytes: int | None
    gpu_util_pct: float | None = None
    vram_used_bytes: int | None = None
    vram_total_bytes: int | None = None
    gpu_temp_c: float | None = None
    procs: tuple[ProcessSample, ...] = ()  # every watched pid (set_pids), the main one first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TelemetrySampler:
    """Samples ``power`` (default: :func:`detect_power`) and the process ``pid`` (default:
    this one, for an in-process engine) ``hz`` times a second into a ring buffer holding
    ``history_s`` seconds. Use as a context manager, or ``start()`` / ``close()``.
    All public methods are thread-safe."""

    def __init__(self, hz: float = 8.0, *, power: PowerSetup | None = None,
                 pid: int | None = None, history_s: float = 600.0) -> None:
        if not 0 < hz <= 50:
            raise ValueError("hz must be in (0, 50]")
        self.period_s = 1.0 / hz
        self.power = power if power is not None else detect_power()
        self._owns_power = power is None
        self._samples: deque[Sample] = deque(maxlen=max(2, int(hz * history_s)))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: psutil.Process | None = None
        self._others: dict[int, psutil.Process] = {}
        self.pid: int | None = None
        self.set_pid(os.getpid() if pid is None else pid)

    # -- control ---------------------------------------------------------------------
    def set_pid(self, pid: int | None) -> None:
        """Watch another process (the worker after a restart); None stops watching."""
        with self._lock:
            self.pid = pid
            self._proc = None
            if pid is not None:
                try:
                    self._proc = psutil.Process(pid)
                    self._proc.cpu_percent(None)  # primes: the next call measures from here
                except psutil.Error:
                    self._proc = None

    def set_pids(self, pids: list[int] | set[int] | dict[int, str]) -> None:
        """Also watch these processes (an engine pool's workers); the main pid stays.
        Each sample then carries every one's CPU and RSS in ``procs``, and the power
        estimate counts their CPU together."""
        with self._lock:
            keep = {pid: proc for pid, proc in self._others.items() if pid in pids}
            for pid in pids:
                if pid in keep or pid == self.pid:
                    continue
                try:
                    keep[pid] = psutil.Process(pid)
                    keep[pid].cpu_percent(None)
                except psutil.Error:
                    continue
            self._others = keep

    def start(self) -> TelemetrySampler:
        """Start the thread (idempotent); takes a first sample at once."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self.sample_now()
            self._thread = threading.Thread(target=self._run, name="hearth-telemetry",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and wait for it (at most one period)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5 * self.period_s + 1.0)
            self._thread = None

    def close(self) -> None:
        """Stop, and release the power sources this sampler opened itself."""
        self.stop()
        if self._owns_power:
            self.power.close()

    def __enter__(self) -> TelemetrySampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        period_ns = int(self.period_s * 1e9)
        due = time.perf_counter_ns() + period_ns
        while not self._stop.wait(max(0, due - time.perf_counter_ns()) / 1e9):
            self.sample_now()
            due += period_ns
            now = time.perf_counter_ns()
            if due < now:  # fell behind (suspend, overloaded machine): don't burst
                due = now + period_ns

    # -- sampling --------------------------------------------------------------------
    def sample_now(self) -> Sample:
        """Take one sample at once (also called by the thread) and keep it."""
        with self._lock:
            t_ns = time.perf_counter_ns()
            cpu_pct, rss = self._process_stats()
            procs = self._other_stats()
            total_cpu = cpu_pct
            if procs:
                total_cpu = (cpu_pct or 0.0) + sum(p.cpu_percent or 0.0 for p in procs)
            if self.pid is not None:
                procs = (ProcessSample(self.pid, cpu_pct, rss), *procs)
            cpu_w = gpu_w = None
            for src in self.power.sources:
                watts = src.read(t_ns, total_cpu)
                if watts is None:
                    continue
                if src.kind == "gpu":
                    gpu_w = (gpu_w or 0.0) + watts
                else:
                    cpu_w = (cpu_w or 0.0) + watts
            power = None if cpu_w is None and gpu_w is None else (cpu_w or 0.0) + (gpu_w or 0.0)
            gpu = self.power.gpu
            stats = gpu.stats() if gpu is not None else _NO_GPU
            sample = Sample(t_ns, power, self.power.label, cpu_w, gpu_w, cpu_pct, rss,
                            stats.util_pct, stats.vram_used_bytes, stats.vram_total_bytes,
                            stats.temp_c, procs)
            self._samples.append(sample)
            return sample

    def _process_stats(self) -> tuple[float | None, int | None]:
        proc = self._proc
        if proc is None:
            return None, None
        try:
            with proc.oneshot():
                return proc.cpu_percent(None), proc.memory_info().rss
        except psutil.Error:  # the worker exited; a restart will set_pid again
            self._proc = None
            return None, None

    def _other_stats(self) -> tuple[ProcessSample, ...]:
        out = []
        for pid, proc in list(self._others.items()):
            if pid == self.pid:
                continue
            try:
                with proc.oneshot():
                    out.append(ProcessSample(pid, proc.cpu_percent(None),
                                             proc.memory_info().rss))
            except psutil.Error:  # that worker was unloaded
                del self._others[pid]
        return tuple(out)

    def process_energy_j(self, pid: int, since_ns: int | None = None) -> float | None:
        """Joules attributable to ``pid`` since ``since_ns``: each interval's energy (the
        trapezoid of the sampled power) times the process's share of the watched
        processes' CPU over it. None without power readings or samples of that pid."""
        samples = self.samples(since_ns)
        joules, seen = 0.0, False
        for a, b in itertools.pairwise(samples):
            if a.power_w is None or b.power_w is None:
                continue
            mine = next((p.cpu_percent for p in b.procs if p.pid == pid), None)
            total = sum(p.cpu_percent or 0.0 for p in b.procs)
            if mine is None:
                continue
            seen = True
            if total > 0:
                joules += (a.power_w + b.power_w) / 2 * (b.t_ns - a.t_ns) / 1e9 * mine / total
        return joules if seen else None

    # -- reading ---------------------------------------------------------------------
    def latest(self) -> Sample | None:
        with self._lock:
            return self._samples[-1] if self._samples else None

    def samples(self, since_ns: int | None = None) -> list[Sample]:
        """The kept samples (oldest first), optionally only those at or after ``since_ns``."""
        with self._lock:
            items = list(self._samples)
        if since_ns is None:
            return items
        return [s for s in items if s.t_ns >= since_ns]

    def window(self, t0_ns: int, t1_ns: int) -> list[Sample]:
        """The samples needed to integrate over ``[t0_ns, t1_ns]``: those inside plus the
        nearest one on each side (for interpolation at the edges). If the window ends after
        the newest sample, one is taken now, so a request that just finished is covered."""
        latest = self.latest()
        if latest is None or latest.t_ns < t1_ns:
            self.sample_now()
        with self._lock:
            items = list(self._samples)
        first = next((i for i, s in enumerate(items) if s.t_ns >= t0_ns), len(items))
        last = next((i for i in range(len(items) - 1, -1, -1) if items[i].t_ns <= t1_ns), -1)
        return items[max(0, first - 1): min(len(items), last + 2)]

    def describe(self) -> dict[str, Any]:
        """What the panel shows next to the figures: label, formula, skipped sources."""
        return {"hz": round(1.0 / self.period_s, 3), "pid": self.pid, **self.power.to_dict()}
