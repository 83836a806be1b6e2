"""Dock widget: infer spikes (``pipeline.deconvolve``) on the chosen recordings.

The work runs in a napari thread worker. ``pipeline.deconvolve`` fits each recording in
blocks of ROIs (``chunk_rois="auto"``) and calls back after each block; the callback
emits a Qt signal, so the progress bar (here and in napari's activity panel) is drawn on
the GUI thread. Stop sets a ``threading.Event`` the pipeline checks between blocks: the
recording in progress keeps the ROIs whose block finished (the others' rates and kinetics
are NaN, and a notice says how many were done); recordings not begun keep what they
showed before. Rates and kinetics join the layer's other results (``put_results`` with
``merge``), so the Plots dock draws them and Save writes them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from napari.qt.threading import create_worker
from napari.utils import progress
from napari.utils.notifications import show_warning
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QWidget,
)

from ..errors import CalciumAvaeError
from ..results import Results
from ..traces import Traces
from ._common import (
    RoiLayerList,
    SignificantSpinBox,
    StoppableRun,
    guarded,
    idle_progress_bar,
    report_error,
    report_warning,
    scrolling_layout,
    spin_box,
    tab_on_short_screens,
    wrapped_label,
)
from ._layers import put_results, traces_of
from ._session import session_for

LABELS = {
    1: "AR(1): instant rise, exponential decay",
    2: "AR(2): a rise time as well",
    "auto": "auto (from the baseline)",
    "dff": "dF/F",
    "raw": "raw fluorescence",
    "likelihood": "refined on the trace (the default)",
    "autocovariance": "autocovariance alone",
}
"""How the dock names SpikeInference's choices; the choices themselves are
``spikes.inference.AR_ORDERS``, ``INPUT_KINDS`` and ``DECAY_ESTIMATES``."""


def rate_text(traces: Traces) -> str:
    """The frame rate spike inference will use for a recording, and where it comes from."""
    from ..pipeline import frame_rate

    rate = frame_rate(traces)
    return f"{rate:.4g} Hz ({'file rate' if traces.rate else 'median timestamp interval'})"


def infer_spikes(
    estimator: Any,
    traces_list: Sequence[Traces],
    stop: threading.Event,
    progressed: Callable[[int, int], None],
) -> list[Results]:
    """The worker's job: the pipeline's spike inference, in blocks of ROIs, stoppable."""
    from ..pipeline import deconvolve

    return deconvolve(estimator, traces_list, chunk_rois="auto", progress=progressed, stop=stop)


def stopped_summary(names: Sequence[str], results: Sequence[Results], n_chosen: int) -> str:
    """One line on what a stopped run kept, for the notice and the dock."""
    if not results:
        return "stopped before any ROI was done: nothing changed"
    parts = []
    for name, result in zip(names, results, strict=False):
        done = int(result.provenance.get("stopped_after_rois", result.n_rois))
        parts.append(f"{done} of {result.n_rois} ROIs in '{name}'")
    text = "stopped: spikes inferred for " + ", ".join(parts)
    if any("stopped_after_rois" in r.provenance for r in results):
        text += " (the other ROIs' rates and kinetics are NaN)"
    if len(results) < n_chosen:
        text += f"; {n_chosen - len(results)} recording(s) not begun keep their previous results"
    return text


class DeconvolveWidget(StoppableRun, QWidget):
    """Recordings, their frame rates and SpikeInference's options; Run becomes Stop."""

    progressed = Signal(int, int)
    """ROIs done and ROIs in all, emitted from the worker thread after each block."""
    run_label = "Infer spikes"

    def __init__(self, napari_viewer: Any) -> None:
        from ..model.device import available_devices
        from ..spikes import SpikeInference
        from ..spikes.inference import AR_ORDERS, DECAY_ESTIMATES, INPUT_KINDS

        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self._bar: Any = None
        defaults = SpikeInference().get_params()

        self.layer_list = RoiLayerList(napari_viewer, tick_results=True)
        self.layer_list.itemChanged.connect(lambda *_: self.show_rates())
        napari_viewer.layers.events.inserted.connect(lambda *_: self.show_rates())
        napari_viewer.layers.events.removed.connect(lambda *_: self.show_rates())
        self.rates = wrapped_label()
        self.ar_order = _combo(AR_ORDERS, defaults["ar_order"])
        self.input_kind = _combo(INPUT_KINDS, defaults["input_kind"])
        self.decay_estimate = _combo(DECAY_ESTIMATES, defaults["decay_estimate"])
        self.sparsity = SignificantSpinBox(0.0, 1e6, float(defaults["sparsity"]))
        self.sparsity.setToolTip(
            "a spike is kept where its match to the kernel exceeds this many noise SDs: "
            "larger, fewer spikes"
        )
        self.n_baseline = spin_box(
            1, 64, defaults["n_baseline"], "baseline terms: 1 = constant; more follow drift"
        )
        self.detrend = SignificantSpinBox(0.0, 1e6, float(defaults["detrend_s"] or 0.0))
        self.detrend.setSpecialValueText("off")
        self.detrend.setToolTip(
            "seconds: a running low-percentile baseline taken off each trace first, so "
            "that slow drift is not read as calcium; 0 = off"
        )
        self.saturation = QCheckBox("indicator saturates in bursts")
        self.saturation.setChecked(bool(defaults["saturation"]))
        self.max_iter = spin_box(
            1,
            100000,
            defaults["max_iter"],
            "most FISTA iterations per solve (it stops earlier once the spikes settle)",
        )
        self.device = QComboBox()
        for device, label in available_devices().items():
            self.device.addItem(label, device)
        self.device.setCurrentIndex(max(0, self.device.findData(defaults["device"])))
        self.seed = spin_box(0, 2**31 - 1, defaults["random_state"] or 0, "same seed, same fit")

        form = QFormLayout()
        form.addRow("ROI layers", self.layer_list)
        form.addRow("frame rate", self.rates)
        form.addRow("kinetics", self.ar_order)
        form.addRow("input", self.input_kind)
        form.addRow("decay from", self.decay_estimate)
        form.addRow("sparsity", self.sparsity)
        form.addRow("baseline terms", self.n_baseline)
        form.addRow("running baseline (s)", self.detrend)
        form.addRow("saturation", self.saturation)
        form.addRow("max iterations", self.max_iter)
        form.addRow("device", self.device)
        form.addRow("seed", self.seed)

        self.make_run_button()
        self.progress = idle_progress_bar("no spikes inferred yet")
        self.status = wrapped_label()
        layout = scrolling_layout(self)
        tab_on_short_screens(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch()
        self.progressed.connect(self._on_progress)
        self.show_rates()

    def show_rates(self) -> None:
        """Each chosen recording's frame rate, or why it has none (Run would refuse it)."""
        try:
            layers = self.layer_list.layers()
        except CalciumAvaeError as error:
            self.rates.setText(str(error))
            return
        lines = []
        for layer in layers:
            try:
                lines.append(f"{layer.name}: {rate_text(traces_of(layer))}")
            except CalciumAvaeError as error:
                lines.append(f"{layer.name}: {error}")
        self.rates.setText("\n".join(lines))

    def params(self) -> dict[str, Any]:
        """The estimator's parameters as the form sets them (the rest keep their defaults)."""
        return {
            "ar_order": self.ar_order.currentData(),
            "input_kind": self.input_kind.currentData(),
            "decay_estimate": self.decay_estimate.currentData(),
            "sparsity": float(self.sparsity.value()),
            "n_baseline": self.n_baseline.value(),
            "detrend_s": float(self.detrend.value()) or None,
            "saturation": self.saturation.isChecked(),
            "max_iter": self.max_iter.value(),
            "device": self.device.currentData(),
            "random_state": self.seed.value(),
        }

    @guarded
    def start(self) -> None:
        """Infer spikes on the chosen layers in a background thread."""
        from ..pipeline import frame_rate
        from ..spikes import SpikeInference

        layers = self.layer_list.layers()
        traces_list = [traces_of(layer) for layer in layers]
        for layer, traces in zip(layers, traces_list, strict=True):
            try:
                frame_rate(traces)  # a one-line notice here, before a thread starts
            except CalciumAvaeError as error:
                raise CalciumAvaeError(f"layer '{layer.name}': {error}") from None
        estimator = SpikeInference(**self.params())
        total = sum(traces.n_rois for traces in traces_list)
        self.stop_event = threading.Event()
        self.progress.setRange(0, total)
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self._bar = progress(total=total, desc="Inferring spikes")
        names = [layer.name for layer in layers]
        self.worker = create_worker(
            infer_spikes,
            estimator,
            traces_list,
            self.stop_event,
            self._emit_progress,
            _start_thread=True,
            _connect={
                "returned": lambda results: self._on_results(layers, names, results),
                "errored": self._on_error,
                "warned": report_warning,
                "finished": self._on_finished,
            },
        )
        self.run_started()
        self.status.setText(f"inferring spikes in {len(layers)} recording(s)…")

    def _emit_progress(self, done: int, total: int) -> None:
        """Called in the worker thread; the signal carries it to the GUI thread."""
        try:
            self.progressed.emit(done, total)
        except RuntimeError:  # the dock was closed meanwhile: the run goes on unseen
            pass

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat("%v of %m ROIs")
        if self._bar is not None:
            self._bar.update(done - self._bar.n)

    def _on_results(self, layers: list[Any], names: list[str], results: list[Results]) -> None:
        for layer, result in zip(layers, results, strict=False):  # shorter when stopped
            put_results(layer, result, merge=True)
        if results:
            self.session.results_changed.emit()
        stopped = self.stop_event is not None and self.stop_event.is_set()
        partial = len(results) < len(layers) or any(
            "stopped_after_rois" in r.provenance for r in results
        )
        if stopped and partial:
            text = stopped_summary(names, results, len(layers))
            show_warning(text)
        else:
            rois = sum(r.n_rois for r in results)
            text = f"done: spikes inferred for {rois:,} ROIs in {len(results)} recording(s)"
        self.progress.setFormat(text.split(":")[0] + " · %v of %m ROIs")
        self.status.setText(text)

    def _on_error(self, error: BaseException) -> None:
        self.status.setText("")
        self.progress.setFormat("failed")
        report_error(error)

    def _on_finished(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.run_finished()


def _combo(values: Sequence[Any], default: Any) -> QComboBox:
    box = QComboBox()
    for value in values:
        box.addItem(LABELS.get(value, str(value)), value)
    box.setCurrentIndex(max(0, box.findData(default)))
    return box
