"""Dock widget: simulate cultures of known neuron types into NWB files, then open them.

The simulation runs in a background thread; the simulator's progress callback is
relayed to the GUI thread through a Qt signal (signals cross threads safely).
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from napari.layers import Layer
from napari.qt.threading import create_worker
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from ..errors import CalciumAvaeError
from ..simulate.dynamics import NEURON_TYPES
from ..simulate.indicators import INDICATORS
from ..simulate.settings import SimulationSettings, option_help, option_metadata
from ._common import (
    StepRelay,
    confirm_replace,
    guarded,
    idle_progress_bar,
    notices,
    report_error,
    report_warning,
    scrolling_layout,
    spin_box,
    tab_on_short_screens,
    wrapped_label,
)
from ._placement import right_edge, side_by_side
from .reader import layers_from_file

DEFAULTS = SimulationSettings(cultures_per_type=1, frame_rate=30.0)
"""The paper's dataset, one culture per type at 30 Hz: seconds to simulate, not minutes."""
OPEN_CHOICES = {"all sessions": None, "first session": 1, "none": 0}
"""How many of the written sessions to open: a label and a slice end."""


def parse_levels(text: str) -> tuple[float, ...]:
    """'1, 2.5' -> (1.0, 2.5); the noise levels a user typed (SimulationSettings checks them)."""
    try:
        return tuple(float(x) for x in text.replace(";", ",").split(",") if x.strip())
    except ValueError:
        raise CalciumAvaeError(
            f"noise levels must be numbers separated by commas, got {text!r}"
        ) from None


def _float_box(low: float, high: float, value: float, name: str) -> QDoubleSpinBox:
    """A spin box for a SimulationSettings field, with its unit and help."""
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setSuffix(" " + option_metadata(name)["unit"])
    box.setToolTip(option_help(name))
    return box


class SimulateWidget(QWidget):
    """Main simulator options; writes one NWB session per culture into a folder."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker: Any = None
        d = DEFAULTS
        self.types = {name: QCheckBox(name) for name in NEURON_TYPES}
        type_row = QHBoxLayout()
        for name, box in self.types.items():
            box.setChecked(name in d.types)
            box.setToolTip(option_help("types"))
            type_row.addWidget(box)
        self.cultures = spin_box(1, 100, d.cultures_per_type, option_help("cultures_per_type"))
        self.type_mix = QLineEdit(d.type_mix)
        self.type_mix.setPlaceholderText("one type per culture, e.g. RS=0.4,IB=0.3,CH=0.3")
        self.type_mix.setToolTip(option_help("type_mix"))
        self.neurons = spin_box(
            1, 100000, d.neurons_per_culture or 0, option_help("neurons_per_culture")
        )
        self.duration = _float_box(1.0, 3600.0, d.duration_s, "duration_s")
        self.frame_rate = _float_box(1.0, 1000.0, d.frame_rate, "frame_rate")
        self.indicator = QComboBox()
        self.indicator.addItems(list(INDICATORS))
        self.indicator.setCurrentText(d.indicator)
        self.indicator.setToolTip(option_help("indicator"))
        self.indicator_mix = QLineEdit(d.indicator_mix)
        self.indicator_mix.setPlaceholderText("one indicator, e.g. GCaMP6s,GCaMP6f,OGB-1")
        self.indicator_mix.setToolTip(option_help("indicator_mix"))
        self.noise = QLineEdit(", ".join(f"{s:g}" for s in d.noise_levels))
        self.noise.setToolTip(option_help("noise_levels") + ", separated by commas")
        self.seed = spin_box(0, 2**31 - 1, d.seed, option_help("seed"))
        self.folder = QLineEdit(str(Path(tempfile.gettempdir()) / "calcium-avae-simulated"))
        browse = QPushButton("…")
        browse.setMaximumWidth(30)
        browse.clicked.connect(lambda: self._browse())
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder)
        folder_row.addWidget(browse)
        self.open_choice = QComboBox()
        self.open_choice.addItems(OPEN_CHOICES)

        form = QFormLayout()
        form.addRow("neuron types", type_row)
        form.addRow("cultures per type", self.cultures)
        form.addRow("type mix", self.type_mix)
        form.addRow("neurons per culture", self.neurons)
        form.addRow("duration", self.duration)
        form.addRow("frame rate", self.frame_rate)
        form.addRow("indicator", self.indicator)
        form.addRow("indicator mix", self.indicator_mix)
        form.addRow("noise σ", self.noise)
        form.addRow("seed", self.seed)
        form.addRow("output folder", folder_row)
        form.addRow("then open", self.open_choice)

        self.run_button = QPushButton("Simulate")
        self.run_button.clicked.connect(lambda: self.run())
        self.progress = idle_progress_bar("")
        self.status = wrapped_label()
        self.relay = StepRelay()
        self.relay.step.connect(self._on_step)

        layout = scrolling_layout(self)
        tab_on_short_screens(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def options(self) -> tuple[Path, SimulationSettings]:
        """The output folder and the settings the form describes (checked)."""
        types = tuple(name for name, box in self.types.items() if box.isChecked())
        type_mix = self.type_mix.text().strip()
        if not types and not type_mix:
            raise CalciumAvaeError("tick at least one neuron type to simulate, or give a type mix")
        folder = self.folder.text().strip()
        if not folder:
            raise CalciumAvaeError("choose an output folder for the simulated sessions")
        settings = replace(
            DEFAULTS,
            types=types or DEFAULTS.types,  # unused with a type mix
            type_mix=type_mix,
            cultures_per_type=self.cultures.value(),
            neurons_per_culture=self.neurons.value(),
            duration_s=self.duration.value(),
            frame_rate=self.frame_rate.value(),
            indicator=self.indicator.currentText(),
            indicator_mix=self.indicator_mix.text().strip(),
            noise_levels=parse_levels(self.noise.text()),
            seed=self.seed.value(),
        )
        return Path(folder).expanduser(), settings

    @guarded
    def run(self) -> None:
        from ..simulate import simulate_dataset
        from ..simulate.dataset import session_paths

        folder, settings = self.options()
        existing = [p for p in session_paths(folder, settings) if p.exists()]
        question = f"{len(existing)} of these sessions exist in {folder}. Replace them?"
        if existing and not confirm_replace(self, "Replace sessions?", question):
            self.status.setText(f"not simulated: kept the sessions in {folder}")
            return
        self.progress.setRange(0, settings.n_cultures)
        self.progress.setValue(0)
        self.progress.setFormat("simulating… %v/%m")
        self.run_button.setEnabled(False)
        self.worker = create_worker(
            simulate_dataset,
            folder,
            settings,
            progress=self.relay.step.emit,
            overwrite=bool(existing),  # the user's answer
            _start_thread=True,
            _connect={
                "returned": self._open,
                "errored": report_error,
                "warned": report_warning,
                "finished": self._on_finished,
            },
        )

    def _on_step(self, done: int, total: int, message: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.status.setText(message)

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.setEnabled(True)

    def _open(self, paths: list[Path]) -> None:
        self.progress.setValue(self.progress.maximum())
        self.progress.setFormat(f"{len(paths)} session(s) written")
        self.status.setText(f"written to {self.folder.text()}")
        chosen = paths[: OPEN_CHOICES[self.open_choice.currentText()]]
        with notices():
            for data, attributes, kind in side_by_side(
                [layers_from_file(p) for p in chosen], start=right_edge(self.viewer)
            ):
                self.viewer.add_layer(Layer.create(data, attributes, kind))
