"""How a recording lives in napari: a Labels layer whose features and metadata carry it.

Label value ``i + 1`` is ROI row ``i``. The features table has an ``index`` column holding
the label value, so napari maps labels to rows through it and no background row is
needed. The Traces object, its source file and series path travel in the layer's
metadata: every widget and the writer find the recording there, and nowhere else.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import CalciumAvaeError
from ..results import Results
from ..traces import Traces

TRACES_KEY = "calcium_avae_traces"
SOURCE_KEY = "calcium_avae_source"
SERIES_KEY = "calcium_avae_series"
RESULTS_KEY = "calcium_avae_results"

RESULT_PREFIXES = ("latent_", "embedding_")
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


def traces_layer_data(
    traces: Traces, name: str, reconstruction: np.ndarray | None = None
) -> list[LayerData]:
    """Reference images (below) and the ROI Labels layer (on top) of one recording.

    ``reconstruction`` is the denoised traces a file saved with its results: kept with
    the layer, like a fresh run's, so the trace plot and a later save find them.
    """
    out: list[LayerData] = []
    for image_name, image in traces.images.items():
        if np.asarray(image).ndim == 2:
            out.append((np.asarray(image), {"name": f"{name} {image_name}"}, "image"))
    labels = roi_label_image(traces)
    features = roi_features(traces)
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
    if reconstruction is not None and _latent_columns(features):
        attributes["metadata"][RESULTS_KEY] = _results(features, reconstruction, {})
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


def _result_columns(results: Results) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    for j in range(results.latents.shape[1]):
        columns[f"latent_{j}"] = results.latents[:, j]
    if results.labels is not None:
        columns["cluster"] = np.asarray(results.labels, dtype=np.int64)
    if results.embedding is not None:
        columns["embedding_0"] = results.embedding[:, 0]
        columns["embedding_1"] = results.embedding[:, 1]
    return columns


def put_results(layer: Any, results: Results) -> None:
    """Show results on a ROI layer: feature columns, cluster colours, Results in metadata.

    Earlier result columns are replaced as a whole, so a model with fewer latent
    dimensions leaves no stale ``latent_*`` columns behind.
    """
    traces = traces_of(layer)
    if results.n_rois != traces.n_rois:
        raise CalciumAvaeError(
            f"results have {results.n_rois} ROIs but layer '{layer.name}' has {traces.n_rois}"
        )
    features = layer.features.copy()
    stale = [c for c in features.columns if c.startswith(RESULT_PREFIXES) or c == "cluster"]
    features = features.drop(columns=stale)
    for name, values in _result_columns(results).items():
        features[name] = values
    layer.features = features
    layer.metadata[RESULTS_KEY] = results
    if results.labels is not None:
        layer.colormap = cluster_colormap(results.labels)


def results_from_features(
    name: str, features: pd.DataFrame, metadata: dict[str, Any]
) -> tuple[Traces, Results]:
    """The recording and the results a layer shows, read from its features.

    Features are the source of truth, so edits a user made there are what gets saved. The
    reconstruction is not a feature: it comes from the Results kept in metadata when the
    layer was applied in this session, or from the file it was read from.
    """
    traces = metadata.get(TRACES_KEY) if metadata else None
    if not isinstance(traces, Traces):
        raise CalciumAvaeError(
            f"layer '{name}' holds no calcium traces: only ROI layers opened by this plugin "
            "from an NWB file can be saved with AVAE results"
        )
    if not _latent_columns(features):
        raise CalciumAvaeError(
            f"layer '{name}' has no AVAE results to save: train and apply a model first"
        )
    if len(features) != traces.n_rois:
        raise CalciumAvaeError(
            f"layer '{name}' has {len(features)} feature rows but {traces.n_rois} ROIs"
        )
    kept = metadata.get(RESULTS_KEY)
    reconstruction = None
    if isinstance(kept, Results) and kept.reconstruction is not None:
        if kept.reconstruction.shape == traces.data.shape:
            reconstruction = kept.reconstruction
    provenance = dict(kept.provenance) if isinstance(kept, Results) else {}
    return traces, _results(features, reconstruction, provenance)


def _latent_columns(features: pd.DataFrame) -> list[str]:
    return sorted(
        (c for c in features.columns if c.startswith("latent_")),
        key=lambda c: int(c.rsplit("_", 1)[1]),
    )


def _results(
    features: pd.DataFrame, reconstruction: np.ndarray | None, provenance: dict[str, Any]
) -> Results:
    """Results from a layer's feature columns plus what features cannot hold."""
    labels = features["cluster"].to_numpy(dtype=np.int64) if "cluster" in features else None
    embedding = None
    if {"embedding_0", "embedding_1"} <= set(features.columns):
        embedding = features[["embedding_0", "embedding_1"]].to_numpy(dtype=np.float32)
    return Results(
        latents=features[_latent_columns(features)].to_numpy(dtype=np.float32),
        labels=labels,
        embedding=embedding,
        reconstruction=reconstruction,
        provenance=provenance,
    )


def latents_of(layer: Any) -> np.ndarray:
    """(n_rois, D2) latents shown on a layer, or a one-line error when it has none."""
    features = layer.features
    cols = _latent_columns(features)
    if not cols:
        raise CalciumAvaeError(
            f"layer '{layer.name}' has no latents yet: apply a model to it first"
        )
    return features[cols].to_numpy(dtype=np.float64)


def set_clusters(layer: Any, labels: np.ndarray, facts: dict[str, Any]) -> None:
    """Replace a layer's cluster labels (after re-clustering) and recolour its ROIs."""
    features = layer.features.copy()
    features["cluster"] = np.asarray(labels, dtype=np.int64)
    layer.features = features
    kept = layer.metadata.get(RESULTS_KEY)
    if isinstance(kept, Results):
        kept.labels = np.asarray(labels, dtype=np.int64)
        kept.provenance.update(facts)
    layer.colormap = cluster_colormap(labels)
