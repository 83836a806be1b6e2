"""Population states: seed 002's calcium-HMM simulation, and the calcium HMM's speed.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_states.py [--quick]
     [--seeds 3 4 5] [-o bench-output/states] [--speed-rois 2000 --speed-frames 15000]
The full-size fit (issue 16: K = 10, 10,000 x 30,000), data simulated by one process and
fitted by another, so that the fit's peak memory is its own:
     ... bench_states.py --save-data y.npy --speed-rois 10000 --speed-frames 30000
     ... bench_states.py --full-fit --data y.npy --speed-rois 10000 --speed-frames 30000

Data (Keeley et al. 2026, seed 002, "Synthetic HMM dataset"): K = 5 states visited in a
repeating chain (stay with probability ``STAY``, else move to the next state), 25 neurons
in 5 groups of 5, the active group firing 0.2 spikes per frame (Poisson) and the others
``OFF_RATE``; calcium c_t = alpha c_t-1 + 1.0 s_t + N(0, 1e-2), alpha ~ N(0.8, 0.1)
clipped to [0.6, 0.95]; observed y = c + N(0, 0.2^2) (measurement noise outside every
model). A training sequence and a held-out sequence of 2,000 frames each. The seed prints
no transition matrix (it is an equation image) nor an off-group rate; ``STAY`` and
``OFF_RATE`` are our choices.

Models, all fitted to the training sequence: the calcium HMM, the Gaussian HMM (hmmlearn)
and the AR-Gaussian HMM on y, each with K chosen by held-out likelihood (the last 20% of
the training frames) and refitted on all training frames; and a Poisson HMM (hmmlearn) on
the true spike counts with K = 5 (the seed's ceiling; the best of 5 random starts and the
k-means start of the others). Scores on the held-out sequence: state correlation (Pearson
r of the true state index and the inferred state after Hungarian matching, the seed's rho)
and accuracy after the matching, and the held-out log-likelihood (nats, y's units; the
Poisson HMM's is of spikes, not comparable).

Speed: the calcium HMM with K = 10 on ``--speed-rois`` x ``--speed-frames`` simulated
frames (float32): setup and CPU time per EM iteration, scaled to 10,000 x 30,000 by
ROIs x frames (upper bound) and by ROIs alone (lower bound); or, with ``--full-fit``, one
default fit at that size, measured.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from napari_calcium_avae.population.hmm import (
    ARGaussianHMM,
    CalciumHMM,
    GaussianHMM,
    _kmeans_labels,
    _smooth,
)

K_TRUE = 5
GROUP = 5
ON_RATE = 0.2
OFF_RATE = 0.01
STAY = 0.95
SEED = 3


def simulate(
    n_frames: int,
    rng: np.random.Generator,
    alpha: np.ndarray,
    k: int = K_TRUE,
    group: int = GROUP,
    on: float = ON_RATE,
    off: float = OFF_RATE,
    stay: float = STAY,
    gain: float = 1.0,
    ar_var: float = 1e-2,
    meas_sd: float = 0.2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(states (T,), spikes (N, T), fluorescence (N, T)) of the seed's sequential HMM."""
    n = k * group
    states = np.empty(n_frames, dtype=int)
    states[0] = rng.integers(k)
    for t in range(1, n_frames):
        states[t] = states[t - 1] if rng.random() < stay else (states[t - 1] + 1) % k
    rates = np.full((k, n), off)
    for s in range(k):
        rates[s, s * group : (s + 1) * group] = on
    spikes = rng.poisson(rates[states].T)
    c = np.zeros((n, n_frames))
    noise = rng.normal(0, np.sqrt(ar_var), (n, n_frames))
    for t in range(n_frames):
        c[:, t] = (alpha * c[:, t - 1] if t else 0) + gain * spikes[:, t] + noise[:, t]
    y = c + rng.normal(0, meas_sd, c.shape)
    return states, spikes, y


def seed_alpha(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.clip(rng.normal(0.8, 0.1, n), 0.6, 0.95)


def match_states(true: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Inferred states relabelled to the true ones (Hungarian on the overlap), the Pearson
    r of the state indices and the accuracy."""
    kt, kf = true.max() + 1, found.max() + 1
    overlap = np.zeros((kf, kt))
    np.add.at(overlap, (found, true), 1)
    rows, cols = linear_sum_assignment(-overlap)
    mapping = np.full(kf, -1)
    mapping[rows] = cols
    # states left unmatched (K found > K true) take their most overlapping true state
    for s in np.flatnonzero(mapping < 0):
        mapping[s] = int(np.argmax(overlap[s]))
    mapped = mapping[found]
    r = float(np.corrcoef(true, mapped)[0, 1]) if mapped.std() > 0 else 0.0
    return mapped, r, float((mapped == true).mean())


def run_simulation(seed: int, candidates: tuple[int, ...], n_frames: int) -> list[dict]:
    from hmmlearn.hmm import PoissonHMM

    rng = np.random.default_rng(seed)
    alpha = seed_alpha(K_TRUE * GROUP, rng)
    _s_tr, sp_tr, y_tr = simulate(n_frames, rng, alpha)
    s_te, sp_te, y_te = simulate(n_frames, rng, alpha)
    rows = []
    models = {
        "calcium HMM": CalciumHMM(candidate_states=candidates, device="cpu"),
        "AR-Gaussian HMM": ARGaussianHMM(candidate_states=candidates),
        "Gaussian HMM": GaussianHMM(candidate_states=candidates),
    }
    for name, model in models.items():
        t0 = time.perf_counter()
        model.fit(y_tr)
        seconds = time.perf_counter() - t0
        found = model.predict(y_te)
        _, r, acc = match_states(s_te, found)
        rows.append(
            {
                "model": name,
                "data": "fluorescence",
                "K chosen": model.n_states_,
                "state r": r,
                "accuracy": acc,
                "held-out LL": model.score(y_te),
                "fit s": seconds,
                "selection": {int(k): round(v, 1) for k, v in model.selection_scores_.items()},
            }
        )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the best training likelihood of 5 random starts and the k-means start the HMMs
        # above use (one start can stop in a local optimum that merges states)
        fits = [PoissonHMM(K_TRUE, n_iter=200, random_state=i).fit(sp_tr.T) for i in range(5)]
        labels = _kmeans_labels(_smooth(sp_tr.astype(float)).T, K_TRUE, 0)
        km = PoissonHMM(K_TRUE, n_iter=200, init_params="st", random_state=0)
        km.lambdas_ = np.stack([sp_tr[:, labels == c].mean(1) for c in range(K_TRUE)]) + 1e-3
        fits.append(km.fit(sp_tr.T))
        pois = max(fits, key=lambda m: m.score(sp_tr.T))
    _, r, acc = match_states(s_te, pois.predict(sp_te.T))
    rows.append(
        {
            "model": "Poisson HMM",
            "data": "true spikes",
            "K chosen": K_TRUE,
            "state r": r,
            "accuracy": acc,
            "held-out LL": float(pois.score(sp_te.T)),
            "fit s": time.perf_counter() - t0,
            "selection": None,
        }
    )
    return rows


def _time_fit(n_rois: int, n_frames: int, k: int, n_iter: int) -> tuple[float, float]:
    """(setup seconds, seconds per EM iteration) of the calcium HMM at K = k: a fit of one
    iteration and one of ``n_iter`` (tol -inf, so every iteration runs). CPU seconds of
    this process (run it with OMP_NUM_THREADS=1: one core's time, not disturbed by other
    load on a shared machine)."""
    rng = np.random.default_rng(0)
    group = max(1, n_rois // k)
    _, _, y = simulate(n_frames, rng, seed_alpha(k * group, rng), k=k, group=group)
    y = y.astype(np.float32)  # as Traces.data is
    times = []
    for iters in (1, n_iter):
        t0 = time.process_time()
        CalciumHMM(n_states=k, n_iter=iters, tol=-np.inf, device="cpu").fit(y)
        times.append(time.process_time() - t0)
    per_iter = (times[1] - times[0]) / (n_iter - 1)
    return times[0] - per_iter, per_iter


def run_speed(n_rois: int, n_frames: int, k: int = 10, n_iter: int = 3) -> dict:
    """Setup and time per EM iteration at one size, scaled to 10,000 x 30,000 two ways:
    by ROIs x frames (the emissions; an upper bound) and by ROIs alone (the kinetics'
    refinement, which uses at most 2,000 frames; a lower bound)."""
    _time_fit(2 * k, 200, k, 2)  # warm-up: imports and first calls are not timed
    load_before = os.getloadavg()
    setup, per_iter = _time_fit(n_rois, n_frames, k, n_iter)
    # CPU time of one thread, but a shared machine's load still slows it (caches, memory)
    load = [round(x, 1) for x in (*load_before, *os.getloadavg())]
    by_cells = (10_000 * 30_000) / (n_rois * n_frames)
    by_rois = 10_000 / n_rois
    return {
        "rois": n_rois,
        "frames": n_frames,
        "K": k,
        "load average (1, 5, 15 min) before, after": load,
        "setup s": round(setup, 1),
        "s per EM iteration": round(per_iter, 1),
        "10,000 x 30,000, setup + 20 iterations, min (scaled by ROIs x frames)": round(
            by_cells * (setup + 20 * per_iter) / 60, 1
        ),
        "10,000 x 30,000, setup + 20 iterations, min (scaled by ROIs)": round(
            by_rois * (setup + 20 * per_iter) / 60, 1
        ),
    }


def full_fit_data(n_rois: int, n_frames: int, k: int = 10) -> np.ndarray:
    """``run_full_fit``'s traces (float32, as Traces.data is): K = k groups, seed 0."""
    rng = np.random.default_rng(0)
    group = max(1, n_rois // k)
    _, _, y = simulate(n_frames, rng, seed_alpha(k * group, rng), k=k, group=group)
    return y.astype(np.float32)


def _peak_mb() -> dict:
    """This process's peak and current resident memory (VmHWM, VmRSS), MB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM", "VmRSS")):
                out[line.split(":")[0]] = round(int(line.split()[1]) / 1024)
    return out


def run_full_fit(n_rois: int, n_frames: int, k: int = 10, data: str | None = None) -> dict:
    """One fit with the default settings (tol 1e-4, at most 100 iterations) at K = k: CPU
    and wall seconds of this process, the EM iterations it ran to converge (the figure
    that ``run_speed``'s "setup + 20 iterations" assumes) and its peak memory.

    ``data``: a .npy of ``full_fit_data(n_rois, n_frames, k)`` saved by another process
    (``--save-data``): the simulation in float64 holds about 5 copies of the traces, which
    would otherwise be this process's peak (VmHWM) rather than the fit's."""
    y = np.load(data) if data else full_fit_data(n_rois, n_frames, k)
    if y.shape != (n_rois, n_frames) or y.dtype != np.float32:
        raise SystemExit(f"{data}: {y.shape} {y.dtype}, not ({n_rois}, {n_frames}) float32")
    _time_fit(2 * k, 200, k, 2)  # warm-up
    memory_before = _peak_mb()
    load_before = os.getloadavg()
    t0, w0 = time.process_time(), time.perf_counter()
    model = CalciumHMM(n_states=k, device="cpu").fit(y)
    seconds, wall = time.process_time() - t0, time.perf_counter() - w0
    memory = _peak_mb()
    return {
        "rois": n_rois,
        "frames": n_frames,
        "K": k,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "load average (1, 5, 15 min) before, after": [
            round(x, 1) for x in (*load_before, *os.getloadavg())
        ],
        "CPU s": round(seconds, 1),
        "wall s": round(wall, 1),
        "EM iterations": int(model.n_iter_),
        "log-likelihood": round(float(model.log_likelihood_), 3),
        "peak memory of this process, MB (VmHWM after the fit)": memory["VmHWM"],
        "resident before the fit (data loaded), MB": memory_before["VmRSS"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K tried 3-7, no speed run")
    parser.add_argument("-o", "--output", default="bench-output/states")
    parser.add_argument("--seeds", type=int, nargs="+", default=[SEED])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--speed-rois", type=int, default=2000)
    parser.add_argument("--speed-frames", type=int, default=15000)
    parser.add_argument(
        "--full-fit",
        action="store_true",
        help="only one default K = 10 fit at --speed-rois x --speed-frames (run_full_fit): "
        "CPU and wall s, EM iterations, peak memory; to OUTPUT/full-fit.json",
    )
    parser.add_argument("--data", help="with --full-fit: traces saved by --save-data")
    parser.add_argument(
        "--save-data", help="only simulate --full-fit's traces and save them here (.npy)"
    )
    args = parser.parse_args(argv)
    if args.save_data:
        np.save(args.save_data, full_fit_data(args.speed_rois, args.speed_frames))
        return
    if args.full_fit:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        result = run_full_fit(args.speed_rois, args.speed_frames, data=args.data)
        result["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
        print(json.dumps(result, indent=1))
        (out / "full-fit.json").write_text(json.dumps(result, indent=1))
        return
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    candidates = (3, 4, 5, 6, 7) if args.quick else tuple(range(2, 11))
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
        "settings": {"stay": STAY, "off_rate": OFF_RATE, "frames": args.frames},
        "simulation": {},
    }
    for seed in args.seeds:
        rows = run_simulation(seed, candidates, args.frames)
        report["simulation"][seed] = rows
        print(f"seed {seed}")
        for row in rows:
            print(
                f"  {row['model']:16s} K={row['K chosen']:2d} r={row['state r']:.3f} "
                f"acc={row['accuracy']:.3f} LL={row['held-out LL']:.1f} "
                f"({row['fit s']:.1f} s) {row['selection']}"
            )
    if not args.quick:
        speed = run_speed(args.speed_rois, args.speed_frames)
        report["speed"] = speed
        print(json.dumps(speed, indent=1))
    (out / "states.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
