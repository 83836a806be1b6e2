"""The Population dock's views (population.views): how well the similarity sort keeps
planted groups together, and how long each view takes as recordings grow.

Run: OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_views.py [--sizes 75x5660 ...]
     [--quality 1000x3000 ...]

Data: random Gaussian ROIs x frames (float32); half the ROIs are in 20 planted groups that
share a signal (each member: the group's signal + its own noise of the same SD); rows
shuffled. Quality: the share of neighbouring rows in the similarity order, among the
grouped ROIs, that belong to the same group (chance: 0.05). Speed: similarity_order,
sliding_correlation (30 Hz, 10 s window, 5 s step) and correlation_matrix (up to 5,000
ROIs). Prints a markdown table per part; docs/population.md records a run.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from napari_calcium_avae.population.views import (
    correlation_matrix,
    similarity_order,
    sliding_correlation,
)

GROUPS = 20


def planted(n: int, t: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    group = np.where(np.arange(n) < n // 2, np.arange(n) % GROUPS, -1)
    X = rng.standard_normal((n, t), dtype=np.float32)
    X[group >= 0] += rng.standard_normal((GROUPS, t), dtype=np.float32)[group[group >= 0]]
    shuffle = rng.permutation(n)
    return X[shuffle], group[shuffle]


def size(text: str) -> tuple[int, int]:
    n, t = text.lower().split("x")
    return int(n), int(t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quality", nargs="*", default=["1000x3000", "4000x3000", "6000x3000", "10000x3000"]
    )
    parser.add_argument(
        "--sizes", nargs="*", default=["75x5660", "1000x30000", "5000x6000", "10000x30000"]
    )
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {platform.node()}")
    print("\n| ROIs x frames | sort time | neighbours in the same group |\n|---|---|---|")
    for n, t in map(size, args.quality):
        X, group = planted(n, t)
        start = time.perf_counter()
        order = similarity_order(X)
        seconds = time.perf_counter() - start
        g = group[order]
        both = (g[:-1] >= 0) & (g[1:] >= 0)
        same = float((g[:-1] == g[1:])[both].mean())
        print(f"| {n:,} x {t:,} | {seconds:.1f} s | {same:.3f} |", flush=True)
    print("\n| ROIs x frames | sort | sliding correlation | correlation matrix |")
    print("|---|---|---|---|")
    for n, t in map(size, args.sizes):
        X, _ = planted(n, t)
        start = time.perf_counter()
        order = similarity_order(X)
        sorted_s = time.perf_counter() - start
        sliding_correlation(X, 30.0, 10.0, 5.0)
        sliding_s = time.perf_counter() - start - sorted_s
        matrix = "-"
        if n <= 5000:
            begin = time.perf_counter()
            correlation_matrix(X, order)
            matrix = f"{time.perf_counter() - begin:.1f} s"
        print(f"| {n:,} x {t:,} | {sorted_s:.1f} s | {sliding_s:.1f} s | {matrix} |", flush=True)


if __name__ == "__main__":
    main()
