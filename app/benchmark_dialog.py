"""Tools › Benchmark: measure models here (speed, energy, memory, quality), and make mixed-
precision quants to measure.

The work runs in a child process, ``hearth-cli bench --json --events`` (and ``hearth-cli
quantize`` for the mixed-precision maker): llama.cpp and the numpy scoring never share the
GUI's process or its GIL, a crash in them cannot take the app down, and Cancel is an
interrupt the CLI handles like Ctrl-C (files already measured stay stored). Progress comes
back as JSON lines on the child's stderr; results are read from the same store the picker
and the planner use (:class:`MeasurementStore`).

Signals: ``finished(list)`` with the stored :class:`Measurement` rows of the run's files.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path

from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.planning.measured import Measurement, MeasurementStore

COLUMNS = ["File", "Quant", "Prefill tok/s", "Decode tok/s", "TTFT ms", "J/token",
           "Peak MiB", "Perplexity", "KL vs ref.", "Same top"]
VARIANTS = ("Q8_0", "F16", "F32")
CANCEL_GRACE_MS = 15_000  # a benchmark child that ignores SIGINT is killed after this
log = logging.getLogger("hearth.app")
QtChecked, QtUnchecked = Qt.CheckState.Checked, Qt.CheckState.Unchecked


def cli_command(*args: str) -> tuple[str, list[str]]:
    """The program and arguments that run ``hearth-cli`` with this interpreter."""
    return sys.executable, ["-m", "cli", *args]


def _fmt(x: float | None, spec: str, suffix: str = "") -> str:
    return "—" if x is None else format(x, spec) + suffix


def row_cells(r: Measurement) -> list[str]:
    """A measurement as the table's cells (energy marked "est." when estimated)."""
    est = " est." if r.energy_label == "estimated" else ""
    peak = r.peak_rss_bytes / 2**20 if r.peak_rss_bytes else None
    return [r.file, r.quant, _fmt(r.prefill_tok_s, ".1f"), _fmt(r.decode_tok_s, ".1f"),
            _fmt(r.ttft_ms, ".0f"), _fmt(r.j_per_token, ".3f", est), _fmt(peak, ".0f"),
            _fmt(r.perplexity, ".3f"), _fmt(r.kl_mean, ".5f"), _fmt(r.same_top_pct, ".1f", " %")]


class BenchmarkDialog(QDialog):
    """Pick files (the library's, or any GGUF), optional variants and options; Start runs
    the benchmark in a child process, Cancel interrupts it."""

    finished = Signal(list)
    quantized = Signal(str)

    def __init__(self, files: list[Path], parent: QWidget | None = None,
                 store: MeasurementStore | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Benchmark")
        self.resize(1000, 640)
        self.store = store or MeasurementStore()
        self.process: QProcess | None = None
        self._stdout = b""
        self._stderr_tail = ""
        self._cancelled = False
        self._mixed_out: Path | None = None
        self._files: list[Path] = []
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.file_list = QListWidget()
        for f in files:
            self._add_file(Path(f), checked=not self._files)
        left = QVBoxLayout()
        left.addWidget(QLabel("Model files to measure"))
        left.addWidget(self.file_list, 1)
        add = QPushButton("Add file…")
        add.clicked.connect(self._browse)
        left.addWidget(add)
        top.addLayout(left, 2)
        top.addWidget(self._options(), 1)
        layout.addLayout(top)
        layout.addWidget(self._mixed_box())
        row = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        row.addWidget(self.start_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.progress, 1)
        layout.addLayout(row)
        self.status = QLabel("Choose files and press Start. Measured figures are kept and "
                             "shown in the model picker.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        layout.addWidget(self.notes)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        layout.addWidget(self.table, 1)
        self.show_rows([r for f in files if (r := self.store.latest(Path(f))) is not None])

    # -- layout --------------------------------------------------------------------------
    def _options(self) -> QGroupBox:
        box = QGroupBox("Options")
        form = QFormLayout(box)
        self.variant_boxes = {}
        variants = QHBoxLayout()
        for v in VARIANTS:
            self.variant_boxes[v] = QCheckBox(v)
            variants.addWidget(self.variant_boxes[v])
        form.addRow("Make variants of the first file", variants)
        self.reps = QSpinBox()
        self.reps.setRange(1, 20)
        self.reps.setValue(3)
        form.addRow("Repetitions", self.reps)
        self.speed = QCheckBox("Speed, energy and memory")
        self.speed.setChecked(True)
        form.addRow(self.speed)
        self.quality = QCheckBox("Quality: perplexity and KL divergence")
        self.quality.setChecked(True)
        form.addRow(self.quality)
        self.quality_tokens = QSpinBox()
        self.quality_tokens.setRange(0, 1 << 16)
        self.quality_tokens.setSpecialValueText("the whole text")
        form.addRow("Text tokens scored", self.quality_tokens)
        return box

    def _mixed_box(self) -> QGroupBox:
        box = QGroupBox("Make a mixed-precision file from the first file")
        row = QHBoxLayout(box)
        self.mix_type = QComboBox()
        self.mix_type.addItems(["Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "Q4_0"])
        self.mix_tensors = QLineEdit(r"blk\.(1[2-7])\.=Q8_0")
        self.mix_tensors.setToolTip("REGEX=TYPE pairs separated by spaces; the first pattern "
                                    "found in a tensor's name sets its type")
        self.mix_output = QComboBox()
        self.mix_output.addItems(["(mix default)", "F32", "F16", "Q8_0", "Q6_K"])
        make = QPushButton("Make and add")
        make.clicked.connect(self.make_mixed)
        for w in (QLabel("type"), self.mix_type, QLabel("tensors"), self.mix_tensors,
                  QLabel("output"), self.mix_output, make):
            row.addWidget(w, 3 if w is self.mix_tensors else 0)
        return box

    def _add_file(self, path: Path, checked: bool = True) -> None:
        if path in self._files:
            return
        self._files.append(path)
        item = QListWidgetItem(path.name)
        item.setToolTip(str(path))
        item.setCheckState(QtChecked if checked else QtUnchecked)
        self.file_list.addItem(item)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a GGUF model", "", "GGUF (*.gguf)")
        if path:
            self._add_file(Path(path))

    def selected_files(self) -> list[Path]:
        return [self._files[i] for i in range(self.file_list.count())
                if self.file_list.item(i).checkState() == QtChecked]

    # -- running -------------------------------------------------------------------------
    def bench_args(self) -> list[str]:
        args = ["bench", "--json", "--events", "--reps", str(self.reps.value())]
        for f in self.selected_files():
            args += ["--model", str(f)]
        variants = [v for v, box in self.variant_boxes.items() if box.isChecked()]
        if variants:
            args += ["--variants", ",".join(variants)]
        if not self.speed.isChecked():
            args.append("--no-speed")
        if not self.quality.isChecked():
            args.append("--no-quality")
        if self.quality_tokens.value():
            args += ["--quality-tokens", str(self.quality_tokens.value())]
        return args

    def start(self, extra: list[str] | None = None) -> None:
        if not self.selected_files():
            self.status.setText("Tick at least one model file.")
            return
        self._run(self.bench_args() + list(extra or []), self._bench_done)
        self.status.setText("Starting the benchmark…")

    def make_mixed(self) -> None:
        files = self.selected_files() or self._files
        if not files:
            self.status.setText("Add a model file first.")
            return
        src = files[0]
        qtype = self.mix_type.currentText()
        out = src.with_name(f"{src.stem}.mixed-{qtype.lower()}.gguf")
        args = ["quantize", str(src), str(out), "--type", qtype, "--allow-requantize"]
        for spec in self.mix_tensors.text().split():
            args += ["--tensor-type", spec]
        if self.mix_output.currentIndex() > 0:
            args += ["--output-type", self.mix_output.currentText()]
        self._mixed_out = out
        self._run(args, self._mixed_done)
        self.status.setText(f"Making {out.name}…")

    def _run(self, args: list[str], on_done) -> None:
        if self.process is not None:
            return
        program, argv = cli_command(*args)
        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        proc.setProcessEnvironment(env)
        proc.readyReadStandardOutput.connect(
            lambda: setattr(self, "_stdout", self._stdout + bytes(proc.readAllStandardOutput())))
        proc.readyReadStandardError.connect(lambda: self._on_stderr(proc))
        proc.finished.connect(lambda code, _status: on_done(code))
        self._stdout, self._stderr_tail, self._cancelled = b"", "", False
        self.progress.setRange(0, 0)  # busy until the first progress event
        self.process = proc
        self._set_running(True)
        proc.start(program, argv)

    def _on_stderr(self, proc: QProcess) -> None:
        text = bytes(proc.readAllStandardError()).decode("utf-8", "replace")
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                if line.strip():
                    self._stderr_tail = line.strip()
                continue
            if isinstance(event, dict) and event.get("event") == "progress":
                self.progress.setRange(0, max(1, int(event["total"])))
                self.progress.setValue(int(event["done"]))
                self.status.setText(str(event["message"]))

    def cancel(self) -> None:
        """Interrupt the child like Ctrl-C: it closes its engine and keeps what it stored."""
        proc = self.process
        if proc is None:
            return
        pid = int(proc.processId())
        self._cancelled = True
        if pid and os.name == "posix":
            os.kill(pid, signal.SIGINT)
            # A child that cannot take the signal must still go: killed after a grace
            # period (what it stored is kept; only the unfinished row is lost).
            QTimer.singleShot(CANCEL_GRACE_MS, lambda: self._kill_if(proc))
        else:
            proc.kill()
        self.status.setText("Cancelling…")

    def _kill_if(self, proc: QProcess) -> None:
        if self.process is proc and proc.state() != QProcess.ProcessState.NotRunning:
            log.warning("the benchmark did not stop on SIGINT within %d ms: killed",
                        CANCEL_GRACE_MS)
            proc.kill()

    def _set_running(self, on: bool) -> None:
        self.start_button.setEnabled(not on)
        self.cancel_button.setEnabled(on)

    def _bench_done(self, code: int) -> None:
        self.process = None
        self._set_running(False)
        rows = [r for f in self.selected_files() if (r := self.store.latest(f)) is not None]
        if code == 0:
            try:
                data = json.loads(self._stdout.decode("utf-8", "replace"))
                for path in data["setup"]["files"]:
                    self._add_file(Path(path))
                rows = [r for f in map(Path, data["setup"]["files"])
                        if (r := self.store.latest(f)) is not None]
            except (ValueError, KeyError):
                pass
            self.status.setText("Done. These figures are stored and shown in the model picker.")
        elif code == 130 or self._cancelled:
            self.status.setText("Cancelled; files measured before the cancel are kept.")
        else:
            self.status.setText(f"The benchmark failed: {self._stderr_tail or f'exit {code}'}")
        self.show_rows(rows)
        self.finished.emit(rows)

    def _mixed_done(self, code: int) -> None:
        self.process = None
        self._set_running(False)
        if code == 0 and self._mixed_out is not None:
            self._add_file(self._mixed_out)
            self.status.setText(f"Made {self._mixed_out.name}; it is ticked for the next run.")
            self.quantized.emit(str(self._mixed_out))
        else:
            self.status.setText(f"Quantizing failed: {self._stderr_tail or f'exit {code}'}")

    def show_rows(self, rows: list[Measurement]) -> None:
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            for c, text in enumerate(row_cells(r)):
                item = QTableWidgetItem(text)
                item.setToolTip(r.path if c == 0 else text)
                self.table.setItem(i, c, item)
        self.table.resizeColumnsToContents()
        notes = sorted({r.reference_note for r in rows if r.reference_note}
                       | {f"KL and 'same top' are against {r.reference}."
                          for r in rows if r.reference})
        if any(r.energy_label == "estimated" for r in rows):
            notes.append("est.: no power meter here; energy comes from the power model.")
        self.notes.setText("\n".join(notes))

    def done(self, result: int) -> None:
        if self.process is not None:
            self.cancel()
            self.process.waitForFinished(10_000)
        super().done(result)
