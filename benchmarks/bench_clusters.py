"""Do neuron representations find subpopulations without labels? (issue 15's benchmark)

Three kinds of simulated recording, each with ground truth per neuron:

- ``one-type``: the paper's design, each culture one Izhikevich type (RS, IB or CH). A
  method can score here by recognising a culture's shared network bursts.
- ``mixed-type``: every culture holds RS, IB and CH neurons in equal shares
  (``--type-mix``), so type can only be read from the neuron itself; at noise 1.0 and 2.5.
- ``mixed-indicator``: every culture's neurons carry GCaMP6s, GCaMP6f or OGB-1
  (``--indicator-mix``); the label is the indicator.

Representations, each clustered by the product's automatic choice (``cluster_latents``
defaults: HDBSCAN) and by DBSCAN with the eps that fits the truth best (the paper's
protocol, an upper bound no real recording allows):

- ``pca-raw``: PCA of the traces (``PCABaseline``, the paper's baseline);
- ``timing-free``: features that do not depend on when a neuron fired: log power
  spectrum, autocorrelation and amplitude quantiles of dF/F, standardised, then PCA;
- ``kinetics``: what spike inference fits per neuron (``SpikeInference``: decay, gain,
  noise SD, mean inferred rate), standardised;
- ``crop-vae``: the default model, ``napari_calcium_avae.model.CropFeatureVAE``: a VAE on
  timing-invariant features of random crops, trained to predict another crop's features
  (its defaults: the decoder is not told the culture); ``--no-crop-vae`` skips;
- ``avae``: the paper's model (``AVAE``, defaults but fewer epochs; ``--no-avae`` skips);
- ``true-spikes``: firing statistics of the true spike trains (rate, fraction of
  inter-spike intervals under 10 ms, spikes per event). Not a method: it shows how much
  of the type is in the spikes at all, a ceiling for any method that reads spikes.

Each representation also gets a session-mixing score (``session_mixing``): among each neuron's
nearest neighbours with its own label, how evenly the cultures are represented (1 = as mixed
as the label allows, 0 = neighbours all from its own culture), a local-entropy score in the
spirit of kBET (Buttner et al. 2019).

Run: OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_clusters.py [--quick] [--out DIR]
Writes DIR/clusters.md (a table) and DIR/clusters.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import welch
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from napari_calcium_avae.analysis.clustering import cluster_latents
from napari_calcium_avae.analysis.metrics import adjusted_rand, oracle_eps_ari
from napari_calcium_avae.model import AVAE, CropFeatureVAE, PCABaseline
from napari_calcium_avae.simulate import SimulationSettings
from napari_calcium_avae.simulate.session import simulate_imaged_cultures
from napari_calcium_avae.spikes import SpikeInference

FRAME_RATE = 100.0
INDICATOR_MIX = "GCaMP6s,GCaMP6f,OGB-1"


@dataclass
class Recording:
    name: str
    traces: np.ndarray
    labels: np.ndarray
    spike_times_ms: list[np.ndarray]
    sessions: np.ndarray
    """(n,) culture index per neuron: the batch a session-aware model may condition on."""


def simulate(name: str, settings: SimulationSettings, label: str, level: int = 0) -> Recording:
    """All cultures of ``settings`` pooled; ``label`` is "type" or "indicator"."""
    traces, labels, spikes, sessions = [], [], [], []
    for k, culture in enumerate(simulate_imaged_cultures(settings)):
        traces.append(culture.noisy[level])
        labels.append(culture.neuron_types if label == "type" else culture.indicators)
        spikes += [culture.culture.spike_times_ms[i] for i in culture.imaged]
        sessions.append(np.full(len(culture.imaged), k))
    X, y = np.concatenate(traces), np.concatenate(labels)
    return Recording(name, X, y, spikes, np.concatenate(sessions))


def _common(quick: bool) -> dict:
    size = (
        {"cultures_per_type": 1, "neurons_per_culture": 20, "duration_s": 20.0}
        if quick
        else {"cultures_per_type": 3, "neurons_per_culture": 40, "duration_s": 60.0}
    )
    return {"frame_rate": FRAME_RATE, "seed": 1, **size}


def mixed_indicator(quick: bool) -> Recording:
    """The mixed-indicator recording alone (also for the experiment scripts)."""
    indicators = SimulationSettings(**_common(quick), indicator_mix=INDICATOR_MIX)
    return simulate("mixed-indicator, noise 1.0", indicators, "indicator")


def recordings(quick: bool) -> list[Recording]:
    common = _common(quick)
    mixed_cultures = 2 if quick else 6
    mixed = {**common, "cultures_per_type": mixed_cultures, "type_mix": "RS,IB,CH"}
    out = [simulate("one-type, noise 1.0", SimulationSettings(**common), "type")]
    both = SimulationSettings(**mixed, noise_levels=(1.0, 2.5))
    out += [simulate(f"mixed-type, noise {s}", both, "type", k) for k, s in enumerate((1.0, 2.5))]
    out.append(mixed_indicator(quick))
    return out


def _dff(X: np.ndarray) -> np.ndarray:
    f0 = np.percentile(X, 20, axis=1, keepdims=True)
    return (X - f0) / np.maximum(np.abs(f0), 1e-6)


def timing_free_features(X: np.ndarray, frame_rate: float) -> np.ndarray:
    """Log power spectrum (at 16 log-spaced frequencies), autocorrelation (12 log-spaced lags up to
    2 s) and dF/F quantiles: none of them changes when the neuron's events move in time."""
    y = _dff(X)
    y = y - y.mean(axis=1, keepdims=True)
    nper = min(X.shape[1], 2 ** int(np.round(np.log2(4 * frame_rate))))
    freqs, power = welch(y, fs=frame_rate, nperseg=nper, axis=1)
    at = np.geomspace(max(freqs[1], 0.1), min(frame_rate / 2, 20.0), 16)
    log_power = np.log(power + 1e-12)
    spectrum = np.stack([np.interp(at, freqs, row) for row in log_power])
    n = y.shape[1]
    f = np.fft.rfft(y, 2 * n, axis=1)
    acov = np.fft.irfft(np.abs(f) ** 2, axis=1)[:, :n]
    lags = np.unique(np.round(np.geomspace(1, min(n - 1, 2 * frame_rate), 12)).astype(int))
    acorr = acov[:, lags] / np.maximum(acov[:, :1], 1e-12)
    quantiles = np.quantile(_dff(X), [0.5, 0.9, 0.99, 1.0], axis=1).T
    return np.hstack([spectrum, acorr, quantiles])


def kinetics_features(X: np.ndarray, frame_rate: float) -> np.ndarray:
    model = SpikeInference(frame_rate=frame_rate, device="cpu").fit(X)
    rates = model.transform(X)
    decay = np.asarray(model.time_constants_, dtype=np.float64).reshape(len(X), -1).max(axis=1)
    return np.column_stack(
        [
            np.log(decay),
            np.log(np.asarray(model.gain_)),
            np.log(np.asarray(model.noise_sd_)),
            np.log(np.nanmean(rates, axis=1) + 1e-6),
        ]
    )


def true_spike_features(spike_times_ms: list[np.ndarray], duration_s: float) -> np.ndarray:
    rows = []
    for t in spike_times_ms:
        isi = np.diff(t)
        events = 1 + int(np.sum(isi >= 30.0)) if len(t) else 1
        rows.append(
            [
                np.log1p(len(t) / duration_s),
                float(np.mean(isi < 10.0)) if len(isi) else 0.0,
                np.log(len(t) / events) if len(t) else 0.0,
            ]
        )
    return np.array(rows)


def _standardised(F: np.ndarray, n_components: int = 8) -> np.ndarray:
    Z = StandardScaler().fit_transform(np.nan_to_num(F))
    if Z.shape[1] > n_components:
        Z = PCA(n_components, random_state=0).fit_transform(Z)
    return Z


def crop_vae_latents(rec: Recording, quick: bool) -> np.ndarray:
    """Latents of the product's default model (the crop-feature VAE, its defaults)."""
    model = CropFeatureVAE(FRAME_RATE, max_epochs=20 if quick else 150, random_state=0)
    return model.fit(rec.traces, sessions=rec.sessions).transform(rec.traces)


def representations(
    rec: Recording, quick: bool, avae: bool, crop_vae: bool = True
) -> dict[str, np.ndarray]:
    X = rec.traces
    duration_s = X.shape[1] / FRAME_RATE
    out = {
        "pca-raw": PCABaseline(8).fit(X).transform(X),
        "timing-free": _standardised(timing_free_features(X, FRAME_RATE)),
        "kinetics": _standardised(kinetics_features(X, FRAME_RATE)),
    }
    if crop_vae:
        out["crop-vae"] = crop_vae_latents(rec, quick)
    if avae:
        model = AVAE(max_epochs=5 if quick else 60, device="cpu", random_state=0).fit(X)
        out["avae"] = model.transform(X)
    out["true-spikes"] = _standardised(true_spike_features(rec.spike_times_ms, duration_s))
    return out


def session_mixing(
    Z: np.ndarray, sessions: np.ndarray, labels: np.ndarray, k: int = 15
) -> dict[str, float]:
    """How evenly sessions mix among each neuron's k nearest neighbours of the same label.

    Per neuron: the entropy of the session labels of its k nearest same-label neighbours
    over the entropy of that label's session shares (what perfect mixing gives); averaged
    over neurons. 1: the latent does not tell the sessions apart within a label; 0: every
    neighbour comes from the neuron's own session. Labels met in one session only are
    skipped (they cannot mix); NaN when no label spans two sessions. k draws seldom hit
    every session, so even random neighbours score below 1: ``session_mixing_chance`` is
    the same score with the sessions shuffled within each label, the level to compare with.
    """
    Z, sessions, labels = np.asarray(Z, np.float64), np.asarray(sessions), np.asarray(labels)
    shuffled = sessions.copy()
    rng = np.random.default_rng(0)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        shuffled[rows] = rng.permutation(sessions[rows])
    return {
        "session_mixing": _local_entropy(Z, sessions, labels, k),
        "session_mixing_chance": _local_entropy(Z, shuffled, labels, k),
    }


def _local_entropy(Z: np.ndarray, sessions: np.ndarray, labels: np.ndarray, k: int) -> float:
    from sklearn.neighbors import NearestNeighbors

    scores = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        _, codes = np.unique(sessions[rows], return_inverse=True)
        shares = np.bincount(codes) / len(rows)
        if len(shares) < 2 or len(rows) < 3:
            continue
        expected = -np.sum(shares * np.log(shares))
        kk = min(k, len(rows) - 1)
        _, nn = NearestNeighbors(n_neighbors=kk + 1).fit(Z[rows]).kneighbors(Z[rows])
        for neighbours in codes[nn[:, 1:]]:
            p = np.bincount(neighbours, minlength=len(shares)) / kk
            p = p[p > 0]
            scores.append(-np.sum(p * np.log(p)) / expected)
    return float(np.mean(scores)) if scores else float("nan")


def score(Z: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    _, codes = np.unique(labels, return_inverse=True)
    auto = cluster_latents(Z)
    best, _ = oracle_eps_ari(Z, codes)
    return {
        "ari_auto": adjusted_rand(codes, auto.labels),
        "clusters_auto": auto.n_clusters,
        "ari_best_eps": best,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small recordings (a smoke test)")
    parser.add_argument("--no-avae", action="store_true", help="skip the paper's model")
    parser.add_argument("--no-crop-vae", action="store_true", help="skip the crop-feature VAE")
    parser.add_argument("--out", type=Path, default=Path("bench_clusters_out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict[str, float]]] = {}
    start = time.perf_counter()
    for rec in recordings(args.quick):
        reps = representations(rec, args.quick, not args.no_avae, not args.no_crop_vae)
        results[rec.name] = {
            name: {**score(Z, rec.labels), **session_mixing(Z, rec.sessions, rec.labels)}
            for name, Z in reps.items()
        }
        shape = f"{rec.traces.shape[0]} ROIs x {rec.traces.shape[1]} frames"
        print(f"{rec.name} ({shape}):", json.dumps(results[rec.name]), flush=True)
    elapsed = time.perf_counter() - start
    methods = list(next(iter(results.values())))
    lines = [
        f"ARI without labels (product's automatic clustering) / with the best eps; clusters "
        f"found automatically in brackets. {FRAME_RATE:g} Hz, {elapsed:.0f} s on "
        f"{platform.machine()} ({platform.processor() or 'cpu'}), quick={args.quick}.",
        "",
        "| recording | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for name, row in results.items():
        cells = [
            f"{row[m]['ari_auto']:.2f} [{row[m]['clusters_auto']}] / {row[m]['ari_best_eps']:.2f}"
            for m in methods
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Session mixing among same-label neighbours (1 = cultures fully mixed, 0 = "
        "separated) / the same with sessions shuffled within labels (chance):",
        "",
    ]
    lines += ["| recording | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for name, row in results.items():
        cells = [
            f"{row[m]['session_mixing']:.2f} / {row[m]['session_mixing_chance']:.2f}"
            for m in methods
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (args.out / "clusters.md").write_text("\n".join(lines) + "\n")
    (args.out / "clusters.json").write_text(json.dumps(results, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
