"""Distributed training on the CPU: 1 process vs 2 DDP ranks (gloo), side by side.

Issue 18's target: 2 ranks, one thread each, train at >= 1.7x the samples per second of
one process with one thread, and end within 2 % of its validation loss. Both train the
estimator's default network (released function class + timing path) on the same
synthetic calcium traces for the same number of epochs, with the same global batch (each
rank takes half of every batch). A third run is the control: two separate processes,
each training alone on half the batch, their rates added (what this machine gives two
processes that never communicate: the ceiling of any data-parallel speed-up here). The
runs alternate so that the load of a shared machine falls on all alike, and speed-ups
are the median of each repeat's ratio to that repeat's one-process run. Each run is a
fresh set of processes started by torch.multiprocessing, the rendezvous as torchrun's
(env://). Throughput is timed inside the ranks, from the end of the first epoch
(warm-up) to the end of the last.

Usage: python benchmarks/bench_ddp.py [--repeat 3] [--epochs 30] [--traces 2048]
       [--frames 1000] [--batch-size 256] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path


def traces(n: int, n_frames: int, seed: int = 0):
    """Calcium-like traces: Poisson spikes through an exponential decay (0.2-1.5 s at
    30 Hz), rates 0.05-1 Hz, Gaussian noise; float32, ROIs x frames."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rate = rng.uniform(0.05, 1.0, (n, 1)) / 30
    spikes = rng.poisson(rate, (n, n_frames)).astype(np.float64)
    decay = np.exp(-1 / (30 * rng.uniform(0.2, 1.5, n)))
    calcium = np.zeros_like(spikes)
    level = np.zeros(n)
    for t in range(n_frames):
        level = level * decay + spikes[:, t]
        calcium[:, t] = level
    noisy = calcium + rng.normal(0, rng.uniform(0.1, 0.4, (n, 1)), calcium.shape)
    return noisy.astype(np.float32)


def _rank(rank: int, world: int, port: int, settings: dict, out: str) -> None:
    alone = settings.get("independent", False)  # the control: no process group at all
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE="1" if alone else str(world),
        LOCAL_RANK=str(rank),
    )
    import torch

    torch.set_num_threads(1)
    from napari_calcium_avae.model import AVAE, distributed

    X = traces(settings["traces"], settings["frames"])
    model = AVAE(
        max_epochs=settings["epochs"],
        patience=10**6,
        batch_size=settings["batch_size"] // (world if alone else 1),
        device="cpu",
        random_state=0,
    )
    with distributed.process_group(torch.device("cpu")) as group:
        ends, cpu = [], []
        start = time.perf_counter()
        for _ in model.fit_iter(X):
            ends.append(time.perf_counter())
            cpu.append(time.process_time())
        if group is not None:
            group.barrier()
    n_train = len(X) - min(max(1, round(model.validation_fraction * len(X))), len(X) - 1)
    if rank == 0 or alone:
        result = {
            "ranks": world,
            "first_epoch_s": ends[0] - start,
            "samples_per_s": n_train * (len(ends) - 1) / (ends[-1] - ends[0]),
            # per rank: what the rate would be if this rank never waited for a core
            "samples_per_cpu_s": n_train * (len(ends) - 1) / (cpu[-1] - cpu[0]),
            "val_loss": model.history_[-1]["val_loss"],
            "best_val_loss": min(h["val_loss"] for h in model.history_),
            "epochs": len(ends),
            "n_train": n_train,
        }
        Path(f"{out}.{rank}").write_text(json.dumps(result))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(world: int, settings: dict, independent: bool = False) -> dict:
    """One training run on ``world`` fresh processes (one thread each); ``independent``:
    as many separate single-process runs side by side, each with its share of the batch,
    and their rates added up: what the machine gives two processes that never wait for
    each other, the ceiling of any data-parallel speed-up here."""
    import torch.multiprocessing as mp

    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the ranks before torch starts
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        os.environ.pop(name, None)
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "result.json")
        settings = {**settings, "independent": independent}
        mp.spawn(_rank, args=(world, _free_port(), settings, out), nprocs=world, join=True)
        if not independent:
            return json.loads(Path(f"{out}.0").read_text())
        parts = [json.loads(Path(f"{out}.{r}").read_text()) for r in range(world)]
        result = dict(parts[0])
        for key in ("samples_per_s", "samples_per_cpu_s"):
            result[key] = sum(part[key] for part in parts)
        return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=256, help="global batch (all ranks)")
    p.add_argument("--traces", type=int, default=2048)
    p.add_argument("--frames", type=int, default=1000)
    p.add_argument("--json", type=Path, help="write every run's numbers here")
    args = p.parse_args(argv)
    settings = {
        "epochs": args.epochs,
        "traces": args.traces,
        "frames": args.frames,
        "batch_size": args.batch_size,
    }
    print(
        f"{args.traces} traces x {args.frames} frames, default AVAE, {args.epochs} epochs, "
        f"batch {args.batch_size} (global), {args.repeat} alternating repeats; load before: "
        f"{os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )
    kinds = {"1 process": (1, False), "2 ranks (DDP)": (2, True), "2 separate processes": (2, None)}
    runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for i in range(args.repeat):
        for kind, (world, ddp) in kinds.items():
            result = run(world, settings, independent=ddp is None)
            result["load_1min"] = os.getloadavg()[0]
            runs[kind].append(result)
            print(
                f"  repeat {i + 1}, {kind}: {result['samples_per_s']:.1f} samples/s, "
                f"final val loss {result['val_loss']:.3f} (load {result['load_1min']:.2f})",
                file=sys.stderr,
            )

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[kind])

    def ratios(kind: str, key: str) -> list[float]:
        pairs = zip(runs["1 process"], runs[kind], strict=True)
        return [b[key] / a[key] for a, b in pairs]

    print(
        "| run | samples/s (median) | speed-up (median of repeats) "
        "| samples per CPU-s of a rank | final val loss |"
    )
    print("|---|---:|---:|---:|---:|")
    for kind in kinds:
        speed = statistics.median(ratios(kind, "samples_per_s"))
        print(
            f"| {kind} | {median(kind, 'samples_per_s'):.0f} | {speed:.2f}x | "
            f"{median(kind, 'samples_per_cpu_s'):.0f} | {median(kind, 'val_loss'):.3f} |"
        )
    ddp = ratios("2 ranks (DDP)", "samples_per_s")
    ceiling = ratios("2 separate processes", "samples_per_s")
    loss = median("2 ranks (DDP)", "val_loss") / median("1 process", "val_loss") - 1
    print(
        f"DDP speed-up per repeat: {', '.join(f'{x:.2f}' for x in ddp)} (target >= 1.7); "
        f"two separate processes: {', '.join(f'{x:.2f}' for x in ceiling)}; "
        f"val loss {100 * loss:+.2f} % (target within 2 %); load after: "
        f"{os.getloadavg()[0]:.2f}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps({"settings": settings, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
