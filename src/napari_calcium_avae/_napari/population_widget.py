"""Dock widget: population views of one recording (assemblies, states, correlations).

Thin over the library: **Run** calls ``population.analyse`` (the same step as
``calcium-avae population``) in a napari thread worker, one step at a time (assemblies,
then states), so the progress bar advances per step and Stop ends the run at the next step
(a step in progress finishes in the background and is discarded). What it draws comes from
``population.views`` (row orders, sliding correlation, correlation matrix).

The results live in the layer's metadata (``POPULATION_KEY``) as ``PopulationResults``,
the same object ``nwb.read_population`` gives for a file written by the population
command, and such a file shows its results when its layer is chosen. The features only
show them: ``assembly`` (main assembly, -1 none) and ``assemblies`` (every membership),
for hover and for colouring; the ROIs are coloured by main assembly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from napari.qt.threading import create_worker
from napari.utils.notifications import show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..errors import CalciumAvaeError
from ..population.assemblies import DEFAULT_METHOD as DEFAULT_ASSEMBLY_METHOD
from ..population.assemblies import METHODS as ASSEMBLY_METHODS
from ..population.views import DEFAULT_SORT, SORTS
from ..results import Results
from ..traces import Traces
from ._common import (
    StoppableRun,
    confirm_replace,
    guarded,
    idle_progress_bar,
    report_error,
    report_warning,
    scrolling_layout,
    tab_on_short_screens,
    wrapped_label,
)
from ._layers import (
    RESULTS_KEY,
    SOURCE_KEY,
    cluster_colormap,
    cluster_colours,
    is_ours,
    traces_of,
)
from ._plotting import ThemedCanvas
from ._session import session_for

POPULATION_KEY = "calcium_avae_population"
"""Layer metadata key of the recording's PopulationResults (assemblies and/or states)."""
DIVERGING = "RdBu_r"
"""Correlations: red positive, blue negative, white 0 or missing (seed 001's figure)."""
DIM = (0.5, 0.5, 0.5, 0.15)
MATRIX_MAX_ROIS = 2000
"""Above this many ROIs the Matrix tab shows the correlations of every k-th ROI in the
order (exact values for a subset; all of them would be N^2 and a minute of work)."""
"""ROIs outside a picked assembly."""


def population_steps(
    traces: Traces,
    rates: Any,
    assemblies: Any,
    states: Any,
    device: str,
    assembly_method: str | None = None,
) -> Iterator[tuple[int, int, str]]:
    """The worker's job: ``analyse`` one step at a time, yielding (done, total, what next)
    so that progress shows and Stop takes effect between steps; returns the
    PopulationResults and what ``write_population`` needs (the fitted estimators, the facts)."""
    from ..population import analyse
    from ..population.views import population_results

    if assemblies is None and states is None:
        analyse(traces, assemblies=None, states=None)  # its one-line "nothing to do"
    total = int(assemblies is not None) + int(states is not None)
    detector = model = None
    facts: dict[str, Any] = {}
    if assemblies is not None:
        yield 0, total, "finding assemblies…"
        detector, _, found = analyse(
            traces,
            assemblies=assemblies,
            states=None,
            rates=rates,
            assembly_method=assembly_method,
        )
        facts.update(found)
    if states is not None:
        yield total - 1, total, "fitting the calcium HMM…"
        _, model, found = analyse(traces, assemblies=None, states=states, device=device)
        facts.update(found)
    yield total, total, "drawing…"
    return population_results(detector, model, facts), (detector, model, facts)


def spike_rates(layer: Any) -> np.ndarray | None:
    """The layer's inferred spikes (``Results.spike_rates``) when it has any."""
    kept = layer.metadata.get(RESULTS_KEY)
    rates = getattr(kept, "spike_rates", None) if isinstance(kept, Results) else None
    if rates is None or not np.isfinite(np.asarray(rates)).any():
        return None
    return np.asarray(rates)


def activity_of(layer: Any) -> tuple[np.ndarray, str]:
    """What the raster draws: inferred spikes when present, else the traces."""
    rates = spike_rates(layer)
    if rates is not None:
        return rates, "inferred spikes"
    return traces_of(layer).data, "fluorescence"


def put_population(layer: Any, population: Any) -> None:
    """Keep ``population`` with the layer; show its assemblies in features and colours."""
    traces = traces_of(layer)
    if len(population.roi_rows) != traces.n_rois:
        raise CalciumAvaeError(
            f"the population results cover {len(population.roi_rows)} ROIs but layer "
            f"'{layer.name}' has {traces.n_rois}"
        )
    layer.metadata[POPULATION_KEY] = population
    if population.labels is None:
        return
    features = layer.features.copy()
    features["assembly"] = np.asarray(population.labels, dtype=np.int64)
    features["assemblies"] = [
        " ".join(str(a) for a in np.flatnonzero(row)) for row in population.memberships
    ]
    layer.features = features
    layer.colormap = cluster_colormap(population.labels)


def population_from_file(layer: Any) -> Any:
    """The population results in the layer's source file (a population command's output),
    when it is a local file holding some for the layer's ROIs, in its order; else None."""
    from ..nwb.population import read_population

    source = layer.metadata.get(SOURCE_KEY)
    if not source or "://" in str(source) or not Path(source).is_file():
        return None
    try:
        population = read_population(source)
    except (OSError, KeyError, ValueError):
        return None
    traces = traces_of(layer)
    rows = np.arange(traces.n_rois) if traces.roi_rows is None else traces.roi_rows
    if population is None or not np.array_equal(population.roi_rows, rows):
        return None  # other ROIs, or the same in another order: not this layer's rows
    return population


def _normalised_rows(X: np.ndarray) -> np.ndarray:
    """Each row from its 1st to 99th percentile onto 0..1, so quiet neurons show too."""
    X = np.asarray(X, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.nanpercentile(X, 1, axis=1, keepdims=True)
        high = np.nanpercentile(X, 99, axis=1, keepdims=True)
        out = (X - low) / np.where(high > low, high - low, 1.0)
    return np.clip(out, 0.0, 1.0)


class PopulationWidget(StoppableRun, QWidget):
    """A recording, what to find, Run/Stop; the views in tabs below."""

    def __init__(self, napari_viewer: Any) -> None:
        from ..model.device import available_devices

        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self._hooked: list[Any] = []
        self._tried_files: set[int] = set()
        self._fitted: dict[int, tuple[Any, tuple[Any, Any, dict[str, Any]]]] = {}
        """Per layer: the PopulationResults of a run here and its estimators, for Save."""
        self.order: np.ndarray | None = None
        self._raster_image: tuple[np.ndarray, int] | None = None
        """The raster as drawn (sorted, reduced, scaled) and its ROIs per row, kept until
        the order changes: picking a ROI only moves the marker."""
        self.picked = np.arange(0)
        """Rows of the ROIs of the assembly picked last (empty: none picked)."""

        self.layer_box = QComboBox()
        self.layer_box.currentIndexChanged.connect(lambda *_: self.show_layer())
        self.input = wrapped_label()
        self.assemblies = _editable(["auto", "none"], "auto or a number of assemblies; none")
        self.assembly_method = QComboBox()
        for name, tip in ASSEMBLY_METHODS.items():
            self.assembly_method.addItem(name, name)
            self.assembly_method.setItemData(
                self.assembly_method.count() - 1, tip, Qt.ItemDataRole.ToolTipRole
            )
        self.assembly_method.setCurrentIndex(self.assembly_method.findData(DEFAULT_ASSEMBLY_METHOD))
        self.states = _editable(
            ["none", "auto", *map(str, range(2, 11))],
            "network states with the calcium HMM: none, auto (held-out likelihood) or K",
        )
        self.device = QComboBox()
        for device, label in available_devices().items():
            self.device.addItem(label, device)
        self.sort = QComboBox()
        for name, tip in SORTS.items():
            self.sort.addItem(name, name)
            self.sort.setItemData(self.sort.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.sort.setCurrentIndex(self.sort.findData(DEFAULT_SORT))
        self.sort.currentIndexChanged.connect(lambda *_: self.draw())
        self.window_s = _seconds(10.0, "length of the sliding window (s)")
        self.step_s = _seconds(5.0, "the window moves by this much (s)")
        self.window_s.editingFinished.connect(lambda: self.draw_sliding(notify=True))
        self.step_s.editingFinished.connect(lambda: self.draw_sliding(notify=True))

        form = QFormLayout()
        form.addRow("ROI layer", self.layer_box)
        form.addRow("input", self.input)
        form.addRow("assemblies", self.assemblies)
        form.addRow("assembly method", self.assembly_method)
        form.addRow("states", self.states)
        form.addRow("device", self.device)
        self.make_run_button()
        self.save_button = QPushButton("Save to NWB…")
        self.save_button.setToolTip(
            "a new NWB file: the recording with these assemblies and states, as "
            "calcium-avae population writes it"
        )
        self.save_button.clicked.connect(lambda: self.save_as())
        self.progress = idle_progress_bar("no population analysis yet")
        self.status = wrapped_label()
        view_form = QFormLayout()
        view_form.addRow("sort rows", self.sort)
        view_form.addRow("window (s)", self.window_s)
        view_form.addRow("step (s)", self.step_s)

        self.raster = ThemedCanvas(napari_viewer, height=3.6, toolbar=True)
        self.raster.canvas.mpl_connect("button_press_event", self._on_raster_click)
        self.sliding = ThemedCanvas(napari_viewer, height=3.2, toolbar=True)
        self.matrix = ThemedCanvas(napari_viewer, height=3.4)
        self.activity = ThemedCanvas(napari_viewer, height=2.6, toolbar=True)
        self.assembly_list = QListWidget()
        self.assembly_list.setMaximumHeight(110)
        self.assembly_list.currentRowChanged.connect(lambda *_: self.pick_assembly())
        self.membership = wrapped_label("pick a ROI to see its assemblies")

        self.tabs = QTabWidget()
        for title, widgets in (
            ("Raster", [self.raster]),
            ("Correlation", [self.sliding]),
            ("Matrix", [self.matrix]),
            ("Assemblies", [self.assembly_list, self.activity]),
        ):
            page = QWidget()
            page_layout = QVBoxLayout(page)
            page_layout.setContentsMargins(0, 0, 0, 0)
            for widget in widgets:
                page_layout.addWidget(widget)
            self.tabs.addTab(page, title)

        layout = scrolling_layout(self)
        tab_on_short_screens(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.save_button)
        layout.addWidget(self.status)
        layout.addLayout(view_form)
        layout.addWidget(self.membership)
        layout.addWidget(self.tabs)

        self.session.results_changed.connect(self.show_layer)
        napari_viewer.layers.events.inserted.connect(lambda *_: self.refresh_layers())
        napari_viewer.layers.events.removed.connect(lambda *_: self.refresh_layers())
        self.refresh_layers()

    # the recording ------------------------------------------------------------
    def layer(self) -> Any:
        layer = self.layer_box.currentData()
        if layer is None or layer not in self.viewer.layers:
            raise CalciumAvaeError(
                "no ROI layer chosen: open an NWB file (File > Open) and choose its ROI layer"
            )
        return layer

    def population(self) -> Any:
        layer = self.layer_box.currentData()
        return None if layer is None else layer.metadata.get(POPULATION_KEY)

    def refresh_layers(self) -> None:
        current = self.layer_box.currentData()
        ours = [layer for layer in self.viewer.layers if is_ours(layer)]
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        for layer in ours:
            self.layer_box.addItem(layer.name, layer)
        chosen = next((i for i, layer in enumerate(ours) if layer is current), len(ours) - 1)
        self.layer_box.setCurrentIndex(chosen)
        self.layer_box.blockSignals(False)
        for layer in ours:
            if not any(layer is hooked for hooked in self._hooked):
                self._hooked.append(layer)
                layer.events.selected_label.connect(self._on_selected_label)
        self.show_layer()

    def show_layer(self, *_: Any) -> None:
        """The chosen recording's input and views (its file's population results, once)."""
        layer = self.layer_box.currentData()
        if layer is None:
            self.input.setText("no ROI layer open")
            self.clear_views()
            return
        if POPULATION_KEY not in layer.metadata and id(layer) not in self._tried_files:
            self._tried_files.add(id(layer))
            found = population_from_file(layer)
            if found is not None:
                put_population(layer, found)
                self.status.setText(f"population results read from {layer.name}'s file")
        _, kind = activity_of(layer)
        self.input.setText(
            f"{kind} ({'from spike inference' if kind != 'fluorescence' else 'no inferred spikes'})"
        )
        self.draw()

    # running --------------------------------------------------------------------
    @guarded
    def start(self) -> None:
        """Run ``population.analyse`` on the chosen recording in a background thread."""
        from ..population import parse_count

        layer = self.layer()
        traces = traces_of(layer)
        assemblies = parse_count(self.assemblies.currentText(), "assemblies", allow_none=True)
        states = parse_count(self.states.currentText(), "states", allow_none=True)
        self.stop_event = threading.Event()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self.worker = create_worker(
            population_steps,
            traces,
            spike_rates(layer),
            assemblies,
            states,
            self.device.currentData(),
            self.assembly_method.currentData(),
            _start_thread=True,
            _connect={
                "yielded": self._on_step,
                "returned": lambda out: self._on_results(layer, *out),
                "errored": self._on_error,
                "warned": report_warning,
                "finished": self._on_finished,
            },
        )
        self.run_started()
        self.status.setText(f"population analysis of '{layer.name}'…")

    def stop(self) -> None:
        """End the run at the next step; what is in progress is discarded."""
        if self.worker is not None:
            super().stop()
            self.worker.quit()

    def _on_step(self, step: tuple[int, int, str]) -> None:
        done, total, text = step
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat(f"{text} (step {min(done + 1, total)} of {total})")

    def _on_results(self, layer: Any, population: Any, fitted: tuple) -> None:
        if self.stop_event.is_set() or layer not in self.viewer.layers:
            return
        try:
            put_population(layer, population)
        except CalciumAvaeError as error:
            report_error(error)
            return
        self._fitted[id(layer)] = (population, fitted)
        parts = []
        if population.n_assemblies is not None:
            none = int((population.labels < 0).sum())
            parts.append(f"{population.n_assemblies} assemblies ({none} ROIs in none)")
        if population.states is not None:
            parts.append(f"{population.transmat.shape[0]} states")
        self.status.setText(f"done: {', '.join(parts)} in '{layer.name}'")
        self.progress.setFormat("done")
        if layer is self.layer_box.currentData():
            self.draw()

    def _on_error(self, error: BaseException) -> None:
        self.status.setText("")
        self.progress.setFormat("failed")
        report_error(error)

    def _on_finished(self) -> None:
        if self.stop_event.is_set():
            self.status.setText("stopped: nothing changed")
            self.progress.setFormat("stopped")
            show_warning("population analysis stopped: nothing changed")
        self.run_finished()

    # saving -----------------------------------------------------------------------
    def save_as(self) -> None:
        """Ask for a file name (beside the source, ``<stem>_avae.nwb``), then save."""
        from ..nwb import result_path

        layer = self.layer_box.currentData()
        source = None if layer is None else layer.metadata.get(SOURCE_KEY)
        start = str(result_path(source)) if source and "://" not in str(source) else ""
        path, _ = QFileDialog.getSaveFileName(self, "Save population results", start, "*.nwb")
        if path:
            self.save(path)

    @guarded
    def save(self, path: str | Path, overwrite: bool = False) -> Path | None:
        """Write the chosen layer's run to a new NWB file (``write_population``), asking
        before replacing a file; None when nothing was written."""
        from ..nwb.population import write_population

        layer = self.layer()
        population, fitted = self._fitted.get(id(layer), (None, None))
        if fitted is None or population is not layer.metadata.get(POPULATION_KEY):
            raise CalciumAvaeError(
                f"nothing to save for '{layer.name}': press Run first (results read from a "
                "file are in that file already)"
            )
        path = Path(path).with_suffix(".nwb")
        if path.exists() and not overwrite:
            if not confirm_replace(self, "Replace file?", f"{path} exists. Replace it?"):
                self.status.setText(f"not saved: {path.name} exists and was kept")
                return None
            overwrite = True
        detector, model, facts = fitted
        out = write_population(
            traces_of(layer),
            path,
            assemblies=detector,
            states=model,
            facts=facts,
            overwrite=overwrite,
        )
        self.status.setText(f"saved {out}")
        return out

    # views ------------------------------------------------------------------------
    def clear_views(self) -> None:
        for canvas in (self.raster, self.sliding, self.matrix, self.activity):
            canvas.figure.clear()
            canvas.canvas.draw_idle()
        self.assembly_list.clear()

    def _frame_rate(self, traces: Traces) -> tuple[float, str]:
        from ..pipeline import frame_rate

        try:
            return frame_rate(traces), "time (s)"
        except CalciumAvaeError:
            return 1.0, "frame"

    def _groups(self, layer: Any, by: str) -> np.ndarray | None:
        if by == "assembly":
            population = layer.metadata.get(POPULATION_KEY)
            return None if population is None else population.labels
        if by == "cluster" and "cluster" in layer.features:
            return layer.features["cluster"].to_numpy()
        return None

    @guarded
    def draw(self) -> None:
        """Every view of the chosen recording, rows in the chosen order."""
        from ..population.views import row_order

        layer = self.layer_box.currentData()
        if layer is None:
            return
        X, _ = activity_of(layer)
        by = self.sort.currentData()
        groups = self._groups(layer, by)
        if by != "similarity" and groups is None:
            self.status.setText(
                f"no {by} labels yet: sorted by similarity"
                + (" (apply a model to cluster)" if by == "cluster" else " (press Run)")
            )
            by = "similarity"
        self.order = row_order(X, by, groups)
        self._raster_image = None
        self.draw_raster()
        self.draw_sliding()
        self.draw_matrix()
        self.draw_activity()

    def _axes(self, canvas: ThemedCanvas, rows: int = 1, ratios: Any = None) -> list[Any]:
        """Fresh axes in the viewer's theme (``ThemedCanvas`` styles one at a time)."""
        canvas.figure.clear()
        axes = canvas.figure.subplots(
            rows, 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": ratios}
        )[:, 0]
        self._restyle(canvas)
        return list(axes)

    def _restyle(self, canvas: ThemedCanvas) -> None:
        """The theme on every axis of ``canvas`` (again after titles: set_title resets
        the font size)."""
        for ax in [a for a in canvas.figure.axes if a.get_label() != "<colorbar>"]:
            canvas.ax = ax
            canvas.restyle()

    def _style_colorbar(self, canvas: ThemedCanvas, bar: Any) -> None:
        colour = canvas.colours["text"]
        bar.ax.tick_params(colors=colour, labelsize=8)
        bar.outline.set_edgecolor(canvas.colours["grid"])
        bar.ax.yaxis.label.set_color(colour)

    def draw_raster(self) -> None:
        layer = self.layer_box.currentData()
        if layer is None or self.order is None:
            return
        X, kind = activity_of(layer)
        traces = traces_of(layer)
        rate, unit = self._frame_rate(traces)
        population = layer.metadata.get(POPULATION_KEY)
        has_states = population is not None and population.states is not None
        axes = self._axes(self.raster, 2 if has_states else 1, [6, 1] if has_states else None)
        from ..population.views import display_matrix

        if self._raster_image is None:
            shown, row_block, _ = display_matrix(X, self.order)
            self._raster_image = (_normalised_rows(shown), row_block)
        shown, row_block = self._raster_image
        extent = (0, X.shape[1] / rate, X.shape[0] - 0.5, -0.5)  # y: ROI positions
        axes[0].imshow(
            shown,
            aspect="auto",
            cmap="gray_r",
            interpolation="nearest",
            extent=extent,
        )
        axes[0].set_ylabel(f"ROI ({self.sort.currentData()} order)")
        blocks = f", means of {row_block} ROIs" if row_block > 1 else ""
        axes[0].set_title(f"{kind}, each ROI scaled to its 1-99th percentile{blocks}")
        self._mark_current_row(axes[0])
        if has_states:
            states = np.asarray(population.states)[None, :]
            k = int(states.max(initial=0)) + 1
            axes[1].imshow(
                states,
                aspect="auto",
                cmap="tab10" if k <= 10 else "tab20",
                vmin=-0.5,
                vmax=(9.5 if k <= 10 else 19.5),
                interpolation="nearest",
                extent=(0, X.shape[1] / rate, 0, 1),
            )
            axes[1].set_yticks([])
            axes[1].set_ylabel("state", rotation=0, ha="right", va="center")
        axes[-1].set_xlabel(unit)
        self._restyle(self.raster)
        self.raster.canvas.draw_idle()

    def _mark_current_row(self, ax: Any) -> None:
        layer = self.layer_box.currentData()
        label = int(getattr(layer, "selected_label", 0) or 0)
        if self.order is None or not 0 < label <= len(self.order):
            return
        position = int(np.flatnonzero(self.order == label - 1)[0])
        ax.axhline(position, color="tab:orange", linewidth=0.8, alpha=0.8)

    def draw_sliding(self, notify: bool = False) -> None:
        """Seed 001's neuron x time matrix; a window the recording cannot hold is said in
        the plot (and as a notice when the user just set it)."""
        from ..population.views import sliding_correlation

        layer = self.layer_box.currentData()
        if layer is None or self.order is None:
            return
        X, kind = activity_of(layer)
        rate, unit = self._frame_rate(traces_of(layer))
        (ax,) = self._axes(self.sliding)
        window = self.window_s.value()
        try:
            r, centres = sliding_correlation(X, rate, window, self.step_s.value())
        except CalciumAvaeError as error:
            ax.set_title(str(error), wrap=True)
            self.sliding.canvas.draw_idle()
            if notify:
                report_error(error)
            return
        from ..population.views import display_matrix

        image = ax.imshow(
            display_matrix(r, self.order)[0],
            aspect="auto",
            cmap=_diverging(),
            vmin=-1,
            vmax=1,
            interpolation="nearest",
            extent=(centres[0] - window / 2, centres[-1] + window / 2, len(r) - 0.5, -0.5),
        )
        ax.set_xlabel(unit)
        ax.set_ylabel(f"ROI ({self.sort.currentData()} order)")
        ax.set_title(f"correlation with the population ({kind}, {window:g} s window)")
        bar = self.sliding.figure.colorbar(image, ax=ax, label="r")
        self._style_colorbar(self.sliding, bar)
        self._restyle(self.sliding)
        self.sliding.canvas.draw_idle()

    def draw_matrix(self) -> None:
        from ..population.views import correlation_matrix

        layer = self.layer_box.currentData()
        if layer is None or self.order is None:
            return
        X, kind = activity_of(layer)
        (ax,) = self._axes(self.matrix)
        step = int(np.ceil(len(self.order) / MATRIX_MAX_ROIS))
        chosen = self.order[::step]
        image = ax.imshow(
            correlation_matrix(X[chosen]),
            cmap=_diverging(),
            vmin=-1,
            vmax=1,
            interpolation="nearest",
        )
        every = f", one ROI in {step}" if step > 1 else ""
        ax.set_title(f"correlations of {kind} ({self.sort.currentData()} order{every})")
        ax.set_xlabel("ROI")
        ax.set_ylabel("ROI")
        bar = self.matrix.figure.colorbar(image, ax=ax, label="r")
        self._style_colorbar(self.matrix, bar)
        self._restyle(self.matrix)
        self.matrix.canvas.draw_idle()

    def draw_activity(self) -> None:
        layer = self.layer_box.currentData()
        population = None if layer is None else layer.metadata.get(POPULATION_KEY)
        self.assembly_list.blockSignals(True)
        self.assembly_list.clear()
        (ax,) = self._axes(self.activity)
        if population is None or population.activity is None or not population.n_assemblies:
            ax.set_title("no assemblies yet: press Run" if population is None else "no assemblies")
            self._restyle(self.activity)
            self.activity.canvas.draw_idle()
            self.assembly_list.blockSignals(False)
            return
        rate, unit = self._frame_rate(traces_of(layer))
        colours = cluster_colours(np.arange(population.n_assemblies))
        all_item = QListWidgetItem("all assemblies (ROIs coloured by main assembly)")
        all_item.setData(Qt.ItemDataRole.UserRole, -1)
        self.assembly_list.addItem(all_item)
        time = np.arange(population.activity.shape[1]) / rate
        for a in range(population.n_assemblies):
            members = int(population.memberships[:, a].sum())
            p = population.p_values[a] if population.p_values is not None else np.nan
            item = QListWidgetItem(f"assembly {a}: {members} ROIs, p = {p:.3g}")
            item.setData(Qt.ItemDataRole.UserRole, a)
            self.assembly_list.addItem(item)
            ax.plot(time, a + _scaled(population.activity[a]), color=colours[a], linewidth=0.8)
        ax.set_yticks(np.arange(population.n_assemblies))  # at each row's baseline
        ax.set_yticklabels([str(a) for a in range(population.n_assemblies)])
        ax.set_ylim(-0.1, population.n_assemblies)
        ax.set_xlabel(unit)
        ax.set_ylabel("assembly")
        ax.set_title("assembly activity R(t), each scaled to its 99.9th percentile")
        self._restyle(self.activity)
        self.assembly_list.blockSignals(False)
        self.activity.canvas.draw_idle()

    # picking ----------------------------------------------------------------------
    def pick_assembly(self, assembly: int | None = None) -> None:
        """Select an assembly's ROIs (members in its colour, the rest dimmed); -1: all."""
        from napari.utils.colormaps import DirectLabelColormap

        layer = self.layer_box.currentData()
        population = self.population()
        if layer is None or population is None or population.memberships is None:
            return
        if assembly is None:
            item = self.assembly_list.currentItem()
            assembly = -1 if item is None else int(item.data(Qt.ItemDataRole.UserRole))
        if assembly < 0:
            self.picked = np.arange(0)
            layer.colormap = cluster_colormap(population.labels)
            self.membership.setText("ROIs coloured by main assembly")
            return
        members = np.flatnonzero(population.memberships[:, assembly])
        self.picked = members
        colour = cluster_colours(np.arange(population.n_assemblies))[assembly]
        colours: dict[int | None, Any] = {None: (0.0, 0.0, 0.0, 0.0), 0: (0.0, 0.0, 0.0, 0.0)}
        for row in range(len(population.labels)):
            colours[row + 1] = DIM
        for row in members:
            colours[int(row) + 1] = colour
        layer.colormap = DirectLabelColormap(color_dict=colours)
        ids = np.asarray(traces_of(layer).roi_ids)[members]
        shown = ", ".join(str(i) for i in ids[:20]) + (" …" if len(ids) > 20 else "")
        self.membership.setText(f"assembly {assembly}: {len(members)} ROIs ({shown})")

    def _on_raster_click(self, event: Any) -> None:
        """A click on a raster row picks that ROI in the viewer (zoom and pan excepted)."""
        axes = self.raster.figure.axes
        toolbar = getattr(self.raster.canvas, "toolbar", None)
        if not axes or event.inaxes is not axes[0] or event.ydata is None:
            return
        if toolbar is not None and getattr(toolbar, "mode", ""):
            return
        self.choose_row(round(float(event.ydata)))

    def choose_row(self, position: int) -> None:
        """Pick the ROI drawn at raster row ``position`` (its label in the viewer)."""
        layer = self.layer_box.currentData()
        if layer is None or self.order is None or not 0 <= position < len(self.order):
            return
        layer.selected_label = int(self.order[position]) + 1

    def _on_selected_label(self, event: Any) -> None:
        layer = event.source
        if layer is not self.layer_box.currentData():
            return
        label = int(layer.selected_label)
        traces = traces_of(layer)
        if not 0 < label <= traces.n_rois:
            return
        from ..population.views import membership_text

        roi_id = np.asarray(traces.roi_ids)[label - 1]
        self.membership.setText(f"ROI {roi_id}: {membership_text(self.population(), label - 1)}")
        if self.order is not None:
            self.draw_raster()


def _scaled(activity: np.ndarray) -> np.ndarray:
    """One assembly's activity onto 0..0.9 (its 99.9th percentile at the top, larger peaks
    clipped), so that each gets a row and one large burst does not flatten the others."""
    activity = np.asarray(activity, dtype=np.float32)
    top = float(np.nanpercentile(activity, 99.9)) if activity.size else 0.0
    return 0.9 * np.clip(activity / top if top > 0 else activity * 0, 0.0, 1.0)


def _diverging() -> Any:
    """Red positive, blue negative, white at 0 and for missing data."""
    from matplotlib import colormaps

    return colormaps[DIVERGING].with_extremes(bad="white")


def _editable(items: list[str], tip: str) -> QComboBox:
    box = QComboBox()
    box.setEditable(True)
    box.addItems(items)
    box.setToolTip(tip)
    return box


def _seconds(value: float, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(0.01, 1e5)
    box.setDecimals(2)
    box.setValue(value)
    box.setToolTip(tip)
    return box
