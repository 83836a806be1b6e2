"""Scoring inferred spikes against ground truth: the spikefinder protocol.

Berens et al. 2018 (PLoS Comput Biol 14:e1006157) scored the spikefinder challenge by
the Pearson correlation, per neuron, between inferred and true spikes summed into 40 ms
bins (4 frames at 100 Hz). Binning forgives a spike placed one frame early or late, which
no method can resolve at imaging rates, and Pearson r forgives the unknown scale of
methods that give activity in fluorescence units (OASIS, the first difference).

At other frame rates a bin is the whole number of frames nearest 40 ms (never fewer than
one): 30 Hz gives 1 frame (33 ms), 7.5 Hz 1 frame (133 ms), 60 Hz 2 frames (33 ms).
Frames are never split, so both series are summed over exactly the same frames.

The error in the number of spikes is relative, per neuron: (inferred - true) / true,
summed over the frames both series have. It only means something for a method whose
output is in spikes (not in fluorescence units).

NaN frames (a gap in the recording, or a method that gives none there) are left out:
a bin that holds a NaN frame in either series is dropped from that neuron's correlation,
and a NaN frame is left out of both counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import CalciumAvaeError

#: the spikefinder bin (Berens et al. 2018)
BIN_MS = 40.0


def frames_per_bin(frame_rate: float, bin_ms: float = BIN_MS) -> int:
    """Whole frames nearest ``bin_ms`` at ``frame_rate`` (at least 1): 4 at 100 Hz, 1 at 30 Hz."""
    if not (np.isfinite(frame_rate) and frame_rate > 0):
        raise CalciumAvaeError(f"Frame rate must be a positive number; got {frame_rate}.")
    if not (np.isfinite(bin_ms) and bin_ms > 0):
        raise CalciumAvaeError(f"Bin width must be a positive number of ms; got {bin_ms}.")
    return max(1, int(np.floor(frame_rate * bin_ms / 1000.0 + 0.5)))


def spike_counts_per_frame(
    spike_times_ms: Sequence[np.ndarray], n_frames: int, frame_rate: float
) -> np.ndarray:
    """True spikes per frame (neurons x frames, float64) from spike times in ms.

    Frame k is taken at k / frame_rate, and a spike counts in the first frame at or after
    it, where the simulator's fluorescence first shows it (simulate/fluorescence.py).
    Spikes before 0 (the simulator's discarded stretch) or after the last frame are not
    counted.
    """
    if n_frames < 1:
        raise CalciumAvaeError(f"Need at least one frame; got {n_frames}.")
    if not (np.isfinite(frame_rate) and frame_rate > 0):
        raise CalciumAvaeError(f"Frame rate must be a positive number; got {frame_rate}.")
    frame_ms = np.arange(n_frames) * (1000.0 / frame_rate)
    out = np.zeros((len(spike_times_ms), n_frames))
    for row, times in enumerate(spike_times_ms):
        times = np.asarray(times, dtype=np.float64)
        times = times[(times >= 0) & (times <= frame_ms[-1] + 1e-9)]
        frame = np.searchsorted(frame_ms, times - 1e-9)
        out[row] = np.bincount(frame, minlength=n_frames)
    return out


def imaged_spike_counts(imaged_culture: object, frame_rate: float) -> np.ndarray:
    """True spikes per frame of a simulated culture's imaged neurons (ROIs x frames).

    ``imaged_culture`` is a ``simulate.ImagedCulture`` simulated at ``frame_rate`` (it does
    not keep its rate): its rows follow ``imaged``, its frames those of ``clean``.
    """
    culture = imaged_culture.culture  # type: ignore[attr-defined]
    times = [culture.spike_times_ms[i] for i in imaged_culture.imaged]  # type: ignore[attr-defined]
    n_frames = imaged_culture.clean.shape[1]  # type: ignore[attr-defined]
    return spike_counts_per_frame(times, n_frames, frame_rate)


def _as_pair(inferred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    inferred = np.atleast_2d(np.asarray(inferred, dtype=np.float64))
    true = np.atleast_2d(np.asarray(true, dtype=np.float64))
    if inferred.shape != true.shape or inferred.ndim != 2:
        raise CalciumAvaeError(
            f"Inferred and true spikes must both be (neurons, frames); got {inferred.shape} "
            f"and {true.shape}."
        )
    return inferred, true


def bin_frames(x: np.ndarray, per_bin: int) -> np.ndarray:
    """Sums of ``per_bin`` consecutive frames (neurons x bins); a last partial bin is dropped.

    A bin holding a NaN frame is NaN.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if per_bin < 1:
        raise CalciumAvaeError(f"A bin needs at least one frame; got {per_bin}.")
    n_bins = x.shape[1] // per_bin
    return x[:, : n_bins * per_bin].reshape(x.shape[0], n_bins, per_bin).sum(axis=2)


def binned_correlation(
    inferred: np.ndarray, true: np.ndarray, frame_rate: float, bin_ms: float = BIN_MS
) -> np.ndarray:
    """Pearson r per neuron between inferred and true spikes in ~40 ms bins (spikefinder).

    Bins with a NaN frame in either series are left out for that neuron. Where the true
    binned spikes are constant (no spike, or fewer than 3 usable bins) r is NaN: the neuron
    cannot be scored, for any method. Where only the inferred series is constant (a method
    that gives nothing) r is 0: it predicts none of the variation.
    """
    inferred, true = _as_pair(inferred, true)
    per_bin = frames_per_bin(frame_rate, bin_ms)
    a = bin_frames(inferred, per_bin)
    b = bin_frames(true, per_bin)
    out = np.full(a.shape[0], np.nan)
    for row in range(a.shape[0]):
        keep = np.isfinite(a[row]) & np.isfinite(b[row])
        if keep.sum() < 3:
            continue
        x = a[row, keep] - a[row, keep].mean()
        y = b[row, keep] - b[row, keep].mean()
        sy = np.sqrt(np.dot(y, y))
        if sy <= 1e-12 * max(1.0, np.abs(b[row, keep]).max()):
            continue
        sx = np.sqrt(np.dot(x, x))
        if sx <= 1e-12 * max(1.0, np.abs(a[row, keep]).max()):
            out[row] = 0.0
            continue
        out[row] = float(np.clip(np.dot(x, y) / (sx * sy), -1.0, 1.0))
    return out


def count_error(inferred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Relative error in the number of spikes per neuron: (inferred - true) / true.

    Signed (negative: too few). Frames that are NaN in either series are left out of both
    sums; NaN where the neuron has no true spike in the frames left.
    """
    inferred, true = _as_pair(inferred, true)
    keep = np.isfinite(inferred) & np.isfinite(true)
    n_inferred = np.where(keep, inferred, 0.0).sum(axis=1)
    n_true = np.where(keep, true, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n_true > 0, (n_inferred - n_true) / n_true, np.nan)
