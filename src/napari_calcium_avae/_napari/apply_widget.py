"""Dock widget: encode, denoise, cluster and embed the chosen recordings.

Clustering is joint over all chosen layers, as ``pipeline.apply`` does for the CLI, so
cluster labels mean the same thing in every recording. The method is HDBSCAN unless
DBSCAN is chosen (``analysis.clustering.METHODS``). HDBSCAN's view is each cluster's ROIs
by membership probability, with the cluster's stability. DBSCAN's eps is the knee of the
k-distance curve unless set by hand; the curve is drawn with the eps in use, and clicking
on it sets eps there (a hand-set eps means DBSCAN). "Re-cluster" reruns the clustering on
the latents already computed, which is instant, so settings can be explored without
encoding again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from napari.qt.threading import create_worker
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ..analysis.clustering import (
    DEFAULT_METHOD,
    DEFAULT_MIN_CLUSTER_SIZE,
    DEFAULT_MIN_SAMPLES,
    METHODS,
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
from ._layers import cluster_colours, put_results, results_of, traces_of
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
        return "no model: train one (2. Train model) or load a model file"
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
    clustering: dict[str, Any],
    embedding: str,
) -> list[Results]:
    """The worker's job: the same ``pipeline.apply`` the command line runs."""
    from ..pipeline import apply

    return apply(model, traces_list, embedding=embedding, **clustering)


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


def stability_of(provenance: dict[str, Any]) -> dict[int, float]:
    """The per-cluster stabilities ``pipeline.cluster`` recorded ("0: 12.5, 1: 3.1")."""
    text = str(provenance.get("hdbscan_cluster_stability", ""))
    out: dict[int, float] = {}
    for part in text.split(","):
        label, _, value = part.partition(":")
        try:
            out[int(label)] = float(value)
        except ValueError:
            continue
    return out


def plot_memberships(
    canvas: ThemedCanvas,
    labels: np.ndarray,
    probabilities: np.ndarray,
    stability: dict[int, float],
) -> None:
    """HDBSCAN's view: each cluster's ROIs by membership probability (a strip per cluster,
    jittered sideways), the cluster's stability under its label; noise left out."""
    ax = canvas.ax
    ax.clear()
    clusters = sorted(set(labels[labels >= 0].tolist()))
    colours = cluster_colours(np.asarray(clusters, dtype=np.int64))
    jitter = np.random.default_rng(0)
    for x, label in enumerate(clusters):
        p = probabilities[labels == label]
        ax.scatter(
            x + jitter.uniform(-0.3, 0.3, len(p)),
            p,
            s=6,
            color=colours[label],
            linewidths=0,
        )
    ax.set_xticks(range(len(clusters)))
    ax.set_xticklabels(
        [f"{c}\n{stability[c]:.3g}" if c in stability else str(c) for c in clusters],
        fontsize=7,
    )
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("cluster (stability)" if stability else "cluster")
    ax.set_ylabel("membership probability")
    if not clusters:
        ax.text(0.5, 0.5, "no cluster: every ROI is noise", ha="center", transform=ax.transAxes)
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
        self.method = QComboBox()
        for name, text in METHODS.items():
            self.method.addItem(name.upper(), name)
            self.method.setItemData(self.method.count() - 1, text, Qt.ItemDataRole.ToolTipRole)
        self.method.setCurrentIndex(self.method.findData(DEFAULT_METHOD))
        self.auto_eps = QCheckBox("knee of the k-distance curve")
        self.auto_eps.setChecked(True)
        self.eps = SignificantSpinBox(1e-12, 1e6, 0.5)
        self.auto_eps.toggled.connect(self._on_auto_eps)
        self.min_samples = QSpinBox()
        self.min_samples.setRange(1, 1000)
        self.min_samples.setValue(DEFAULT_MIN_SAMPLES)
        self.min_samples.setToolTip("neighbours (the ROI included) that make a core ROI")
        self.min_cluster_size = QSpinBox()
        self.min_cluster_size.setRange(2, 100_000)
        self.min_cluster_size.setValue(DEFAULT_MIN_CLUSTER_SIZE)
        self.min_cluster_size.setToolTip("HDBSCAN: the fewest ROIs a cluster may hold")
        self.method.currentIndexChanged.connect(lambda _: self._enable_settings())
        self.embedding = QComboBox()
        self.embedding.addItems(list(EMBEDDINGS))

        eps_row = QHBoxLayout()
        eps_row.addWidget(self.auto_eps)
        eps_row.addWidget(self.eps)
        form = QFormLayout()
        form.addRow("ROI layers", self.layer_list)
        form.addRow("model", self.model_label)
        form.addRow("method", self.method)
        form.addRow("eps", eps_row)
        form.addRow("min samples", self.min_samples)
        form.addRow("min cluster size", self.min_cluster_size)
        form.addRow("2-D view", self.embedding)

        self.apply_button = QPushButton("Apply and cluster")
        self.apply_button.clicked.connect(lambda: self.run())
        self.recluster_button = QPushButton("Re-cluster")
        self.recluster_button.setToolTip("cluster again the latents already computed")
        self.recluster_button.clicked.connect(lambda: self.recluster())
        buttons = QHBoxLayout()
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.recluster_button)
        self.summary = wrapped_label()
        self.curve = ThemedCanvas(napari_viewer, height=2.2)
        self.curve.canvas.mpl_connect("button_press_event", self._on_curve_click)
        self.curve.canvas.setToolTip("DBSCAN: click on the curve to set eps by hand")
        self._enable_settings()
        self._plot_empty()

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

    def method_name(self) -> str:
        return str(self.method.currentData())

    def cluster_settings(self) -> dict[str, Any]:
        """The settings ``pipeline.cluster`` takes, each only for the method that has it."""
        dbscan = self.method_name() == "dbscan"
        return {
            "method": self.method_name(),
            "eps": self.eps_value() if dbscan else None,
            "min_samples": self.min_samples.value(),
            "min_cluster_size": None if dbscan else self.min_cluster_size.value(),
        }

    def _enable_settings(self) -> None:
        dbscan = self.method_name() == "dbscan"
        self.auto_eps.setEnabled(dbscan)
        self.eps.setEnabled(dbscan and not self.auto_eps.isChecked())
        self.min_cluster_size.setEnabled(not dbscan)
        if self._shown_method() not in (None, self.method_name()):
            self._plot_empty()

    def _on_auto_eps(self, on: bool) -> None:
        if not on:  # an eps set by hand is DBSCAN's radius
            self.method.setCurrentIndex(self.method.findData("dbscan"))
        self._enable_settings()

    def _shown_method(self) -> str | None:
        return getattr(self, "_plotted", None)

    def _plot_empty(self) -> None:
        """The empty view of the chosen method, until something is clustered."""
        empty = np.zeros(0, dtype=np.int64)
        if self.method_name() == "dbscan":
            plot_k_distances(self.curve, np.zeros((0, 2)), float("nan"), self.min_samples.value())
        else:
            plot_memberships(self.curve, empty, np.zeros(0), {})
        self._plotted = self.method_name()

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
            self.cluster_settings(),
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
        self._show_clusters(layers, results)
        self.session.results_changed.emit()

    def _show_clusters(self, layers: list[Any], results: list[Results]) -> None:
        """The clusters in one line, then each warning of the latent diagnostics; the
        method's view below (the k-distance curve, or memberships and stabilities)."""
        labels = np.concatenate([r.labels for r in results if r.labels is not None])
        facts = results[0].provenance
        method = str(facts.get("cluster_method", "dbscan"))
        n_clusters = len(set(labels[labels >= 0].tolist()))
        line = f"{n_clusters} cluster(s), {int((labels < 0).sum())} noise ROI(s) of {len(labels)}"
        if method == "dbscan":
            eps = float(facts.get("dbscan_eps", float("nan")))
            if np.isfinite(eps):
                self.eps.setValue(eps)
            how = "auto" if self.auto_eps.isChecked() else "manual"
            line += f"; DBSCAN, eps {eps:.4g} ({how})"
        else:
            line += f"; HDBSCAN, min cluster size {facts.get('hdbscan_min_cluster_size')}"
        lines = [line]
        for layer, result in zip(layers, results, strict=True):
            if result.diagnostics is not None:
                lines += [f"⚠ {layer.name}: {line}" for line in result.diagnostics.warnings]
        self.summary.setText("\n".join(lines))
        if method == "dbscan":
            latents = np.concatenate([r.latents for r in results])
            plot_k_distances(self.curve, latents, eps, int(facts.get("cluster_min_samples", 5)))
        else:
            probabilities = np.concatenate([r.probabilities for r in results])
            plot_memberships(self.curve, labels, probabilities, stability_of(facts))
        self._plotted = method

    @guarded
    def recluster(self) -> None:
        """Cluster again the latents the chosen layers already show, with the current
        settings: the pipeline's clustering step alone, so labels mean what an apply would
        give."""
        from ..pipeline import cluster

        layers = self.layer_list.layers()
        results = [results_of(layer) for layer in layers]
        cluster(results, **self.cluster_settings())
        for layer, result in zip(layers, results, strict=True):
            put_results(layer, result)
        self._show_clusters(layers, results)
        self.session.results_changed.emit()

    def _on_curve_click(self, event: Any) -> None:
        if self._shown_method() != "dbscan":
            return  # HDBSCAN's view: nothing to set by clicking
        if event.inaxes is not self.curve.ax or event.ydata is None or event.ydata <= 0:
            return
        self.auto_eps.setChecked(False)
        self.eps.setValue(float(event.ydata))
        self.recluster()
