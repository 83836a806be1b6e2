"""Dock widget: encode, denoise, cluster (DBSCAN) and embed the chosen recordings.

Clustering is joint over all chosen layers, as ``pipeline.apply`` does for the CLI, so
cluster labels mean the same thing in every recording. eps is the knee of the k-distance
curve unless set by hand; the curve is drawn with the eps in use, and clicking on it
sets eps there. "Re-cluster" reruns DBSCAN on the latents already computed, which is
instant, so eps can be explored without encoding again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from napari.qt.threading import create_worker
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ..analysis.embedding import TSNE_MAX_POINTS
from ..errors import CalciumAvaeError
from ..results import Results
from ..traces import Traces
from ._common import (
    RoiLayerList,
    SignificantSpinBox,
    guarded,
    report_error,
    report_warning,
    scrolling_layout,
    tab_on_short_screens,
    wrapped_label,
)
from ._layers import put_results, results_of, traces_of
from ._plotting import ThemedCanvas
from ._session import session_for

EMBEDDINGS = {
    f"auto (t-SNE up to {TSNE_MAX_POINTS:,} ROIs)": "auto",
    "t-SNE": "tsne",
    "PCA": "pca",
}


def describe_model(model: Any) -> str:
    """One line on the model in use, for the widget's header."""
    if model is None:
        return "no model: train one (Train AVAE) or load a model file"
    p = model.get_params()
    frames = getattr(model, "n_features_in_", None)
    length = f", {frames} frames" if frames else ""
    return (
        f"{type(model).__name__} {p.get('architecture', '')} "
        f"(D1={p.get('hidden_size')}, D2={p.get('latent_size')}, β={p.get('beta')}){length}"
    )


def apply_model(
    model: Any,
    traces_list: Sequence[Traces],
    eps: float | str,
    min_samples: int,
    embedding: str,
) -> list[Results]:
    """The worker's job: the same ``pipeline.apply`` the command line runs."""
    from ..pipeline import apply

    return apply(model, traces_list, eps=eps, min_samples=min_samples, embedding=embedding)


def plot_k_distances(canvas: ThemedCanvas, latents: np.ndarray, eps: float, k: int) -> None:
    """Sorted distance to the k-th neighbour, with the eps in use as a horizontal line."""
    from ..analysis.clustering import k_distances

    ax = canvas.ax
    ax.clear()
    points = latents[np.isfinite(latents).all(axis=1)]
    if len(points):
        curve = k_distances(points, k)
        ax.plot(np.arange(len(curve)), curve, color="#4c9be8", lw=1.5)
        if np.isfinite(eps):
            ax.axhline(eps, color="#f5a623", lw=1.0, ls="--", label=f"eps = {eps:.3g}")
            ax.legend(fontsize=8, loc="upper left")
    ax.set_xlabel("ROIs, sorted")
    ax.set_ylabel(f"k-distance (k = {k})")
    canvas.restyle()


class ApplyWidget(QWidget):
    """Apply the session's model; latents, clusters and embedding go to the layers."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.worker: Any = None
        self.layer_list = RoiLayerList(napari_viewer, tick_results=True)
        self.model_label = wrapped_label()
        self.auto_eps = QCheckBox("knee of the k-distance curve")
        self.auto_eps.setChecked(True)
        self.eps = SignificantSpinBox(1e-12, 1e6, 0.5)
        self.eps.setEnabled(False)
        self.auto_eps.toggled.connect(lambda on: self.eps.setEnabled(not on))
        self.min_samples = QSpinBox()
        self.min_samples.setRange(1, 1000)
        self.min_samples.setValue(5)
        self.min_samples.setToolTip("DBSCAN: neighbours (self included) that make a core ROI")
        self.embedding = QComboBox()
        self.embedding.addItems(list(EMBEDDINGS))

        eps_row = QHBoxLayout()
        eps_row.addWidget(self.auto_eps)
        eps_row.addWidget(self.eps)
        form = QFormLayout()
        form.addRow("ROI layers", self.layer_list)
        form.addRow("model", self.model_label)
        form.addRow("eps", eps_row)
        form.addRow("min samples", self.min_samples)
        form.addRow("2-D view", self.embedding)

        self.apply_button = QPushButton("Apply and cluster")
        self.apply_button.clicked.connect(lambda: self.run())
        self.recluster_button = QPushButton("Re-cluster")
        self.recluster_button.setToolTip("DBSCAN again on the latents already computed")
        self.recluster_button.clicked.connect(lambda: self.recluster())
        buttons = QHBoxLayout()
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.recluster_button)
        self.summary = wrapped_label()
        self.curve = ThemedCanvas(napari_viewer, height=2.2)
        self.curve.canvas.mpl_connect("button_press_event", self._on_curve_click)
        self.curve.canvas.setToolTip("click to set eps by hand")
        plot_k_distances(self.curve, np.zeros((0, 2)), float("nan"), 5)

        layout = scrolling_layout(self)
        tab_on_short_screens(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.summary)
        layout.addWidget(self.curve)
        layout.addStretch()
        self.session.model_changed.connect(self._show_model)
        self._show_model()

    def _show_model(self) -> None:
        self.model_label.setText(describe_model(self.session.model))

    def eps_value(self) -> float | str:
        return "auto" if self.auto_eps.isChecked() else float(self.eps.value())

    @guarded
    def run(self) -> None:
        """Encode, reconstruct, cluster and embed in a background thread."""
        if self.session.model is None:
            raise CalciumAvaeError(describe_model(None))
        layers = self.layer_list.layers()
        traces_list = [traces_of(layer) for layer in layers]
        self.apply_button.setEnabled(False)
        self.summary.setText("applying…")
        self.worker = create_worker(
            apply_model,
            self.session.model,
            traces_list,
            self.eps_value(),
            self.min_samples.value(),
            EMBEDDINGS[self.embedding.currentText()],
            _start_thread=True,
            _connect={
                "returned": lambda results: self._on_results(layers, results),
                "errored": self._on_error,
                "warned": report_warning,
                "finished": self._on_finished,
            },
        )

    def _on_error(self, error: BaseException) -> None:
        self.summary.setText("")
        report_error(error)

    def _on_finished(self) -> None:
        self.worker = None
        self.apply_button.setEnabled(True)

    def _on_results(self, layers: list[Any], results: list[Results]) -> None:
        for layer, result in zip(layers, results, strict=True):
            put_results(layer, result)
        eps = float(results[0].provenance.get("dbscan_eps", float("nan")))
        self._show_clusters(layers, results, eps)
        self.session.results_changed.emit()

    def _show_clusters(self, layers: list[Any], results: list[Results], eps: float) -> None:
        """The clusters in one line, then each warning of the latent diagnostics."""
        labels = np.concatenate([r.labels for r in results if r.labels is not None])
        if np.isfinite(eps):
            self.eps.setValue(eps)
        n_clusters = len(set(labels[labels >= 0].tolist()))
        how = "auto" if self.auto_eps.isChecked() else "manual"
        lines = [
            f"{n_clusters} cluster(s), {int((labels < 0).sum())} noise ROI(s) of "
            f"{len(labels)}; eps {eps:.4g} ({how})"
        ]
        for layer, result in zip(layers, results, strict=True):
            if result.diagnostics is not None:
                lines += [f"⚠ {layer.name}: {line}" for line in result.diagnostics.warnings]
        self.summary.setText("\n".join(lines))
        latents = np.concatenate([r.latents for r in results])
        plot_k_distances(self.curve, latents, eps, self.min_samples.value())

    @guarded
    def recluster(self) -> None:
        """DBSCAN again on the latents the chosen layers already show, with the current eps:
        the pipeline's clustering step alone, so labels mean what an apply would give."""
        from ..pipeline import cluster

        layers = self.layer_list.layers()
        results = [results_of(layer) for layer in layers]
        clustering = cluster(results, eps=self.eps_value(), min_samples=self.min_samples.value())
        for layer, result in zip(layers, results, strict=True):
            put_results(layer, result)
        self._show_clusters(layers, results, clustering.eps)
        self.session.results_changed.emit()

    def _on_curve_click(self, event: Any) -> None:
        if event.inaxes is not self.curve.ax or event.ydata is None or event.ydata <= 0:
            return
        self.auto_eps.setChecked(False)
        self.eps.setValue(float(event.ydata))
        self.recluster()
