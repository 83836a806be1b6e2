"""Speed and peak memory of the model: training steps, a recurrent epoch, batched apply.

Each case runs in a fresh subprocess so ``ru_maxrss`` is that case's peak alone.
Usage: python benchmarks/bench_model.py [case ...]  (default: all cases)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

T = 15_000
HIDDEN, LATENT = 128, 8


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _train_steps(net, batch: int, n_frames: int, steps: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of all threads) per step; CPU time resists other load."""
    import torch

    from napari_calcium_avae.model.training import adam, training_step

    x = torch.rand(batch, n_frames) - 0.5
    optimiser = adam(net.parameters(), 5e-3, x.device)
    noise = torch.Generator().manual_seed(0)

    def step() -> None:
        training_step(net, optimiser, x, 0.5, noise)

    step()  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu) / steps


def case_released_ours() -> dict:
    from napari_calcium_avae.model.architectures import ReleasedAVAE

    net = ReleasedAVAE(T, HIDDEN, LATENT)
    n_params = sum(p.numel() for p in net.parameters())
    wall, cpu = _train_steps(net, 256, T, 5)
    return {"s_per_step": wall, "cpu_s_per_step": cpu, "batch": 256, "params": n_params}


def case_released_timing() -> dict:
    """The estimator's default network: the released function class and the timing path."""
    from napari_calcium_avae.model.architectures import ReleasedAVAE

    net = ReleasedAVAE(T, HIDDEN, LATENT, timing_channels=2)
    wall, cpu = _train_steps(net, 256, T, 5)
    return {"s_per_step": wall, "cpu_s_per_step": cpu, "batch": 256}


class _TorchLSTMAVAE:
    """The released architecture as published: nn.LSTM layers run for one step."""

    def __init__(self):
        import torch

        self.enc = torch.nn.LSTM(T, HIDDEN)
        self.mu = torch.nn.Linear(HIDDEN, LATENT)
        self.logvar = torch.nn.Linear(HIDDEN, LATENT)
        self.expand = torch.nn.Linear(LATENT, HIDDEN)
        self.dec = torch.nn.LSTM(HIDDEN, T)
        self.modules = [self.enc, self.mu, self.logvar, self.expand, self.dec]

    def parameters(self):
        return [p for m in self.modules for p in m.parameters()]

    def encode(self, x):
        h = self.enc(x.unsqueeze(0))[0][0]
        return self.mu(h), self.logvar(h)

    def decode(self, z, n_frames):
        return self.dec(self.expand(z).unsqueeze(0))[0][0]


def case_released_lstm() -> dict:
    batch = int(os.environ.get("LSTM_BATCH", "16"))
    net = _TorchLSTMAVAE()
    n_params = sum(p.numel() for p in net.parameters())
    wall, cpu = _train_steps(net, batch, T, 1)
    return {"s_per_step": wall, "cpu_s_per_step": cpu, "batch": batch, "params": n_params}


def case_recurrent_epoch() -> dict:
    import numpy as np

    from napari_calcium_avae.model import AVAE

    X = np.random.default_rng(0).normal(size=(750, T)).astype(np.float32)
    times, cpus = [], []
    model = AVAE(architecture="recurrent", max_epochs=2, patience=10, device="cpu")
    start, cpu = time.perf_counter(), time.process_time()
    for _ in model.fit_iter(X):
        times.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
        start, cpu = time.perf_counter(), time.process_time()
    # an epoch here is 600 training traces plus the validation pass over 150
    return {"s_epochs": times, "cpu_s_epochs": cpus, "traces": 750}


def case_apply() -> dict:
    import numpy as np

    from napari_calcium_avae.model import AVAE

    n, n_frames = 10_000, 30_000
    rng = np.random.default_rng(0)
    model = AVAE(max_epochs=1, device="cpu").fit(rng.normal(size=(32, n_frames)))
    X = rng.standard_normal((n, n_frames), dtype=np.float32)  # no float64 copy
    start = time.perf_counter()
    model.transform(X)
    t_transform = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    z, recon = model.transform_reconstruct(X)  # what apply runs: one encoder pass
    assert z.shape == (n, LATENT) and recon.shape == X.shape
    return {
        "s_transform": t_transform,
        "s_transform_reconstruct": time.perf_counter() - start,
        "cpu_s_transform_reconstruct": time.process_time() - cpu,
    }


CASES = {
    "released_ours": case_released_ours,
    "released_timing": case_released_timing,
    "released_lstm": case_released_lstm,
    "recurrent_epoch": case_recurrent_epoch,
    "apply": case_apply,
}


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        result = CASES[argv[1]]()
        result["peak_mb"] = _peak_mb()
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help=f"any of {', '.join(CASES)} (default: all)")
    cases = parser.parse_args(argv).cases or list(CASES)
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}")
    for name in cases:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name], capture_output=True, text=True
        )
        line = proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 else proc.stderr[-300:]
        print(f"{name}: {line}  (load average {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
