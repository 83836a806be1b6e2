"""GCaMP6s fluorescence from spike times (seed 000 eq. 2, after Deneux et al. 2016).

Calcium kappa(t) = sum_k exp(-(t - t_k) / tau) is computed exactly at the 1 ms simulation
grid with a recursive exponential filter and then carried analytically to each frame
time, so any frame rate samples the same underlying signal (no binning at frame rate).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from ..errors import CalciumAvaeError

F0 = 42.0
AMPLITUDE = 0.113
P2 = 0.81
P3 = -0.056
TAU_CALCIUM_S = 1.82


def polynomial(kappa: np.ndarray, p2: float = P2, p3: float = P3) -> np.ndarray:
    """The GCaMP6s nonlinearity kappa + p2 (kappa^2 - kappa) + p3 (kappa^3 - kappa)."""
    return kappa + p2 * (kappa**2 - kappa) + p3 * (kappa**3 - kappa)


def saturation_kappa(p2: float = P2, p3: float = P3) -> float:
    """Where the cubic peaks: beyond it more calcium would make the cell dimmer.

    Root of 3 p3 k^2 + 2 p2 k + (1 - p2 - p3) = 0 (about 9.79 for GCaMP6s); inf when the
    polynomial never turns over.
    """
    if p3 >= 0:
        return float("inf")
    qa, qb, qc = 3 * p3, 2 * p2, 1 - p2 - p3
    disc = qb * qb - 4 * qa * qc
    if disc < 0:
        return float("inf")
    return float((-qb - np.sqrt(disc)) / (2 * qa))


def _kernel_sums(
    spike_times_ms: list[np.ndarray],
    frame_times_s: np.ndarray,
    tau_s: float,
    dt_ms: float,
    n_grid: int,
) -> np.ndarray:
    """sum_k exp(-(t_f - t_k) / tau) for every neuron and frame (neurons x frames).

    Spikes before 0 (the discarded stretch) enter as the calcium present at t = 0.
    """
    n = len(spike_times_ms)
    decay = np.exp(-dt_ms / (tau_s * 1000.0))
    grid_index = np.minimum(
        np.floor(frame_times_s * 1000.0 / dt_ms + 1e-9).astype(np.int64), n_grid - 1
    )
    carry = np.exp(-(frame_times_s * 1000.0 - grid_index * dt_ms) / (tau_s * 1000.0))
    out = np.empty((n, len(frame_times_s)))
    block = max(1, int(2**22 // n_grid))
    fade = np.exp(-frame_times_s / tau_s)
    for start in range(0, n, block):
        rows = spike_times_ms[start : start + block]
        counts = np.zeros((len(rows), n_grid))
        initial = np.zeros(len(rows))
        for r, times in enumerate(rows):
            times = np.asarray(times, dtype=np.float64)
            initial[r] = np.exp(times[times < 0] / (tau_s * 1000.0)).sum()
            steps = np.rint(times[times >= 0] / dt_ms).astype(np.int64)
            np.add.at(counts[r], steps[steps < n_grid], 1.0)
        filtered = lfilter([1.0], [1.0, -decay], counts, axis=1)
        out[start : start + len(rows)] = (
            filtered[:, grid_index] * carry + initial[:, None] * fade[None, :]
        )
    return out


def fluorescence(
    spike_times_ms: list[np.ndarray],
    duration_s: float,
    frame_rate: float,
    per_spike: bool = False,
    dt_ms: float = 1.0,
    f0: float = F0,
    amplitude: float = AMPLITUDE,
    tau_s: float = TAU_CALCIUM_S,
) -> np.ndarray:
    """Noise-free fluorescence, neurons x frames, frames at k / frame_rate in [0, duration).

    Spike times are in ms from the start of the recording; negative ones (spikes of the
    discarded stretch) still leave their calcium.
    Default: the polynomial of the total calcium, kappa saturated at the cubic's maximum.
    ``per_spike=True`` applies the polynomial to each spike's kernel and sums, as the
    released script did (exact: kernel powers are exponentials with tau / 2 and tau / 3).
    """
    if frame_rate <= 0 or duration_s <= 0:
        raise CalciumAvaeError("Frame rate and duration must be positive.")
    n_frames = int(np.floor(duration_s * frame_rate + 1e-9))
    if n_frames < 1:
        raise CalciumAvaeError(
            f"{duration_s} s at {frame_rate} Hz gives no frame; record longer or faster."
        )
    frame_times = np.arange(n_frames) / frame_rate
    n_grid = int(np.ceil(duration_s * 1000.0 / dt_ms)) + 1
    k1 = _kernel_sums(spike_times_ms, frame_times, tau_s, dt_ms, n_grid)
    if per_spike:
        k2 = _kernel_sums(spike_times_ms, frame_times, tau_s / 2, dt_ms, n_grid)
        k3 = _kernel_sums(spike_times_ms, frame_times, tau_s / 3, dt_ms, n_grid)
        shape = k1 + P2 * (k2 - k1) + P3 * (k3 - k1)
    else:
        shape = polynomial(np.minimum(k1, saturation_kappa()))
    return f0 * (1.0 + amplitude * shape)


def add_noise(
    clean: np.ndarray, sigmas: tuple[float, ...], rng: np.random.Generator
) -> list[np.ndarray]:
    """One noisy copy per sigma (absolute units), all of the same noise-free traces."""
    out = []
    for sigma in sigmas:
        if sigma < 0:
            raise CalciumAvaeError(f"Noise level {sigma} is negative; use sigma >= 0.")
        noisy = clean + sigma * rng.standard_normal(clean.shape)
        out.append(noisy.astype(np.float32))
    return out
