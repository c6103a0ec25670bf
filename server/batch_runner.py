"""Runs batch jobs in the background, line by line, in the bulk lane.

Worker threads claim pending lines across active batches (oldest batch first) and store
each answer as it comes; admission keeps them below interactive traffic. A batch whose
lines are all answered is finalized: its output and error files are written and it is
``completed``. Cancelling stops its in-flight lines at their next token, keeps what was
answered, and ends ``cancelled`` with those in the output file. Stopping the runner (server
shutdown) cancels in-flight lines, which stay pending: the next runner on the same store
resumes every active batch where it was, redoing no finished line.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

from server.batch_lines import RETRY, LineExecutor, output_lines
from server.batch_store import BatchStore, Line
from server.execution import CancelFlag

log = logging.getLogger("hearth.server")


class BatchRunner:
    def __init__(self, srv: Any = None, *, store: BatchStore | None = None,
                 executor: LineExecutor | None = None, workers: int | None = None,
                 poll_s: float = 0.2) -> None:
        if srv is not None:
            store = store or srv.store
            executor = executor or LineExecutor(srv.router, srv.admission,
                                                srv.config.max_tokens_cap, srv.tokens)
            workers = workers or srv.config.batch_workers
        assert store is not None and executor is not None
        self.store, self.executor = store, executor
        self.workers = workers or 8  # admission decides how many really run at once
        self.poll_s = poll_s
        self._cond = threading.Condition()
        self._claimed: dict[tuple[str, int], CancelFlag] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    # -- lifetime ------------------------------------------------------------------------
    def start(self) -> None:
        if self._threads:
            return
        self._stopping.clear()
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel in-flight lines (they stay pending) and wait for the workers."""
        self._stopping.set()
        with self._cond:
            for flag in self._claimed.values():
                flag.set()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def cancel(self, batch_id: str) -> None:
        """Mark the batch cancelling and stop its running lines."""
        self.store.set_status(batch_id, "cancelling")
        with self._cond:
            for (bid, _), flag in self._claimed.items():
                if bid == batch_id:
                    flag.set()
            self._cond.notify_all()
        self._finalize_ready()

    @property
    def in_flight(self) -> int:
        with self._cond:
            return len(self._claimed)

    # -- workers -------------------------------------------------------------------------
    def _claim(self) -> tuple[Line, str, CancelFlag] | None:
        with self._cond:
            for batch in self.store.active():
                if batch["status"] != "in_progress":
                    continue
                skip = {n for (bid, n) in self._claimed if bid == batch["id"]}
                lines = self.store.pending(batch["id"], 1, skip)
                if lines:
                    flag = CancelFlag()
                    self._claimed[(batch["id"], lines[0].line_no)] = flag
                    return lines[0], batch["endpoint"], flag
        return None

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                claimed = self._claim()
                if claimed is None:
                    self._finalize_ready()
                    with self._cond:
                        self._cond.wait(self.poll_s)
                    continue
                line, endpoint, flag = claimed
                outcome: Any = RETRY
                try:
                    outcome = self.executor.run(endpoint, line.body, flag,
                                                functools.partial(self.store.started, line))
                    if outcome != RETRY:
                        status, body = outcome
                        self.store.finish_line(line, status, body)
                finally:
                    with self._cond:
                        self._claimed.pop((line.batch_id, line.line_no), None)
                if outcome == RETRY and not flag.is_set():
                    self._stopping.wait(1.0)  # no model yet: try again in a moment
            except Exception:  # one bad line or a full disk must not end the runner
                log.exception("server: a batch worker failed; continuing")
                self._stopping.wait(1.0)

    # -- ends ----------------------------------------------------------------------------
    def _finalize_ready(self) -> None:
        """Finish every active batch that has nothing left running or to run."""
        with self._cond:
            busy = {bid for (bid, _) in self._claimed}
            for batch in self.store.active():
                bid, status = batch["id"], batch["status"]
                if bid in busy:
                    continue
                if status == "cancelling":
                    self._write_outputs(bid)
                    self.store.set_status(bid, "cancelled")
                    log.info("server: batch %s cancelled", bid)
                elif status in ("in_progress", "finalizing") and not self.store.pending(
                        bid, 1, set()):
                    self.store.set_status(bid, "finalizing")
                    self._write_outputs(bid)
                    self.store.set_status(bid, "completed")
                    log.info("server: batch %s completed (%s)", bid, batch["request_counts"])

    def _write_outputs(self, batch_id: str) -> None:
        rows = self.store.results(batch_id)
        fields: dict[str, Any] = {}
        model = next((_model(r["response"]) for r in rows if r["status"] == "done"), None)
        if model:
            fields["model"] = model
        good, bad = output_lines(rows, True), output_lines(rows, False)
        if good:
            fields["output_file_id"] = self.store.add_file(
                good, f"{batch_id}_output.jsonl", "batch_output")["id"]
        if bad:
            fields["error_file_id"] = self.store.add_file(
                bad, f"{batch_id}_error.jsonl", "batch_output")["id"]
        batch = self.store.batch(batch_id)
        if batch is not None:
            self.store.set_status(batch_id, batch["status"], **fields)


def _model(response: str | None) -> str | None:
    import json

    try:
        return json.loads(response or "{}").get("model")
    except ValueError:
        return None
