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
from .analysis.clustering import DEFAULT_METHOD, DEFAULT_MIN_SAMPLES
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
from .traces import Traces, rate_from_timestamps

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
    return _training_rows(traces_list)[0]


def _training_rows(traces_list: Sequence[Traces]) -> tuple[np.ndarray, np.ndarray]:
    """The training matrix and, per row, the index of the recording it came from."""
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
    return X, np.repeat(np.arange(len(blocks)), [len(b) for b in blocks])


def fit_iter(
    model: Any, traces_list: Sequence[Traces] | Any, stop: threading.Event | None = None
) -> Iterator[Any]:
    """Train on all recordings together, yielding the model's per-epoch reports.

    ``traces_list`` may instead be a ``model.streaming.NWBTraceDataset``: the files are
    then streamed (out-of-core training, memory bounded whatever their number)."""
    from .model import CropFeatureVAE
    from .model.streaming import NWBTraceDataset

    streamed = isinstance(traces_list, NWBTraceDataset)
    if isinstance(model, CropFeatureVAE):
        # its features are in seconds: it learns at the recordings' one frame rate, and
        # its decoder may be told which recording each trace came from
        if model.frame_rate is None:
            rates = traces_list.frame_rates() if streamed else map(frame_rate, traces_list)
            model.set_params(frame_rate=shared_frame_rate(list(rates)))
        if streamed:
            yield from model.fit_iter(traces_list, stop=stop)
            return
        X, sessions = _training_rows(traces_list)
        yield from model.fit_iter(X, stop=stop, sessions=sessions)
        return
    yield from model.fit_iter(
        traces_list if streamed else _training_rows(traces_list)[0], stop=stop
    )


def shared_frame_rate(rates: Sequence[float]) -> float:
    """The frame rate all recordings share (within the crop-feature VAE's tolerance); an
    error naming two that differ."""
    from .model.crop_vae import FRAME_RATE_TOLERANCE

    low, high = min(rates), max(rates)
    if high > low * (1 + FRAME_RATE_TOLERANCE):
        raise CalciumAvaeError(
            f"recordings have different frame rates ({low:g} and {high:g} Hz); train on "
            "recordings of one frame rate"
        )
    return float(np.median(rates))


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
    model: TraceModel,
    X: np.ndarray,
    z: np.ndarray,
    recon: np.ndarray,
    known: tuple[np.ndarray, np.ndarray] | None = None,
) -> LatentDiagnostics:
    """Latent diagnostics of the usable ROIs, with the KL per dimension where the model
    has a posterior (the AVAE; the PCA baseline is judged on its latents alone).
    ``known``: the posterior (means, log-variances) of all of X, when already computed."""
    kl = None
    posterior = getattr(model, "posterior", None)
    if posterior is not None and len(X):
        rows = np.unique(np.linspace(0, len(X) - 1, min(len(X), KL_ROIS)).astype(np.int64))
        kl = kl_per_dimension(*(posterior(X[rows]) if known is None else (p[rows] for p in known)))
    return latent_diagnostics(z, X, recon, kl=kl)


def encode(model: TraceModel, traces_list: Sequence[Traces]) -> list[Results]:
    """Latents, denoised traces and latent diagnostics for every recording (no clusters).

    A model that denoises with the calcium observation model (``calcium_fit``, the
    crop-feature VAE) also gives each ROI's inferred spikes and fitted kinetics, from the
    same fit as its denoised traces, as ``deconvolve`` would. ROIs that cannot be modelled
    (NaN, flat) get NaN latents and reconstructions. Each problem the diagnostics find is
    a CalciumAvaeWarning naming the recording.
    """
    if not traces_list:
        raise CalciumAvaeError("no recordings given to apply the model to")
    out = []
    for i, traces in enumerate(traces_list):
        check_rate = getattr(model, "check_rate", None)
        if check_rate is not None:  # a model whose features are in seconds
            check_rate(frame_rate(traces))
        ok = _usable(traces)
        data = traces.data if ok.all() else traces.data[ok]
        calcium_fit = getattr(model, "calcium_fit", None)
        spikes, known = None, None
        if calcium_fit is not None:
            inference = calcium_fit(data)
            known = model.posterior(data)  # its means are the latents: features read once
            z, recon = known[0], inference.denoise(data)
            spikes = _spike_fields(inference, data)
        else:
            z, recon = model.transform_reconstruct(data)
        recon = np.asarray(recon, dtype=np.float32)
        diagnostics = _diagnose(model, data, z, recon, known)
        for line in diagnostics.warnings:
            warnings.warn(f"{_recording_name(traces, i)}: {line}", CalciumAvaeWarning, stacklevel=2)
        facts = {**provenance(model, traces), **diagnostics.facts()}
        per_roi = {"latents": np.asarray(z, np.float32), "reconstruction": recon, **(spikes or {})}
        out.append(
            Results(
                **{k: _on_all_rois(v, ok) for k, v in per_roi.items()},
                provenance=facts,
                diagnostics=diagnostics,
            )
        )
    return out


def encode_latents(model: TraceModel, traces: Traces) -> Results:
    """The latents alone (no denoising, no diagnostics): the first pass of an apply that
    holds one recording at a time. Its latents are the ones ``encode`` gives, so the
    joint clustering of them carries over to the full results (``adopt_joint``)."""
    check_rate = getattr(model, "check_rate", None)
    if check_rate is not None:
        check_rate(frame_rate(traces))
    with warnings.catch_warnings():  # the second pass, ``encode``, says them
        warnings.simplefilter("ignore", CalciumAvaeWarning)
        ok = _usable(traces)
    z = model.transform(traces.data if ok.all() else traces.data[ok])
    return Results(latents=_on_all_rois(np.asarray(z, np.float32), ok))


def adopt_joint(results: Results, joint: Results) -> None:
    """Give ``results`` the joint clustering and embedding that ``cluster`` and ``embed``
    put into ``joint`` (made by ``encode_latents`` from the same recording)."""
    if not np.array_equal(results.latents, joint.latents, equal_nan=True):
        raise RuntimeError("the two passes over a recording gave different latents")
    for name in ("labels", "probabilities", "outlier_scores", "embedding"):
        setattr(results, name, getattr(joint, name))
    for stale in _CLUSTER_FACTS:
        results.provenance.pop(stale, None)
    for key in (*_CLUSTER_FACTS, "clustered_with", "embedding"):
        if key in joint.provenance:
            results.provenance[key] = joint.provenance[key]


def _on_all_rois(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Values of the usable ROIs placed on all of them, NaN for the others."""
    values = np.asarray(values)
    if ok.all():
        return values
    dtype = np.float32 if values.dtype == np.float32 else np.float64
    full = np.full((len(ok), *values.shape[1:]), np.nan, dtype=dtype)
    full[ok] = values
    return full


def _spike_fields(inference: Any, X: np.ndarray) -> dict[str, np.ndarray]:
    """Inferred spikes and fitted kinetics of a fitted ``SpikeInference``, as Results
    fields (AR(2): the slower time constant is the decay)."""
    tau = np.asarray(inference.time_constants_, dtype=np.float64)
    return {
        "spike_rates": inference.transform(X),
        "decay_s": tau.max(axis=1) if tau.ndim == 2 else tau,
        "spike_gain": np.asarray(inference.gain_, dtype=np.float64),
        "noise_sd": np.asarray(inference.noise_sd_, dtype=np.float64),
    }


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
    results_list: Sequence[Results],
    *,
    method: str = DEFAULT_METHOD,
    eps: float | str | None = None,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    min_cluster_size: int | None = None,
) -> Clustering:
    """Cluster the latents of all recordings jointly, filling in each Results' labels,
    membership probabilities and outlier scores.

    Joint clustering over recordings is what the paper does for cultures and conditions:
    labels are comparable across files. Re-clustering with other settings (the GUI's
    "Re-cluster") is this step alone. ``method`` is one of ``analysis.clustering.METHODS``;
    ``eps`` ("auto" or a radius) is DBSCAN's, ``min_cluster_size`` HDBSCAN's.
    """
    all_z = _all_latents(results_list)
    clustering = cluster_latents(
        all_z, eps, min_samples, method=method, min_cluster_size=min_cluster_size
    )
    facts: dict[str, str | int | float] = {
        "cluster_method": clustering.method,
        "cluster_min_samples": clustering.min_samples,
        "clustered_with": f"{len(results_list)} recording(s), {len(all_z)} ROIs",
    }
    if clustering.method == "dbscan":
        facts["dbscan_eps"] = round(clustering.eps, 6)
        facts["dbscan_eps_choice"] = (
            "auto (k-distance knee)" if clustering.eps_was_auto else "manual"
        )
    else:
        facts["hdbscan_min_cluster_size"] = int(clustering.min_cluster_size or 0)
        facts["hdbscan_cluster_stability"] = (
            ", ".join(f"{label}: {value:.4g}" for label, value in enumerate(clustering.stability))
            or "none"
        )
    for results, rows in zip(results_list, _row_blocks(results_list), strict=True):
        results.labels = clustering.labels[rows]
        # float32, as the NWB columns hold them: a file gives back what apply made
        results.probabilities = clustering.probabilities[rows].astype(np.float32)
        results.outlier_scores = clustering.outlier_scores[rows].astype(np.float32)
        for stale in _CLUSTER_FACTS:
            results.provenance.pop(stale, None)
        results.provenance.update(facts)
    return clustering


_CLUSTER_FACTS = (
    "cluster_method",
    "cluster_min_samples",
    "dbscan_eps",
    "dbscan_eps_choice",
    "dbscan_min_samples",
    "hdbscan_min_cluster_size",
    "hdbscan_cluster_stability",
)
"""Provenance keys one clustering writes: a re-clustering removes the previous method's."""


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
    method: str = DEFAULT_METHOD,
    eps: float | str | None = None,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    min_cluster_size: int | None = None,
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
    say(f"clustering the latents ({method.upper()})")
    cluster(
        results,
        method=method,
        eps=eps,
        min_samples=min_samples,
        min_cluster_size=min_cluster_size,
    )
    if embedding:
        say(f"embedding the latents in 2-D ({resolve_embedding(embedding, n_rois)})")
    embed(results, embedding, random_state)
    return results


def frame_rate(traces: Traces) -> float:
    """The recording's frame rate; from the median frame interval when it has timestamps."""
    rate = traces.rate or rate_from_timestamps(traces.timestamps)
    if not rate:
        raise CalciumAvaeError(
            "the recording has neither a frame rate nor increasing timestamps, so spike "
            "inference cannot tell time"
        )
    return float(rate)


AUTO_BLOCKS = 100
"""``chunk_rois="auto"``: about this many blocks per recording (a progress step each)."""
AUTO_MIN_BLOCK_ROIS = 16
"""``chunk_rois="auto"``: at least this many ROIs per block. Each block is a fit of its own
with its own convergence test; 64 ROIs x 2,000 frames on one CPU thread took 7.7 s whole,
4.6 s in blocks of 16 and 7.4 s in blocks of 4."""


def block_rois(n_rois: int, chunk_rois: int | str | None) -> int:
    """ROIs per block of a spike-inference fit: all of them (None), a number, or "auto"."""
    if chunk_rois is None:
        return max(1, n_rois)
    if chunk_rois == "auto":
        return max(AUTO_MIN_BLOCK_ROIS, -(-n_rois // AUTO_BLOCKS))
    if isinstance(chunk_rois, str) or int(chunk_rois) < 1:
        raise CalciumAvaeError(f"chunk_rois must be 'auto' or at least 1, not {chunk_rois!r}")
    return int(chunk_rois)


def _fit_blocks(
    model: Any,
    X: np.ndarray,
    size: int,
    stop: threading.Event | None,
    block_done: Callable[[int], None],
) -> list[tuple[slice, Any]]:
    """A clone of ``model`` fitted to each block of ``size`` rows in turn, until ``stop``.

    Blocked, the recording is checked whole first (so an error names its row) and every
    block uses the input kind the whole recording gives; the estimator's warning about
    ROIs without spikes is given once, in total, rather than once per block."""
    from sklearn.base import clone

    n = X.shape[0]
    if size >= n:
        model.fit(X)
        block_done(n)
        return [(slice(0, n), model)]
    from .spikes.inference import NoSpikesWarning, no_spikes_message

    if hasattr(model, "check_input") and model.get_params().get("input_kind") == "auto":
        model.set_params(input_kind=model.check_input(X))
    fitted = []
    for s0 in range(0, n, size):
        if stop is not None and stop.is_set():
            break
        rows = slice(s0, min(n, s0 + size))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoSpikesWarning)
            fitted.append((rows, clone(model).fit(X[rows])))
        block_done(rows.stop - rows.start)
    quiet = sum(int(np.sum(getattr(m, "noise_only_", 0))) for _, m in fitted)
    if quiet:
        done = sum(r.stop - r.start for r, _ in fitted)
        warnings.warn(no_spikes_message(quiet, done), NoSpikesWarning, stacklevel=3)
    return fitted


def deconvolve(
    estimator: Any,
    traces_list: Sequence[Traces],
    *,
    report: Callable[[str], None] | None = None,
    chunk_rois: int | str | None = None,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> list[Results]:
    """Spike rates and fitted kinetics of every recording, one fit per recording.

    ``estimator`` is a scikit-learn-style spike-inference estimator (``SpikeInference``);
    a clone is fitted to each recording at its own frame rate (taken from the timestamps
    when the file has no rate).

    ``chunk_rois`` (for a front end that shows progress and can stop): fit blocks of that
    many ROIs one after another, each by a clone of its own ("auto": see ``block_rois``);
    None (the CLI) fits each recording whole. ROIs are fitted independently, so blocks
    change a result only through each fit's joint stopping test. ``progress(done, total)``
    is called after each block with the ROIs finished over all recordings. ``stop`` is
    checked before each block: once it is set, the recording in progress keeps the blocks
    that finished (the other ROIs' rates and kinetics are NaN and its provenance says
    ``stopped_after_rois``), and recordings not begun get no Results, so the list returned
    is then shorter than ``traces_list``.
    """
    from sklearn.base import clone

    if not traces_list:
        raise CalciumAvaeError("no recordings given to infer spikes from")
    say = report or (lambda message: None)
    rates = [frame_rate(traces) for traces in traces_list]  # every one, before any fit
    total = sum(traces.n_rois for traces in traces_list)
    finished = 0

    def block_done(n_rows: int) -> None:
        nonlocal finished
        finished += n_rows
        if progress is not None:
            progress(finished, total)

    out = []
    for i, (traces, rate) in enumerate(zip(traces_list, rates, strict=True)):
        if stop is not None and stop.is_set():
            break
        how = "rate" if traces.rate else "median timestamp interval"
        say(f"inferring spikes of {traces.n_rois:,} ROIs in {_recording_name(traces, i)}")
        size = block_rois(traces.n_rois, chunk_rois)
        model = clone(estimator).set_params(frame_rate=rate)
        fitted = _fit_blocks(model, traces.data, size, stop, block_done)
        if not fitted:
            break
        n = traces.n_rois
        spikes = np.full(traces.data.shape, np.nan, dtype=np.float32)
        decay, gain, noise = (np.full(n, np.nan) for _ in range(3))
        for rows, block in fitted:
            fields = _spike_fields(block, traces.data[rows])
            spikes[rows] = fields["spike_rates"]
            decay[rows] = fields["decay_s"]
            gain[rows] = fields["spike_gain"]
            noise[rows] = fields["noise_sd"]
        first = fitted[0][1]
        facts = {
            **provenance(first, traces),
            "frame_rate_from": how,
            "input_kind": first.input_kind_,
        }
        if size < n:
            facts["roi_block_size"] = size
        done = fitted[-1][0].stop
        if done < n:
            facts["stopped_after_rois"] = done
        out.append(
            Results(
                spike_rates=spikes,
                decay_s=decay,
                spike_gain=gain,
                noise_sd=noise,
                provenance=facts,
            )
        )
    return out
