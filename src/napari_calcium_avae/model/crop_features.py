"""Timing-invariant features of random crops of a trace: the input of the crop-feature VAE.

None of them changes when a neuron's events move in time within the crop: log power in
log-spaced bands over the white-noise floor, the autocorrelation at log-spaced lags,
quantiles of the noise-normalised amplitude and of dF/F, the signal-to-noise ratio, noise
over baseline, and a conditional decay (how much of a raised signal is left a lag later).
What a neuron is (its indicator, kinetics, gain, firing statistics) is in them; when it
fired is not. Spectrum and autocorrelation are the timing-free baselines of issue 15.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..errors import CalciumAvaeError

N_BANDS = 16
N_LAGS = 12
N_DECAY_LAGS = 8
DECAY_THRESHOLD = 3.0
"""Noise SDs above baseline that make a frame count as raised, for the conditional decay."""
_CHUNK_ELEMENTS = 2**23


def noise_sd(X: np.ndarray) -> np.ndarray:
    """Per-row noise SD from the MAD of first differences: calcium signals change slowly
    next to white shot noise, so the differences are mostly noise."""
    d = np.diff(X, axis=-1)
    mad = np.median(np.abs(d - np.median(d, axis=-1, keepdims=True)), axis=-1)
    return mad / 0.6745 / np.sqrt(2.0)


def decay_features(X: np.ndarray, frame_rate: float) -> np.ndarray:
    """Signal left a lag later, sum z(t + lag) / sum z(t), over frames t whose neighbours
    t - 1 and t + 1 are raised and falling. Selecting on the neighbours keeps the noise of
    z(t) out of the selection, so weak events are not biased towards fast decay. The
    baseline is the 20th percentile moved up by its expected noise offset."""
    X = np.asarray(X, dtype=np.float64)
    sd = np.maximum(noise_sd(X), 1e-9)[:, None]
    # the 20th percentile of a noisy baseline lies 0.84 noise SD below the baseline itself;
    # an offset in z would bias every ratio towards 1
    z = (X - np.percentile(X, 20, axis=1, keepdims=True)) / sd - 0.8416
    n_frames = X.shape[1]
    lags = np.geomspace(max(2.0, 0.05 * frame_rate), 2.0 * frame_rate, N_DECAY_LAGS)
    lags = np.minimum(np.round(lags).astype(int), max(2, n_frames // 4))
    top = n_frames - int(lags.max()) - 1
    if top < 4:
        raise CalciumAvaeError(f"crops of {n_frames} frames are too short for the decay features")
    prev, cur, nxt = z[:, : top - 2], z[:, 1 : top - 1], z[:, 2:top]
    raised = (prev > DECAY_THRESHOLD) & (nxt > DECAY_THRESHOLD) & (nxt <= prev)
    den = (cur * raised).sum(axis=1)
    out = np.zeros((len(X), len(lags)))
    for j, lag in enumerate(lags):
        later = z[:, 1 + lag : top - 1 + lag]
        out[:, j] = np.where(den > 0, (later * raised).sum(axis=1) / np.maximum(den, 1e-12), 0.0)
    return out


def crop_features(crops: np.ndarray, frame_rate: float) -> np.ndarray:
    """(m, L) crops -> (m, n_features) float32 features, none of which changes when the
    neuron's events move in time within the crop."""
    x = np.asarray(crops, dtype=np.float64)
    n_frames = x.shape[1]
    if n_frames < 16:
        raise CalciumAvaeError(f"crops of {n_frames} frames are too short; use longer crops")
    sd = np.maximum(noise_sd(x), 1e-9)[:, None]
    f0 = np.percentile(x, 20, axis=1, keepdims=True)
    y = x - x.mean(axis=1, keepdims=True)
    # power over the white-noise floor (1 where the crop is only noise), log-spaced bands
    window = np.hanning(n_frames)
    power = np.abs(np.fft.rfft(y * window, axis=1)) ** 2 / (sd**2 * np.sum(window**2))
    freqs = np.fft.rfftfreq(n_frames, 1.0 / frame_rate)
    edges = np.searchsorted(freqs, np.geomspace(2 * frame_rate / n_frames, frame_rate / 2, 17))
    edges = np.minimum(np.maximum.accumulate(np.maximum(edges, np.arange(1, 18))), len(freqs) - 1)
    bands = [power[:, a : max(b, a + 1)].mean(axis=1) for a, b in itertools.pairwise(edges)]
    spectrum = np.log(np.stack(bands, axis=1) + 1e-6)
    spectrum_fft = np.fft.rfft(y, 2 * n_frames, axis=1)
    acov = np.fft.irfft(np.abs(spectrum_fft) ** 2, axis=1)[:, :n_frames]
    lags = np.geomspace(1, min(n_frames // 4, 4 * frame_rate), N_LAGS)
    acorr = acov[:, np.round(lags).astype(int)] / np.maximum(acov[:, :1], 1e-12)
    q = np.quantile((x - f0) / sd, [0.05, 0.5, 0.9, 0.99, 1.0], axis=1).T
    amplitude = np.sign(q) * np.log1p(np.abs(q))
    dff = np.quantile((x - f0) / np.maximum(np.abs(f0), 1e-6), [0.9, 0.99, 1.0], axis=1).T
    snr = np.log(np.maximum(y.var(axis=1), 1e-12) / sd[:, 0] ** 2)
    noise_over_f0 = np.log(sd[:, 0] / np.maximum(np.abs(f0[:, 0]), 1e-6))
    return np.hstack(
        [
            spectrum,
            acorr,
            amplitude,
            np.log(np.maximum(dff, 1e-4)),
            snr[:, None],
            noise_over_f0[:, None],
            decay_features(x, frame_rate),
        ]
    ).astype(np.float32)


def crop_starts(n_frames: int, crop_frames: int, n_crops: int, rng=None, n_rows: int = 1):
    """(n_rows, n_crops) start frames: random with ``rng``, else evenly spaced."""
    if rng is None:
        starts = np.linspace(0, n_frames - crop_frames, n_crops).round().astype(int)
        return np.broadcast_to(starts, (n_rows, n_crops))
    return rng.integers(0, n_frames - crop_frames + 1, (n_rows, n_crops))


def features_of_crops(
    X: np.ndarray, frame_rate: float, crop_frames: int, n_crops: int, rng=None
) -> np.ndarray:
    """(n, n_crops, n_features): features of each neuron's crops, computed in row chunks so
    that the crops never all sit in memory."""
    n, n_frames = X.shape
    step = max(1, _CHUNK_ELEMENTS // (n_crops * crop_frames))
    out = []
    for start in range(0, n, step):
        rows = X[start : start + step]
        starts = crop_starts(n_frames, crop_frames, n_crops, rng, len(rows))
        idx = starts[..., None] + np.arange(crop_frames)
        crops = rows[np.arange(len(rows))[:, None, None], idx]
        f = crop_features(crops.reshape(-1, crop_frames), frame_rate)
        out.append(f.reshape(len(rows), n_crops, -1))
    return np.concatenate(out)
