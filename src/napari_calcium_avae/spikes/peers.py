"""Simple peers of spike inference, kept as floors that any method must beat.

OASIS, the strong peer, is GPL-3 and lives only in the benchmark
(benchmarks/bench_spikes.py, the ``bench`` extra); nothing here imports it.
"""

from __future__ import annotations

import numpy as np


def positive_first_difference(x: np.ndarray) -> np.ndarray:
    """Rise of each trace from one frame to the next, negative steps set to 0 (neurons x frames).

    The simplest spike estimate (a spike makes the trace jump up, then it decays), in
    fluorescence units, so only scale-free scores (Pearson r) apply. The first frame gets
    0; a NaN frame gives NaN at itself and at the frame after it.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    out = np.zeros_like(x)
    if x.shape[1] > 1:
        np.maximum(np.diff(x, axis=1), 0.0, out=out[:, 1:])  # NaN stays NaN
    return out
