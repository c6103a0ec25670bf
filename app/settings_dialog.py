"""Preferences: threads, GPU offload, context, decoding, memory headroom, folders, offline."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.message_input import SEND_KEYS
from core.engine.sampling import PRESETS
from core.errors import ConfigError
from core.settings import Settings


def _spin(lo: int, hi: int, value: int, special: str | None = None) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setValue(value)
    if special:
        box.setSpecialValueText(special)
    return box


def _dspin(lo: float, hi: float, value: float, step: float, decimals: int = 2) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    return box


class SettingsDialog(QDialog):
    """Edits a copy of the settings; :meth:`result_settings` returns it once accepted."""

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self._settings = settings
        s = settings
        form = QFormLayout(self)
        self.threads = _spin(0, 256, s.threads, "Automatic (one per core)")
        form.addRow("CPU threads", self.threads)
        self.gpu_mode = QComboBox()
        self.gpu_mode.addItems(["Automatic (all layers that fit)", "Off (CPU only)", "Layers"])
        self.gpu_layers = _spin(1, 999, max(1, s.gpu_layers))
        self.gpu_mode.setCurrentIndex(0 if s.gpu_layers < 0 else 1 if s.gpu_layers == 0 else 2)
        self.gpu_mode.currentIndexChanged.connect(self._gpu_mode_changed)
        gpu_row = QHBoxLayout()
        gpu_row.addWidget(self.gpu_mode, 1)
        gpu_row.addWidget(self.gpu_layers)
        form.addRow("GPU offload", gpu_row)
        self.n_ctx = _spin(256, 1 << 20, s.n_ctx)
        self.n_ctx.setSingleStep(1024)
        form.addRow("Context length (tokens)", self.n_ctx)
        self.preset = QComboBox()
        self.preset.addItems(list(PRESETS))
        self.preset.setCurrentText(s.preset)
        form.addRow("Decoding preset", self.preset)
        self.temperature = _dspin(0.0, 2.0, s.temperature, 0.05)
        form.addRow("Temperature (0 = greedy)", self.temperature)
        self.top_k = _spin(1, 1000, s.top_k)
        form.addRow("Top-k", self.top_k)
        self.top_p = _dspin(0.01, 1.0, s.top_p, 0.01)
        form.addRow("Top-p", self.top_p)
        self.min_p = _dspin(0.0, 1.0, s.min_p, 0.01)
        form.addRow("Min-p", self.min_p)
        self.repeat_penalty = _dspin(0.5, 2.0, s.repeat_penalty, 0.05)
        form.addRow("Repetition penalty", self.repeat_penalty)
        self.max_tokens = _spin(1, 1 << 17, s.max_tokens)
        form.addRow("Maximum reply (tokens)", self.max_tokens)
        self.headroom = _spin(0, 90, s.memory_headroom_pct)
        self.headroom.setSuffix(" %")
        form.addRow("Memory headroom", self.headroom)
        self.models_dir = QLineEdit(s.models_dir)
        self.models_dir.setPlaceholderText("Hearth's own folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.models_dir, 1)
        folder_row.addWidget(browse)
        form.addRow("Models folder", folder_row)
        self.offline = QCheckBox("Never use the network")
        self.offline.setChecked(s.offline)
        form.addRow("Offline mode", self.offline)
        self.send_with = QComboBox()
        for key, text in SEND_KEYS.items():
            self.send_with.addItem(text, key)
        self.send_with.setCurrentIndex(max(0, self.send_with.findData(s.send_with)))
        form.addRow("Sending messages", self.send_with)
        self.price = _dspin(0.0, 10.0, s.electricity_price_kwh, 0.01, 3)
        self.price.setSuffix(" $/kWh")
        form.addRow("Electricity price", self.price)
        self.chat_profile, self.server_profile = QComboBox(), QComboBox()
        for box, current in ((self.chat_profile, s.chat_profile),
                             (self.server_profile, s.server_profile)):
            box.addItem("None (these settings)", "")
            for name, profile in s.all_profiles().items():
                box.addItem(profile.title, name)
            box.setCurrentIndex(max(0, box.findData(current)))
        form.addRow("Profile for new chats", self.chat_profile)
        form.addRow("Profile for the server", self.server_profile)
        self.error = QLabel()
        self.error.setStyleSheet("color: #c0392b;")
        form.addRow(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self._gpu_mode_changed(self.gpu_mode.currentIndex())

    def _gpu_mode_changed(self, index: int) -> None:
        self.gpu_layers.setEnabled(index == 2)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Models folder", self.models_dir.text())
        if folder:
            self.models_dir.setText(folder)

    def result_settings(self) -> Settings:
        """The edited settings (validated)."""
        mode = self.gpu_mode.currentIndex()
        gpu = -1 if mode == 0 else 0 if mode == 1 else self.gpu_layers.value()
        return replace(
            self._settings, threads=self.threads.value(), gpu_layers=gpu,
            n_ctx=self.n_ctx.value(), preset=self.preset.currentText(),
            temperature=self.temperature.value(), top_k=self.top_k.value(),
            top_p=self.top_p.value(), min_p=self.min_p.value(),
            repeat_penalty=self.repeat_penalty.value(), max_tokens=self.max_tokens.value(),
            memory_headroom_pct=self.headroom.value(), models_dir=self.models_dir.text().strip(),
            offline=self.offline.isChecked(), electricity_price_kwh=self.price.value(),
            chat_profile=self.chat_profile.currentData(),
            server_profile=self.server_profile.currentData(),
            send_with=self.send_with.currentData())

    def accept(self) -> None:
        try:
            self.result_settings().validate()
        except ConfigError as err:
            self.error.setText(str(err))
            return
        super().accept()
