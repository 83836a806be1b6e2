"""Dock widget: generate a population recording from a fitted generator (issue 17).

A thin layer over ``generate.PopulationGenerator``: the generator comes from a file
(``calcium-avae generate --fit`` writes one) or is fitted here on a ROI layer; the
generated traces open as a new ROI layer, and Save writes them with their ground truth
through ``generate.write_generated``. Fitting and generating run in a thread worker; the
progress of generating crosses to the GUI thread through a Qt signal, and Stop ends the
run at its next block of neurons (a fit in progress finishes and is discarded).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from napari.layers import Layer
from napari.qt.threading import create_worker
from napari.utils.notifications import show_warning
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
from ._common import (
    StepRelay,
    StoppableRun,
    confirm_replace,
    guarded,
    idle_progress_bar,
    report_error,
    report_warning,
    scrolling_layout,
    spin_box,
    tab_on_short_screens,
    wrapped_label,
)
from ._layers import is_ours, traces_layer_data, traces_of
from ._placement import right_edge, side_by_side

FROM_FILE = "generator file"
"""The source choice that loads a generator (.npz) instead of fitting one on a layer."""
GENERATED_KEY = "calcium_avae_generated"
"""Layer metadata: the GeneratedRecording behind a generated layer (what Save writes)."""


class _Stopped(Exception):
    """Raised inside the worker when Stop was pressed."""


def generate_job(
    generator: Any,
    fit_on: Any,
    options: dict[str, Any],
    progress: Any,
    stop: threading.Event,
) -> tuple[Any, Any]:
    """The worker's job: fit ``generator`` on ``fit_on`` (a Traces) when given, then
    generate; returns (generator, recording), or None when stopped."""
    if fit_on is not None:
        progress(0, 1, "fitting the generator (spike inference, then the calcium HMM)…")
        generator.fit(fit_on)
    if stop.is_set():
        raise _Stopped

    def step(done: int, total: int, text: str) -> None:
        if stop.is_set():
            raise _Stopped
        progress(done, total, f"generating: {text}")

    try:
        recording = generator.generate(**options, progress=step)
    except _Stopped:
        return generator, None
    return generator, recording


class GenerateWidget(StoppableRun, QWidget):
    """Generator (file or fit on a layer), neurons, duration, seed; Generate; Save."""

    run_label = "Generate"

    def __init__(self, napari_viewer: Any) -> None:
        from ..generate import PopulationGenerator
        from ..model.device import available_devices

        super().__init__()
        self.viewer = napari_viewer
        self.generator: Any = None
        """The generator in use: loaded from ``file`` or fitted here on a layer."""
        self._generator_from: tuple[str, Any] | None = None
        self.recording: Any = None
        self.recording_layer: Any = None
        defaults = PopulationGenerator().get_params()

        self.source = QComboBox()
        self.source.setToolTip(
            "where the generator comes from: a file written by calcium-avae generate --fit, "
            "or a fit on an open recording (its neurons and their co-activation)"
        )
        self.source.currentIndexChanged.connect(lambda *_: self._show_source())
        self.file = QLineEdit()
        self.file.setPlaceholderText("generator .npz (calcium-avae generate --fit RECORDING)")
        browse = QPushButton("…")
        browse.setMaximumWidth(30)
        browse.clicked.connect(lambda: self._browse())
        file_row = QHBoxLayout()
        file_row.addWidget(self.file)
        file_row.addWidget(browse)
        self.states = spin_box(
            1, 20, defaults["n_states"], "population states of the calcium HMM fitted on the layer"
        )
        self.device = QComboBox()
        for device, label in available_devices().items():
            self.device.addItem(label, device)
        self.neurons = spin_box(0, 10**6, 0, "neurons to generate (0: as many as fitted)")
        self.duration = QDoubleSpinBox()
        self.duration.setRange(0.0, 86400.0)
        self.duration.setDecimals(1)
        self.duration.setSuffix(" s")
        self.duration.setToolTip("length of the recording (0: as long as the fitted one)")
        self.seed = spin_box(0, 2**31 - 1, 0, "seed of the generated recording")
        self.independent = QCheckBox("independent neurons")
        self.independent.setToolTip(
            "each neuron its own state sequence: the no-coupling baseline, whose pairwise "
            "correlations are lost"
        )

        form = QFormLayout()
        form.addRow("generator", self.source)
        form.addRow("file", file_row)
        form.addRow("states (fit)", self.states)
        form.addRow("device (fit)", self.device)
        form.addRow("neurons", self.neurons)
        form.addRow("duration", self.duration)
        form.addRow("seed", self.seed)
        form.addRow("", self.independent)
        self.make_run_button()
        self.save_button = QPushButton("Save NWB…")
        self.save_button.setToolTip(
            "the generated recording as an NWB session with its ground truth (spikes in "
            "Units, the noise-free trace, the states), as calcium-avae generate writes it"
        )
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(lambda: self.save_as())
        self.progress = idle_progress_bar("nothing generated yet")
        self.status = wrapped_label()
        self.relay = StepRelay()
        self.relay.step.connect(self._on_step)

        layout = scrolling_layout(self)
        tab_on_short_screens(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.save_button)
        layout.addWidget(self.status)
        layout.addStretch()

        napari_viewer.layers.events.inserted.connect(lambda *_: self.refresh_layers())
        napari_viewer.layers.events.removed.connect(lambda *_: self.refresh_layers())
        self.refresh_layers()

    # the generator ------------------------------------------------------------------
    def refresh_layers(self) -> None:
        """The source choices: the file, then every ROI layer to fit on."""
        current = self.source.currentData()
        self.source.blockSignals(True)
        self.source.clear()
        self.source.addItem(FROM_FILE, None)
        for layer in self.viewer.layers:
            if is_ours(layer) and layer is not self.recording_layer:
                self.source.addItem(f"fit on '{layer.name}'", layer)
        index = next(
            (i for i in range(self.source.count()) if self.source.itemData(i) is current), 0
        )
        self.source.setCurrentIndex(index)
        self.source.blockSignals(False)
        self._show_source()

    def _show_source(self) -> None:
        fitting = self.source.currentData() is not None
        self.file.setEnabled(not fitting)
        self.states.setEnabled(fitting)
        self.device.setEnabled(fitting)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Generator", self.file.text(), "Generator (*.npz)"
        )
        if path:
            self.file.setText(path)

    def choose_generator(self) -> tuple[Any, Any]:
        """The generator to use and the recording to fit it on (None: already fitted).

        A generator fitted here is kept for the next runs on the same layer and states."""
        from ..generate import PopulationGenerator

        layer = self.source.currentData()
        if layer is None:
            text = self.file.text().strip()
            if not text:
                raise CalciumAvaeError(
                    "choose a generator file (calcium-avae generate --fit RECORDING writes "
                    "one), or fit one on an open recording"
                )
            key = ("file", str(Path(text).expanduser().resolve()))
            if self._generator_from != key:
                self.generator = PopulationGenerator.load(Path(text).expanduser())
                self._generator_from = key
            return self.generator, None
        if layer not in self.viewer.layers:
            raise CalciumAvaeError("that recording is no longer open; choose another source")
        key = ("layer", (id(layer), self.states.value(), self.device.currentData()))
        if self._generator_from == key:
            return self.generator, None
        fresh = PopulationGenerator(n_states=self.states.value(), device=self.device.currentData())
        return fresh, traces_of(layer)

    def options(self) -> dict[str, Any]:
        """What ``generate`` gets from the form (0 means: as fitted)."""
        return {
            "n_neurons": self.neurons.value() or None,
            "duration_s": self.duration.value() or None,
            "seed": self.seed.value(),
            "independent": self.independent.isChecked(),
        }

    # running --------------------------------------------------------------------------
    @guarded
    def start(self) -> None:
        generator, fit_on = self.choose_generator()
        fit_key = None
        if fit_on is not None:
            layer = self.source.currentData()
            fit_key = ("layer", (id(layer), self.states.value(), self.device.currentData()))
        self.stop_event = threading.Event()
        self.progress.setRange(0, 0 if fit_on is not None else 1)
        self.progress.setValue(0)
        self.progress.setFormat("fitting…" if fit_on is not None else "starting…")
        self.worker = create_worker(
            generate_job,
            generator,
            fit_on,
            self.options(),
            self.relay.step.emit,
            self.stop_event,
            _start_thread=True,
            _connect={
                "returned": lambda out: self._on_done(fit_key, *out),
                "errored": self._on_error,
                "warned": report_warning,
                "finished": self._on_finished,
            },
        )
        self.run_started()
        self.status.setText("fitting the generator…" if fit_on is not None else "generating…")

    def _on_step(self, done: int, total: int, text: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(text)

    def _on_done(self, fit_key: Any, generator: Any, recording: Any) -> None:
        if fit_key is not None:  # fitted: kept, even when the generating was stopped
            self.generator, self._generator_from = generator, fit_key
        if recording is None or self.stop_event.is_set():
            return
        self.recording = recording
        traces = recording.to_traces()
        name = self._layer_name(generator)
        layers = side_by_side([traces_layer_data(traces, name)], start=right_edge(self.viewer))
        for data, attributes, kind in layers:
            layer = Layer.create(data, attributes, kind)
            if kind == "labels":
                layer.metadata[GENERATED_KEY] = recording
                self.recording_layer = layer
            self.viewer.add_layer(layer)
        self.save_button.setEnabled(True)
        self.progress.setFormat("done")
        self.status.setText(
            f"generated {recording.n_neurons} neurons x {recording.n_frames} frames at "
            f"{recording.frame_rate:g} Hz as '{name}'"
        )

    def _layer_name(self, generator: Any) -> str:
        fitted = generator.source_.get("file") if isinstance(generator.source_, dict) else None
        base = f"generated from {Path(fitted).stem}" if fitted else "generated"
        names = {layer.name for layer in self.viewer.layers}
        name, k = base, 1
        while name in names:
            k += 1
            name = f"{base} ({k})"
        return name

    def _on_error(self, error: BaseException) -> None:
        self.status.setText("")
        self.progress.setFormat("failed")
        report_error(error)

    def _on_finished(self) -> None:
        if self.stop_event is not None and self.stop_event.is_set():
            self.status.setText("stopped: nothing generated")
            self.progress.setFormat("stopped")
            show_warning("generating stopped: nothing generated")
        self.run_finished()

    # saving -----------------------------------------------------------------------------
    def save_as(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save generated recording", "", "NWB (*.nwb)")
        if path:
            self.save(Path(path))

    @guarded
    def save(self, path: Path) -> Path | None:
        """Write the last generated recording (spikes, noise-free traces, states) to ``path``."""
        from ..generate import write_generated

        if self.recording is None:
            raise CalciumAvaeError("nothing generated yet: press Generate first")
        if path.suffix != ".nwb":
            raise CalciumAvaeError(f"the generated recording is an NWB file: end {path} in .nwb")
        overwrite = path.exists()
        if overwrite and not confirm_replace(self, "Replace file?", f"{path} exists. Replace it?"):
            self.status.setText(f"not saved: kept {path}")
            return None
        written = write_generated(
            path, self.recording, overwrite=overwrite, spike_seed=self.recording.facts.get("seed")
        )
        self.status.setText(f"saved {written}")
        return written
