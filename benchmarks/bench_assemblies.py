"""Assemblies: planted groups in simulation, the published zebrafish assemblies, and speed.

Run: .venv/bin/python benchmarks/bench_assemblies.py [--quick] [--rates] [--full-size]
     [--parts planted,zebrafish,speed] [-o bench-output/assemblies]

Planted assemblies (built here, no network simulator): Poisson neurons (0.5 Hz) of which
groups fire together at shared activations (each group 0.1 Hz; each member joins an
activation with probability 0.7 and fires Poisson(2) spikes in it); spikes -> calcium
AR(1) with GCaMP6s' decay (1.82 s) at 10 Hz -> fluorescence in the simulator's units
(baseline F0 = 42, 0.113 dF/F per spike, so one spike adds 4.75) plus Gaussian noise of SD
sigma in {0.5, 1, 2.5, 5} (sigma 2.5: one spike is 1.9 noise SDs). 150 neurons, 6
assemblies of 15 and 60 neurons in none, 6,000 frames (10 min), 3 seeds. Score: ARI of the
main assembly against the planted one (neurons in none are a class of their own), and the
number found; a control without assemblies counts what noise yields.

Zebrafish: /work/shared/data/zebrafish_tectum_f3.nwb (Triplett, Avitan & Goodhill 2018;
75 ROIs x 5,660 frames) against its published assemblies (first listed = main, as
analysis.label_table reads them; none = own class). Also the per-assembly best Jaccard
overlap of memberships, and PCA of the raw traces + DBSCAN at its best eps (the issue's
reference point, 0.33 on a similar fish), and the published memberships read with the
last listed assembly as main: how far the score depends on that convention.

Methods: every AssemblyDetector method ("ica", "graph", "events"; see its module).

Speed: random data with 20 planted groups of 50, ROIs x frames from 1,000 x 3,000 upwards
(--full-size adds 10,000 x 30,000), one process, the threads the machine gives.

Writes results.csv and summary.md to the output folder and prints the summary.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.signal import lfilter
from sklearn.metrics import adjusted_rand_score

from napari_calcium_avae.population import AssemblyDetector
from napari_calcium_avae.population.assemblies import METHODS

ZEBRAFISH = Path("/work/shared/data/zebrafish_tectum_f3.nwb")
ZEBRAFISH_CSV = Path("/work/shared/data/zebrafish_tectum_f3_assemblies.csv")
F0, AMPLITUDE, DECAY_S, FRAME_RATE = 42.0, 0.113, 1.82, 10.0


def planted(
    n: int = 150,
    groups: int = 6,
    size: int = 15,
    frames: int = 6000,
    sigma: float = 2.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fluorescence (ROIs x frames), each neuron's planted assembly (-1: none), spikes."""
    rng = np.random.default_rng(seed)
    labels = np.full(n, -1)
    order = rng.permutation(n)
    for a in range(groups):
        labels[order[a * size : (a + 1) * size]] = a
    spikes = rng.poisson(0.5 / FRAME_RATE, (n, frames)).astype(np.float64)
    for a in range(groups):
        on = np.flatnonzero(rng.random(frames) < 0.1 / FRAME_RATE)
        rows = np.flatnonzero(labels == a)
        joins = rng.random((rows.size, on.size)) < 0.7
        spikes[np.ix_(rows, on)] += rng.poisson(2.0, (rows.size, on.size)) * joins
    gamma = np.exp(-1.0 / (FRAME_RATE * DECAY_S))
    calcium = lfilter([1.0], [1.0, -gamma], spikes, axis=1)
    fluorescence = F0 * (1 + AMPLITUDE * calcium) + sigma * rng.standard_normal((n, frames))
    return fluorescence.astype(np.float32), labels, spikes


def inferred_rates(traces: np.ndarray, frame_rate: float) -> np.ndarray:
    from napari_calcium_avae.spikes import SpikeInference

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpikeInference(frame_rate=frame_rate, device="cpu").fit(traces)
        return model.transform(traces)


def fit(data: np.ndarray, **params) -> tuple[AssemblyDetector, float]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = AssemblyDetector(**params).fit(data)
    return detector, time.perf_counter() - start


def bench_planted(rows: list[dict], seeds: int, use_rates: bool) -> None:
    for sigma in (0.5, 1.0, 2.5, 5.0):
        for seed in range(seeds):
            traces, truth, _ = planted(sigma=sigma, seed=seed)
            inputs = {"traces": traces}
            if use_rates:
                inputs["rates"] = inferred_rates(traces, FRAME_RATE)
            for source, data in inputs.items():
                for method in METHODS:
                    det, seconds = fit(data, method=method)
                    rows.append(
                        {
                            "part": "planted",
                            "case": f"sigma={sigma:g}",
                            "seed": seed,
                            "input": source,
                            "method": method,
                            "ari": adjusted_rand_score(truth, det.labels_),
                            "found": det.n_assemblies_,
                            "true": 6,
                            "seconds": seconds,
                        }
                    )
    for seed in range(seeds):
        traces, truth, _ = planted(groups=0, seed=seed)
        for method in METHODS:
            det, seconds = fit(traces, method=method)
            rows.append(
                {
                    "part": "planted",
                    "case": "no assemblies, sigma=2.5",
                    "seed": seed,
                    "input": "traces",
                    "method": method,
                    "ari": float("nan"),
                    "found": det.n_assemblies_,
                    "true": 0,
                    "seconds": seconds,
                }
            )


def published_memberships(n_rois: int) -> np.ndarray:
    import pandas as pd

    table = pd.read_csv(ZEBRAFISH_CSV, dtype=str, keep_default_na=False)
    names = sorted({int(a) for cell in table["assemblies"] for a in cell.split()})
    member = np.zeros((n_rois, len(names)), dtype=bool)
    for roi, cell in zip(table["roi"].astype(int), table["assemblies"], strict=True):
        for a in cell.split():
            member[roi, names.index(int(a))] = True
    return member


def best_jaccard(reference: np.ndarray, found: np.ndarray) -> list[float]:
    out = []
    for a in range(reference.shape[1]):
        scores = [
            (reference[:, a] & found[:, b]).sum() / max((reference[:, a] | found[:, b]).sum(), 1)
            for b in range(found.shape[1])
        ]
        out.append(max(scores, default=0.0))
    return out


def pca_dbscan_best(traces: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """PCA of the raw traces (10 components of the z-scored traces) + DBSCAN, best eps."""
    from sklearn.cluster import DBSCAN
    from sklearn.decomposition import PCA

    z = (traces - traces.mean(1, keepdims=True)) / traces.std(1, keepdims=True)
    points = PCA(n_components=10, random_state=0).fit_transform(z)
    points /= np.linalg.norm(points, axis=1, keepdims=True)  # cosine-like distances
    best = (-1.0, float("nan"))
    for eps in np.linspace(0.05, 1.5, 59):
        labels = DBSCAN(eps=eps, min_samples=3).fit_predict(points)
        best = max(best, (adjusted_rand_score(reference, labels), float(eps)))
    return best


def bench_zebrafish(rows: list[dict], use_rates: bool) -> list[str]:
    from napari_calcium_avae.analysis.label_table import read_label_table
    from napari_calcium_avae.nwb import read_traces

    notes: list[str] = []
    if not ZEBRAFISH.exists():
        return [f"zebrafish recording not found at {ZEBRAFISH}: skipped"]
    traces = read_traces(ZEBRAFISH)
    reference = read_label_table(ZEBRAFISH_CSV, traces.n_rois).labels
    member = published_memberships(traces.n_rois)
    inputs = {"traces": traces.data}
    if use_rates:
        inputs["rates"] = inferred_rates(traces.data, float(traces.rate))
    variants = [
        ("ica", {"method": "ica"}),
        ("ica, n=4", {"method": "ica", "n_assemblies": 4}),
        ("graph", {"method": "graph"}),
        ("graph, n=4", {"method": "graph", "n_assemblies": 4}),
        ("events", {"method": "events"}),
        ("events, n=4", {"method": "events", "n_assemblies": 4}),
        # how far the Louvain seeds move the score (one row each, summarised together)
        *[
            ("events, random_state 0-5", {"method": "events", "random_state": seed})
            for seed in range(6)
        ],
    ]
    for source, data in inputs.items():
        for name, params in variants:
            det, seconds = fit(data, **params)
            jaccard = best_jaccard(member, det.memberships_)
            rows.append(
                {
                    "part": "zebrafish",
                    "case": name,
                    "seed": 0,
                    "input": source,
                    "method": params["method"],
                    "ari": adjusted_rand_score(reference, det.labels_),
                    "found": det.n_assemblies_,
                    "true": member.shape[1],
                    "seconds": seconds,
                    "jaccard": " ".join(f"{j:.2f}" for j in jaccard),
                }
            )
    # how much the one-label-per-neuron score depends on which listed assembly is "main":
    # the published memberships read with the last listed as main, scored like a detector
    table = ZEBRAFISH_CSV.read_text().splitlines()[1:]
    last = np.full(traces.n_rois, -1)
    for line in table:
        roi, cell = line.split(",", 1)
        if cell.split():
            last[int(roi)] = int(cell.split()[-1])
    rows.append(
        {
            "part": "zebrafish",
            "case": "published memberships, last listed as main (a ceiling for any rule)",
            "seed": 0,
            "input": "-",
            "method": "published",
            "ari": adjusted_rand_score(reference, last),
            "found": member.shape[1],
            "true": member.shape[1],
            "seconds": float("nan"),
        }
    )
    ari, eps = pca_dbscan_best(traces.data, reference)
    rows.append(
        {
            "part": "zebrafish",
            "case": f"PCA raw + DBSCAN, best eps={eps:.2f}",
            "seed": 0,
            "input": "traces",
            "method": "pca-dbscan",
            "ari": ari,
            "found": float("nan"),
            "true": member.shape[1],
            "seconds": float("nan"),
        }
    )
    return notes


def speed_data(n: int, t: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((n, t), dtype=np.float32)
    for a in range(min(20, n // 50)):
        on = rng.random(t) < 0.01
        data[a * 50 : (a + 1) * 50, on] += 3.0
    return data


def bench_speed(rows: list[dict], sizes: list[tuple[int, int]]) -> None:
    for n, t in sizes:
        data = speed_data(n, t)
        methods = ("ica", "graph", "events") if n <= 2000 else ("ica",)
        for method in methods:
            det, seconds = fit(data, method=method)
            rows.append(
                {
                    "part": "speed",
                    "case": f"{n} x {t}",
                    "seed": 0,
                    "input": "random",
                    "method": method,
                    "ari": float("nan"),
                    "found": det.n_assemblies_,
                    "true": min(20, n // 50),
                    "seconds": seconds,
                }
            )


def summary(rows: list[dict], command: str, notes: list[str]) -> str:
    lines = [
        "# Assemblies benchmark",
        "",
        f"Command: `{command}`",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        "| part | case | input | method | ARI (mean, min) | found / true | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["part"], row["case"], row["input"], row["method"]), []).append(row)
    for (part, case, source, method), group in groups.items():
        ari = np.array([r["ari"] for r in group], dtype=float)
        ari_text = "-" if np.isnan(ari).all() else f"{np.nanmean(ari):.3f}, {np.nanmin(ari):.3f}"
        found = ", ".join(str(r["found"]) for r in group)
        seconds = np.array([r["seconds"] for r in group], dtype=float)
        seconds_text = "-" if np.isnan(seconds).all() else f"{np.nanmean(seconds):.2f}"
        jaccard = group[0].get("jaccard")
        extra = f" (best Jaccard per published assembly: {jaccard})" if jaccard else ""
        lines.append(
            f"| {part} | {case}{extra} | {source} | {method} | {ari_text} | "
            f"{found} / {group[0]['true']} | {seconds_text} |"
        )
    lines += ["", *notes]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, small speed sizes")
    parser.add_argument(
        "--rates", action="store_true", help="also on inferred spikes (minutes per recording)"
    )
    parser.add_argument("--full-size", action="store_true", help="also time 10,000 x 30,000")
    parser.add_argument(
        "--parts",
        default="planted,zebrafish,speed",
        help="comma-separated parts to run (default: all three)",
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("bench-output/assemblies"))
    args = parser.parse_args()
    rows: list[dict] = []
    notes: list[str] = []
    parts = set(args.parts.split(","))
    if "planted" in parts:
        bench_planted(rows, seeds=1 if args.quick else 3, use_rates=args.rates)
    if "zebrafish" in parts:
        notes += bench_zebrafish(rows, use_rates=args.rates)
    sizes = [(1000, 3000)] if args.quick else [(1000, 3000), (2000, 6000), (4000, 12000)]
    if args.full_size:
        sizes.append((10000, 30000))
    if "speed" in parts:
        bench_speed(rows, sizes)
    args.output.mkdir(parents=True, exist_ok=True)
    keys = sorted(
        {k for row in rows for k in row},
        key=lambda k: list(rows[0]).index(k) if k in rows[0] else 99,
    )
    with open(args.output / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    import sys

    text = summary(rows, " ".join(["python", *sys.argv]), notes)
    (args.output / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
