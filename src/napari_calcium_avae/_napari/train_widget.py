"""Dock widget: train a model (the crop-feature VAE, or the paper's AVAE) on one or
several recordings, without blocking napari.

Training runs in napari's ``thread_worker`` generator: each epoch's report comes back to
the GUI thread through ``yielded``. Stop sets a ``threading.Event`` the training loop
checks between batches; the loop then ends on its own, restores the best weights and
returns a usable model, so a stopped model can be applied and saved like any other.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from napari.qt.threading import create_worker
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ..errors import CalciumAvaeError
from ..traces import Traces
from ._common import (
    RoiLayerList,
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
from ._layers import SERIES_KEY, SOURCE_KEY, TRACES_KEY, traces_of
from ._plotting import ThemedCanvas
from ._session import session_for


def training_epochs(
    model: Any, traces_list: Sequence[Traces], stop: threading.Event
) -> Iterator[dict[str, Any]]:
    """The worker's generator: one dict per epoch; returns the trained model."""
    from ..pipeline import fit_iter

    for report in fit_iter(model, traces_list, stop=stop):
        yield dataclasses.asdict(report)  # plain dicts cross the thread boundary
    return model


def progress_text(history: Sequence[dict[str, Any]], trained: bool = False) -> str:
    """The progress bar's text for the latest epoch (%v/%m are the bar's value and maximum).

    An epoch cut short by Stop or by a diverging loss reports no validation loss (NaN); the
    bar then says why it ended and shows the last loss that was measured.
    """
    last = history[-1]
    reason = last.get("stop_reason")
    measured = [h["val_loss"] for h in history if math.isfinite(h["val_loss"])]
    val = f"val {measured[-1]:.4g}" if measured else "no val loss yet"
    if reason in ("stopped", "diverged"):
        return f"{reason} · epoch %v/%m · last {val}"
    if trained:
        return f"trained · epoch %v/%m · {val}"
    return f"epoch %v/%m · train {last['train_loss']:.4g} · {val}"


def plot_losses(canvas: ThemedCanvas, history: Sequence[dict[str, Any]]) -> None:
    """Training and validation loss per epoch, best epoch marked."""
    ax = canvas.ax
    ax.clear()
    if history:
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h["train_loss"] for h in history], label="train", color="#4c9be8")
        ax.plot(epochs, [h["val_loss"] for h in history], label="validation", color="#f5a623")
        best = history[-1].get("best_epoch")
        if best is not None:
            ax.axvline(best, color=canvas.colours["text"], lw=0.8, ls=":", label="best")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (per trace)")
    canvas.restyle()


class TrainWidget(StoppableRun, QWidget):
    """The model, its hyperparameters, device and seed; Train becomes Stop while
    training runs. Choosing a model shows its own settings at its own defaults."""

    run_label = "Train"

    def __init__(self, napari_viewer: Any) -> None:
        from ..model import AVAE, DEFAULT_MODEL, MODELS, CropFeatureVAE
        from ..model.architectures import ARCHITECTURES, TimingPath
        from ..model.device import available_devices
        from ..spikes.inference import AR_ORDERS

        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        defaults = AVAE().get_params()
        crop = CropFeatureVAE().get_params()
        self.model_choice = QComboBox()
        self.model_choice.addItems(list(MODELS))
        self.model_choice.setToolTip(
            "crop-vae: neuron latents from timing-invariant features of random crops, "
            "traces denoised by the calcium model; avae: the paper's AVAE"
        )

        self.layer_list = RoiLayerList(napari_viewer)
        self.layer_list.itemChanged.connect(self.refresh_series)
        napari_viewer.layers.events.inserted.connect(self.refresh_series)
        self.series = QComboBox()
        # long series paths must not make the dock wider than a laptop screen's share
        self.series.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.series.setMinimumContentsLength(20)
        self.series.setToolTip("RoiResponseSeries to train on (the file's default first)")

        self.architecture = QComboBox()
        self.architecture.addItems(ARCHITECTURES)
        self.architecture.setCurrentText(str(defaults["architecture"]))
        self.hidden = spin_box(1, 4096, defaults["hidden_size"], "D1: hidden units")
        self.latent = spin_box(1, 256, defaults["latent_size"], "D2: latent dimensions")
        self.beta = _dspin(0.0, 100.0, defaults["beta"], 2, "weight of the KL term")
        self.timing = spin_box(
            0,
            16,
            defaults["timing_channels"],
            f"timing latents per {TimingPath.STRIDE} frames (0: the paper's model)",
        )
        self.learning_rate = _dspin(1e-6, 1.0, defaults["learning_rate"], 5, "Adam step")
        self.batch_size = spin_box(1, 65536, defaults["batch_size"], "traces per step")
        self.max_epochs = spin_box(1, 100000, defaults["max_epochs"], "upper bound")
        self.patience = spin_box(1, 1000, defaults["patience"], "early stopping")
        self.device = QComboBox()
        for device, label in available_devices().items():
            self.device.addItem(label, device)
        self.seed = spin_box(0, 2**31 - 1, defaults["random_state"] or 0, "same seed, same run")
        self.crop_s = _dspin(0.0, 36000.0, 0.0, 1, "crop length (s); auto: see docs/model.md")
        self.crop_s.setSpecialValueText("auto")  # 0 shows as, and means, "auto"
        self.n_crops = spin_box(2, 1024, crop["n_crops"], "crops per neuron")
        self.ar_order = QComboBox()
        self.ar_order.addItems([str(p) for p in AR_ORDERS])
        self.ar_order.setToolTip("the calcium model's AR order for the denoised traces")
        # the settings each model has, by estimator parameter (shared ones in both)
        self.fields: dict[str, Any] = {
            "architecture": self.architecture,
            "hidden_size": self.hidden,
            "latent_size": self.latent,
            "beta": self.beta,
            "timing_channels": self.timing,
            "crop_s": self.crop_s,
            "n_crops": self.n_crops,
            "ar_order": self.ar_order,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "max_epochs": self.max_epochs,
            "patience": self.patience,
            "random_state": self.seed,
        }

        form = QFormLayout()
        self.form = form
        form.addRow("ROI layers", self.layer_list)
        form.addRow("series", self.series)
        form.addRow("model", self.model_choice)
        form.addRow("architecture", self.architecture)
        form.addRow("hidden size", self.hidden)
        form.addRow("latent size", self.latent)
        form.addRow("β", self.beta)
        form.addRow("timing channels", self.timing)
        form.addRow("crop length (s)", self.crop_s)
        form.addRow("crops per neuron", self.n_crops)
        form.addRow("AR order", self.ar_order)
        form.addRow("learning rate", self.learning_rate)
        form.addRow("batch size", self.batch_size)
        form.addRow("max epochs", self.max_epochs)
        form.addRow("patience", self.patience)
        form.addRow("device", self.device)
        form.addRow("seed", self.seed)

        self.make_run_button()
        self.progress = idle_progress_bar("not trained")
        self.losses = ThemedCanvas(napari_viewer, height=2.2)
        plot_losses(self.losses, [])
        self.status = wrapped_label()
        save = QPushButton("Save model…")
        save.clicked.connect(lambda: self.save_model())
        load = QPushButton("Load model…")
        load.clicked.connect(lambda: self.load_model())
        files = QHBoxLayout()
        files.addWidget(save)
        files.addWidget(load)

        layout = scrolling_layout(self)
        tab_on_short_screens(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.losses)
        layout.addWidget(self.status)
        layout.addLayout(files)
        layout.addStretch()
        self.session.model_changed.connect(self._show_model)
        self.model_choice.currentTextChanged.connect(self.choose_model)
        self.model_choice.setCurrentText(DEFAULT_MODEL)
        self.choose_model(DEFAULT_MODEL)
        self.refresh_series()

    def choose_model(self, name: str) -> None:
        """Show the chosen model's settings, each at that model's default."""
        from ..model import MODELS

        defaults = MODELS[name]().get_params()
        for param, field in self.fields.items():
            has = param in defaults
            field.setVisible(has)
            label = self.form.labelForField(field)
            if label is not None:
                label.setVisible(has)
            if not has:
                continue
            value = defaults[param]
            if isinstance(field, QComboBox):
                field.setCurrentText(str(value))
            elif value == "auto":
                field.setValue(field.minimum())  # the special value, shown as "auto"
            elif isinstance(field, QSpinBox):
                field.setValue(int(value or 0))
            else:
                field.setValue(float(value))

    # series -----------------------------------------------------------------
    @guarded
    def refresh_series(self, *_: Any) -> None:
        """Offer the series of the first chosen file, the one it was opened with first."""
        from ..nwb import list_series

        self.series.clear()
        try:
            layer = self.layer_list.layers()[0]
        except CalciumAvaeError:
            return
        current = layer.metadata.get(SERIES_KEY)
        source = layer.metadata.get(SOURCE_KEY)
        infos = list_series(source) if source else []
        infos = sorted(infos, key=lambda info: info.path != current)
        for info in infos:
            self.series.addItem(f"{info.path} ({info.n_rois} ROIs × {info.n_frames})", info.path)

    def _traces_for(self, layer: Any) -> Traces:
        """The layer's traces in the chosen series; switching series updates the layer."""
        from ..nwb import read_traces

        traces = traces_of(layer)
        wanted = self.series.currentData()
        if not wanted or wanted == layer.metadata.get(SERIES_KEY):
            return traces
        other = read_traces(layer.metadata[SOURCE_KEY], series=wanted)
        if other.n_rois != traces.n_rois:
            raise CalciumAvaeError(
                f"series {wanted} has {other.n_rois} ROIs, layer '{layer.name}' shows "
                f"{traces.n_rois}: open the file again to use that series"
            )
        layer.metadata[TRACES_KEY] = other
        layer.metadata[SERIES_KEY] = wanted
        return other

    # training ---------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """The chosen model's settings as shown (estimator parameter names)."""
        from ..model import MODELS

        known = MODELS[self.model_choice.currentText()]().get_params()
        out: dict[str, Any] = {}
        for param, field in self.fields.items():
            if param not in known:
                continue
            if isinstance(field, QComboBox):
                text = field.currentText()
                out[param] = int(text) if param == "ar_order" else text
            elif field.specialValueText() and field.value() == field.minimum():
                out[param] = "auto"
            else:
                out[param] = field.value()
        out["device"] = self.device.currentData()
        return out

    @guarded
    def start(self) -> None:
        """Train a new model on the chosen layers in a background thread."""
        from ..model import MODELS
        from ..pipeline import training_matrix

        traces_list = [self._traces_for(layer) for layer in self.layer_list.layers()]
        training_matrix(traces_list)  # fail here, in one line, before a thread starts
        model = MODELS[self.model_choice.currentText()](**self.params())
        self.stop_event = threading.Event()
        self.session.history = []
        plot_losses(self.losses, [])
        self.progress.setRange(0, model.max_epochs)
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self.worker = create_worker(
            training_epochs,
            model,
            traces_list,
            self.stop_event,
            _start_thread=True,
            _connect={
                "yielded": self._on_epoch,
                "returned": self._on_trained,
                "errored": report_error,
                "warned": report_warning,
                "finished": self.run_finished,
            },
        )
        self.run_started()
        self.status.setText(f"training on {len(traces_list)} recording(s)…")

    def _on_epoch(self, report: dict[str, Any]) -> None:
        self.session.history.append(report)
        self.progress.setRange(0, int(report["n_epochs"]))
        self.progress.setValue(int(report["epoch"]))
        self.progress.setFormat(progress_text(self.session.history))
        plot_losses(self.losses, self.session.history)
        self.session.epoch_done.emit(report)

    def _on_trained(self, model: Any) -> None:
        self.session.set_model(model)
        last = self.session.history[-1] if self.session.history else {}
        if self.stop_event is not None and self.stop_event.is_set():
            how = "stopped"
        elif last.get("stop_reason"):
            how = "stopped: " + str(last["stop_reason"]).replace("_", " ")
        elif last and last["epoch"] < last["n_epochs"]:
            how = "stopped early"
        else:
            how = "done"
        self.status.setText(
            f"{how}; best epoch {model.best_epoch_} of {len(self.session.history)}, "
            f"on {getattr(model, 'device_', model.device)}"
        )

    def _show_model(self) -> None:
        plot_losses(self.losses, self.session.history)
        if self.session.history:
            last = self.session.history[-1]
            self.progress.setRange(0, int(last["n_epochs"]))
            self.progress.setValue(int(last["epoch"]))
            self.progress.setFormat(progress_text(self.session.history, trained=True))

    # model files ------------------------------------------------------------
    @guarded
    def save_model(self, path: str | Path | None = None) -> None:
        if self.session.model is None:
            raise CalciumAvaeError("no model to save: train or load one first")
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save model", "", "model (*.pt)")
            if not path:
                return
        self.session.model.save(path, overwrite=True)  # the save dialog asked already
        self.status.setText(f"model saved to {path}")

    @guarded
    def load_model(self, path: str | Path | None = None) -> None:
        from ..model import load_model

        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load model", "", "model (*.pt)")
            if not path:
                return
        self.session.set_model(load_model(path))
        self.status.setText(f"model loaded from {Path(path).name}")


def _dspin(low: float, high: float, value: float, decimals: int, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setDecimals(decimals)
    box.setRange(low, high)
    box.setSingleStep(10 ** (-decimals + 1) if decimals > 2 else 0.1)
    box.setValue(float(value))
    box.setToolTip(tip)
    return box
