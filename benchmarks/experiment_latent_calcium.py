"""Experiment: does a latent calcium with measurement noise beat seed 002's model?

Hypothesis (docs/spikes.md, "Why ours trails"): seed 002 feeds the noise through the AR
process, so the decay after a spike adds no evidence for it. Keeping the seed's Poisson
counts (summed over 0..R per frame) but putting the noise on the observation,

    c_t = gamma c_{t-1} + s_t,   s_t ~ Poisson(lambda),   y_t = b + a c_t + eps_t,

should use the whole decay. The calcium lives on a grid of levels; each count moves the
mass to gamma c + k, split between the two neighbouring levels, and a forward-backward
pass gives p(s_t = k | y) exactly up to the grid. Parameters per neuron, without
ground truth: gamma from the autocovariance ratio at lags 2 and 1 (unbiased by white
noise), sigma from acov(0) - acov(1) / gamma, b from a low percentile, and (a, lambda)
by the marginal likelihood over a small grid.

This is numpy on the CPU, one neuron at a time: it decides whether the model is worth
building into ``model/calcium.py``, not how fast it can be.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/experiment_latent_calcium.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import poisson

sys.path.insert(0, str(Path(__file__).parent))
import bench_spikes
from napari_calcium_avae.spikes import SpikeInference
from napari_calcium_avae.spikes.peers import positive_first_difference
from napari_calcium_avae.spikes.scoring import binned_correlation

LEVELS = 96
MAX_COUNT = 4


def _acov(y: np.ndarray, lag: int) -> float:
    y = y - y.mean()
    return float(np.dot(y[: len(y) - lag], y[lag:]) / len(y))


def _transitions(gamma: float, levels: np.ndarray) -> np.ndarray:
    """(MAX_COUNT + 1, G, G): level i to the levels around gamma c_i + k, mass split."""
    g = len(levels)
    step = levels[1] - levels[0]
    out = np.zeros((MAX_COUNT + 1, g, g))
    for k in range(MAX_COUNT + 1):
        target = np.clip((gamma * levels + k) / step, 0, g - 1)
        low = np.floor(target).astype(int)
        high = np.minimum(low + 1, g - 1)
        w = target - low
        rows = np.arange(g)
        np.add.at(out[k], (rows, low), 1 - w)
        np.add.at(out[k], (rows, high), w)
    return out


def _forward_backward(y, b, a, sigma, lam, per_count, levels):
    """Log-likelihood and expected spikes per frame."""
    p = poisson.pmf(np.arange(MAX_COUNT + 1), lam)
    p = p / p.sum()
    trans = np.tensordot(p, per_count, axes=1)
    log_emit = -0.5 * ((y[:, None] - b - a * levels[None, :]) / sigma) ** 2
    shift = log_emit.max(axis=1)  # per frame, so that no frame underflows to all zeros
    emit = np.exp(log_emit - shift[:, None])
    n = len(y)
    alpha = np.empty((n, len(levels)))
    scale = np.empty(n)
    start = np.zeros(len(levels))
    start[0] = 1.0
    prev = start
    for t in range(n):
        cur = (prev @ trans) * emit[t]
        scale[t] = cur.sum()
        alpha[t] = cur / scale[t]
        prev = alpha[t]
    beta = np.ones(len(levels))
    spikes = np.zeros(n)
    for t in range(n - 1, -1, -1):
        before = alpha[t - 1] if t else start
        weight = emit[t] * beta
        total = (before @ trans) @ weight
        spikes[t] = sum(
            k * p[k] * ((before @ per_count[k]) @ weight) for k in range(1, MAX_COUNT + 1)
        )
        spikes[t] /= max(total, 1e-300)
        beta = trans @ weight / scale[t]
    return float(np.log(scale).sum() + shift.sum()), spikes


def infer_latent_calcium(x: np.ndarray, rate: float) -> np.ndarray:
    """Expected spikes per frame of each row under the latent-calcium model."""
    out = np.zeros_like(x, dtype=np.float64)
    for i, y in enumerate(np.asarray(x, dtype=np.float64)):
        c1, c2 = _acov(y, 1), _acov(y, 2)
        gamma = float(np.clip(c2 / c1 if c1 > 0 else 0.9, 0.5, 0.995))
        sigma = float(np.sqrt(max(_acov(y, 0) - c1 / gamma, 1e-6 * _acov(y, 0))))
        b = float(np.percentile(y, 5))
        best = (-np.inf, None)
        top = np.percentile(y, 99.5) - b
        for a in top * np.array([0.1, 0.2, 0.35, 0.6]):
            levels = np.linspace(0, 1.3 * top / a, LEVELS)
            per_count = _transitions(gamma, levels)
            for lam in (0.005, 0.02, 0.08, 0.3):
                ll, spikes = _forward_backward(y, b, a, sigma, lam, per_count, levels)
                if ll > best[0]:
                    best = (ll, spikes)
        out[i] = best[1]
    return out


def main() -> None:
    methods = {
        "first difference": lambda x, rate: positive_first_difference(x),
        "ours (seed 002)": lambda x, rate: (
            SpikeInference(frame_rate=rate, device="cpu").fit(x).transform(x)
        ),
        "latent calcium": infer_latent_calcium,
    }
    try:
        import oasis  # noqa: F401  (GPL-3: the bench extra, never a runtime dependency)

        methods["OASIS AR(1)"] = bench_spikes._oasis(1)
    except ImportError:
        print("OASIS is not installed (pip install -e .[bench]): left out")
    print("indicator rate noise " + " | ".join(methods))
    for indicator in ("GCaMP6s", "GCaMP6f"):
        for rate in (30.0,):
            peak = bench_spikes.spike_peak(indicator)
            sigmas = tuple(peak * f for f in bench_spikes.NOISE.values())
            noisy, true = bench_spikes.simulate(bench_spikes.QUICK, indicator, rate, sigmas)
            for name, x in zip(bench_spikes.NOISE, noisy, strict=True):
                cells = []
                for method in methods.values():
                    start = time.perf_counter()
                    r = binned_correlation(method(x, rate), true, rate)
                    cells.append(f"{np.nanmean(r):.3f} ({time.perf_counter() - start:.0f} s)")
                print(f"{indicator} {rate:g} {name}: " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
