"""Indicator fluorescence from spike times (GCaMP6s by default: Abante et al. 2025, eq. 2,
after Deneux et al. 2016; the other indicators in ``indicators.py``).

Calcium kappa(t) = sum_k exp(-(t - t_k) / tau) (minus a rise kernel for indicators with
a rise time) is evaluated exactly at each frame time
from the 1 ms spike times (each spike weighted by its exact distance to the next frame,
then a recursive exponential filter over frames), so any frame rate samples the same
underlying signal: no binning of spikes at frame rate.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.signal import lfilter

from ..errors import CalciumAvaeError
from .indicators import Indicator, get_indicator

DEFAULT_INDICATOR = "GCaMP6s"
#: time constant of the slow baseline drift (a judgement: slower than any calcium kernel)
DRIFT_TIMESCALE_S = 10.0
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
    spike_times_ms: list[np.ndarray], frame_times_s: np.ndarray, tau_s: float | np.ndarray
) -> np.ndarray:
    """sum_{t_k <= t_f} exp(-(t_f - t_k) / tau) for every neuron and frame (neurons x frames).

    Each spike enters at the first frame at or after it with its exact weight
    exp(-(t_f - t_k) / tau); a recursive filter over frames carries it on. This equals
    evaluating the 1 ms calcium trace at the frame times, without building it. Spikes
    before 0 (the discarded stretch) enter at frame 0 as calcium already present.
    ``tau_s`` is one time constant, or one per neuron (a filter per row then).
    """
    n_rows = len(spike_times_ms)
    n_frames = len(frame_times_s)
    frame_ms = frame_times_s * 1000.0
    per_row = np.ndim(tau_s) > 0
    tau_ms = np.asarray(tau_s, dtype=np.float64) * 1000.0 if per_row else tau_s * 1000.0
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
    weight = np.exp(-(frame_ms[frame] - times) / (tau_ms[owner] if per_row else tau_ms))
    jumps = np.bincount(owner * n_frames + frame, weight, minlength=n_rows * n_frames)
    jumps = jumps.reshape(n_rows, n_frames)
    if not per_row:
        return lfilter([1.0], [1.0, -np.exp(-interval / tau_ms)], jumps, axis=1)
    for row, decay in enumerate(np.exp(-interval / tau_ms)):
        jumps[row] = lfilter([1.0], [1.0, -decay], jumps[row])
    return jumps


def _kernel_peak(tau_rise_s: float, tau_decay_s: float | np.ndarray) -> float | np.ndarray:
    """Peak of exp(-t / tau_decay) - exp(-t / tau_rise) over t >= 0."""
    tr, td = tau_rise_s, np.asarray(tau_decay_s, dtype=np.float64)
    tp = tr * td / (td - tr) * np.log(td / tr)
    return np.exp(-tp / td) - np.exp(-tp / tr)


def calcium(
    spike_times_ms: list[np.ndarray],
    frame_times_s: np.ndarray,
    indicator: Indicator,
    decay_scale: np.ndarray | None = None,
) -> np.ndarray:
    """The indicator's calcium kernel summed over spikes at the frame times (neurons x
    frames), in single-spike peaks; ``decay_scale`` multiplies each neuron's decay."""
    tau_d = indicator.tau_decay_s if decay_scale is None else indicator.tau_decay_s * decay_scale
    kappa = _kernel_sums(spike_times_ms, frame_times_s, tau_d)
    if indicator.tau_rise_s > 0:
        kappa -= _kernel_sums(spike_times_ms, frame_times_s, indicator.tau_rise_s)
        peak = _kernel_peak(indicator.tau_rise_s, tau_d)
        kappa /= peak[:, None] if np.ndim(peak) else peak
    return kappa


def fluorescence(
    spike_times_ms: list[np.ndarray],
    duration_s: float,
    frame_rate: float,
    per_spike: bool = False,
    f0: float | None = None,
    amplitude: float | None = None,
    tau_s: float | None = None,
    indicator: str | Indicator = DEFAULT_INDICATOR,
    amplitude_scale: np.ndarray | None = None,
    decay_scale: np.ndarray | None = None,
) -> np.ndarray:
    """Noise-free fluorescence (float32, neurons x frames), frames at k / frame_rate.

    Spike times are in ms from the start of the recording; negative ones (spikes of the
    discarded stretch) still leave their calcium. ``indicator`` (a key of INDICATORS)
    gives the kernel, amplitude and saturation; ``f0``, ``amplitude`` and ``tau_s``
    override its baseline, single-spike dF/F and decay (an amplitude scales the whole
    dF/F curve, its saturation level too). ``amplitude_scale`` (likewise) and
    ``decay_scale`` (one factor per neuron) make neurons differ.
    GCaMP6s (default): the polynomial of the total calcium, kappa saturated at the cubic's
    maximum. ``per_spike=True`` applies the polynomial to each spike's kernel and sums, as
    the released script did (exact: kernel powers are exponentials with tau / 2 and tau / 3;
    polynomial indicators without rise time only).
    """
    ind = get_indicator(indicator)
    if tau_s is not None:
        ind = replace(ind, tau_decay_s=tau_s)
    f0 = ind.f0 if f0 is None else f0
    amplitude = ind.amplitude if amplitude is None else amplitude
    if per_spike and (ind.polynomial is None or ind.tau_rise_s > 0):
        raise CalciumAvaeError(
            f"Per-spike fluorescence needs a polynomial indicator without rise time "
            f"(GCaMP6s); {ind.name} has none."
        )
    if frame_rate <= 0 or duration_s <= 0:
        raise CalciumAvaeError("Frame rate and duration must be positive.")
    n_frames = int(np.floor(duration_s * frame_rate + 1e-9))
    if n_frames < 1:
        raise CalciumAvaeError(
            f"{duration_s} s at {frame_rate} Hz gives no frame; record longer or faster."
        )
    frame_times = np.arange(n_frames) / frame_rate
    n = len(spike_times_ms)
    for name, scale in (("amplitude_scale", amplitude_scale), ("decay_scale", decay_scale)):
        if scale is not None and np.shape(scale) != (n,):
            raise CalciumAvaeError(f"{name} needs one factor per neuron ({n}).")
    out = np.empty((n, n_frames), dtype=np.float32)
    block = max(1, 2**22 // n_frames)  # neurons per block: bounded temporary memory
    for start in range(0, n, block):
        rows = spike_times_ms[start : start + block]
        stop = start + len(rows)
        if per_spike:
            p2, p3 = ind.polynomial
            tau = (
                ind.tau_decay_s
                if decay_scale is None
                else ind.tau_decay_s * decay_scale[start:stop]
            )
            k1 = _kernel_sums(rows, frame_times, tau)
            k2 = _kernel_sums(rows, frame_times, tau / 2)
            k3 = _kernel_sums(rows, frame_times, tau / 3)
            shape = k1 + p2 * (k2 - k1) + p3 * (k3 - k1)
        else:
            scale = None if decay_scale is None else decay_scale[start:stop]
            shape = ind.shape(calcium(rows, frame_times, ind, scale))
        if amplitude_scale is None:
            shape *= f0 * amplitude
        else:
            shape *= f0 * amplitude * amplitude_scale[start:stop, None]
        shape += f0
        out[start:stop] = shape
    return out


def neuropil(
    spike_times_ms: list[np.ndarray],
    duration_s: float,
    frame_rate: float,
    indicator: str | Indicator = DEFAULT_INDICATOR,
) -> np.ndarray:
    """A shared neuropil trace (float64, frames): the indicator's fluorescence of the
    culture's mean calcium, baseline F0 (the processes of all neurons, averaged)."""
    ind = get_indicator(indicator)
    n_frames = int(np.floor(duration_s * frame_rate + 1e-9))
    frame_times = np.arange(n_frames) / frame_rate
    pooled = [np.concatenate([np.asarray(t, dtype=np.float64) for t in spike_times_ms])]
    kappa = calcium(pooled, frame_times, ind)[0] / max(len(spike_times_ms), 1)
    return ind.f0 * (1.0 + ind.dff(kappa))


def slow_drift(
    shape: tuple[int, int], frame_rate: float, amplitude: float, rng: np.random.Generator
) -> np.ndarray:
    """Per-neuron multiplicative baseline drift 1 + amplitude x(t) (float64, neurons x
    frames): x is an Ornstein-Uhlenbeck process of SD 1 and time constant
    DRIFT_TIMESCALE_S, started in its stationary state; the factor stays above 0.05."""
    n, n_frames = shape
    a = np.exp(-1.0 / (frame_rate * DRIFT_TIMESCALE_S))
    steps = rng.standard_normal((n, n_frames))
    steps[:, 1:] *= np.sqrt(1 - a * a)
    x = lfilter([1.0], [1.0, -a], steps, axis=1)
    return np.maximum(1.0 + amplitude * x, 0.05)


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
