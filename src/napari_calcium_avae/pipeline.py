"""The chain every front end runs: recordings -> model -> clusters -> Results -> NWB.

The CLI and the napari widgets call these functions and nothing else, so a result made
in the GUI is the result the command line would give.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import __version__
from .analysis import Clustering, cluster_latents, embed_2d
from .checks import usable_rows
from .errors import CalciumAvaeError
from .results import Results
from .traces import Traces

MIN_FRAMES = 16
"""Shortest trace we model: below this neither architecture has anything to learn from."""
MIN_TRAINING_ROIS = 4
"""Training needs a validation split with at least one trace in it."""


class TraceModel(Protocol):
    """What the pipeline needs of a model: the AVAE and the PCA baseline both qualify."""

    def transform(self, X: np.ndarray) -> np.ndarray: ...
    def reconstruct(self, X: np.ndarray) -> np.ndarray: ...
    def transform_reconstruct(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
    def get_params(self) -> dict[str, Any]: ...


def _usable(traces: Traces, min_rois: int = 1) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        return usable_rows(
            traces.data, min_frames=MIN_FRAMES, min_rois=min_rois, roi_ids=traces.roi_ids
        )


def training_matrix(traces_list: Sequence[Traces]) -> np.ndarray:
    """Usable traces of all recordings stacked, ROIs x frames.

    Recordings must share their length: the released architecture has a fixed input
    size, and silently cropping a recording would change what the model learns.
    """
    if not traces_list:
        raise CalciumAvaeError("no recordings given to train on")
    lengths = sorted({t.n_frames for t in traces_list})
    if len(lengths) > 1:
        raise CalciumAvaeError(
            f"recordings have different numbers of frames ({', '.join(map(str, lengths))}); "
            "train on recordings of one length"
        )
    blocks = [t.data[_usable(t)] for t in traces_list]
    X = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    if len(X) < MIN_TRAINING_ROIS:
        raise CalciumAvaeError(
            f"only {len(X)} usable ROI(s) to train on; at least {MIN_TRAINING_ROIS} are needed"
        )
    return X


def fit_iter(
    model: Any, traces_list: Sequence[Traces], stop: threading.Event | None = None
) -> Iterator[Any]:
    """Train on all recordings together, yielding the model's per-epoch reports."""
    X = training_matrix(traces_list)
    yield from model.fit_iter(X, stop=stop)


def provenance(model: TraceModel, traces: Traces) -> dict[str, str | int | float]:
    """Flat, human-readable facts about how a result was made, for NWB descriptions."""
    facts: dict[str, str | int | float] = {
        "software": "napari-calcium-avae",
        "version": __version__,
        "model": type(model).__name__,
    }
    for key, value in model.get_params().items():
        if isinstance(value, str | int | float | bool) or value is None:
            facts[key] = str(value) if value is None or isinstance(value, bool) else value
    facts["source_series"] = traces.series_path or "in-memory"
    if traces.source_file is not None:
        facts["source_file"] = Path(traces.source_file).name
    return facts


def encode(model: TraceModel, traces_list: Sequence[Traces]) -> list[Results]:
    """Latents and denoised traces for every recording (no clustering yet).

    ROIs that cannot be modelled (NaN, flat) get NaN latents and reconstructions.
    """
    if not traces_list:
        raise CalciumAvaeError("no recordings given to apply the model to")
    out = []
    for traces in traces_list:
        ok = _usable(traces)
        data = traces.data if ok.all() else traces.data[ok]
        z, recon = model.transform_reconstruct(data)
        latents = np.full((traces.n_rois, z.shape[1]), np.nan, dtype=np.float32)
        latents[ok] = z
        recon = np.asarray(recon, dtype=np.float32)
        if not ok.all():
            full = np.full(traces.data.shape, np.nan, dtype=np.float32)
            full[ok] = recon
            recon = full
        out.append(
            Results(latents=latents, reconstruction=recon, provenance=provenance(model, traces))
        )
    return out


def cluster(
    results_list: Sequence[Results],
    *,
    eps: float | str = "auto",
    min_samples: int = 5,
    embedding: str | None = "tsne",
    random_state: int = 0,
) -> Clustering:
    """Cluster and embed the latents of all recordings jointly, filling in each Results.

    Joint clustering over recordings is what the paper does for cultures and conditions:
    labels are comparable across files. Re-running with another eps only redoes this step.
    """
    all_z = np.concatenate([r.latents for r in results_list])
    clustering = cluster_latents(all_z, eps=eps, min_samples=min_samples)
    emb = embed_2d(all_z, embedding, random_state) if embedding else None
    bounds = np.cumsum([0] + [r.n_rois for r in results_list])
    for i, results in enumerate(results_list):
        rows = slice(bounds[i], bounds[i + 1])
        results.labels = clustering.labels[rows]
        results.embedding = None if emb is None else emb[rows]
        results.provenance.update(
            clustering_facts(clustering),
            embedding=embedding or "none",
            clustered_with=f"{len(results_list)} recording(s), {len(all_z)} ROIs",
        )
    return clustering


def clustering_facts(clustering: Clustering) -> dict[str, str | int | float]:
    """How the labels were made, for provenance (also after re-clustering in the GUI)."""
    return {
        "dbscan_eps": round(clustering.eps, 6),
        "dbscan_eps_choice": "auto (k-distance knee)" if clustering.eps_was_auto else "manual",
        "dbscan_min_samples": clustering.min_samples,
    }


def apply(
    model: TraceModel,
    traces_list: Sequence[Traces],
    *,
    eps: float | str = "auto",
    min_samples: int = 5,
    embedding: str | None = "tsne",
    random_state: int = 0,
) -> list[Results]:
    """Encode every recording, then cluster and embed them jointly."""
    results = encode(model, traces_list)
    cluster(
        results, eps=eps, min_samples=min_samples, embedding=embedding, random_state=random_state
    )
    return results
