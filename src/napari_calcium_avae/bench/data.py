"""The benchmark's data: every simulated neuron at every noise level, and its partitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CalciumAvaeError


@dataclass
class Dataset:
    """Every simulated neuron at every noise level; rows are the same neurons throughout."""

    noisy: dict[float, np.ndarray]
    """noise sigma -> (neurons, frames) noisy fluorescence."""
    clean: np.ndarray
    table: pd.DataFrame
    """Per-neuron ground truth: neuron_type, excitatory, a, b, v0, du, culture."""
    measured_sigma: dict[float, float]
    """noise sigma -> standard deviation of noisy - clean actually found in the files."""
    frame_rate: float


def load_dataset(paths: Sequence[Path], noise_levels: Sequence[float]) -> Dataset:
    """Read simulated sessions and tell their noisy series apart by their measured noise.

    Matching sorted measured sigmas to sorted levels needs no naming convention and checks
    that each series really holds the noise we asked for.
    """
    from ..demo import noise_free_series
    from ..nwb import list_series, read_traces

    levels = sorted(noise_levels)
    noisy: dict[float, list[np.ndarray]] = {s: [] for s in levels}
    clean, tables = [], []
    measured: dict[float, list[float]] = {s: [] for s in levels}
    rate = None
    for path in paths:
        truth_path = noise_free_series(path)
        truth = read_traces(path, series=truth_path)
        series = [info.path for info in list_series(path) if info.path != truth_path]
        if len(series) != len(levels):
            raise CalciumAvaeError(
                f"{path} holds {len(series)} noisy series but {len(levels)} noise levels "
                "were simulated; simulate the dataset again"
            )
        found = [read_traces(path, series=p) for p in series]
        sigmas = [float(np.std(t.data.astype(np.float64) - truth.data)) for t in found]
        for level, k in zip(levels, np.argsort(sigmas), strict=True):
            noisy[level].append(found[k].data)
            measured[level].append(sigmas[k])
        clean.append(truth.data)
        tables.append(truth.roi_table.reset_index(drop=True))
        rate = truth.rate
    sigma = {s: float(np.mean(v)) for s, v in measured.items()}
    ratios = np.array([sigma[s] / s for s in levels])
    if ratios.max() > 1.2 * ratios.min():
        raise CalciumAvaeError(
            "the noisy series do not scale with the requested noise levels "
            f"(measured {', '.join(f'{sigma[s]:.3g}' for s in levels)}); simulate again"
        )
    return Dataset(
        noisy={s: np.concatenate(v) for s, v in noisy.items()},
        clean=np.concatenate(clean),
        table=pd.concat(tables, ignore_index=True),
        measured_sigma=sigma,
        frame_rate=float(rate) if rate else float("nan"),
    )


def partition(n: int, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean test mask of one random train/test partition (the paper's section 2.6)."""
    test = np.zeros(n, dtype=bool)
    rng = np.random.default_rng(seed)
    test[rng.choice(n, round(test_fraction * n), replace=False)] = True
    return test
