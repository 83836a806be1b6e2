"""GCaMP6s fluorescence from spike times (Abante et al. 2025, eq. 2, after Deneux et al. 2016).

Calcium kappa(t) = sum_k exp(-(t - t_k) / tau) is evaluated exactly at each frame time
from the 1 ms spike times (each spike weighted by its exact distance to the next frame,
then a recursive exponential filter over frames), so any frame rate samples the same
underlying signal: no binning of spikes at frame rate.
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
    out = kappa * p3  # Horner form: kappa (1 - p2 - p3 + kappa (p2 + p3 kappa))
    out += p2
    out *= kappa
    out += 1.0 - p2 - p3
    out *= kappa
    return out


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
    spike_times_ms: list[np.ndarray], frame_times_s: np.ndarray, tau_s: float
) -> np.ndarray:
    """sum_{t_k <= t_f} exp(-(t_f - t_k) / tau) for every neuron and frame (neurons x frames).

    Each spike enters at the first frame at or after it with its exact weight
    exp(-(t_f - t_k) / tau); a recursive filter over frames carries it on. This equals
    evaluating the 1 ms calcium trace at the frame times, without building it. Spikes
    before 0 (the discarded stretch) enter at frame 0 as calcium already present.
    """
    n_rows = len(spike_times_ms)
    n_frames = len(frame_times_s)
    frame_ms = frame_times_s * 1000.0
    tau_ms = tau_s * 1000.0
    interval = frame_ms[1] - frame_ms[0] if n_frames > 1 else 1.0
    sizes = np.fromiter((len(t) for t in spike_times_ms), dtype=np.int64, count=n_rows)
    times = (
        np.concatenate([np.asarray(t, dtype=np.float64) for t in spike_times_ms])
        if sizes.sum()
        else np.empty(0)
    )
    owner = np.repeat(np.arange(n_rows), sizes)
    frame = np.searchsorted(frame_ms, times - 1e-9)
    keep = frame < n_frames
    frame, owner, times = frame[keep], owner[keep], times[keep]
    weight = np.exp(-(frame_ms[frame] - times) / tau_ms)
    jumps = np.bincount(owner * n_frames + frame, weight, minlength=n_rows * n_frames)
    jumps = jumps.reshape(n_rows, n_frames)
    return lfilter([1.0], [1.0, -np.exp(-interval / tau_ms)], jumps, axis=1)


def fluorescence(
    spike_times_ms: list[np.ndarray],
    duration_s: float,
    frame_rate: float,
    per_spike: bool = False,
    f0: float = F0,
    amplitude: float = AMPLITUDE,
    tau_s: float = TAU_CALCIUM_S,
) -> np.ndarray:
    """Noise-free fluorescence (float32, neurons x frames), frames at k / frame_rate.

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
    n = len(spike_times_ms)
    out = np.empty((n, n_frames), dtype=np.float32)
    block = max(1, 2**22 // n_frames)  # neurons per block: bounded temporary memory
    for start in range(0, n, block):
        rows = spike_times_ms[start : start + block]
        k1 = _kernel_sums(rows, frame_times, tau_s)
        if per_spike:
            k2 = _kernel_sums(rows, frame_times, tau_s / 2)
            k3 = _kernel_sums(rows, frame_times, tau_s / 3)
            shape = k1 + P2 * (k2 - k1) + P3 * (k3 - k1)
        else:
            shape = polynomial(np.minimum(k1, saturation_kappa(), out=k1))
        shape *= f0 * amplitude
        shape += f0
        out[start : start + len(rows)] = shape
    return out


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
