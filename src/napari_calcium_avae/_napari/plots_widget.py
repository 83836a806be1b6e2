"""Dock widget: the latent space, raw vs denoised traces, per-cluster mean traces,
reference labels and the loss curves.

The scatter shows every ROI layer's 2-D embedding together (they were clustered
jointly), coloured by cluster or by any per-ROI column, e.g. the simulator's
neuron_type, excitatory, v0 or du. Clicking a point selects that ROI in its layer;
hovering over or selecting a ROI in the viewer shows its trace. A per-ROI label table
(published assemblies, cell types) can be imported to colour ROIs by it and to score the
clusters' agreement with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..analysis.diagnostics import latents_identical
from ..errors import CalciumAvaeError
from ..results import PER_ROI
from ..traces import Traces
from ._common import guarded, scrolling_layout, tab_on_short_screens, wrapped_label
from ._layers import RESULTS_KEY, cluster_colormap, cluster_colours, is_ours
from ._plotting import ThemedCanvas
from ._session import session_for
from .train_widget import plot_losses

HIDDEN_COLUMNS = ("index", "embedding_0", "embedding_1")
MAX_CATEGORIES = 20
"""A numeric column with at most this many distinct values is coloured as categories."""
UNKNOWN_UNITS = ("", "n.a.", "na", "n/a", "unknown", "a.u.", "au", "arbitrary")
MEAN_SOURCES = ("raw", "denoised")
SPIKE_COLOUR = "#4a90d9"


def trace_axis_label(traces: Traces) -> str:
    """What the trace plot's y axis shows: dF/F, or fluorescence in the series' unit.

    Many files write NWB's placeholder unit 'n.a.'; a y axis reading that tells nothing.
    """
    unit = traces.unit.strip()
    path = (traces.series_path or "").lower()
    if "df" in unit.lower() or "dfoverf" in path or "dff" in path:
        return "dF/F"
    if unit.lower() in UNKNOWN_UNITS:
        return "fluorescence (a.u.)"
    return f"fluorescence ({unit})"


def cluster_means(data: np.ndarray, labels: np.ndarray) -> dict[int, tuple[np.ndarray, ...]]:
    """Per cluster (noise left out): mean trace, its SD over ROIs, and the ROI count."""
    out = {}
    for label in np.unique(labels[labels >= 0]):
        rows = data[labels == label]
        out[int(label)] = (rows.mean(axis=0), rows.std(axis=0), np.array(len(rows)))
    return out


@dataclass
class Points:
    """The ROIs drawn in the scatter, with the layer and row each point stands for."""

    xy: np.ndarray
    layers: list[Any]
    rows: np.ndarray
    table: pd.DataFrame


def embedded_points(layers: list[Any]) -> Points:
    """All ROIs with a finite 2-D embedding, over all given layers."""
    xy, owners, rows, tables = [], [], [], []
    for layer in layers:
        f = layer.features
        if not {"embedding_0", "embedding_1"} <= set(f.columns):
            continue
        e = f[["embedding_0", "embedding_1"]].to_numpy(dtype=np.float64)
        ok = np.isfinite(e).all(axis=1)
        xy.append(e[ok])
        owners.extend([layer] * int(ok.sum()))
        rows.append(np.flatnonzero(ok))
        tables.append(f[ok].assign(layer=layer.name))
    if not xy:
        return Points(np.zeros((0, 2)), [], np.zeros(0, dtype=int), pd.DataFrame())
    table = pd.concat(tables, ignore_index=True)
    return Points(np.concatenate(xy), owners, np.concatenate(rows), table)


def empty_scatter_message(layers: list[Any]) -> str:
    """Why the scatter has no point to draw, and what to do about it.

    A model whose latents collapsed (the same vector for every ROI) gets no embedding
    (``pipeline.embed``): its layers have latents but no embedding, and the scatter says
    so rather than asking for a model that was already applied.
    """
    latents = [
        layer.features[names].to_numpy(dtype=np.float64)
        for layer in layers
        if (names := PER_ROI["latents"].flat_names(layer.features))
    ]
    if not latents:
        return "apply a model to see the latent space"
    if all(latents_identical(z) for z in latents):
        n_dims = latents[0].shape[1]
        return (
            f"The latents collapsed: all {n_dims} dimensions are the same\n"
            "for every ROI, so there is no latent space to draw.\n"
            "Train longer (a larger patience) and apply again;\n"
            "see the warning in the Apply dock."
        )
    return "no embedding was drawn for these latents:\napply the model again to draw one"


def spike_rates_of(layer: Any) -> np.ndarray | None:
    """The layer's inferred spikes (ROIs x frames), None when it has none."""
    spikes = getattr(layer.metadata.get(RESULTS_KEY), "spike_rates", None)
    traces = layer.metadata.get("calcium_avae_traces")
    if spikes is None or traces is None or spikes.shape != traces.data.shape:
        return None
    return spikes


def is_label_column(values: pd.Series) -> bool:
    """Integer labels (clusters, imported reference labels): coloured as clusters are."""
    return values.name == "cluster" or pd.api.types.is_integer_dtype(values)


def is_categorical(values: pd.Series) -> bool:
    if values.name == "cluster" or not pd.api.types.is_numeric_dtype(values):
        return True
    return pd.api.types.is_bool_dtype(values) or values.nunique() <= MAX_CATEGORIES


def unhook(layers: list[Any], callback: Any) -> None:
    for layer in layers:
        if callback in layer.mouse_move_callbacks:
            layer.mouse_move_callbacks.remove(callback)


class PlotsWidget(QWidget):
    """Latent scatter and the chosen ROI's trace; cluster means and reference labels; losses."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.points = embedded_points([])
        self.current: tuple[Any, int] | None = None
        self._colorbar: Any = None
        self._hooked: list[Any] = []
        self._picked_from: dict[Any, np.ndarray] = {}
        """Scatter artist -> indices into ``points`` of the points it draws."""

        self.colour_by = QComboBox()
        self.colour_by.currentTextChanged.connect(lambda _: self.draw_scatter())
        # a short label: a checkbox does not wrap, and its text sets the dock's least width
        self.only_selected = QCheckBox("show only the chosen ROI")
        self.only_selected.setToolTip("hide every other ROI in the viewer")
        self.only_selected.toggled.connect(self._show_only_selected)
        self.scatter = ThemedCanvas(napari_viewer, height=2.8)
        self.scatter.canvas.mpl_connect("pick_event", self._on_pick)
        self.trace = ThemedCanvas(napari_viewer, height=2.0, toolbar=True)
        self.losses = ThemedCanvas(napari_viewer, height=2.6)
        self.mean_source = QComboBox()
        self.mean_source.addItems(MEAN_SOURCES)
        self.mean_source.currentTextChanged.connect(lambda _: self.draw_means())
        self.means = ThemedCanvas(napari_viewer, height=2.6, toolbar=True)
        self.raster = ThemedCanvas(napari_viewer, height=3.2, toolbar=True)
        self.reference: tuple[Any, str] | None = None
        """(layer, column) of the imported label table."""
        import_button = QPushButton("Import labels (CSV)…")
        import_button.setToolTip("a table with a 'roi' column (ROI row) and a label column")
        import_button.clicked.connect(lambda: self.import_labels())
        self.agreement = wrapped_label("no reference labels")

        rois = QWidget()
        form = QFormLayout()
        form.addRow("colour by", self.colour_by)
        roi_layout = scrolling_layout(rois)
        roi_layout.addLayout(form)
        roi_layout.addWidget(self.scatter)
        roi_layout.addWidget(self.only_selected)
        roi_layout.addWidget(self.trace)
        clusters = QWidget()
        cluster_form = QFormLayout()
        cluster_form.addRow("mean ± SD of", self.mean_source)
        cluster_form.addRow("reference", import_button)
        cluster_layout = scrolling_layout(clusters)
        cluster_layout.addLayout(cluster_form)
        cluster_layout.addWidget(self.agreement)
        cluster_layout.addWidget(self.means)
        training = QWidget()
        scrolling_layout(training).addWidget(self.losses)
        spikes = QWidget()
        scrolling_layout(spikes).addWidget(self.raster)
        self.tabs = QTabWidget()
        self.tabs.addTab(rois, "ROIs")
        self.tabs.addTab(clusters, "Clusters")
        self.tabs.addTab(spikes, "Spikes")
        self.tabs.addTab(training, "Training")
        QVBoxLayout(self).addWidget(self.tabs)  # each tab scrolls on its own
        tab_on_short_screens(self)

        self.session.results_changed.connect(self.refresh)
        self.session.epoch_done.connect(lambda _: self.draw_losses())
        self.session.model_changed.connect(self.draw_losses)
        napari_viewer.layers.events.inserted.connect(self.refresh)
        napari_viewer.layers.events.removed.connect(self.refresh)
        self.refresh()
        self.draw_losses()
        # layers hold their mouse callbacks strongly: drop ours when the dock goes away
        hooked, hover = self._hooked, self._on_hover
        self.destroyed.connect(lambda *_: unhook(hooked, hover))

    # data ---------------------------------------------------------------------
    def our_layers(self) -> list[Any]:
        return [layer for layer in self.viewer.layers if is_ours(layer)]

    def refresh(self, *_: Any) -> None:
        """Re-read the layers: new columns to colour by, new points, hooks on new layers."""
        for layer in self.our_layers():
            if not any(layer is hooked for hooked in self._hooked):
                self._hooked.append(layer)
                layer.events.selected_label.connect(self._on_selected_label)
                layer.events.features.connect(self.refresh)
                layer.mouse_move_callbacks.append(self._on_hover)
        self.points = embedded_points(self.our_layers())
        columns = ["cluster"] if "cluster" in self.points.table else []
        columns += [
            c
            for c in self.points.table.columns
            if c not in (*HIDDEN_COLUMNS, "cluster")
            and not c.startswith("latent_")
            and self.points.table[c].notna().any()
        ]
        previous = self.colour_by.currentText()
        self.colour_by.blockSignals(True)
        self.colour_by.clear()
        self.colour_by.addItems(columns)
        if previous in columns:
            self.colour_by.setCurrentText(previous)
        self.colour_by.blockSignals(False)
        self.draw_scatter()
        self.draw_means()
        self.draw_raster()
        self.score_reference()

    # drawing -----------------------------------------------------------------
    def draw_scatter(self) -> None:
        canvas, ax = self.scatter, self.scatter.ax
        if self._colorbar is not None:
            self._colorbar.remove()
            self._colorbar = None
        ax.clear()
        self._picked_from = {}
        pts, column = self.points, self.colour_by.currentText()
        if not len(pts.xy):
            ax.text(
                0.5, 0.5, empty_scatter_message(self.our_layers()), ha="center", va="center",
                transform=ax.transAxes, color=canvas.colours["text"], fontsize=9, wrap=True,
            )  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
        elif column and is_categorical(pts.table[column]):
            labelled = is_label_column(pts.table[column])
            values = pts.table[column] if labelled else pts.table[column].astype(str)
            if labelled:
                colours = cluster_colours(values.to_numpy(dtype=np.int64))
            else:
                from matplotlib import colormaps

                cats = sorted(values.unique())
                colours = {c: colormaps["tab10"](i % 10) for i, c in enumerate(cats)}
            for value, colour in colours.items():
                hit = (values == value).to_numpy()
                name = str(value)
                if labelled and value == -1:
                    name = "noise" if column == "cluster" else "none"
                art = ax.scatter(*pts.xy[hit].T, s=14, color=colour, label=name, picker=True)
                self._picked_from[art] = np.flatnonzero(hit)
            ax.legend(fontsize=7, markerscale=1.2, loc="best", title=column, title_fontsize=8)
        else:
            values = pd.to_numeric(pts.table[column], errors="coerce").to_numpy()
            art = ax.scatter(*pts.xy.T, s=14, c=values, cmap="viridis", picker=True)
            self._picked_from[art] = np.arange(len(values))
            self._colorbar = canvas.figure.colorbar(art, ax=ax, label=column)
            self._colorbar.ax.tick_params(colors=canvas.colours["text"], labelsize=8)
            self._colorbar.ax.yaxis.label.set_color(canvas.colours["text"])
        if len(pts.xy):
            ax.set_xlabel("embedding 1")
            ax.set_ylabel("embedding 2")
            self._mark_current()
        canvas.restyle()

    def _mark_current(self) -> None:
        if self.current is None:
            return
        layer, row = self.current
        for i, (owner, r) in enumerate(zip(self.points.layers, self.points.rows, strict=True)):
            if owner is layer and r == row:
                self.scatter.ax.scatter(
                    *self.points.xy[i], s=90, facecolors="none",
                    edgecolors=self.scatter.colours["text"], linewidths=1.5,
                )  # fmt: skip

    def _draw_spikes(self, ax: Any, t: np.ndarray, spikes: np.ndarray) -> None:
        """Inferred spikes per frame on their own axis, kept to the lower third of the plot
        so that they sit under the fluorescence rather than over it."""
        twin = ax.twinx()
        twin.fill_between(t, 0, spikes, step="mid", color=SPIKE_COLOUR, alpha=0.8, lw=0)
        peak = float(np.nanmax(spikes)) if np.isfinite(spikes).any() else 0.0
        twin.set_ylim(0, max(3 * peak, 1.0))
        twin.set_ylabel("inferred spikes / frame", fontsize=8, color=SPIKE_COLOUR)
        twin.tick_params(colors=SPIKE_COLOUR, labelsize=7)
        ax.fill_between([], [], color=SPIKE_COLOUR, label="inferred spikes")  # legend entry

    def draw_trace(self) -> None:
        canvas, ax = self.trace, self.trace.ax
        ax.clear()
        for extra in canvas.figure.axes[1:]:  # the spike axis of the previous ROI
            extra.remove()
        if self.current is not None:
            layer, row = self.current
            traces = layer.metadata["calcium_avae_traces"]
            t = traces.times
            ax.plot(t, traces.data[row], color="#9aa0a6", lw=0.8, label="raw")
            kept = layer.metadata.get(RESULTS_KEY)
            recon = getattr(kept, "reconstruction", None)
            if recon is not None and recon.shape == traces.data.shape:
                ax.plot(t, recon[row], color="#f5a623", lw=1.2, label="denoised")
            spikes = spike_rates_of(layer)
            if spikes is not None:
                self._draw_spikes(ax, t, spikes[row])
            features = layer.features
            cluster = features["cluster"].iloc[row] if "cluster" in features else None
            title = f"{layer.name} · ROI {traces.roi_ids[row]}"
            # long layer names wrap rather than run off a narrow dock
            ax.set_title(title + ("" if cluster is None else f" · cluster {cluster}"), wrap=True)
            ax.legend(fontsize=7, loc="upper right")
            ax.set_xlabel("time (s)")
            ax.set_ylabel(trace_axis_label(traces))
        else:
            ax.set_title("hover over or pick a ROI")
        canvas.restyle()

    def draw_losses(self) -> None:
        plot_losses(self.losses, self.session.history)

    def draw_means(self) -> None:
        """Mean ± SD trace per cluster over the clustered layers of the first one's length."""
        canvas, ax = self.means, self.means.ax
        ax.clear()
        layers = [layer for layer in self.our_layers() if "cluster" in layer.features]
        denoised = self.mean_source.currentText() == "denoised"
        blocks, labels, traces = [], [], None
        for layer in layers:
            t = layer.metadata["calcium_avae_traces"]
            if traces is not None and t.n_frames != traces.n_frames:
                continue
            data = t.data
            if denoised:
                data = getattr(layer.metadata.get(RESULTS_KEY), "reconstruction", None)
                if data is None or data.shape != t.data.shape:
                    continue
            if traces is None:
                traces = t
            blocks.append(data)
            labels.append(layer.features["cluster"].to_numpy(dtype=np.int64))
        means = cluster_means(np.concatenate(blocks), np.concatenate(labels)) if blocks else {}
        if not means:
            what = "denoised traces" if denoised and layers else "clusters"
            ax.set_title(f"no {what} yet: apply a model")
        else:
            colours = cluster_colours(np.array(list(means)))
            t = traces.times
            for label, (mean, sd, n) in means.items():
                ax.fill_between(t, mean - sd, mean + sd, color=colours[label], alpha=0.2, lw=0)
                ax.plot(t, mean, color=colours[label], lw=1.2, label=f"{label} ({n})")
            ax.legend(fontsize=7, loc="upper right", title="cluster (ROIs)", title_fontsize=7)
            ax.set_xlabel("time (s)")
            ax.set_ylabel(trace_axis_label(traces))
            ax.set_title(f"{self.mean_source.currentText()} traces, mean ± SD per cluster")
        canvas.restyle()

    def draw_raster(self) -> None:
        """All ROIs' inferred spikes per frame, of the chosen layer (else the first that
        has them), as an image: time across, ROIs down."""
        canvas, ax = self.raster, self.raster.ax
        ax.clear()
        layers = [layer for layer in self.our_layers() if spike_rates_of(layer) is not None]
        if self.current is not None and self.current[0] in layers:
            layers.insert(0, self.current[0])
        if not layers:
            ax.set_title("no inferred spikes yet: dock 6 (Infer spikes) or calcium-avae deconvolve")
        else:
            layer = layers[0]
            spikes, t = spike_rates_of(layer), layer.metadata["calcium_avae_traces"].times
            top = float(np.nanpercentile(spikes, 99.5)) if np.isfinite(spikes).any() else 1.0
            ax.imshow(
                spikes,
                aspect="auto",
                interpolation="nearest",
                cmap="magma",
                vmin=0,
                vmax=max(top, 1e-6),
                extent=(float(t[0]), float(t[-1]), len(spikes) - 0.5, -0.5),
            )
            ax.set_xlabel("time (s)")
            ax.set_ylabel("ROI (row)")
            ax.set_title(f"{layer.name}: inferred spikes per frame", wrap=True)
        canvas.restyle()

    # reference labels ----------------------------------------------------------
    @guarded
    def import_labels(self, path: str | Path | None = None) -> None:
        """Read a per-ROI label table for the selected ROI layer; colour its ROIs by it."""
        from ..analysis.label_table import read_label_table

        layer = self.viewer.layers.selection.active
        if not is_ours(layer):
            raise CalciumAvaeError(
                "select the ROI layer the label table belongs to, then import it"
            )
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Label table", "", "CSV (*.csv)")
            if not path:
                return
        table = read_label_table(path, layer.metadata["calcium_avae_traces"].n_rois)
        if table.column == "cluster" or table.column.startswith(("latent_", "embedding_")):
            raise CalciumAvaeError(
                f"the label column '{table.column}' would replace AVAE results: rename it"
            )
        features = layer.features.copy()
        features[table.column] = table.labels
        self.reference = (layer, table.column)
        layer.features = features  # refreshes the scatter and the score
        layer.colormap = cluster_colormap(table.labels)
        self.colour_by.setCurrentText(table.column)

    def score_reference(self) -> None:
        """ARI of the clusters with the imported labels, on the layer they belong to."""
        from ..analysis.label_table import agreement

        if self.reference is None:
            return
        layer, column = self.reference
        features = layer.features
        if column not in features:
            self.agreement.setText("no reference labels")
        elif "cluster" not in features:
            self.agreement.setText(f"'{column}' of {layer.name}: apply a model to score it")
        else:
            score = agreement(features["cluster"].to_numpy(), features[column].to_numpy())
            self.agreement.setText(
                f"ARI of the clusters with '{column}' on {layer.name}: {score:.3f} "
                f"({len(features)} ROIs; 'none' and noise count as groups)"
            )

    # choosing a ROI ------------------------------------------------------------
    def choose(self, layer: Any, row: int) -> None:
        """Show ROI ``row`` of ``layer``: its trace, its point, its label in the viewer."""
        if self.current == (layer, row):
            return
        other_layer = self.current is None or self.current[0] is not layer
        self.current = (layer, row)
        if layer.selected_label != row + 1:
            layer.selected_label = row + 1
        self.draw_trace()
        self.draw_scatter()
        if other_layer:  # the raster shows a whole layer: redraw only when it changes
            self.draw_raster()

    def _on_pick(self, event: Any) -> None:
        indices = self._picked_from.get(event.artist)
        if indices is None or not len(event.ind):
            return
        i = int(indices[event.ind[0]])
        layer = self.points.layers[i]
        self.viewer.layers.selection.active = layer
        self.choose(layer, int(self.points.rows[i]))

    def _on_selected_label(self, event: Any) -> None:
        layer = event.source
        label = int(layer.selected_label)
        if 0 < label <= layer.metadata["calcium_avae_traces"].n_rois:
            self.choose(layer, label - 1)

    def _on_hover(self, layer: Any, event: Any) -> None:
        value = layer.get_value(event.position, world=True)
        if isinstance(value, tuple):  # multiscale: (level, value)
            value = value[1]
        if value is not None and int(value) > 0 and (layer, int(value) - 1) != self.current:
            self.current = (layer, int(value) - 1)
            self.draw_trace()

    def _show_only_selected(self, on: bool) -> None:
        for layer in self.our_layers():
            layer.show_selected_label = on
