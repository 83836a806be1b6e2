"""t-SNE and DBSCAN after torch: every OpenMP thread, one thread, and the package's rule.

Each measurement follows a torch forward pass (so torch's OpenMP threads have just run),
then times ``embed_2d`` + ``cluster_latents`` on n random 8-D latents three ways: no limit,
one thread, and ``analysis._threads`` as shipped. ``--busy K`` adds K spinning processes,
as on a machine whose cores others use too.
Usage: python benchmarks/bench_threads.py [--sizes 90 2000] [--busy 0 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import torch

from napari_calcium_avae.analysis import _threads, cluster_latents, embed_2d

SETTINGS = {"all threads": 0, "one thread": float("inf"), "rule": _threads.SINGLE_THREAD_BELOW}


def _torch_forward(n: int) -> None:
    """About the encoder's work for n traces of 3,000 frames, on torch's default threads."""
    net = torch.nn.Sequential(torch.nn.Linear(3000, 256), torch.nn.Tanh(), torch.nn.Linear(256, 8))
    with torch.no_grad():
        net(torch.randn(max(n, 256), 3000))


def _seconds(n: int, single_below: float) -> float:
    latents = np.random.default_rng(n).normal(size=(n, 8))
    _torch_forward(n)
    _threads.SINGLE_THREAD_BELOW = single_below
    start = time.perf_counter()
    embed_2d(latents)
    cluster_latents(latents)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[90, 2000])
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("busy | n | " + " | ".join(f"{name} (s)" for name in SETTINGS) + " | all / rule")
    for busy in args.busy:
        spinners = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)
        ]
        try:
            for n in args.sizes:
                best = {
                    name: min(_seconds(n, below) for _ in range(args.repeats))
                    for name, below in SETTINGS.items()
                }
                cells = " | ".join(f"{s:.2f}" for s in best.values())
                ratio = best["all threads"] / best["rule"]
                print(f"{busy} | {n} | {cells} | {ratio:.1f}", flush=True)
        finally:
            for process in spinners:
                process.kill()
                process.wait()


if __name__ == "__main__":
    main()
