"""The chain every front end runs: recordings -> model -> clusters -> Results -> NWB.

The CLI and the napari widgets call these functions and nothing else, so a result made
in the GUI is the result the command line would give.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import __version__
from .analysis import Clustering, cluster_latents, embed_2d
from .analysis.diagnostics import (
    LatentDiagnostics,
    kl_per_dimension,
    latent_diagnostics,
    latents_identical,
)
from .analysis.embedding import resolve_embedding
from .checks import usable_rows
from .errors import CalciumAvaeError, CalciumAvaeWarning
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


KL_ROIS = 2048
"""ROIs (evenly spaced) whose posteriors estimate the KL per latent dimension."""


def _recording_name(traces: Traces, i: int) -> str:
    if traces.source_file is not None:
        return Path(traces.source_file).name
    return traces.series_path or f"recording {i + 1}"


def _diagnose(
    model: TraceModel, X: np.ndarray, z: np.ndarray, recon: np.ndarray
) -> LatentDiagnostics:
    """Latent diagnostics of the usable ROIs, with the KL per dimension where the model
    has a posterior (the AVAE; the PCA baseline is judged on its latents alone)."""
    kl = None
    posterior = getattr(model, "posterior", None)
    if posterior is not None and len(X):
        rows = np.unique(np.linspace(0, len(X) - 1, min(len(X), KL_ROIS)).astype(np.int64))
        kl = kl_per_dimension(*posterior(X[rows]))
    return latent_diagnostics(z, X, recon, kl=kl)


def encode(model: TraceModel, traces_list: Sequence[Traces]) -> list[Results]:
    """Latents, denoised traces and latent diagnostics for every recording (no clusters).

    ROIs that cannot be modelled (NaN, flat) get NaN latents and reconstructions. Each
    problem the diagnostics find is a CalciumAvaeWarning naming the recording.
    """
    if not traces_list:
        raise CalciumAvaeError("no recordings given to apply the model to")
    out = []
    for i, traces in enumerate(traces_list):
        ok = _usable(traces)
        data = traces.data if ok.all() else traces.data[ok]
        z, recon = model.transform_reconstruct(data)
        recon = np.asarray(recon, dtype=np.float32)
        diagnostics = _diagnose(model, data, z, recon)
        for line in diagnostics.warnings:
            warnings.warn(f"{_recording_name(traces, i)}: {line}", CalciumAvaeWarning, stacklevel=2)
        latents = np.full((traces.n_rois, z.shape[1]), np.nan, dtype=np.float32)
        latents[ok] = z
        if not ok.all():
            full = np.full(traces.data.shape, np.nan, dtype=np.float32)
            full[ok] = recon
            recon = full
        facts = {**provenance(model, traces), **diagnostics.facts()}
        out.append(
            Results(
                latents=latents, reconstruction=recon, provenance=facts, diagnostics=diagnostics
            )
        )
    return out


def _row_blocks(results_list: Sequence[Results]) -> list[slice]:
    """Each recording's rows in the latents of all recordings stacked."""
    bounds = np.cumsum([0] + [r.n_rois for r in results_list])
    return [slice(bounds[i], bounds[i + 1]) for i in range(len(results_list))]


def _all_latents(results_list: Sequence[Results]) -> np.ndarray:
    if len({r.latents.shape[1] for r in results_list}) > 1:
        raise CalciumAvaeError(
            "the recordings hold latents of different sizes: apply one model to all"
        )
    return np.concatenate([r.latents for r in results_list])


def cluster(
    results_list: Sequence[Results], *, eps: float | str = "auto", min_samples: int = 5
) -> Clustering:
    """Cluster the latents of all recordings jointly, filling in each Results' labels.

    Joint clustering over recordings is what the paper does for cultures and conditions:
    labels are comparable across files. Re-clustering with another eps (the GUI's
    "Re-cluster") is this step alone.
    """
    all_z = _all_latents(results_list)
    clustering = cluster_latents(all_z, eps=eps, min_samples=min_samples)
    for results, rows in zip(results_list, _row_blocks(results_list), strict=True):
        results.labels = clustering.labels[rows]
        results.provenance.update(
            dbscan_eps=round(clustering.eps, 6),
            dbscan_eps_choice="auto (k-distance knee)" if clustering.eps_was_auto else "manual",
            dbscan_min_samples=clustering.min_samples,
            clustered_with=f"{len(results_list)} recording(s), {len(all_z)} ROIs",
        )
    return clustering


def embed(
    results_list: Sequence[Results], method: str | None = "auto", random_state: int = 0
) -> None:
    """A 2-D display embedding of all recordings' latents jointly, into each Results.

    Identical latent vectors get none: t-SNE would spread them into a cloud that looks
    like structure.
    """
    all_z = _all_latents(results_list)
    skip = method is not None and latents_identical(all_z)
    emb = embed_2d(all_z, method, random_state) if method and not skip else None
    how = "none" if not method else resolve_embedding(method, len(all_z))
    if skip:
        how = "none (the latents are identical across ROIs)"
    for results, rows in zip(results_list, _row_blocks(results_list), strict=True):
        results.embedding = None if emb is None else emb[rows]
        results.provenance["embedding"] = how


def apply(
    model: TraceModel,
    traces_list: Sequence[Traces],
    *,
    eps: float | str = "auto",
    min_samples: int = 5,
    embedding: str | None = "auto",
    random_state: int = 0,
    report: Callable[[str], None] | None = None,
) -> list[Results]:
    """Encode every recording, then cluster and embed them jointly.

    ``report(message)`` is called as each step starts, so that long runs show where
    they are.
    """
    say = report or (lambda message: None)
    n_rois = sum(t.n_rois for t in traces_list)
    say(f"encoding {n_rois:,} ROIs of {len(traces_list)} recording(s)")
    results = encode(model, traces_list)
    say("clustering the latents (DBSCAN)")
    cluster(results, eps=eps, min_samples=min_samples)
    if embedding:
        say(f"embedding the latents in 2-D ({resolve_embedding(embedding, n_rois)})")
    embed(results, embedding, random_state)
    return results


def frame_rate(traces: Traces) -> float:
    """The recording's frame rate; from the median frame interval when it has timestamps."""
    if traces.rate:
        return float(traces.rate)
    steps = np.diff(np.asarray(traces.timestamps if traces.timestamps is not None else []))
    steps = steps[np.isfinite(steps) & (steps > 0)]
    if not len(steps):
        raise CalciumAvaeError(
            "the recording has neither a frame rate nor increasing timestamps, so spike "
            "inference cannot tell time"
        )
    return float(1.0 / np.median(steps))


def deconvolve(
    estimator: Any,
    traces_list: Sequence[Traces],
    *,
    report: Callable[[str], None] | None = None,
) -> list[Results]:
    """Spike rates and fitted kinetics of every recording, one fit per recording.

    ``estimator`` is a scikit-learn-style spike-inference estimator (``SpikeInference``);
    a clone is fitted to each recording at its own frame rate (taken from the timestamps
    when the file has no rate).
    """
    from sklearn.base import clone

    if not traces_list:
        raise CalciumAvaeError("no recordings given to infer spikes from")
    say = report or (lambda message: None)
    out = []
    for i, traces in enumerate(traces_list):
        rate = frame_rate(traces)
        how = "rate" if traces.rate else "median timestamp interval"
        say(f"inferring spikes of {traces.n_rois:,} ROIs in {_recording_name(traces, i)}")
        model = clone(estimator).set_params(frame_rate=rate)
        model.fit(traces.data)
        spikes = model.transform(traces.data)
        decay = np.asarray(model.time_constants_, dtype=np.float64)
        if decay.ndim == 2:
            decay = decay.max(axis=1)  # AR(2): the slower root is the decay
        facts = {
            **provenance(model, traces),
            "frame_rate_from": how,
            "input_kind": model.input_kind_,
        }
        out.append(
            Results(
                spike_rates=spikes,
                decay_s=decay,
                spike_gain=np.asarray(model.gain_),
                noise_sd=np.asarray(model.noise_sd_),
                provenance=facts,
            )
        )
    return out
