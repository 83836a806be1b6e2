"""Population states on our simulator's cultures: do the HMMs find network bursts?

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_culture_states.py [--quick]
     [-o bench-output/culture_states]

Data: one culture of each type (RS, IB, CH), ``--duration`` s at ``--frame-rate`` Hz,
``--neurons`` imaged neurons, at each noise level. The truth per frame is whether the
culture is in a network burst (``simulate.session.network_bursts``: the population fires
more than 5 % of its neurons' spikes in a sliding 100 ms window, padded by half a window)
during most of the frame. Bursts are short and rare, so plain accuracy rewards calling
every frame quiet: we report balanced accuracy (the mean of the hit rates in bursts and
in quiet frames) and the state correlation of seed 002 (Pearson r between the true and
the found state after matching).

Models, all on the noisy fluorescence: the calcium HMM (seed 002), the AR-Gaussian and
the Gaussian HMM with K = 2 (burst, quiet; states matched to the truth by the Hungarian
method), and the calcium HMM with K chosen by held-out likelihood among ``CANDIDATES``,
each of its states then called burst or quiet by where most of its frames fall (the
many-to-one matching any K > 2 needs).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from napari_calcium_avae.population.hmm import ARGaussianHMM, CalciumHMM, GaussianHMM
from napari_calcium_avae.simulate import SimulationSettings
from napari_calcium_avae.simulate.session import (
    BURST_BIN_MS,
    network_bursts,
    simulate_imaged_cultures,
)

CANDIDATES = (2, 3, 4, 5, 6)
"""K tried by "auto" here (the product's default tries 2-10; bursts and quiet need few)."""


def frame_truth(in_burst: np.ndarray, frame_rate: float, n_frames: int) -> np.ndarray:
    """1 where a frame spends more than half its time in a burst, else 0."""
    per_frame = 1000.0 / frame_rate / BURST_BIN_MS
    edges = np.round(np.arange(n_frames + 1) * per_frame).astype(int)
    sums = np.add.reduceat(in_burst.astype(float), np.minimum(edges[:-1], len(in_burst) - 1))
    widths = np.maximum(np.diff(edges), 1)
    return (sums / widths > 0.5).astype(int)


def balanced_accuracy(truth: np.ndarray, called: np.ndarray) -> float:
    """Mean of the hit rates in bursts and in quiet frames (0.5: chance)."""
    rates = [np.mean(called[truth == c] == c) for c in (0, 1) if np.any(truth == c)]
    return float(np.mean(rates))


def match_two(truth: np.ndarray, states: np.ndarray) -> np.ndarray:
    """Burst (1) or quiet (0) per frame from a K = 2 state sequence, by Hungarian matching."""
    overlap = np.array([[np.sum((truth == t) & (states == s)) for s in (0, 1)] for t in (0, 1)])
    rows, cols = linear_sum_assignment(-overlap)
    mapping = {int(c): int(r) for r, c in zip(rows, cols, strict=True)}
    return np.array([mapping[int(s)] for s in states])


def call_by_majority(truth: np.ndarray, states: np.ndarray) -> np.ndarray:
    """Burst or quiet per frame: each state takes the truth held by most of its frames,
    weighted so that the rare burst frames count as much as the quiet ones."""
    weight = np.where(truth == 1, 0.5 / max(truth.mean(), 1e-9), 0.5 / max(1 - truth.mean(), 1e-9))
    called = np.zeros_like(truth)
    for s in np.unique(states):
        here = states == s
        called[here] = int(
            np.sum(weight[here] * truth[here]) > np.sum(weight[here] * (1 - truth[here]))
        )
    return called


def score(truth: np.ndarray, called: np.ndarray) -> dict[str, float]:
    r = np.corrcoef(truth, called)[0, 1] if called.std() > 0 else 0.0
    return {"balanced accuracy": balanced_accuracy(truth, called), "state r": float(r)}


def run(settings: SimulationSettings) -> list[dict]:
    rows = []
    for imaged in simulate_imaged_cultures(settings):
        truth = frame_truth(
            network_bursts(imaged.culture), settings.frame_rate, imaged.clean.shape[1]
        )
        for level, noisy in zip(imaged.noise_levels, imaged.noisy, strict=True):
            models = {
                "calcium HMM, K = 2": CalciumHMM(n_states=2, device="cpu"),
                "AR-Gaussian HMM, K = 2": ARGaussianHMM(n_states=2),
                "Gaussian HMM, K = 2": GaussianHMM(n_states=2),
                "calcium HMM, K auto": CalciumHMM(candidate_states=CANDIDATES, device="cpu"),
            }
            for name, model in models.items():
                start = time.perf_counter()
                model.fit(noisy)
                seconds = time.perf_counter() - start
                states = model.states_
                called = (
                    match_two(truth, states)
                    if model.n_states_ == 2
                    else (call_by_majority(truth, states))
                )
                rows.append(
                    {
                        "culture": imaged.label,
                        "noise": level,
                        "model": name,
                        "K": int(model.n_states_),
                        "burst fraction": float(truth.mean()),
                        **score(truth, called),
                        "fit s": seconds,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| culture | noise | burst frames | model | K | balanced accuracy | state r | fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['culture']} | {r['noise']:g} | {r['burst fraction']:.2f} | {r['model']} | "
            f"{r['K']} | {r['balanced accuracy']:.3f} | {r['state r']:.3f} | {r['fit s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short culture, for a test")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds")
    parser.add_argument("--frame-rate", type=float, default=20.0)
    parser.add_argument("--neurons", type=int, default=100)
    parser.add_argument("--noise", type=float, nargs="+", default=[1.0, 2.5])
    parser.add_argument("-o", "--output", type=Path, default=Path("bench-output/culture_states"))
    args = parser.parse_args(argv)
    settings = SimulationSettings(
        types=("RS",) if args.quick else ("RS", "IB", "CH"),
        cultures_per_type=1,
        neurons_per_culture=20 if args.quick else args.neurons,
        duration_s=20.0 if args.quick else args.duration,
        frame_rate=args.frame_rate,
        noise_levels=tuple(args.noise),
        seed=0,
    )
    rows = run(settings)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "rows.json").write_text(json.dumps(rows, indent=1))
    text = table(rows)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {datetime.date.today()}"
    (args.output / "table.md").write_text(f"{text}\n\n{machine}\n")
    print(text)
    print(machine)


if __name__ == "__main__":
    main()
