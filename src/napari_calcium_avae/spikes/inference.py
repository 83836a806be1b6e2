"""Spike inference: sparse nonnegative deconvolution of calcium traces, batched in torch.

Model (Vogelstein et al. 2010; Pnevmatikakis et al. 2016, Neuron 89:285; Friedrich, Zhou
& Paninski 2017, PLoS Comput Biol 13:e1005423): for each neuron,

    y_t = b_t + c_t + eps_t,        eps_t ~ N(0, sigma^2)   (white measurement noise)
    c_t = sum_{i=1..p} gamma_i c_{t-i} + s_t,               s_t >= 0

and the spikes solve  min_s 1/2 ||y - b - K s||^2 + lambda sum_t s_t  (s >= 0), where K
is the AR(p) impulse response and lambda = ``sparsity`` x sigma x ||h||. The noise SD
comes from the power spectrum's upper half (white noise is flat there), the AR roots from
the autocovariance at lags 1..p+q with its lag 0 less the noise (Yule-Walker on the
noise-free part), refined ("likelihood") by least squares of the trace given the
spikes (the Gaussian likelihood of the model above), alternating with the spikes. The
problem is solved by FISTA (Beck & Teboulle 2009) with fixed iterations, the AR kernel
applied by FFT, batched over neurons (chunks of rows bound the memory), on CPU or GPU.

It replaced the MAP rate under seed 002's likelihood (noise fed through the AR process,
model/calcium.py) as the engine here: that model read measurement noise as calcium and
trailed OASIS at every indicator (docs/spikes.md). Seed 002's count mixture
(``model.calcium.mixture_log_terms``) still gives the credible band: each frame's
deconvolved increment, in spikes, is read as a noisy count under a Poisson prior.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from ..errors import CalciumAvaeError, CalciumAvaeWarning

#: AR orders SpikeInference accepts: 1 (instant rise) or 2 (a rise time as well).
AR_ORDERS = (1, 2)
#: Input kinds SpikeInference accepts: decide from the data, dF/F, or raw fluorescence.
INPUT_KINDS = ("auto", "dff", "raw")
#: How the decay is estimated: "likelihood" (autocovariance, then refined by least
#: squares of the trace given the spikes) or "autocovariance" (that estimate alone).
DECAY_ESTIMATES = ("likelihood", "autocovariance")
#: The L1 weights (as ``sparsity``) ``denoise`` chooses from, per neuron, by Stein's
#: unbiased estimate of the error against the noise-free trace (SURE; the lasso's degrees
#: of freedom are its nonzero coefficients, Zou, Hastie & Tibshirani 2007). No one weight
#: suits every noise level: a light one follows small events at high SNR, a heavy one
#: keeps noise out at low SNR (benchmarks/bench_denoise.py, docs/benchmarks.md).
DENOISE_SPARSITIES = (0.25, 0.5, 1.0, 2.0, 4.0)
#: Each warm-started solve of that grid after the first runs max_iter / _WARM_SHARE steps
#: (2 scored as cold full solves on bench_denoise --quick, 4 lost up to 0.2x the filter).
_WARM_SHARE = 2
#: The running baseline subtracted before the fit: this low percentile of each trace over
#: windows of DEFAULT_DETREND_S seconds. A slow drift (bleaching, focus, neuropil) otherwise
#: reads as a slow calcium decay: on simulated drift the fitted decay of GCaMP6f rose from
#: 0.16 to 1.7 s and r fell from 0.73 to 0.25. 10 s: the windows of 5-30 s tried all cost
#: <= 0.005 r without drift, shorter ones gain more with it (benchmarks/bench_spikes.py
#: --drift, docs/spikes.md); 10 s still lets an event last 9 s before the baseline climbs.
DEFAULT_DETREND_S = 10.0
_DETREND_PERCENTILE = 8.0
#: A trace's running baseline is taken off only when it moves by more than this many
#: standard errors of a window's percentile (``_drifts``).
_DRIFT_SES = 3.0
#: A FISTA solve stops once no row's spikes moved by more than this share of their norm
#: over the last _FISTA_CHECK iterations (or at ``max_iter``). 200 fixed iterations left
#: slow kernels unconverged: GCaMP6s at 100 Hz needed about 700 (r 0.905 -> 0.942), while
#: GCaMP6f at 30 Hz stops near 200; 0.3 % and 0.1 % scored the same as 1 % at 2-4x the
#: time (docs/spikes.md, "Iterations").
_FISTA_TOL = 1e-2
_FISTA_CHECK = 25
#: Fewest finite frames a trace needs for its kinetics to be fitted.
MIN_FRAMES = 50
#: Memory the per-chunk tensors may take (bytes); keeps 10,000 x 30,000 < 4 GB.
_CHUNK_BYTES = 256 * 2**20
#: Most frames (from the start of the trace) used to refine the kinetics.
_FIT_FRAMES = 5000
#: Autocovariance lags beyond the AR order in the Yule-Walker estimate.
_EXTRA_LAGS = 10
#: Kinetics refinement: rounds of (spikes, then kinetics) and Adam steps per round.
_ROUNDS = 2
_REFINE_STEPS = 30
#: Log-likelihood gain of the fitted spikes over none (nats) below which a ROI is noise:
#: _NOISE_NATS plus _NOISE_NATS_PER_FRAME per finite frame (white noise alone gained
#: 10-17 nats over 800 frames, 0.013-0.022 per frame, by fitting its largest excursions).
_NOISE_NATS = 10.0
_NOISE_NATS_PER_FRAME = 0.03
#: Saturation strengths tried (times the inverse of the trace's 99th percentile above
#: baseline); the one whose fit explains the trace best is kept per neuron.
_SATURATION_GRID = (0.0, 0.5, 1.0, 2.0, 4.0)
#: Traces up to this many values keep their spikes from fit for transform of the same X.
_CACHE_VALUES = 50_000_000
#: One spike's increment: this quantile of the event sizes above this many floors.
_UNIT_FLOORS = 3.0
_UNIT_QUANTILE = 0.5


class NoSpikesWarning(CalciumAvaeWarning):
    """Some ROIs show no spikes above the noise; a fit in chunks says it once, in total."""


def no_spikes_message(n_noise: int, n: int) -> str:
    """The one-line warning about ROIs whose likelihood gain from spikes is too small."""
    return (
        f"{n_noise} of {n} ROI(s) show no spikes above the noise "
        f"(likelihood gain < {_NOISE_NATS:g} nats + {_NOISE_NATS_PER_FRAME:g} per frame); "
        "their rates are near 0"
    )


def _robust_sd(x: np.ndarray, axis: int = -1) -> np.ndarray:
    med = np.nanmedian(x, axis=axis, keepdims=True)
    return 1.4826 * np.nanmedian(np.abs(x - med), axis=axis)


class SpikeInference(TransformerMixin, BaseEstimator):
    """Spikes per frame from calcium traces by sparse nonnegative deconvolution.

    Parameters
    ----------
    ar_order : 1 or 2
        AR(1) (instant rise, exponential decay) or AR(2) (a rise time as well). AR(2) is
        the default: it fits indicators with a rise time (GCaMP6f, GCaMP5k, OGB-1) far
        better; for an instant-rise indicator (GCaMP6s) AR(1) scores a little higher.
    frame_rate : float or None
        Frames per second; only for ``time_constants_`` in seconds.
    input_kind : "auto", "dff" or "raw"
        Whether X is dF/F (baseline near 0) or raw fluorescence (a positive baseline);
        "auto" decides from the data and says which in ``input_kind_``.
    n_baseline : int
        Terms of the slow cosine baseline (1 = constant; more follow drift or bleaching).
    detrend_s : float or None
        Window (seconds) of the running low-percentile baseline subtracted from each trace
        before the fit and added back to ``denoise``'s output; it follows drift faster
        than the cosine baseline can. None (or no ``frame_rate``): no running baseline.
    sparsity : float
        The L1 weight in units of the noise SD times the kernel's norm: a spike is kept
        when its match to the kernel exceeds ``sparsity`` noise SDs. Larger, fewer spikes.
    decay_estimate : "likelihood" or "autocovariance"
        "likelihood" refines the AR roots from the autocovariance by least squares of the
        trace given the spikes (the Gaussian likelihood), alternating with the spikes;
        "autocovariance" keeps the Yule-Walker estimate (faster, worse on bursts, which
        make the input correlated and bias it).
    saturation : bool
        Also fit a saturating fluorescence map z = log1p(a c) / a per neuron (a chosen from
        a grid by how well the fit explains the trace; a = 0 is linear).
    device : str
        "auto", "cpu", "cuda" or "mps" (see ``model.device``).
    max_iter : int
        Most FISTA iterations per solve (the fit solves 1 + ``_ROUNDS`` times, transform
        once); a solve stops earlier once its spikes settle (``_FISTA_TOL``).
    chunk_size : int or None
        Neurons per chunk; None sizes chunks to keep memory bounded.
    random_state : int or None
        Kept for the estimator API; the fit is deterministic.
    verbose : bool
        Show progress over chunks.
    """

    def __init__(
        self,
        ar_order: int = 2,
        frame_rate: float | None = None,
        input_kind: str = "auto",
        n_baseline: int = 1,
        detrend_s: float | None = DEFAULT_DETREND_S,
        sparsity: float = 2.0,
        decay_estimate: str = "likelihood",
        saturation: bool = False,
        device: str = "auto",
        max_iter: int = 2000,
        chunk_size: int | None = None,
        random_state: int | None = 0,
        verbose: bool = False,
    ) -> None:
        self.ar_order = ar_order
        self.frame_rate = frame_rate
        self.input_kind = input_kind
        self.n_baseline = n_baseline
        self.detrend_s = detrend_s
        self.sparsity = sparsity
        self.decay_estimate = decay_estimate
        self.saturation = saturation
        self.device = device
        self.max_iter = max_iter
        self.chunk_size = chunk_size
        self.random_state = random_state
        self.verbose = verbose

    # -- checks ---------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.ar_order not in AR_ORDERS:
            raise CalciumAvaeError(f"ar_order must be 1 or 2, not {self.ar_order!r}")
        if self.input_kind not in INPUT_KINDS:
            raise CalciumAvaeError(
                f"input_kind must be 'auto', 'dff' or 'raw', not {self.input_kind!r}"
            )
        if int(self.max_iter) < 1:
            raise CalciumAvaeError(f"max_iter must be at least 1, not {self.max_iter!r}")
        if self.frame_rate is not None and not float(self.frame_rate) > 0:
            raise CalciumAvaeError(f"frame_rate must be positive, not {self.frame_rate!r}")
        if self.decay_estimate not in DECAY_ESTIMATES:
            raise CalciumAvaeError(
                "decay_estimate must be 'likelihood' or 'autocovariance', not "
                f"{self.decay_estimate!r}"
            )
        if not self.sparsity >= 0:
            raise CalciumAvaeError(f"sparsity must be >= 0, not {self.sparsity!r}")
        if int(self.n_baseline) < 1:
            raise CalciumAvaeError(f"n_baseline must be at least 1, not {self.n_baseline!r}")
        if self.detrend_s is not None and not (
            isinstance(self.detrend_s, int | float)
            and math.isfinite(self.detrend_s)
            and self.detrend_s > 0
        ):
            raise CalciumAvaeError(
                f"detrend_s must be a positive number of seconds or None, not {self.detrend_s!r}"
            )

    def _standardised(self, X: np.ndarray, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        """Rows of X on the fit's scale, their running baseline taken off, and that
        baseline (zeros without ``detrend_s``, and for rows whose baseline moves no more
        than its percentiles' sampling noise would: ``_drifts``), both float64."""
        xs = (X[rows].astype(np.float64) - self._offset[rows, None]) / self._scale[rows, None]
        if self.detrend_s is None or not self.frame_rate:
            return xs, np.zeros_like(xs)
        window = round(float(self.detrend_s) * float(self.frame_rate))
        trend = running_baseline(xs, window)
        trend[~_drifts(xs, trend, window)] = 0.0
        return xs - trend, trend

    def _check_X(self, X: Any) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2:
            raise CalciumAvaeError(f"X must be neurons x frames (2-D), not {X.ndim}-D")
        if not np.issubdtype(X.dtype, np.floating):
            X = X.astype(np.float32)
        X = np.where(np.isinf(X), np.nan, X) if np.isinf(X).any() else X
        n_finite = np.isfinite(X).sum(1)
        if X.shape[0] == 0:
            raise CalciumAvaeError("X has no neurons (0 rows)")
        if (n_finite == 0).any():
            rows = np.flatnonzero(n_finite == 0)
            raise CalciumAvaeError(
                f"{rows.size} row(s) are all NaN (first: row {rows[0]}); drop them first"
            )
        if X.shape[1] < MIN_FRAMES or (n_finite < MIN_FRAMES).any():
            raise CalciumAvaeError(
                f"traces too short to fit kinetics: {int(n_finite.min())} finite frames; "
                f"at least {MIN_FRAMES} are needed"
            )
        return X

    def _detect_kind(self, stats: dict[str, np.ndarray]) -> str:
        """dF/F if the typical row's baseline (20th percentile) is within 3 noise SDs of 0,
        else raw F; raw F must have a positive baseline in every row."""
        base = stats["base"]
        noise = np.maximum(stats["noise"], 1e-12)
        if self.input_kind == "auto":
            kind = "raw" if np.median(base / noise) > 3 and (base > 0).mean() > 0.5 else "dff"
        else:
            kind = self.input_kind
        if kind == "raw" and (base <= 0).any():
            rows = np.flatnonzero(base <= 0)
            raise CalciumAvaeError(
                f"{rows.size} row(s) have a zero or negative baseline (first: row {rows[0]}) "
                "but X is treated as raw fluorescence; pass dF/F with input_kind='dff'"
            )
        return kind

    def check_input(self, X: Any) -> str:
        """Check X as ``fit`` does and return the input kind it would use ("dff" or "raw").

        A recording fitted in blocks of rows (``pipeline.deconvolve`` with ``chunk_rois``)
        is checked whole, so an error names the recording's row, and every block is fitted
        with the kind the whole recording gives."""
        self._check_params()
        return self._detect_kind(_row_stats(self._check_X(X)))

    def _chunk_rows(self, n_frames: int) -> int:
        """Neurons per chunk: about 24 live float32 vectors of the FFT length per neuron
        (autograd of the refinement included), within _CHUNK_BYTES."""
        if self.chunk_size is not None:
            return max(1, int(self.chunk_size))
        nfft = 2 * _next_pow2(n_frames)
        return max(1, int(_CHUNK_BYTES // (4 * 24 * nfft)))

    # -- fitting --------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> SpikeInference:
        """Fit every neuron's kinetics, noise SD, baseline and spike size; infer spikes."""
        import torch

        from ..model.device import resolve_device

        self._check_params()
        X = self._check_X(X)
        n, t = X.shape
        stats = _row_stats(X)
        kind = self._detect_kind(stats)
        dev = resolve_device(self.device)
        p = self.ar_order
        offset = stats["median"]
        scale = np.where(stats["std"] > 0, stats["std"], 1.0)
        self._offset, self._scale = offset, scale
        roots = np.zeros((n, p))
        unit = np.ones(n)
        size = np.ones(n)
        peak = np.ones(n)
        noise = np.zeros(n)
        base = np.zeros((n, self.n_baseline))
        sat = np.zeros(n) if self.saturation else None
        evidence = np.zeros(n)
        cache = np.empty((n, t), np.float32) if X.size <= _CACHE_VALUES else None

        chunk = self._chunk_rows(t)
        starts = list(range(0, n, chunk))
        bar = None
        if self.verbose and len(starts) > 1:
            from ..progress import progress_bar

            bar = progress_bar(total=len(starts), desc="spike inference", unit="chunk")
        try:
            for s0 in starts:
                rows = slice(s0, min(n, s0 + chunk))
                xs, trend = self._standardised(X, rows)
                y_t = torch.as_tensor(xs, dtype=torch.float32, device=dev)
                fitted = _fit_chunk(
                    y_t,
                    p,
                    int(self.n_baseline),
                    float(self.sparsity),
                    int(self.max_iter),
                    self.decay_estimate == "likelihood",
                    bool(self.saturation),
                )
                roots[rows] = fitted["roots"]
                unit[rows] = fitted["unit"]
                size[rows] = fitted["size"]
                peak[rows] = fitted["peak"]
                noise[rows] = fitted["sigma"]
                base[rows] = fitted["baseline"]
                base[rows, 0] += trend.mean(1)
                evidence[rows] = fitted["evidence"]
                if sat is not None:
                    sat[rows] = fitted["saturation"]
                if cache is not None:
                    cache[rows] = fitted["spikes"]
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()

        self.n_features_in_ = t
        self.n_neurons_ = n
        self.input_kind_ = kind
        self.device_ = str(dev)
        self._unit = unit
        self.roots_ = roots
        self.decay_ = _ar_coefficients(roots)
        with np.errstate(divide="ignore"):
            tc = -1.0 / np.log(np.clip(roots, 1e-12, 1 - 1e-12))
        self.time_constants_ = tc / float(self.frame_rate) if self.frame_rate else tc
        # gain: fluorescence at the peak of one spike's response (input units)
        self.gain_ = size * peak * scale
        self.noise_sd_ = noise * scale
        self.baseline_ = base * scale[:, None]
        self.baseline_[:, 0] += offset
        self.saturation_ = None if sat is None else sat / scale
        self._sat_scaled = sat
        self.spike_evidence_ = evidence
        self.noise_only_ = evidence < _NOISE_NATS + _NOISE_NATS_PER_FRAME * np.isfinite(X).sum(1)
        if cache is not None:
            self._cache = (_fingerprint(X), cache)
        else:
            self._cache = None
        spikes_total = (
            np.nansum(cache, axis=1) if cache is not None else np.full(n, np.nan, np.float64)
        )
        self.rate_ = spikes_total / np.maximum(np.isfinite(X).sum(1), 1)
        if self.noise_only_.any():
            warnings.warn(
                no_spikes_message(int(self.noise_only_.sum()), n), NoSpikesWarning, stacklevel=2
            )
        if cache is None:  # the mean rate needs the spikes: infer them, a chunk at a time
            for s0 in starts:
                rows = slice(s0, min(n, s0 + chunk))
                spikes = self._rows(X, rows, (float(self.sparsity),))[0]
                self.rate_[rows] = np.nanmean(spikes, axis=1)
        return self

    # -- inference ------------------------------------------------------------------------
    def transform(self, X: Any) -> np.ndarray:
        """Spikes per frame (neurons x frames, float32): the deconvolved increments divided
        by one spike's size. NaN frames give NaN. X must hold the
        fitted neurons; with ``n_baseline`` > 1 the baseline is refitted to X."""
        X = self._check_fitted_X(X)
        if self._cache is not None and X.shape == self._cache[1].shape:
            if _fingerprint(X) == self._cache[0]:
                return self._cache[1].copy()
        return self._solve(X)

    def denoise(self, X: Any, sparsity: float | None = None) -> np.ndarray:
        """The noise-free trace the model explains X with (neurons x frames, float32, in
        X's units): baseline plus the spikes through each neuron's calcium kernel (and
        saturation). NaN frames get the model's value, so gaps are filled, not copied.

        The spikes are solved again for the denoised trace: with the L1 weight
        ``sparsity``, or (None, the default) with the weight of ``DENOISE_SPARSITIES``
        whose estimated error (SURE) is least for each neuron. The weight that keeps false
        spikes out shrinks every event, which at high SNR costs more squared error than
        a few small false events do."""
        grid = DENOISE_SPARSITIES if sparsity is None else (float(sparsity),)
        return self._solve(self._check_fitted_X(X), denoise_sparsities=grid)

    def _check_fitted_X(self, X: Any) -> np.ndarray:
        if not hasattr(self, "n_features_in_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("SpikeInference is not fitted yet; call fit(X) first")
        X = np.asarray(X)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[0] != self.n_neurons_:
            raise CalciumAvaeError(
                f"X must have the {self.n_neurons_} neurons it was fitted on, not shape {X.shape}"
            )
        return X

    def _solve(
        self, X: np.ndarray, denoise_sparsities: tuple[float, ...] | None = None
    ) -> np.ndarray:
        """Spikes per frame of X, or with ``denoise_sparsities`` the denoised trace."""
        n, t = X.shape
        out = np.empty((n, t), np.float32)
        chunk = self._chunk_rows(t)
        for s0 in range(0, n, chunk):
            rows = slice(s0, min(n, s0 + chunk))
            if denoise_sparsities is not None:
                out[rows] = self._rows(X, rows, denoise_sparsities)[1]
            else:
                out[rows] = self._rows(X, rows, (float(self.sparsity),))[0]
        return out

    def _rows(
        self, X: np.ndarray, rows: slice, sparsities: tuple[float, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Spikes per frame (NaN at NaN frames) and the denoised trace of X's rows
        ``rows``, both float32; with several L1 weights, each row keeps the solve whose
        estimated error against the noise-free trace (SURE) is least."""
        import torch

        from ..model.device import resolve_device

        dev = resolve_device(self.device)
        xs, trend = self._standardised(X, rows)
        y_t = torch.as_tensor(xs, dtype=torch.float32, device=dev)
        roots = torch.as_tensor(self.roots_[rows], dtype=torch.float32, device=dev)
        sat = None if self._sat_scaled is None else self._sat_scaled[rows]
        best_risk = None
        warm = None
        fixed = _FixedKinetics(y_t, roots, int(self.n_baseline))
        var = fixed.sigma.double().cpu().numpy() ** 2  # SURE's noise variance, as the fit's
        # heaviest weight first, each later solve warm-started from the one before: a
        # lighter weight only adds small events, so fewer iterations do (_WARM_SHARE)
        for k, sparsity in enumerate(sorted(sparsities, reverse=True)):
            n_iter = int(self.max_iter) if k == 0 else max(1, int(self.max_iter) // _WARM_SHARE)
            s_k, fitted_k = fixed.solve(sparsity, n_iter, sat, warm)
            warm = s_k
            if len(sparsities) == 1:
                s, fitted = s_k, fitted_k
                break
            risk = _sure(xs, fitted_k, s_k, int(self.n_baseline), var)
            if best_risk is None:
                s, fitted, best_risk = s_k, fitted_k, risk
                continue
            better = risk < best_risk
            s[better], fitted[better] = s_k[better], fitted_k[better]
            best_risk = np.where(better, risk, best_risk)
        spikes = (s / self._unit[rows, None]).astype(np.float32)
        spikes[~np.isfinite(xs)] = np.nan
        trace = (fitted + trend) * self._scale[rows, None] + self._offset[rows, None]
        return spikes, trace.astype(np.float32)

    def credible_band(
        self, X: Any, level: float = 0.9
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Spikes per frame (as ``transform``) and the central ``level`` band of an
        approximate count posterior per frame: (mean, lower, upper), neurons x frames.

        The band reads each frame's inferred spikes as a count k seen with Gaussian error
        (the measurement noise passed through the AR inverse, in spikes) under a Poisson
        prior at the neuron's mean rate: seed 002's per-frame count mixture."""
        import torch

        from ..model.calcium import choose_max_count, mixture_log_terms

        if not 0 < level < 1:
            raise CalciumAvaeError(f"level must be between 0 and 1, not {level!r}")
        mean = self.transform(X)
        lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
        g = self.decay_
        # the white noise through the AR inverse, over one spike's increment
        step = np.maximum(self._unit * self._scale, 1e-12)
        sd = self.noise_sd_ * np.sqrt(1 + (g**2).sum(1)) / step
        sd = torch.as_tensor(np.maximum(sd, 1e-3), dtype=torch.float64)
        rate = np.maximum(np.nan_to_num(self.rate_, nan=0.0), 1e-6)
        top = float(np.nanmax(mean)) if np.isfinite(mean).any() else 0.0
        r = max(choose_max_count(float(rate.max())), math.ceil(top + 4))
        lower = np.full(mean.shape, np.nan, np.float32)
        upper = np.full(mean.shape, np.nan, np.float32)
        for s0 in range(0, mean.shape[0], 64):
            rows = slice(s0, min(mean.shape[0], s0 + 64))
            m = torch.as_tensor(np.nan_to_num(mean[rows]), dtype=torch.float64)
            lam = torch.as_tensor(rate[rows], dtype=torch.float64)[:, None].expand_as(m)
            ones = torch.ones(m.shape[0], dtype=torch.float64)
            post = torch.softmax(mixture_log_terms(m, lam, ones, sd[rows], r), -1)
            cdf = torch.cumsum(post, -1)
            lo = (cdf < lo_q - 1e-12).sum(-1).numpy()
            hi = np.minimum((cdf < hi_q - 1e-12).sum(-1).numpy(), r)
            finite = np.isfinite(mean[rows])
            lower[rows] = np.where(finite, lo, np.nan)
            upper[rows] = np.where(finite, hi, np.nan)
        return mean, lower, upper


def _fingerprint(X: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(X).view(np.uint8), digest_size=16).hexdigest()


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


def _ar_coefficients(roots: np.ndarray) -> np.ndarray:
    """AR coefficients (N, p) from roots: AR(1) gamma = r; AR(2) (r1 + r2, -r1 r2)."""
    if roots.shape[1] == 1:
        return roots.copy()
    return np.stack([roots[:, 0] + roots[:, 1], -roots[:, 0] * roots[:, 1]], 1)


# -- the deconvolution, batched in torch ---------------------------------------------------


def _prepare(y):
    """Zero-filled trace and its weights (1 finite, 0 NaN), so that FFTs see no NaN."""
    import torch

    finite = torch.isfinite(y)
    return torch.where(finite, y, torch.zeros((), dtype=y.dtype, device=y.device)), finite.to(
        y.dtype
    )


def _centred(y0, w):
    mean = (y0 * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1)
    return (y0 - mean) * w


def _noise_sd(y0, w):
    """Noise SD from the power spectrum's upper half (0.25-0.5 cycles per frame), where
    calcium transients have little power and white noise is flat (Pnevmatikakis 2016)."""
    import torch

    yc = _centred(y0, w)
    power = torch.fft.rfft(yc).abs() ** 2 / w.sum(1, keepdim=True).clamp_min(1)
    half = power.shape[1] // 2
    return power[:, half:].mean(1).sqrt().clamp_min(1e-6)


def _ar_roots(y0, w, sigma, p: int):
    """AR roots (N, p) by Yule-Walker on the autocovariance at lags 1..p+q, its lag 0
    less the noise variance (white noise adds only there)."""
    import torch

    yc = _centred(y0, w).double()
    wd = w.double()
    t = y0.shape[1]
    lags = min(p + _EXTRA_LAGS, t // 4)
    acov = []
    for k in range(lags + 1):
        num = (yc[:, k:] * yc[:, : t - k]).sum(1)
        den = (wd[:, k:] * wd[:, : t - k]).sum(1).clamp_min(1)
        acov.append(num / den)
    a = torch.stack(acov, 1)
    a[:, 0] = a[:, 0] - sigma.double() ** 2
    rows = [
        torch.stack([a[:, abs(k - i)] for i in range(1, p + 1)], -1) for k in range(1, lags + 1)
    ]
    design = torch.stack(rows, 1)  # (N, lags, p)
    target = a[:, 1 : lags + 1, None]
    ridge = 1e-9 * (a[:, :1, None] ** 2).clamp_min(1e-12)
    gram = design.transpose(1, 2) @ design + ridge * torch.eye(p, dtype=a.dtype, device=a.device)
    g = torch.linalg.solve(gram, design.transpose(1, 2) @ target)[..., 0]
    if p == 1:
        r = torch.nan_to_num(g, nan=0.5).clamp(0.05, 0.9995)
    else:
        g1, g2 = g[:, 0], g[:, 1]
        d = (g1**2 + 4 * g2).clamp_min(0).sqrt()
        r1 = torch.nan_to_num((g1 + d) / 2, nan=0.5).clamp(0.05, 0.9995)
        r2 = torch.nan_to_num((g1 - d) / 2, nan=0.0).clamp(0.0, 0.95)
        r = torch.stack([r1, torch.minimum(r2, r1 - 1e-3).clamp_min(0)], 1)
    return r.to(y0.dtype)


def _kernel(roots, length: int):
    """Impulse response (N, length) of the AR process with these roots, h_0 = 1."""
    import torch

    t = torch.arange(length, dtype=torch.float64, device=roots.device)
    r = roots.double()
    if r.shape[1] == 1:
        return (r[:, :1] ** t).to(roots.dtype)
    r1 = torch.maximum(r[:, :1], r[:, 1:])
    r2 = torch.minimum(r[:, :1], r[:, 1:])
    r2 = torch.minimum(r2, r1 - 1e-4)
    h = (r1 ** (t + 1) - r2.clamp_min(0) ** (t + 1)) / (r1 - r2.clamp_min(0))
    return h.to(roots.dtype)


def _kernel_length(roots, limit: int) -> int:
    """Frames until the slowest kernel falls below e^-10 of its start."""
    slowest = float(roots.max())
    return max(2, min(limit, math.ceil(10.0 / max(1.0 - slowest, 1e-4))))


class _Baseline:
    """Weighted least-squares fit of the slow cosine baseline to a residual."""

    def __init__(self, w, n_terms: int) -> None:
        import torch

        from ..model.calcium import baseline_basis

        self.basis = baseline_basis(w.shape[1], n_terms, w.dtype, w.device)  # (B, T)
        gram = torch.einsum("it,nt,jt->nij", self.basis.double(), w.double(), self.basis.double())
        eye = torch.eye(n_terms, dtype=gram.dtype, device=gram.device)
        self.inv = torch.linalg.inv(gram + 1e-9 * eye).to(w.dtype)
        self.w = w

    def coef(self, resid):
        import torch

        proj = (resid * self.w) @ self.basis.T
        return torch.einsum("nij,nj->ni", self.inv, proj)

    def __call__(self, coef):
        return coef @ self.basis


def _fista(y0, w, h, lam, baseline: _Baseline, n_iter: int, s0=None):
    """min_{s >= 0} 1/2 ||w (y - b - h * s)||^2 + lam sum s, b on the baseline basis
    (fitted exactly at each step): FISTA with the kernel applied by FFT, at most
    ``n_iter`` steps, fewer once the spikes settle (_FISTA_TOL)."""
    import torch

    t = y0.shape[1]
    nfft = _next_pow2(t + h.shape[1])
    kernel_f = torch.fft.rfft(h, nfft)
    lip = (kernel_f.abs() ** 2).amax(1, keepdim=True) * 1.01
    step = 1.0 / lip
    shrink = lam[:, None] * step

    def conv(s):
        return torch.fft.irfft(torch.fft.rfft(s, nfft) * kernel_f, nfft)[:, :t]

    def corr(r):
        return torch.fft.irfft(torch.fft.rfft(r, nfft) * kernel_f.conj(), nfft)[:, :t]

    s = torch.zeros_like(y0) if s0 is None else s0.clone()
    z = s.clone()
    tk = 1.0
    settled = s.clone()
    for k in range(1, n_iter + 1):
        c = conv(z)
        b = baseline(baseline.coef(y0 - c))
        grad = corr(w * (y0 - b - c))
        s_new = (z + step * grad - shrink).clamp_min(0)
        t_new = (1.0 + math.sqrt(1.0 + 4.0 * tk * tk)) / 2.0
        z = s_new + ((tk - 1.0) / t_new) * (s_new - s)
        s, tk = s_new, t_new
        if k % _FISTA_CHECK == 0:
            moved = (s - settled).norm(dim=1) / s.norm(dim=1).clamp_min(1e-12)
            if float(moved.max()) < _FISTA_TOL:
                break
            settled = s.clone()
    c = conv(s)
    coef = baseline.coef(y0 - c)
    return s, coef, c


def _refine_roots(y0, w, s, roots, baseline: _Baseline, length: int, steps: int):
    """Roots that minimise ||w (y - b - h(roots) * s)||^2 with the spikes fixed (Adam on
    their logits), the Gaussian likelihood of the trace."""
    import torch

    t = y0.shape[1]
    nfft = _next_pow2(t + length)
    spikes_f = torch.fft.rfft(s, nfft)
    u = torch.logit(roots.clamp(1e-4, 1 - 1e-4)).detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([u], lr=0.05)
    for _ in range(steps):
        h = _kernel(torch.sigmoid(u), length)
        c = torch.fft.irfft(spikes_f * torch.fft.rfft(h, nfft), nfft)[:, :t]
        b = baseline(baseline.coef(y0 - c))
        loss = (w * (y0 - b - c) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    r = torch.sigmoid(u.detach()).clamp(0.0, 0.9995)
    if r.shape[1] == 2:
        r = torch.sort(r, dim=1, descending=True).values
        r[:, 1] = torch.minimum(r[:, 1], r[:, 0] - 1e-3).clamp_min(0)
    return r


def _penalty(sigma, h, sparsity: float):
    return sparsity * sigma * h.norm(dim=1)


def _spike_unit(s: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """One spike's increment per row: the median size of the events (runs of consecutive
    nonzero frames, summed) above 3 detection floors; 3 floors if there are none.
    (Median and 3 floors: the least count error of the rules tried, 1.6 mean |error| on
    the quick benchmark; 20th percentile above 1 floor over-counted 10-fold.)"""
    unit = _UNIT_FLOORS * floor.astype(np.float64)
    for i in range(s.shape[0]):
        row = np.nan_to_num(s[i])
        on = row > 1e-3 * floor[i]
        if not on.any():
            continue
        edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
        starts, stops = edges[::2], edges[1::2]
        cs = np.concatenate([[0.0], np.cumsum(row)])
        sums = cs[stops] - cs[starts]
        big = sums[sums > unit[i]]
        if big.size >= 3:
            unit[i] = float(np.quantile(big, _UNIT_QUANTILE))
        elif big.size:
            unit[i] = float(big.min())
    return np.maximum(unit, 1e-9)


def _saturated(z, a):
    """Calcium from fluorescence above baseline under z = log1p(a c) / a (a > 0)."""
    import torch

    safe = torch.where(a > 0, a, torch.ones_like(a))
    return torch.where(a > 0, torch.expm1(safe * z) / safe, z)


def _refine(yw, ww, sigma, roots, base_w: _Baseline, sparsity: float, n_iter: int):
    """Alternate spikes and roots on a window (``_ROUNDS`` times); the refined roots, the
    window's spikes and the penalised objective per row."""
    import torch

    length = _kernel_length(roots, yw.shape[1])
    h = _kernel(roots, length)
    s, _, _ = _fista(yw, ww, h, _penalty(sigma, h, sparsity), base_w, n_iter)
    for _ in range(_ROUNDS):
        with torch.enable_grad():
            roots = _refine_roots(yw, ww, s, roots, base_w, length, _REFINE_STEPS)
        h = _kernel(roots, length)
        lam = _penalty(sigma, h, sparsity)
        s, coef, c = _fista(yw, ww, h, lam, base_w, n_iter, s)
    objective = 0.5 * (ww * (yw - base_w(coef) - c) ** 2).sum(1) + lam * s.sum(1)
    return roots, s, objective


def _fit_chunk(
    y, p: int, n_baseline: int, sparsity: float, n_iter: int, refine: bool, saturation: bool
) -> dict[str, np.ndarray]:
    """Kinetics, noise, baseline, spike size and spikes of a chunk of standardised rows."""
    import torch

    y0, w = _prepare(y)
    n, t = y0.shape
    sigma = _noise_sd(y0, w)
    roots = _ar_roots(y0, w, sigma, p)
    s = None
    if refine:
        win = min(t, _FIT_FRAMES)
        yw, ww = y0[:, :win], w[:, :win]
        base_w = _Baseline(ww, n_baseline)
        roots, s, _ = _refine(yw, ww, sigma, roots, base_w, sparsity, n_iter)
        if win < t:  # the final solve starts from the window's spikes when they cover it
            s = None
    baseline = _Baseline(w, n_baseline)
    h = _kernel(roots, _kernel_length(roots, t))
    lam = _penalty(sigma, h, sparsity)
    s, coef, c = _fista(y0, w, h, lam, baseline, n_iter, s)
    b = baseline(coef)
    rss = (w * (y0 - b - c) ** 2).sum(1)
    rss0 = (w * (y0 - baseline(baseline.coef(y0))) ** 2).sum(1)
    evidence = (rss0 - rss) / (2 * sigma**2)
    space_sigma = sigma.clone()
    strength = torch.zeros(n, dtype=y0.dtype, device=y0.device)
    if saturation:
        z = (y0 - b) * w
        top = torch.quantile(torch.where(w > 0, z, torch.nan), 0.99, dim=1).clamp_min(1e-6)
        best = (w * (z - c) ** 2).sum(1)
        for rel in _SATURATION_GRID[1:]:
            a = torch.full_like(top, rel) / top
            cal = _saturated(z, a[:, None]) * w
            sig_a = _noise_sd(cal, w)
            s_a, coef_a, c_a = _fista(cal, w, h, _penalty(sig_a, h, sparsity), baseline, n_iter)
            fit = c_a + baseline(coef_a)
            z_hat = torch.log1p((a[:, None] * fit).clamp_min(-1 + 1e-6)) / a[:, None]
            err = (w * (z - z_hat) ** 2).sum(1)
            better = err < best
            best = torch.where(better, err, best)
            s = torch.where(better[:, None], s_a, s)
            strength = torch.where(better, a, strength)
            space_sigma = torch.where(better, sig_a, space_sigma)
    s_np = s.cpu().numpy()
    floor = (sparsity * space_sigma / h.norm(dim=1)).cpu().numpy()
    unit = _spike_unit(s_np, np.maximum(floor, 1e-6))
    # one spike's size in the trace: the area above baseline over the counted spikes'
    # area (the L1 penalty shrinks the increments themselves, not the trace)
    area = ((w * (y0 - b)).sum(1) / h.sum(1)).cpu().numpy()
    counted = np.nansum(s_np, axis=1) / unit
    size = np.where((area > 0) & (counted > 0), area / np.maximum(counted, 1e-12), unit)
    spikes = s_np / unit[:, None]
    spikes[~np.isfinite(y.cpu().numpy())] = np.nan
    return {
        "roots": roots.cpu().numpy(),
        "unit": unit,
        "size": size,
        "peak": h.amax(1).cpu().numpy(),
        "sigma": sigma.cpu().numpy(),
        "baseline": coef.cpu().numpy(),
        "evidence": evidence.cpu().numpy(),
        "saturation": strength.cpu().numpy(),
        "spikes": spikes.astype(np.float32),
    }


class _FixedKinetics:
    """A chunk of standardised rows with their kinetics fixed: what every solve on them
    shares (the zero-filled trace and its weights, the noise SD, the baseline's
    projection, the kernel), built once for all the L1 weights ``denoise`` tries."""

    def __init__(self, y, roots, n_baseline: int) -> None:
        self.y0, self.w = _prepare(y)
        self.sigma = _noise_sd(self.y0, self.w)
        self.baseline = _Baseline(self.w, n_baseline)
        self.h = _kernel(roots, _kernel_length(roots, self.y0.shape[1]))

    def solve(
        self, sparsity: float, n_iter: int, saturation, warm: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Spikes (increments, not yet in spike units) and the trace they explain
        (baseline + kernel * spikes, through the saturation); ``warm`` (spikes of these
        rows) starts the linear solve."""
        import torch

        y0, w, h, baseline = self.y0, self.w, self.h, self.baseline
        s0 = None if warm is None else torch.as_tensor(warm, dtype=y0.dtype, device=y0.device)
        s, coef, c = _fista(y0, w, h, _penalty(self.sigma, h, sparsity), baseline, n_iter, s0)
        b = baseline(coef)
        fitted = b + c
        if saturation is not None and np.any(saturation > 0):
            a = torch.as_tensor(saturation, dtype=y0.dtype, device=y0.device)
            z = (y0 - b) * w
            cal = _saturated(z, a[:, None]) * w
            sig_a = _noise_sd(cal, w)
            s_a, coef_a, c_a = _fista(cal, w, h, _penalty(sig_a, h, sparsity), baseline, n_iter)
            safe = torch.where(a > 0, a, torch.ones_like(a))[:, None]
            z_hat = torch.log1p((safe * (c_a + baseline(coef_a))).clamp_min(-1 + 1e-6)) / safe
            s = torch.where((a > 0)[:, None], s_a, s)
            fitted = torch.where((a > 0)[:, None], b + z_hat, fitted)
        return s.cpu().numpy(), fitted.cpu().numpy()


def _sure(
    y: np.ndarray, fitted: np.ndarray, s: np.ndarray, n_baseline: int, var: np.ndarray
) -> np.ndarray:
    """Stein's unbiased estimate of each row's squared error against the noise-free trace:
    RSS - T sigma^2 + 2 sigma^2 df, with df the nonzero spikes plus the baseline terms
    and ``var`` the noise variance per row (from the spectrum, as the fit uses)."""
    finite = np.isfinite(y)
    rss = np.where(finite, (np.nan_to_num(y) - fitted) ** 2, 0.0).sum(1)
    df = ((s > 0) & finite).sum(1) + n_baseline
    return rss - finite.sum(1) * var + 2 * var * df


def _window_length(window: int, n_frames: int) -> int:
    """Frames per running-baseline window: as asked, but at least 2 and at most the trace."""
    return int(min(max(window, 2), n_frames))


def _drifts(x: np.ndarray, trend: np.ndarray, window: int) -> np.ndarray:
    """Rows whose running baseline moves (SD over frames) more than _DRIFT_SES standard
    errors of one window's percentile, that of white noise with the trace's noise SD
    (from first differences): SD x sqrt(q (1 - q) / n) / pdf(z_q) over n frames.
    Where it moves less, taking it off only adds that sampling noise to every frame: on
    simulated traces without drift it cost 5-10 % of the denoising error."""
    from scipy.stats import norm

    q = _DETREND_PERCENTILE / 100
    noise = _robust_sd(np.diff(x, axis=1)) / math.sqrt(2)
    n = _window_length(window, x.shape[1])
    se = noise * math.sqrt(q * (1 - q) / n) / norm.pdf(norm.ppf(q))
    return np.nanstd(trend, axis=1) > _DRIFT_SES * se


def running_baseline(x: np.ndarray, window: int) -> np.ndarray:
    """Each row's slow baseline (float64, x's shape): the _DETREND_PERCENTILE-th percentile
    over windows of ``window`` frames, every half window, linearly interpolated between
    the windows' centres (constant beyond the first and last). NaN frames are left out;
    O(frames) per row, where a sliding percentile filter costs a sort per frame."""
    x = np.asarray(x, dtype=np.float64)
    n, t = x.shape
    window = _window_length(window, t)
    starts = np.arange(0, t - window + 1, max(1, window // 2))
    if starts[-1] + window < t:  # the last window ends at the last frame
        starts = np.append(starts, t - window)
    index = starts[:, None] + np.arange(window)[None, :]
    windows = x[:, index]  # (n, windows, window)
    if np.isnan(windows).any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN
            levels = np.nanpercentile(windows, _DETREND_PERCENTILE, axis=2)
    else:
        levels = np.percentile(windows, _DETREND_PERCENTILE, axis=2)
    centres = starts + (window - 1) / 2
    frames = np.arange(t)
    out = np.empty((n, t))
    for i in range(n):
        known = np.isfinite(levels[i])
        out[i] = np.interp(frames, centres[known], levels[i, known]) if known.any() else 0.0
    return out


def _row_stats(X: np.ndarray, block: int = 256) -> dict[str, np.ndarray]:
    """Per-row 20th percentile, median, SD and noise SD (from first differences), a block
    of rows at a time so that a large recording is never copied whole."""
    out: dict[str, list[np.ndarray]] = {"base": [], "median": [], "std": [], "noise": []}
    for s0 in range(0, X.shape[0], block):
        x = X[s0 : s0 + block].astype(np.float64)
        out["base"].append(np.nanpercentile(x, 20, axis=1))
        out["median"].append(np.nanmedian(x, axis=1))
        out["std"].append(np.nanstd(x, axis=1))
        out["noise"].append(_robust_sd(np.diff(x, axis=1)) / math.sqrt(2))
    return {k: np.concatenate(v) for k, v in out.items()}


def _initial_guess(xs: np.ndarray, p: int, n_baseline: int) -> dict[str, np.ndarray]:
    """Moment-based start per row (seed 002: AR coefficient from a lag-1 regression, the
    noise from its residual), on traces of unit spread."""
    n = xs.shape[0]
    base = np.nanpercentile(xs, 30, axis=1)
    a = xs[:, 1:] - base[:, None]
    b = xs[:, :-1] - base[:, None]
    ok = np.isfinite(a) & np.isfinite(b)
    # the decay from the autocovariance at lags 1..8: for AR(1) plus white measurement
    # noise acov(k) = A gamma^k for k >= 1 (lag 0 holds the noise), so a log-linear fit
    # over the positive lags is not biased towards 0 as the lag-1 regression is
    centred_x = np.where(np.isfinite(xs), xs - np.nanmean(xs, axis=1, keepdims=True), 0.0)
    lags = np.arange(1, 9)
    acov = np.stack([(centred_x[:, k:] * centred_x[:, :-k]).mean(1) for k in lags], 1)
    gamma = np.full(n, 0.5)
    for i in range(n):
        pos = acov[i] > 0
        # only the leading run of positive lags carries the decay
        run = int(np.argmin(pos)) if not pos.all() else len(lags)
        if run >= 2:
            slope = np.polyfit(lags[:run], np.log(acov[i, :run]), 1, w=acov[i, :run])[0]
            gamma[i] = np.exp(slope)
    gamma = np.clip(np.nan_to_num(gamma, nan=0.5), 0.3, 0.995)
    resid = np.where(ok, a - gamma[:, None] * b, np.nan)
    noise = np.maximum(_robust_sd(resid), 1e-3)
    centred = resid - np.nanmedian(resid, axis=1, keepdims=True)
    big = np.nanpercentile(centred, 99.5, axis=1)
    gain = np.maximum(big, 3 * noise)
    rate = np.clip(np.nanmean(centred > gain[:, None] / 2, axis=1), 1e-3, 0.5)
    roots = np.empty((n, p))
    roots[:, 0] = gamma
    if p == 2:
        roots[:, 1] = 0.2
    baseline = np.zeros((n, n_baseline))
    baseline[:, 0] = base
    return {
        "roots": roots,
        "gain": gain,
        "noise": noise,
        "baseline": baseline,
        "rate": rate,
    }
