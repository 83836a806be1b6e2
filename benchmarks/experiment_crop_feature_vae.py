"""Experiment (issue 15): a VAE on timing-invariant features of random crops, trained to
predict the features of another crop of the same neuron.

The hypothesis: a neuron latent should carry what is constant about the neuron, so the
encoder sees only features that do not change when the neuron's events move in time
(log power spectrum in log-spaced bands over the noise floor, autocorrelation at log-spaced
lags, quantiles of the noise-normalised amplitude and of dF/F, the signal-to-noise ratio
and a conditional decay: how much of a raised signal is left a lag later), computed on one
random crop, and the decoder must predict the same features of a *different* crop of that
neuron, so only what the two crops share pays. The observation variance is learned per
feature (as in the MLP VAEs of the paper authors' follow-up, Ros et al., ICASSP 2026), and
the decoder may be told the session (a one-hot), so that the latent need not encode a
session's brightness, noise or network rhythm (as in scVI, Lopez et al. 2018). The latent of
a neuron is the posterior mean averaged over evenly spaced crops.

The model is now the product's default (``napari_calcium_avae.model.CropFeatureVAE``);
this script is the experiment behind it. On our simulated mixed-indicator recordings it
clusters as well as the same crop features averaged and put through PCA, no better (ARI
about 0.6 either way; see docs/benchmarks.md, issue 15). GCaMP6s and OGB-1 neurons form
touching clouds in every representation we tried; even a supervised classifier on the
latents misassigns 7-9 %.

Run: OMP_NUM_THREADS=2 .venv/bin/python benchmarks/experiment_crop_feature_vae.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from napari_calcium_avae.model import CropFeatureVAE
from napari_calcium_avae.model.crop_features import features_of_crops


def averaged_crop_features(X: np.ndarray, frame_rate: float, crop_s: float = 20.0) -> np.ndarray:
    """The VAE's own input averaged over 16 evenly spaced crops: the control that tells
    what the VAE adds to its features."""
    crop_frames = int(min(X.shape[1], round(crop_s * frame_rate)))
    return features_of_crops(np.asarray(X, np.float64), frame_rate, crop_frames, 16).mean(axis=1)


def epoch_seconds(n_rois: int = 750, n_frames: int = 15000, epochs: int = 3) -> dict[str, float]:
    """Time of the feature pass and of one epoch on random-walk traces of issue 15's size."""
    rng = np.random.default_rng(0)
    X = 100.0 + np.cumsum(rng.normal(0, 0.1, (n_rois, n_frames)), axis=1)
    X += rng.normal(0, 1.0, X.shape)
    start = time.perf_counter()
    model = CropFeatureVAE(frame_rate=100.0, max_epochs=epochs, patience=epochs).fit(X)
    total = time.perf_counter() - start
    per_epoch = float(np.median([h["seconds"] for h in model.history_]))
    return {"fit_s": total, "epoch_s": per_epoch, "features_s": total - epochs * per_epoch}


def supervised_accuracy(Z: np.ndarray, labels: np.ndarray) -> float:
    """5-fold accuracy of a logistic regression on the latents: how much of the label is
    in them at all, whether or not it forms separate clouds a clustering can find."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    return float(cross_val_score(model, Z, labels, cv=5).mean())


def _zebrafish_check() -> dict[str, float] | None:
    """The shared zebrafish recording against its published assemblies (main = first listed;
    neurons in none are their own group). A sanity check only: assemblies are defined by
    co-activity, which timing-invariant features discard by design."""
    import csv

    from bench_clusters import score
    from napari_calcium_avae.model import PCABaseline
    from napari_calcium_avae.nwb.read import read_traces

    folder = Path("/work/shared/data")
    nwb = folder / "zebrafish_tectum_f3.nwb"
    if not nwb.is_file():
        return None
    traces = read_traces(nwb)
    X = np.asarray(traces.data, dtype=np.float64)
    with open(folder / "zebrafish_tectum_f3_assemblies.csv") as table:
        rows = sorted(csv.DictReader(table), key=lambda r: int(r["roi"]))
    labels = np.array([(r["assemblies"].split() or ["none"])[0] for r in rows])
    rate = float(traces.rate) if traces.rate else 2.2
    model = CropFeatureVAE(frame_rate=rate, crop_s=0.25 * X.shape[1] / rate, max_epochs=150)
    Z = model.fit(X).transform(X)
    Zp = PCABaseline(8).fit(X).transform(X)
    return {"crop-vae": score(Z, labels), "pca-raw": score(Zp, labels)}


def main() -> None:
    import bench_clusters as bench

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("experiment_crop_feature_vae_out"))
    parser.add_argument(
        "--duration-s",
        type=float,
        default=None,
        help="record this long instead of bench_clusters' 60 s (is the limit the data?)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="model seeds per conditioning setting")
    parser.add_argument(
        "--skip-checks", action="store_true", help="skip the speed and zebrafish checks"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": f"{platform.machine()} {platform.processor()}"}
    if args.duration_s is None:
        rec = bench.mixed_indicator(args.quick)
    else:
        from napari_calcium_avae.simulate import SimulationSettings

        common = {**bench._common(args.quick), "duration_s": args.duration_s}
        settings = SimulationSettings(**common, indicator_mix=bench.INDICATOR_MIX)
        rec = bench.simulate(f"mixed-indicator, {args.duration_s:g} s", settings, "indicator")
    results["recording"] = f"{rec.name}: {rec.traces.shape[0]} ROIs x {rec.traces.shape[1]} frames"
    X, labels, sessions = rec.traces, rec.labels, rec.sessions
    epochs = 20 if args.quick else 150
    rows = {
        "timing-free (bench)": bench._standardised(bench.timing_free_features(X, bench.FRAME_RATE)),
        "crop features, averaged + PCA": bench._standardised(
            averaged_crop_features(X, bench.FRAME_RATE)
        ),
    }
    for cond in (True, False):
        for seed in range(args.seeds):
            model = CropFeatureVAE(
                bench.FRAME_RATE, max_epochs=epochs, condition_on_session=cond, random_state=seed
            )
            rows[f"crop-VAE, session-conditioned={cond}, seed {seed}"] = model.fit(
                X, sessions=sessions
            ).transform(X)
    table = {}
    for name, Z in rows.items():
        table[name] = {
            **bench.score(Z, labels),
            **bench.session_mixing(Z, sessions, labels),
            "supervised_accuracy": supervised_accuracy(Z, labels),
        }
        print(name, json.dumps(table[name]), flush=True)
    results["mixed-indicator"] = table
    if args.skip_checks:
        (args.out / "results.json").write_text(json.dumps(results, indent=2, default=float))
        return
    results["speed_750x15000"] = epoch_seconds(*((100, 3000) if args.quick else (750, 15000)))
    print("speed", results["speed_750x15000"], flush=True)
    results["zebrafish"] = _zebrafish_check()
    print("zebrafish", results["zebrafish"], flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
