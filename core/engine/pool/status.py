"""What the pool tells its front ends: every runnable model with its state, what is resident
(memory each, requests in flight and waiting), the waiting requests in order, and the
workers' pids for telemetry. Read under the pool's lock, returned as plain data."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import psutil

from core.engine.pool.catalog import Catalog, id_from_file
from core.engine.pool.keys import PoolKey, key_of
from core.engine.pool.slots import ModelStatus, Slot, Ticket, Waiting

if TYPE_CHECKING:
    from core.engine.config import EngineConfig

_STATES = {"loading": "loading", "ready": "loaded", "draining": "loaded",
           "retired": "unloading", "unloading": "unloading"}


def _rss(pid: int | None) -> int | None:
    if not pid:
        return None
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None


class PoolStatus:
    """Read-only views of an :class:`EnginePool`'s state (mixed into it)."""

    _cond: threading.Condition
    _slots: dict[PoolKey, Slot]
    _queue: list[Ticket]
    catalog: Catalog
    _ids: dict[str, str]  # path -> id from the last catalog scan

    def _id_of(self, path: str) -> str:
        return getattr(self, "_ids", {}).get(path) or id_from_file(path)

    def _row(self, row: ModelStatus, slot: Slot) -> None:
        """Fill ``row`` with ``slot``'s state (the busiest slot of a file wins)."""
        row.state = _STATES[slot.state]
        row.in_flight += slot.active
        row.n_ctx, row.n_seq_max = slot.config.n_ctx, slot.config.n_seq_max
        row.host_bytes += slot.cost.host_bytes
        row.vram_bytes += slot.cost.vram_bytes
        row.worker_pid = slot.worker.worker_pid
        row.rss_bytes = _rss(row.worker_pid)
        row.expires_in_s = slot.expires_in
        row.turn_left_s = max(0.0, slot.turn_until - time.monotonic())
        row.placement = slot.info.placement if slot.info is not None else ""

    def resident(self) -> list[ModelStatus]:
        """The models with a worker now (loading, loaded, unloading): no library scan."""
        with self._cond:
            slots = list(self._slots.values())
            waiting = [t.key.path for t in self._queue]
        rows: dict[str, ModelStatus] = {}
        for slot in slots:
            path = slot.key.path
            row = rows.setdefault(path, ModelStatus(
                id=self._id_of(path), name=slot.name, path=path, source="",
                size_bytes=slot.info.size_bytes if slot.info else 0, quant=None,
                waiting=waiting.count(path)))
            self._row(row, slot)
        return list(rows.values())

    def models(self) -> list[ModelStatus]:
        """Every runnable model (the catalog: library and Hearth's models folder) and any
        other file the pool has loaded, each with its state."""
        catalog = self.catalog.models()
        self._ids = {str(m.path.resolve()): m.id for m in catalog}
        resident = {r.path: r for r in self.resident()}
        out = []
        for model in catalog:
            entry = model.entry
            path = str(entry.path.resolve())
            row = resident.pop(path, None) or ModelStatus(id=model.id, name=entry.name,
                                                          path=path, source="",
                                                          size_bytes=0, quant=None)
            row.id, row.name, row.source = model.id, entry.name, entry.source
            row.size_bytes, row.quant = entry.size, entry.quant
            with self._cond:
                row.waiting = sum(1 for t in self._queue if t.key.path == path)
            out.append(row)
        return out + list(resident.values())

    def waiting(self) -> list[Waiting]:
        """The requests waiting for a model, in order (position 1 goes next)."""
        with self._cond:
            return [Waiting(i, t.key.file_name, t.reason)
                    for i, t in enumerate(self._queue, 1)]

    def in_flight_for(self, config: EngineConfig) -> int:
        with self._cond:
            slot = self._slots.get(key_of(config))
            return slot.active if slot is not None else 0

    def worker_pids(self) -> dict[int, str]:
        """pid -> model file name, for every running worker (telemetry watches them)."""
        with self._cond:
            slots = list(self._slots.values())
        return {pid: s.name for s in slots if (pid := s.worker.worker_pid)}
