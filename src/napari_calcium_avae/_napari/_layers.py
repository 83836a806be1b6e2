"""How a recording lives in napari: a Labels layer whose features and metadata carry it.

Label value ``i + 1`` is ROI row ``i``. The features table has an ``index`` column holding
the label value, so napari maps labels to rows through it and no background row is
needed. The Traces object, its source file and series path travel in the layer's
metadata: every widget and the writer find the recording there, and nowhere else.

Results have one home, the ``Results`` in the metadata, set only by :func:`put_results`
(after apply, re-clustering or reading a result file). Its per-ROI fields are shown as
feature columns (hover, colour by); edits a user makes there win when the layer's results
are read back (:func:`results_of`), so what is saved is what is shown.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CalciumAvaeError
from ..results import PER_ROI, PER_ROW, Results, is_result_column
from ..traces import Traces

TRACES_KEY = "calcium_avae_traces"
SOURCE_KEY = "calcium_avae_source"
SERIES_KEY = "calcium_avae_series"
RESULTS_KEY = "calcium_avae_results"

NOISE_COLOUR = (0.5, 0.5, 0.5, 1.0)
TILE = 8
"""Side in pixels of the square drawn per ROI when a recording has no masks."""

LayerData = tuple[Any, dict[str, Any], str]


def roi_label_image(traces: Traces) -> np.ndarray:
    """The ROI masks as a label image, or a grid of tiles when the file has no masks.

    Without masks there is no geometry to show, yet the widgets need one label per ROI
    to select and colour: ROI ``i`` becomes a ``TILE``-pixel square in a near-square grid,
    in ROI order.
    """
    if traces.masks is not None and traces.image_shape is not None:
        return traces.label_image()
    n = traces.n_rois
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.zeros((rows * cols,), dtype=np.int32)
    grid[:n] = np.arange(1, n + 1)
    grid = grid.reshape(rows, cols)
    return np.kron(grid, np.ones((TILE, TILE), dtype=np.int32))


def roi_features(traces: Traces) -> pd.DataFrame:
    """One row per ROI: the label value, the ROI id and every per-ROI column of the file."""
    features = pd.DataFrame(
        {"index": np.arange(1, traces.n_rois + 1), "roi_id": np.asarray(traces.roi_ids)}
    )
    if len(traces.roi_table):
        table = traces.roi_table.reset_index(drop=True)
        table = table.drop(columns=[c for c in ("index", "roi_id") if c in table.columns])
        features = pd.concat([features, table], axis=1)
    return features


def _with_results(features: pd.DataFrame, results: Results) -> pd.DataFrame:
    """Features with the result columns replaced as a whole: a model with fewer latent
    dimensions leaves no stale ``latent_*`` columns behind."""
    features = features.drop(columns=[c for c in features.columns if is_result_column(c)])
    for name, values in results.table().items():
        features[name] = values.to_numpy()
    return features


def traces_layer_data(traces: Traces, name: str, results: Results | None = None) -> list[LayerData]:
    """Reference images (below) and the ROI Labels layer (on top) of one recording.

    ``results`` are those a file saved (``nwb.read_results``): kept with the layer like a
    fresh run's, so the plots and a later save find them, the reconstruction included.
    """
    out: list[LayerData] = []
    for image_name, image in traces.images.items():
        if np.asarray(image).ndim == 2:
            out.append((np.asarray(image), {"name": f"{name} {image_name}"}, "image"))
    labels = roi_label_image(traces)
    features = roi_features(traces)
    if results is not None:
        features = _with_results(features, results)
    attributes = {
        "name": name,
        "features": features,
        "metadata": {
            TRACES_KEY: traces,
            SOURCE_KEY: None if traces.source_file is None else str(traces.source_file),
            SERIES_KEY: traces.series_path,
        },
        "opacity": 0.7,
    }
    if "cluster" in features.columns:
        attributes["colormap"] = cluster_colormap(features["cluster"].to_numpy())
    if results is not None:
        attributes["metadata"][RESULTS_KEY] = results
    out.append((labels, attributes, "labels"))
    return out


def is_ours(layer: Any) -> bool:
    """True for a Labels layer this plugin made (it carries a Traces object)."""
    metadata = getattr(layer, "metadata", None) or {}
    return isinstance(metadata.get(TRACES_KEY), Traces)


def traces_of(layer: Any) -> Traces:
    """The recording behind a layer, or a one-line error for any other layer."""
    if layer is None:
        raise CalciumAvaeError("no layer selected: open an NWB file or select its ROI layer")
    if not is_ours(layer):
        raise CalciumAvaeError(
            f"layer '{layer.name}' holds no calcium traces: select a ROI layer opened by "
            "this plugin from an NWB file"
        )
    return layer.metadata[TRACES_KEY]


def cluster_colours(labels: np.ndarray) -> dict[int, tuple[float, ...]]:
    """A colour per cluster label, noise (-1) grey, stable for a given label."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"] if labels.max(initial=-1) < 10 else colormaps["tab20"]
    out: dict[int, tuple[float, ...]] = {}
    for label in np.unique(labels):
        label = int(label)
        out[label] = NOISE_COLOUR if label < 0 else tuple(cmap(label % cmap.N))
    return out


def cluster_colormap(clusters: np.ndarray) -> Any:
    """Labels colormap painting ROI ``i`` (label ``i + 1``) in its cluster's colour."""
    from napari.utils.colormaps import DirectLabelColormap

    clusters = np.asarray(pd.to_numeric(pd.Series(clusters), errors="coerce").fillna(-1))
    clusters = clusters.astype(np.int64)
    colours = cluster_colours(clusters)
    color_dict: dict[int | None, Any] = {None: (0.0, 0.0, 0.0, 0.0), 0: (0.0, 0.0, 0.0, 0.0)}
    for row, label in enumerate(clusters):
        color_dict[row + 1] = colours[int(label)]
    return DirectLabelColormap(color_dict=color_dict)


SPIKE_FACTS = "spikes_"
"""Prefix of spike inference's provenance facts when they join another step's results (both
name their estimator as ``model``, its ``device`` and seed)."""


def _merged(layer: Any, new: Results) -> Results:
    """``new``'s fields over those the layer shows (its feature edits included), so spike
    inference keeps a layer's latents and clusters, and the other way round.

    Provenance is per recording: when fields of another step stay, the new step's facts
    join them under ``SPIKE_FACTS`` (replacing that step's earlier facts); otherwise the
    new facts are the provenance."""
    kept = layer.metadata.get(RESULTS_KEY)
    if not isinstance(kept, Results):
        return new
    shown = Results.from_table(layer.features, like=kept)
    values = {
        name: getattr(new, name) if getattr(new, name) is not None else getattr(shown, name)
        for name in PER_ROW
    }
    others = [name for name in PER_ROW if getattr(new, name) is None and values[name] is not None]
    if not others:
        return new
    facts = {k: v for k, v in shown.provenance.items() if not k.startswith(SPIKE_FACTS)}
    facts.update({f"{SPIKE_FACTS}{k}": v for k, v in new.provenance.items()})
    return Results(**values, provenance=facts, diagnostics=shown.diagnostics)


def put_results(layer: Any, results: Results, *, merge: bool = False) -> None:
    """Show results on a ROI layer: Results in metadata, its columns, cluster colours.

    ``merge``: keep the fields ``results`` leaves out from what the layer shows (spike
    inference adds rates and kinetics beside latents and clusters); otherwise ``results``
    replaces them all."""
    traces = traces_of(layer)
    if merge:
        results = _merged(layer, results)
    if results.n_rois != traces.n_rois:
        raise CalciumAvaeError(
            f"results have {results.n_rois} ROIs but layer '{layer.name}' has {traces.n_rois}"
        )
    layer.features = _with_results(layer.features, results)
    layer.metadata[RESULTS_KEY] = results
    if results.labels is not None:
        layer.colormap = cluster_colormap(results.labels)


def _has_latents(features: pd.DataFrame) -> bool:
    return bool(PER_ROI["latents"].flat_names(features))


def results_from_features(
    name: str, features: pd.DataFrame, metadata: dict[str, Any]
) -> tuple[Traces, Results]:
    """The recording and the results a layer shows, from its features and metadata.

    The per-ROI fields come from the features, so edits a user made there are what gets
    saved; the rest (reconstruction, provenance) from the Results in metadata.
    """
    traces = metadata.get(TRACES_KEY) if metadata else None
    if not isinstance(traces, Traces):
        raise CalciumAvaeError(
            f"layer '{name}' holds no calcium traces: only ROI layers opened by this plugin "
            "from an NWB file can be saved with AVAE results"
        )
    kept = metadata.get(RESULTS_KEY)
    spikes = getattr(kept, "spike_rates", None) if isinstance(kept, Results) else None
    if not _has_latents(features) and spikes is None:
        raise CalciumAvaeError(
            f"layer '{name}' has no AVAE results to save: apply a model (or infer spikes) first"
        )
    if len(features) != traces.n_rois:
        raise CalciumAvaeError(
            f"layer '{name}' has {len(features)} feature rows but {traces.n_rois} ROIs"
        )
    like = kept if isinstance(kept, Results) else None
    if like is not None and like.reconstruction is not None:
        if like.reconstruction.shape != traces.data.shape:
            like = replace(like, reconstruction=None)
    return traces, Results.from_table(features, like=like)


def results_of(layer: Any) -> Results:
    """The results a layer shows, or a one-line error when it has none yet."""
    if not _has_latents(layer.features):
        raise CalciumAvaeError(
            f"layer '{layer.name}' has no latents yet: apply a model to it first"
        )
    return results_from_features(layer.name, layer.features, layer.metadata)[1]
