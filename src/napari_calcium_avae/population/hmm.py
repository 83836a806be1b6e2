"""Population states: hidden Markov models over a recording's frames (seed 002).

The calcium HMM (Keeley et al., "Modeling neural population activity from calcium imaging
data", eLife 2026, doi:10.7554/eLife.109405) gives each of K discrete states a Poisson
spike rate per neuron; the counts drive the AR calcium process of ``model/calcium.py``,
whose kinetics, gain, noise and baseline are per neuron and shared by every state:

    log p(y_t | z_t = k) = sum_n log sum_j Poisson(j; rate_kn) N(innovation_nt; gain_n j, sd_n^2)

The counts are summed out in the E-step, so EM treats (state, count) as the latent pair:
forward-backward (scaled, Rabiner 1989) gives p(z_t = k | y), the count posterior given the state
gives E[s_nt | z_t = k, y], and the M-step sets rate_kn to the posterior-weighted mean
count (exact EM for both), the transition matrix to the expected transitions, and the
kinetics, gain, noise and baseline: for AR(1) (the default) exactly, by least squares on the
counts' posterior moments from the same pass; for AR(2) by a few Adam steps (a generalised
M-step). K is chosen by the
log-likelihood of the last ``holdout`` share of frames under a model fitted on the rest.

The seed compares it with a Gaussian HMM (hmmlearn's, diagonal covariances) and an
autoregressive Gaussian HMM (each state: y_nt = a_kn y_n,t-1 + b_kn + N(0, v_kn)), which
are offered here with the same interface.

Masking: a NaN frame of a neuron leaves that neuron's term out of the frame's emission
(the missing value summed out), never interpolated; a frame with no observed neuron is
carried by the transition matrix alone. ROIs that are all NaN are dropped with a warning
(their rates are NaN). Log-likelihoods are in nats of the input's units.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from ..errors import CalciumAvaeError, CalciumAvaeWarning

#: Fewest frames a recording needs (after the held-out part is set aside, for "auto").
MIN_FRAMES = 50
#: Fewest frames per state: K may not exceed (frames / this).
FRAMES_PER_STATE = 10
#: Fewest usable ROIs (a population state needs a population).
MIN_ROIS = 2
#: Blocks the held-out frames are scored in (for the one-standard-error choice of K).
_SCORE_BLOCKS = 5
#: K tried when ``n_states="auto"``.
DEFAULT_CANDIDATES = (2, 3, 4, 5, 6, 7, 8, 9, 10)
#: Lowest rate (spikes per frame) a state may give a neuron; keeps the count polynomials
#: within float32 range (rate^R > 1e-38 for the R the rates need).
RATE_FLOOR = 1e-3
#: Pseudo-count added to every expected transition (keeps log(transmat) finite).
_TRANSITION_PRIOR = 1e-3
#: Elements of the per-chunk (neurons x frames x states) tensors.
_CHUNK_ELEMENTS = 2**22
#: Most frames whose terms refine the kinetics in each M-step.
_OBS_FRAMES = 2000
#: Elements (neurons x frames x states x counts) of one block when refining kinetics.
_REFINE_ELEMENTS = 2**23
#: EM iterations whose M-step refines the kinetics (later ones update rates and chain).
_OBS_ITERS = 30
#: Powers of z in the series that give a quiet (neuron, frame)'s terms (``_QuietSeries``).
_SERIES_TERMS = 8
#: Most truncation error of those series per (neuron, frame, state) term.
_SERIES_TOL = 1e-7
#: Magnitudes below this are set to 0 in the series' products: a product of two such
#: values would be a subnormal float, which x86 computes about 10x slower.
_FLUSH = 1e-18


# -- input -------------------------------------------------------------------------------
def _check_y(Y: Any, what: str = "Y") -> np.ndarray:
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise CalciumAvaeError(f"{what} must be ROIs x frames (2-D), not {Y.ndim}-D")
    if not np.issubdtype(Y.dtype, np.number):
        raise CalciumAvaeError(f"{what} must be numeric, not {Y.dtype}")
    # float32 stays float32 (Traces.data is): a 10,000 x 30,000 copy in float64 is 2.4 GB
    Y = Y.astype(np.float32 if Y.dtype == np.float32 else np.float64)
    Y[~np.isfinite(Y)] = np.nan
    return Y


def _usable_rows(Y: np.ndarray) -> np.ndarray:
    """Rows with at least one finite frame; warns about the others, refuses too few."""
    keep = np.isfinite(Y).any(1)
    if (~keep).any():
        rows = np.flatnonzero(~keep)
        warnings.warn(
            f"{rows.size} ROI(s) are all NaN (first: row {rows[0]}); they are left out of "
            "the state model and their rates are NaN",
            CalciumAvaeWarning,
            stacklevel=3,
        )
    if keep.sum() < MIN_ROIS:
        raise CalciumAvaeError(
            f"population states need at least {MIN_ROIS} ROIs with data, not {int(keep.sum())}"
        )
    return keep


def _one_se_choice(per_block: dict[int, np.ndarray]) -> int:
    """The smallest K whose held-out log-likelihood is within one standard error of the
    best K's (the one-standard-error rule, Hastie, Tibshirani & Friedman 2009, 7.10):
    the error is that of the paired per-block differences, so a state that improves the
    held-out frames by less than their block-to-block spread is not added."""
    totals = {c: float(v.sum()) for c, v in per_block.items()}
    best = max(totals, key=totals.get)
    for c in sorted(per_block):
        diff = per_block[best] - per_block[c]
        se = float(np.std(diff, ddof=1) * np.sqrt(diff.size)) if diff.size > 1 else 0.0
        if totals[best] - totals[c] <= se:
            return c
    return best


def _check_frames(n_frames: int, n_states: int, where: str) -> None:
    if n_frames < MIN_FRAMES:
        raise CalciumAvaeError(
            f"the recording is too short for a state model{where}: {n_frames} frames, at least "
            f"{MIN_FRAMES} are needed"
        )
    if n_states * FRAMES_PER_STATE > n_frames:
        raise CalciumAvaeError(
            f"{n_states} states are more than {n_frames} frames{where} support (at most "
            f"{n_frames // FRAMES_PER_STATE}: {FRAMES_PER_STATE} frames per state); use fewer"
        )


# -- the chain ---------------------------------------------------------------------------
def _as_f64(*xs):
    """float64 for the recursions (a 30,000-frame log-likelihood of 10,000 ROIs is ~1e8
    nats: float32 would keep no digit after the point), except on MPS (no float64)."""
    if xs[0].device.type == "mps":
        return xs
    return tuple(x.double() for x in xs)


def _chain_arrays(log_b, log_start, log_trans):
    """The chain's inputs as float64 NumPy arrays, with the emissions scaled per frame:
    b_tk = exp(log_b_tk - max_k log_b_tk) (the best state's density is 1). The recursions
    run in NumPy on the CPU: each step is a K-vector times a K x K matrix, where a NumPy
    call costs a few microseconds and a torch call several times that."""
    lb = log_b.detach().cpu().numpy().astype(np.float64)
    top = lb.max(1)
    top = np.where(np.isfinite(top), top, 0.0)
    b = np.exp(lb - top[:, None])
    start = np.exp(log_start.detach().cpu().numpy().astype(np.float64))
    trans = np.exp(log_trans.detach().cpu().numpy().astype(np.float64))
    return b, top, start, trans


def _scaled_forward(b: np.ndarray, start: np.ndarray, trans: np.ndarray):
    """Scaled forward recursion (Rabiner 1989, section V.A): alpha_t normalised to sum 1
    and its normaliser c_t, so log p(y) = sum_t log c_t + the emissions' scale. Exact, and
    one small product per frame instead of a logsumexp."""
    t_len, k = b.shape
    alpha = np.empty((t_len, k))
    norm = np.empty(t_len)
    a = start * b[0]
    norm[0] = a.sum()
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero normaliser: see _scaled_ok
        alpha[0] = a / norm[0]
        for t in range(1, t_len):
            a = (alpha[t - 1] @ trans) * b[t]
            c = a.sum()
            alpha[t] = a / c
            norm[t] = c
    return alpha, norm


def _scaled_ok(norm: np.ndarray) -> bool:
    """Whether the scaled recursion held (a normaliser underflows to 0 only when the chain
    cannot reach any state the frame allows; then the log-space recursion is used)."""
    return bool(np.all(np.isfinite(norm) & (norm > 0)))


def _out(x: np.ndarray, like):
    """A result as a torch tensor on the emissions' device (float32 on MPS: no float64)."""
    import torch

    dtype = torch.float32 if like.device.type == "mps" else torch.float64
    return torch.as_tensor(x, dtype=dtype, device=like.device)


def forward_backward(log_b, log_start, log_trans):
    """Posterior state probabilities, expected transitions and the log-likelihood.

    ``log_b`` (T, K) are the frames' log emission densities. The recursions are the scaled
    ones (probabilities normalised per frame, Rabiner 1989), on emissions divided by each
    frame's largest, so no frame's density underflows; the log-space recursion is the
    fallback. Returns (gamma (T, K), expected transition counts (K, K), log p(y))."""
    b, top, start, trans = _chain_arrays(log_b, log_start, log_trans)
    alpha, norm = _scaled_forward(b, start, trans)
    if not _scaled_ok(norm):
        return _forward_backward_log(log_b, log_start, log_trans)
    t_len, k = b.shape
    beta = np.empty((t_len, k))
    beta[-1] = 1.0
    # beta_t scaled by the same normalisers: alpha_t * beta_t is then p(z_t | y)
    nb = b / norm[:, None]
    for t in range(t_len - 2, -1, -1):
        beta[t] = trans @ (nb[t + 1] * beta[t + 1])
    gamma = alpha * beta
    gamma /= gamma.sum(1, keepdims=True)
    if t_len > 1:
        xi = trans * (alpha[:-1].T @ (nb[1:] * beta[1:]))
    else:
        xi = np.zeros((k, k))
    loglik = np.log(norm).sum() + top.sum()
    return _out(gamma, log_b), _out(xi, log_b), _out(np.asarray(loglik), log_b)


def _forward_backward_log(log_b, log_start, log_trans):
    """forward_backward as a recursion of logsumexps (slower; for chains whose scaled
    recursion underflows)."""
    import torch

    log_b, log_start, log_trans = _as_f64(log_b, log_start, log_trans)
    t_len, k = log_b.shape
    log_alpha = torch.empty_like(log_b)
    log_beta = torch.zeros_like(log_b)
    log_alpha[0] = log_start + log_b[0]
    for t in range(1, t_len):
        log_alpha[t] = torch.logsumexp(log_alpha[t - 1][:, None] + log_trans, 0) + log_b[t]
    for t in range(t_len - 2, -1, -1):
        log_beta[t] = torch.logsumexp(log_trans + (log_b[t + 1] + log_beta[t + 1])[None, :], 1)
    loglik = torch.logsumexp(log_alpha[-1], 0)
    gamma = torch.softmax(log_alpha + log_beta, 1)
    if t_len > 1:
        log_xi = (
            log_alpha[:-1, :, None]
            + log_trans[None]
            + (log_b[1:] + log_beta[1:])[:, None, :]
            - loglik
        )
        xi = torch.exp(torch.logsumexp(log_xi, 0))
    else:
        xi = torch.zeros(k, k, dtype=log_b.dtype, device=log_b.device)
    return gamma, xi, loglik


def forward_log_likelihood(log_b, log_start, log_trans) -> float:
    """log p(y) by the forward recursion alone (held-out scoring)."""
    b, top, start, trans = _chain_arrays(log_b, log_start, log_trans)
    _, norm = _scaled_forward(b, start, trans)
    if not _scaled_ok(norm):
        return float(_forward_backward_log(log_b, log_start, log_trans)[2])
    return float(np.log(norm).sum() + top.sum())


def viterbi(log_b, log_start, log_trans) -> np.ndarray:
    """The most likely state sequence (T,) int (max-product in log space, NumPy)."""
    lb = log_b.detach().cpu().numpy().astype(np.float64)
    log_start = log_start.detach().cpu().numpy().astype(np.float64)
    log_trans = log_trans.detach().cpu().numpy().astype(np.float64)
    t_len, k = lb.shape
    back = np.empty((t_len, k), dtype=np.int64)
    cols = np.arange(k)
    delta = log_start + lb[0]
    for t in range(1, t_len):
        cand = delta[:, None] + log_trans
        back[t] = cand.argmax(0)
        delta = cand[back[t], cols] + lb[t]
    path = np.empty(t_len, dtype=np.int64)
    path[-1] = int(np.argmax(delta))
    for t in range(t_len - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def _kmeans_labels(features: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Frames clustered into k groups (on at most 20 principal components)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    from ..analysis._threads import openmp_threads_for

    # (no copy where there is nothing to replace: at 10,000 x 30,000 it is 2.4 GB)
    x = features if np.isfinite(features).all() else np.nan_to_num(features, nan=0.0)
    with openmp_threads_for(x.shape[0]):
        if x.shape[1] > 20:
            x = PCA(20, svd_solver="randomized", random_state=seed).fit_transform(x)
        return KMeans(k, n_init=10, random_state=seed).fit_predict(x)


def _row_median(x: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """np.nanmedian along rows: one vectorised partition for the rows without NaN (the same
    value), NumPy's per-row path only for the others."""
    out = np.empty(x.shape[0])
    out[clean] = np.median(x[clean], axis=1)
    if not clean.all():
        out[~clean] = np.nanmedian(x[~clean], axis=1)
    return out


def _row_percentile(x: np.ndarray, q: float, clean: np.ndarray) -> np.ndarray:
    """np.nanpercentile along rows, as ``_row_median``."""
    out = np.empty(x.shape[0])
    out[clean] = np.percentile(x[clean], q, axis=1)
    if not clean.all():
        out[~clean] = np.nanpercentile(x[~clean], q, axis=1)
    return out


def _moment_start(X: np.ndarray, p: int, block: int = 256) -> dict[str, np.ndarray]:
    """The calcium HMM's moment start: per row, offset (median) and scale (SD, 1 where 0)
    of the input, and on the standardised trace the AR(p) roots, gain, noise SD and
    baseline of ``spikes.inference._initial_guess`` (which takes them from
    ``_row_stats``), with the same values. Faster: a block of rows at a time in float64
    (never a float64 copy of the recording); rows without NaN take vectorised medians
    and percentiles (NumPy's nan-functions go row by row), and only what the HMM uses
    is computed (no 20th percentile, difference noise or rate; the residuals' median
    once, not twice)."""
    n = X.shape[0]
    cols = {k: np.empty(n) for k in ("offset", "scale", "gamma", "noise", "gain", "base")}
    lags = np.arange(1, 9)
    with warnings.catch_warnings():
        # rows with too few finite frames give NaN, as before (RuntimeWarnings)
        warnings.simplefilter("ignore", RuntimeWarning)
        for s0 in range(0, n, block):
            rows = slice(s0, min(n, s0 + block))
            x = X[rows].astype(np.float64)
            finite = np.isfinite(x)
            clean = finite.all(1)
            offset = _row_median(x, clean)
            std = np.nanstd(x, axis=1)
            scale = np.where(std > 0, std, 1.0)
            xs = (x - offset[:, None]) / scale[:, None]
            del x
            base = _row_percentile(xs, 30, clean)
            a = xs[:, 1:] - base[:, None]
            b = xs[:, :-1] - base[:, None]
            ok = np.isfinite(a) & np.isfinite(b)
            # the decay from the autocovariance at lags 1..8 (see _initial_guess)
            centred_x = np.where(finite, xs - np.nanmean(xs, axis=1, keepdims=True), 0.0)
            acov = np.stack([(centred_x[:, k:] * centred_x[:, :-k]).mean(1) for k in lags], 1)
            del centred_x, xs
            gamma = np.full(acov.shape[0], 0.5)
            for i in range(acov.shape[0]):
                pos = acov[i] > 0
                run = int(np.argmin(pos)) if not pos.all() else len(lags)
                if run >= 2:
                    slope = np.polyfit(lags[:run], np.log(acov[i, :run]), 1, w=acov[i, :run])
                    gamma[i] = np.exp(slope[0])
            gamma = np.clip(np.nan_to_num(gamma, nan=0.5), 0.3, 0.995)
            resid = np.where(ok, a - gamma[:, None] * b, np.nan)
            del a, b
            clean_r = ok.all(1)
            med = _row_median(resid, clean_r)
            centred = resid - med[:, None]
            noise = np.maximum(1.4826 * _row_median(np.abs(centred), clean_r), 1e-3)
            big = _row_percentile(centred, 99.5, clean_r)
            for key, v in zip(
                cols, (offset, scale, gamma, noise, np.maximum(big, 3 * noise), base), strict=True
            ):
                cols[key][rows] = v
    roots = np.empty((n, p))
    roots[:, 0] = cols["gamma"]
    if p == 2:
        roots[:, 1] = 0.2
    return {
        "offset": cols["offset"],
        "scale": cols["scale"],
        "roots": roots,
        "gain": cols["gain"],
        "noise": cols["noise"],
        "baseline": cols["base"][:, None],
    }


def _smooth(x: np.ndarray, width: int = 5) -> np.ndarray:
    """Box filter along frames of an (N, T) array, NaN treated as 0."""
    out = np.empty(x.shape, dtype=(np.cumsum(np.nan_to_num(x[:0], nan=0.0), 1) / width).dtype)
    # a block of rows at a time (the same floats as the whole; no copies of it)
    for s0 in range(0, x.shape[0], 256):
        rows = slice(s0, s0 + 256)
        c = np.cumsum(np.pad(np.nan_to_num(x[rows], nan=0.0), ((0, 0), (width, 0))), 1)
        out[rows] = (c[:, width:] - c[:, :-width]) / width
    return out


# -- the shared estimator ----------------------------------------------------------------
class _StateModel(BaseEstimator):
    """fit / score / predict shared by the three HMMs; subclasses give the emissions."""

    def _check_params(self) -> None:
        k = self.n_states
        if k != "auto" and (not isinstance(k, (int, np.integer)) or isinstance(k, bool)):
            raise CalciumAvaeError(f"n_states must be 'auto' or an integer, not {k!r}")
        cands = [k] if k != "auto" else list(self.candidate_states)
        if not cands or any(int(c) < 1 for c in cands):
            raise CalciumAvaeError(f"numbers of states must be at least 1, not {cands!r}")
        if not 0.05 <= float(self.holdout) <= 0.5:
            raise CalciumAvaeError(f"holdout must be within [0.05, 0.5], not {self.holdout!r}")
        if int(self.n_iter) < 1:
            raise CalciumAvaeError(f"n_iter must be at least 1, not {self.n_iter!r}")

    def fit(self, Y: Any, frame_rate: float | None = None) -> _StateModel:
        """Fit to Y (ROIs x frames); with ``n_states="auto"`` choose K first by the held-out
        likelihood of the last ``holdout`` share of frames, then refit on every frame."""
        self._check_params()
        if frame_rate is not None and not float(frame_rate) > 0:
            raise CalciumAvaeError(f"frame_rate must be positive, not {frame_rate!r}")
        Y = _check_y(Y)
        keep = _usable_rows(Y)
        X = Y if keep.all() else Y[keep]  # Y is _check_y's copy: no second one
        t = X.shape[1]
        if self.n_states == "auto":
            cands = sorted({int(c) for c in self.candidate_states})
            n_test = round(t * float(self.holdout))
            train, test = X[:, : t - n_test], X[:, t - n_test :]
            _check_frames(train.shape[1], cands[0], " (training part)")
            if test.shape[1] < MIN_FRAMES:
                raise CalciumAvaeError(
                    f"the held-out part has {test.shape[1]} frames, at least {MIN_FRAMES} are "
                    f"needed to choose K; pass more frames or n_states=K"
                )
            usable = [c for c in cands if c * FRAMES_PER_STATE <= train.shape[1]]
            blocks = np.array_split(np.arange(test.shape[1]), _SCORE_BLOCKS)
            per_block = {}
            for c in usable:
                params = self._fit_k(train, c)
                per_block[c] = np.array([self._score_params(test[:, b], params) for b in blocks])
            k = _one_se_choice(per_block)
            scores = {c: float(v.sum()) for c, v in per_block.items()}
            self.selection_scores_ = scores
        else:
            k = int(self.n_states)
            _check_frames(t, k, "")
            self.selection_scores_ = None
        params = self._fit_k(X, k)
        self._params = params
        self.n_states_ = k
        self.n_features_in_ = Y.shape[0]
        self.rois_used_ = keep
        self.frame_rate_ = None if frame_rate is None else float(frame_rate)
        log_b = self._log_emissions(X, params)
        log_start, log_trans = self._log_chain(params, log_b)
        gamma, _, ll = forward_backward(log_b, log_start, log_trans)
        self.state_probabilities_ = gamma.cpu().numpy().astype(np.float64)
        self.states_ = viterbi(log_b, log_start, log_trans)
        self.log_likelihood_ = float(ll)
        self.transmat_ = np.exp(log_trans.cpu().numpy().astype(np.float64))
        self.startprob_ = np.exp(log_start.cpu().numpy().astype(np.float64))
        self.n_iter_ = getattr(self, "_n_iter", None)
        self._set_fitted(params, keep)
        return self

    # the chain's parameters as torch log-probabilities on the emissions' device
    def _log_chain(self, params: dict, like):
        import torch

        kw = {"dtype": like.dtype, "device": like.device}
        return (
            torch.log(torch.as_tensor(params["startprob"], **kw)),
            torch.log(torch.as_tensor(params["transmat"], **kw)),
        )

    def _score_params(self, X: np.ndarray, params: dict) -> float:
        log_b = self._log_emissions(X, params)
        return forward_log_likelihood(log_b, *self._log_chain(params, log_b))

    def _rows(self, Y: Any) -> np.ndarray:
        if not hasattr(self, "_params"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")
        Y = _check_y(Y)
        if Y.shape[0] != self.n_features_in_:
            raise CalciumAvaeError(
                f"Y has {Y.shape[0]} ROIs but the model was fitted on {self.n_features_in_}"
            )
        X = Y[self.rois_used_]
        if X.shape[1] < 2:
            raise CalciumAvaeError(f"Y needs at least 2 frames, not {X.shape[1]}")
        return X

    def score(self, Y: Any) -> float:
        """log p(Y) in nats (input units): held-out log-likelihood, states summed out."""
        return self._score_params(self._rows(Y), self._params)

    def predict(self, Y: Any) -> np.ndarray:
        """The most likely state per frame (Viterbi), (frames,) int."""
        X = self._rows(Y)
        log_b = self._log_emissions(X, self._params)
        return viterbi(log_b, *self._log_chain(self._params, log_b))

    def predict_proba(self, Y: Any) -> np.ndarray:
        """p(state | all frames) per frame, (frames, K)."""
        X = self._rows(Y)
        log_b = self._log_emissions(X, self._params)
        gamma, _, _ = forward_backward(log_b, *self._log_chain(self._params, log_b))
        return gamma.cpu().numpy().astype(np.float64)

    # -- helpers for the EM subclasses ----------------------------------------------------
    def _em_chain(self, gamma, xi) -> tuple[np.ndarray, np.ndarray]:
        start = gamma[0].cpu().numpy().astype(np.float64) + _TRANSITION_PRIOR
        trans = xi.cpu().numpy().astype(np.float64) + _TRANSITION_PRIOR
        return start / start.sum(), trans / trans.sum(1, keepdims=True)

    def _initial_labels(self, features: np.ndarray, k: int) -> np.ndarray:
        return _kmeans_labels(features.T, k, int(self.random_state or 0))


def _one_hot_chain(labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    trans = np.full((k, k), 1.0)
    np.add.at(trans, (labels[:-1], labels[1:]), 1.0)
    start = np.full(k, 1.0 / k)
    return start, trans / trans.sum(1, keepdims=True)


# -- the calcium HMM ---------------------------------------------------------------------
def _normalise_terms_(w, floor: float | None = None):
    """exp(w - max_j w) over the last axis, in place, and the max. Terms below ``floor``
    (default: the smallest normal float) relative to the largest are set to 0: they
    change no sum, and x86 computes subnormals ~10x slower."""
    import torch

    top = w.amax(-1)
    w -= top[..., None]
    w.masked_fill_(w < math.log(floor or torch.finfo(w.dtype).tiny), -math.inf)
    return w.exp_(), top


def _count_mixture(res, gain, sd, r: int, log_rate=None):
    """The count mixture at rate 1, factored: (w (N, T, R+1), m (N, T)) with
    log N(res; gain j, sd^2) - log j! = m + log w_j and max_j w_j = 1.

    With u = res gain / sd^2, the j-th term is the j = 0 term plus j u - j^2 gain^2 / (2 sd^2)
    - log j!, so the (N, T, R+1) tensor takes one product, one sum and one exp (what
    ``calcium.mixture_log_terms`` at rate 1 gives, in fewer passes over memory). A state
    with rate lambda then has log p = m - lambda + log sum_j w_j lambda^j. With
    ``log_rate`` (N, T) the weights include lambda_nt^j (w_j is then proportional to the
    counts' posterior at that rate, and log p = m - lambda + log sum_j w_j)."""
    import torch

    from ..model.calcium import _LOG_2PI

    j = torch.arange(r + 1, dtype=res.dtype, device=res.device)
    inv_var = 1.0 / sd**2
    u = res * (gain * inv_var)[:, None]
    if log_rate is not None:
        u = u + log_rate
    c = -0.5 * j[None] ** 2 * (gain**2 * inv_var)[:, None] - torch.lgamma(j + 1)[None]  # (N, R+1)
    w = u[..., None] * j
    w += c[:, None, :]
    w, top = _normalise_terms_(w)
    m = top - 0.5 * res**2 * inv_var[:, None] - torch.log(sd)[:, None] - 0.5 * _LOG_2PI
    return w, m


def _poly(coef, x):
    """sum_j coef_mj x_mk^j (M, K) for coef (M, R+1) and x (M, K), by Horner's rule."""
    import torch

    acc = coef[:, -1:].expand_as(x)
    for i in range(coef.shape[1] - 2, -1, -1):
        acc = torch.addcmul(coef[:, i : i + 1], acc, x)
    return acc


def _series_coefficients(a: np.ndarray, r: int, length: int = 64) -> np.ndarray:
    """Taylor coefficients at z = 0, (3, N, length + 1), of log P_n(z), E_n[s](z) and
    E_n[s^2](z), with P_n(z) = sum_{j<=r} kappa_nj z^j, kappa_nj = exp(-(j^2 - j) a_n) / j!,
    and E_n[s^m](z) = sum_j j^m kappa_nj z^j / P_n(z).

    For neuron n at a frame with innovation term u (``_count_mixture``) and a state with
    rate lambda, z = lambda exp(u - a_n), a_n = gain_n^2 / (2 sd_n^2): P_n(z) is then
    sum_j exp(j u + c_nj) lambda^j (the state's count mixture up to exp(-lambda) and the
    j = 0 Gaussian), and E_n[s^m](z) are the counts' posterior moments. By power series
    division in float64; z (log P)' = E[s], so log P's i-th coefficient is E[s]'s over i."""
    jj = np.arange(r + 1)
    lgam = np.array([math.lgamma(j + 1.0) for j in jj])
    kappa = np.exp(-np.outer(a, jj * (jj - 1.0)) - lgam)  # (N, R+1), kappa_0 = 1
    moments = np.array([1.0, 2.0])[:, None]  # E[s^m]'s numerator has j^m kappa_j
    e = np.zeros((2, a.size, length + 1))
    for i in range(1, length + 1):
        ls = np.arange(max(1, i - r), i)
        own = float(i) ** moments * kappa[:, i] if i <= r else 0.0
        e[:, :, i] = own - (e[:, :, ls] * kappa[None, :, i - ls]).sum(-1)
    log_p = e[0] / np.maximum(np.arange(length + 1), 1)
    return np.stack([log_p, e[0], e[1]])


def _window_residuals(obs, window):
    """``obs._residuals(window)`` for an observation model with a constant baseline and no
    saturation (the calcium HMM's), in fewer passes over memory, and the window with
    non-finite values set to 0: (innovations (N, W - p), valid (N, W - p), zeroed (N, W)).
    The same operations on the same values, so the same floats (a test checks)."""
    import torch

    p = obs.ar_order
    zeroed = torch.nan_to_num(window, 0.0, 0.0, 0.0)
    finite = zeroed == window  # NaN and +-inf differ from their 0
    c = zeroed - obs.baseline_coef.detach()[:, :1]
    gamma = obs.ar_coefficients.detach()
    t = window.shape[1]
    pred = sum(gamma[:, i - 1 : i] * c[:, p - i : t - i] for i in range(1, p + 1))
    valid = finite[:, p:].clone()
    for i in range(1, p + 1):
        valid &= finite[:, p - i : t - i]
    return c[:, p:] - pred, valid, zeroed


class _QuietSeries:
    """The emissions and expected counts of quiet (neuron, frame) pairs as power series.

    A state's term of neuron n at frame t is log P_n(z), z = lambda_nk exp(u_nt - a_n)
    (``_series_coefficients``), and its expected counts E_n[s](z), E_n[s^2](z). At most
    frames z is small for every state (no spike: the j >= 1 terms are far down the
    Gaussian's tail), and truncated after ``terms`` powers the three series are
    polynomials in z. Then sum_n log P_n(z_ntk) over all neurons is one matrix product,
    (frames, Q N) powers of z_nt at the neuron's largest rate times (Q N, K) coefficients
    times (lambda_nk / max_k lambda_nk)^i, where ``_count_mixture`` and a product per
    neuron took (N, T, R+1) exps and (N, T, K) logs; the M-step's sums likewise.

    Exactness: the roots of P_n have |z| >= 1 (Enestrom-Kakeya: P_n's coefficients are
    positive with kappa_j / kappa_j+1 = (j + 1) exp(2 j a_n) >= 1), so the series converge
    for |z| < 1. A pair is quiet when z at the neuron's largest rate is at most
    ``limit_n``: the largest z (on a grid up to 0.5) where the sum of |coefficient| z^i
    beyond the ``terms``-th (to the 64th; further terms are below 0.5^64 times polynomial
    growth) is at most ``tol`` for each of the three series. So a quiet pair's term and
    expected counts are off by at most ``tol`` per state, plus < 1e-15 from setting
    magnitudes below ``_FLUSH`` to 0. Other pairs ("active": spikes) are computed exactly,
    as ``_count_mixture`` does."""

    def __init__(self, gain, sd, rates, r: int, terms: int, tol: float):
        import torch

        kw = {"dtype": rates.dtype, "device": rates.device}
        # float64 NumPy on the CPU (N x 64 numbers; MPS has no float64)
        gain, sd = (x.detach().cpu().double().numpy() for x in (gain, sd))
        a = gain**2 / (2 * sd**2)
        lam = rates.detach().cpu().double().numpy().T  # (N, K)
        lam_max = lam.max(1)
        coef = _series_coefficients(a, r)
        grid = np.geomspace(1e-4, 0.5, 60)
        tail = np.abs(coef[..., terms + 1 :]) @ (grid[None] ** np.arange(terms + 1, 65)[:, None])
        fits = (tail.max(0) <= tol).sum(1)  # the tail grows with z: a prefix of the grid fits
        with np.errstate(divide="ignore"):
            log_limit = np.where(fits > 0, np.log(grid[np.maximum(fits - 1, 0)]), -np.inf)
        self.terms = terms
        self.shift = torch.as_tensor(np.log(lam_max) - a, **kw)  # log z = u + shift
        self.log_limit = torch.as_tensor(log_limit, **kw)
        rho = (lam / lam_max[:, None])[None] ** np.arange(1, terms + 1)[:, None, None]
        rhs = coef[:, :, 1 : terms + 1].transpose(0, 2, 1)[..., None] * rho[None]
        rhs[np.abs(rhs) < _FLUSH] = 0.0
        # (3, K, Q N): log P, E[s], E[s^2]'s i-th coefficient times (lambda / lambda_max)^i
        self.rhs = torch.as_tensor(rhs.transpose(0, 3, 1, 2).reshape(3, rhs.shape[3], -1), **kw)

    def split(self, u, valid, buffer):
        """(powers (Q, N, Tc) of z at each neuron's largest rate, 0 except at quiet pairs,
        in ``buffer`` (flat, reused by every chunk: fresh pages cost more than the
        products); the active pairs' mask (N, Tc))."""
        import torch

        log_z = u + self.shift[:, None]
        quiet = valid & (log_z <= self.log_limit[:, None])
        active = valid & ~quiet
        z = torch.exp(log_z.clamp_min_(math.log(_FLUSH) - 1.0))  # below _FLUSH: 0 below
        z.masked_fill_(~quiet, 0.0)
        pw = buffer[: self.terms * z.numel()].view(self.terms, *z.shape)
        torch.nn.functional.threshold(z, _FLUSH, 0.0, inplace=True)
        pw[0] = z
        for i in range(1, self.terms):
            torch.mul(pw[i - 1], z, out=pw[i])
            torch.nn.functional.threshold(pw[i], _FLUSH, 0.0, inplace=True)
        return pw, active


class CalciumHMM(_StateModel):
    """Seed 002's calcium HMM: K states, a Poisson rate per neuron in each, emissions
    through the calcium observation model (counts summed out exactly), fitted by EM.

    Parameters
    ----------
    n_states : int or "auto"
        K, or "auto" to choose it from ``candidate_states`` by held-out likelihood.
    candidate_states : tuple of int
        The K tried by "auto".
    holdout : float
        Share of frames (the last ones) held out to choose K.
    ar_order : 1 or 2
        AR order of the calcium process (shared by all states).
    n_iter : int
        Most EM iterations.
    tol : float
        EM stops when the log-likelihood per neuron-frame rises less than this.
    observation_steps : int
        0 keeps the moment-based start of kinetics, gain, noise and baseline; otherwise
        each M-step updates them: exactly for AR(1) (``_ar1_update``), by this many Adam
        steps for AR(2).
    random_state : int or None
        Seed of the k-means start and the frames that refine the kinetics.
    device : str
        "auto", "cpu", "cuda" or "mps".

    Fitted attributes: ``n_states_``, ``states_`` (Viterbi, (frames,) int),
    ``state_probabilities_`` (frames, K), ``rates_`` (K, ROIs) spikes per frame (NaN for
    dropped ROIs), ``transmat_`` (K, K), ``startprob_``, ``decay_`` (ROIs, p) AR
    coefficients, ``gain_`` and ``noise_sd_`` (input units), ``log_likelihood_``,
    ``selection_scores_`` ({K: held-out log-likelihood} or None), ``rois_used_``.
    """

    def __init__(
        self,
        n_states: int | str = "auto",
        candidate_states: tuple[int, ...] = DEFAULT_CANDIDATES,
        holdout: float = 0.2,
        ar_order: int = 1,
        n_iter: int = 100,
        tol: float = 1e-4,
        observation_steps: int = 10,
        random_state: int | None = 0,
        device: str = "auto",
    ) -> None:
        self.n_states = n_states
        self.candidate_states = candidate_states
        self.holdout = holdout
        self.ar_order = ar_order
        self.n_iter = n_iter
        self.tol = tol
        self.observation_steps = observation_steps
        self.random_state = random_state
        self.device = device

    def _check_params(self) -> None:
        super()._check_params()
        if self.ar_order not in (1, 2):
            raise CalciumAvaeError(f"ar_order must be 1 or 2, not {self.ar_order!r}")

    # -- the observation model in torch ---------------------------------------------------
    def _observation(self, params: dict):
        """A CalciumObservationModel holding the fitted per-neuron parameters."""
        import torch

        from ..model.calcium import CalciumObservationModel
        from ..model.device import resolve_device

        dev = resolve_device(self.device)
        obs = CalciumObservationModel(
            len(params["offset"]), self.ar_order, 1, False, torch.float32, dev
        )
        obs.set_parameters(
            roots=torch.as_tensor(params["roots"]),
            gain=torch.as_tensor(params["gain"]),
            noise_sd=torch.as_tensor(params["noise"]),
            baseline=torch.as_tensor(params["baseline"]),
        )
        return obs

    def _standardise(self, X: np.ndarray, params: dict, obs):
        import torch

        # a block of rows at a time: the same floats as the whole (X - offset) / scale in
        # float64 rounded to float32, without two float64 copies of the recording
        # (torch's allocation, aligned as torch aligns its own, filled through NumPy)
        out = torch.empty(X.shape, dtype=torch.float32)
        z = out.numpy()
        offset, scale = params["offset"][:, None], params["scale"][:, None]
        for s0 in range(0, X.shape[0], 256):
            rows = slice(s0, s0 + 256)
            z[rows] = (X[rows] - offset[rows]) / scale[rows]
        return out.to(obs.raw_gain.device)

    def _chunks(self, n: int, t: int, k: int, r: int) -> list[slice]:
        step = max(1, int(_CHUNK_ELEMENTS // max(1, n * max(k, r + 1))))
        return [slice(s, min(t, s + step)) for s in range(0, t, step)]

    def _pass(self, obs, y, log_rates, gamma=None, moments=False):
        """One sweep over frame chunks. Without ``gamma``: log emissions (T, K). With it:
        the M-step's sums, (sum_t gamma_tk E[s_nt | k], sum_t gamma_tk) per (k, n); with
        ``moments`` also the sums the AR(1) observation update needs (``_ar1_update``):
        per neuron, over its valid frames, sum E[s], sum E[s^2], sum y_t-1 E[s] and
        sum y_t E[s] (E over states and counts given the data), float64 accumulated.

        A state's term of neuron n at frame t is m_nt - rate_kn + log sum_j w_ntj
        rate_kn^j (``_count_mixture``). Quiet pairs (no spike in sight: most of them) take
        it and the expected counts from truncated power series, summed over neurons by
        matrix products (``_QuietSeries``: at most ``_SERIES_TOL`` off per term); the
        others, gathered, from the mixture itself, evaluated at each state's rate by
        Horner's rule."""
        import torch

        from ..model.calcium import _LOG_2PI, choose_max_count

        p = self.ar_order
        n, t = y.shape
        k = log_rates.shape[0]
        with torch.no_grad():
            # a constant baseline: a window's residuals are the whole's, so each chunk
            # takes its own (cache-sized temporaries instead of (N, T) ones)
            windowed = obs.n_baseline == 1 and not obs.saturation
            if not windowed:
                resid, _, valid = obs._residuals(y)
            rates = torch.exp(log_rates)  # (K, N)
            r = choose_max_count(rates)
            j = torch.arange(r + 1, dtype=y.dtype, device=y.device)
            gain, sd = obs.gain, obs.noise_sd
            series = _QuietSeries(gain, sd, rates, r, _SERIES_TERMS, _SERIES_TOL)
            q = series.terms
            rhs = series.rhs  # (3, K, Q N)
            inv_var = 1.0 / sd**2
            u_scale = gain * inv_var
            c = -0.5 * j[None] ** 2 * (gain**2 * inv_var)[:, None] - torch.lgamma(j + 1)[None]
            m_shift = -torch.log(sd) - 0.5 * _LOG_2PI
            half_inv_var = -0.5 * inv_var
            out = torch.zeros(t, k, dtype=y.dtype, device=y.device)
            acc = torch.float32 if y.device.type == "mps" else torch.float64  # MPS: no fp64
            num = torch.zeros(k, n, dtype=acc, device=y.device)
            den = torch.zeros(k, n, dtype=acc, device=y.device)
            rates_t = rates.T.contiguous()  # (N, K)
            if moments:
                if p != 1:
                    raise CalciumAvaeError("the closed-form observation update is for AR(1)")
                sums = torch.zeros(4, n, dtype=acc, device=y.device)
            chunks = self._chunks(n, t - p, max(k, q), r)
            most = q * n * (chunks[0].stop - chunks[0].start)
            buffer = y.new_empty(most * (3 if moments else 1))
            for sl in chunks:
                if windowed:
                    res, v, z = _window_residuals(obs, y[:, sl.start : sl.stop + p])
                else:
                    res, v = resid[:, sl], valid[:, sl]
                    z = torch.nan_to_num(y[:, sl.start : sl.stop + p], 0.0, 0.0, 0.0)
                vf = v.to(y.dtype)
                u = res * u_scale[:, None]
                pw, active = series.split(u, v, buffer)
                pw = pw.reshape(q * n, -1)  # (Q N, Tc)
                rows, cols = active.nonzero(as_tuple=True)
                # the active pairs exactly: w_j = exp(j u + c_j - top) at rate 1
                # (terms below _FLUSH set to 0: Horner's products with the rates stay normal)
                w, top = _normalise_terms_(u[rows, cols, None] * j + c[rows], _FLUSH)
                lam = rates_t[rows]  # (M, K)
                d = _poly(w, lam).clamp_min_(1e-38)
                if gamma is None:
                    # m_nt (``_count_mixture``), top included before the sum over neurons
                    # (a spike's -res^2 / 2 sd^2 and top nearly cancel)
                    m = res * res
                    m *= half_inv_var[:, None]
                    m += m_shift[:, None]
                    m[rows, cols] += top
                    m.masked_fill_(~v, 0.0)
                    frame = (rhs[0] @ pw).T + (m.sum(0)[:, None] - vf.T @ rates_t)
                    # added one by one: float64, then once to the frame's total
                    spikes = torch.zeros(frame.shape, dtype=acc, device=y.device)
                    frame += spikes.index_add_(0, cols, torch.log_(d).to(acc)).to(y.dtype)
                    out[p + sl.start : p + sl.stop] = frame
                    continue
                g = gamma[p + sl.start : p + sl.stop].to(y.dtype)  # (Tc, K)
                den += (g.T @ vf.T).to(acc)
                e1_act = _poly(w * j, lam).div_(d) * g[cols]  # gamma_tk E[s_nt | k]
                num.index_add_(1, rows, e1_act.T.to(acc))
                # quiet pairs: sum_t gamma_tk E[s_nt | k] = sum_i coefficient_nki
                # sum_t gamma_tk z_nt^i, one product for all (i, n)
                by_power = g.T @ pw.T  # (K, Q N)
                num_q = (rhs[1] * by_power).reshape(k, q, n).sum(1)
                num += num_q.to(acc)
                if not moments:
                    continue
                # the traces as the regression sees them: zeros where not finite
                prev, cur = z[:, p - 1 : -1], z[:, p:]
                # sum_t x_nt E[s_nt^m] for x = 1, y_t-1, y_t in the same way
                pw3 = pw.reshape(q, n, -1)
                weighted = buffer[most : most + 2 * pw.numel()].view(2, *pw3.shape)
                torch.mul(pw3, prev, out=weighted[0])
                torch.mul(pw3, cur, out=weighted[1])
                by_power_x = (g.T @ weighted.reshape(2 * q * n, -1).T).reshape(k, 2, q, n)
                sums[0] += num_q.sum(0).to(acc)
                sums[1] += (rhs[2] * by_power).reshape(k, q, n).sum((0, 1)).to(acc)
                for i in (0, 1):
                    sums[2 + i] += (rhs[1].reshape(k, q, n) * by_power_x[:, i]).sum((0, 1)).to(acc)
                e1_act = e1_act.sum(1)
                e2_act = (_poly(w * j**2, lam).div_(d) * g[cols]).sum(1)
                for i, x in enumerate((e1_act, e2_act, prev[rows, cols] * e1_act)):
                    sums[i].index_add_(0, rows, x.to(acc))
                sums[3].index_add_(0, rows, (cur[rows, cols] * e1_act).to(acc))
        if gamma is None:
            return out
        if moments:
            return num, den, sums
        return num, den

    def _log_emissions(self, X: np.ndarray, params: dict):
        import torch

        obs = self._observation(params)
        y = self._standardise(X, params, obs)
        log_rates = torch.log(torch.as_tensor(params["rates"], dtype=y.dtype, device=y.device))
        log_b = self._pass(obs, y, log_rates)
        # densities of the input, not of the standardised traces
        _, _, valid = obs._residuals(y)
        log_scale = torch.as_tensor(np.log(params["scale"]), dtype=y.dtype, device=y.device)
        jac = (valid.to(y.dtype) * log_scale[:, None]).sum(0)
        log_b[self.ar_order :] -= jac[:, None]
        return log_b

    @staticmethod
    def _ar1_trace_sums(y):
        """The traces' own sums in ``_ar1_update``'s normal equations, over each neuron's
        valid frames (float64): count, sum y_t-1, sum y_t, and the products y_t-1^2,
        y_t-1 y_t, y_t^2. They do not change during a fit, so it takes them once (in
        frame chunks: float64 copies of cache size, not of the recording)."""
        import torch

        n, t = y.shape
        out = torch.zeros(6, n, dtype=torch.float64, device=y.device)
        step = max(1, _CHUNK_ELEMENTS // n)
        with torch.no_grad():
            for start in range(0, t - 1, step):
                window = y[:, start : start + step + 1]  # frame pairs (t - 1, t) inside
                finite = torch.isfinite(window)
                valid = (finite[:, 1:] & finite[:, :-1]).double()
                z = torch.where(finite, window, torch.zeros((), dtype=y.dtype)).double()
                prev, cur = z[:, :-1] * valid, z[:, 1:] * valid
                for i, x in enumerate((valid, prev, cur, prev * prev, prev * cur, cur * cur)):
                    out[i] += x.sum(1)
        out[0].clamp_min_(1.0)
        return tuple(out)

    def _ar1_update(self, obs, y, sums, traces=None) -> None:
        """The exact M-step of the AR(1) observation parameters (ECM: the counts'
        posterior from the same pass as the rates' update).

        Given the counts' posterior moments, the expected complete-data log-likelihood
        of y_t = a y_t-1 + c + gain s_t + N(0, sd^2) is a least-squares problem in (a, c,
        gain) with regressors (y_t-1, 1, s_t): its normal equations need only the sums
        of ``_pass(..., moments=True)`` and the traces' own sums; sd^2 is the expected
        mean squared innovation; the baseline b = c / (1 - a). a is kept in [0.01, 0.999]
        and gain above 1e-3 (the root is a logit, the gain a softplus); where a bound
        binds, the other coefficients are solved again with it fixed. Replaces the Adam
        steps of ``_refine_observation`` for AR(1): one update per EM iteration from the
        pass that is run anyway, over all frames, where Adam moved each parameter by
        about its learning rate per step."""
        import torch

        with torch.no_grad():
            s1, sp, sc, spp, spc, scc = traces if traces is not None else self._ar1_trace_sums(y)
            sj, sjj, spj, scj = sums.double().to(s1.device)
            n = len(s1)
            A = torch.stack(
                [
                    torch.stack([spp, sp, spj], 1),
                    torch.stack([sp, s1, sj], 1),
                    torch.stack([spj, sj, sjj], 1),
                ],
                1,
            )  # (N, 3, 3)
            B = torch.stack([spc, sc, scj], 1)
            ridge = 1e-9 * A.diagonal(dim1=1, dim2=2).abs().amax(1).clamp_min(1e-12)
            A = A + ridge[:, None, None] * torch.eye(3, dtype=A.dtype, device=A.device)
            theta = torch.linalg.solve(A, B[..., None])[..., 0]
            a, c, g = theta.unbind(1)
            clipped = (a < 0.01) | (a > 0.999) | (g < 1e-3)
            if bool(clipped.any()):
                a = a.clamp(0.01, 0.999)
                # (c, gain) with a fixed: a 2 x 2 system on y_t - a y_t-1
                A2 = torch.stack([torch.stack([s1, sj], 1), torch.stack([sj, sjj], 1)], 1)
                A2 = A2 + ridge[:, None, None] * torch.eye(2, dtype=A.dtype, device=A.device)
                B2 = torch.stack([sc - a * sp, scj - a * spj], 1)
                c2, g2 = torch.linalg.solve(A2, B2[..., None])[..., 0].unbind(1)
                c, g = torch.where(clipped, c2, c), torch.where(clipped, g2, g)
                low = g < 1e-3
                g = g.clamp_min(1e-3)
                c = torch.where(low, (sc - a * sp - g * sj) / s1, c)
            # E[(y_t - a y_t-1 - c - gain s)^2] summed, then per valid frame
            rr = scc - 2 * a * spc - 2 * c * sc + a * a * spp + 2 * a * c * sp + c * c * s1
            rs = scj - a * spj - c * sj
            var = (rr - 2 * g * rs + g * g * sjj) / s1
            sd = var.clamp_min(1e-8).sqrt()
            baseline = c / (1 - a)
            kw = {"dtype": obs.raw_gain.dtype, "device": obs.raw_gain.device}
            obs.set_parameters(
                roots=a.reshape(n, 1).to(**kw),
                gain=g.to(**kw),
                noise_sd=sd.to(**kw),
                baseline=baseline.reshape(n, 1).to(**kw),
            )

    def _refine_observation(self, obs, opt, y, log_rates, gamma, frames) -> None:
        """A few Adam steps on sum_t sum_k gamma_tk log p(y_t | z_t = k) over ``frames``
        (kinetics, gain, noise, baseline; the rates stay at their closed-form update).

        When every state's term at every frame would exceed _REFINE_ELEMENTS, each frame
        takes only its most probable state's term (classification EM for these
        parameters: K times cheaper, exact where the posterior is sure of the state).

        The gradient is taken by Fisher's identity: the gradient of log sum_j p(j) p(y | j)
        is the posterior expectation of the gradient of log p(y | j), and log N(res; gain
        j, sd^2) depends on j only through j and j^2. So each step computes the counts'
        posterior moments E[j], E[j^2] per (neuron, frame) without a graph (one batched
        product for all states, as in ``_pass``) and differentiates an (N, frames)
        expression: the same gradient as back-propagating through the mixture, without
        keeping an (N, frames, K, R+1) graph."""
        import torch

        from ..model.calcium import choose_max_count

        steps = int(self.observation_steps)
        if steps < 1:
            return
        p = self.ar_order
        rates = torch.exp(log_rates).detach()
        k, n = rates.shape
        r = choose_max_count(rates)
        g = gamma[frames].detach().to(y.dtype)  # (S, K)
        s = len(frames)
        j = torch.arange(r + 1, dtype=y.dtype, device=y.device)
        moments = torch.stack([torch.ones_like(j), j, j**2])  # (3, R+1)
        top = None
        if n * s * k * (r + 1) > _REFINE_ELEMENTS:
            top = g.argmax(1)  # each frame: its most probable state's rates
            log_lam = log_rates.detach().T[:, top]  # (N, S)
        else:
            # (N, R+1, 3K): rate_kn^j times 1, j, j^2
            powers = torch.exp(j[None, :, None] * log_rates.detach().T[:, None, :])
            powers = (powers[:, :, None, :] * moments.T[None, :, :, None]).reshape(n, r + 1, -1)
        # each frame with its p predecessors, laid end to end: the residual at the last
        # place of every window is that frame's innovation (the baseline is a constant)
        idx = (frames[:, None] - torch.arange(p, -1, -1, device=y.device)[None]).reshape(-1)
        y_win = y[:, idx]
        at = torch.arange(s, device=y.device) * (p + 1)
        block = max(1, _REFINE_ELEMENTS // (s * k * (r + 1)))
        # each frame's total weight: 1 (its top state), or sum_k gamma_tk (1 up to rounding)
        weight = torch.ones_like(g[:, 0]) if top is not None else g.sum(1)
        n_valid = None
        for _ in range(steps):
            opt.zero_grad()
            resid, _, valid = obs._residuals(y_win)
            res, v = resid[:, at], valid[:, at]
            if n_valid is None:
                n_valid = max(1, int(v.sum()))
            gain, sd = obs.gain, obs.noise_sd
            with torch.no_grad():
                e1 = torch.empty_like(res)
                e2 = torch.empty_like(res)
                for b0 in range(0, n, block):
                    rows = slice(b0, min(n, b0 + block))
                    if top is not None:
                        wp, _ = _count_mixture(res[rows], gain[rows], sd[rows], r, log_lam[rows])
                        mom = wp @ moments.T  # (nb, S, 3)
                        d = mom[..., 0].clamp_min(1e-38)
                        e1[rows] = mom[..., 1] / d
                        e2[rows] = mom[..., 2] / d
                    else:
                        w, _ = _count_mixture(res[rows], gain[rows], sd[rows], r)
                        poly = torch.bmm(w, powers[rows])  # (nb, S, 3K)
                        d = poly[..., :k].clamp_min(1e-38)
                        e1[rows] = (poly[..., k : 2 * k] / d * g).sum(-1)
                        e2[rows] = (poly[..., 2 * k :] / d * g).sum(-1)
            # sum_k gamma_tk E[log N(res; gain j, sd^2) | z_t = k], constants dropped
            iv, gn = (1.0 / sd**2)[:, None], gain[:, None]
            sq = res**2 * weight - 2 * gn * res * e1 + gn**2 * e2  # E[(res - gain j)^2]
            q = -0.5 * iv * sq - torch.log(sd)[:, None] * weight
            (-torch.where(v, q, 0.0).sum() / n_valid).backward()
            opt.step()

    def _fit_k(self, X: np.ndarray, k: int) -> dict:
        import torch

        params = _moment_start(X, self.ar_order)
        obs = self._observation(params)
        y = self._standardise(X, params, obs)
        p = self.ar_order
        n, t = y.shape
        if self.random_state is not None:
            torch.manual_seed(int(self.random_state))
        # start: k-means of frames on a smoothed spike proxy (positive innovations / gain)
        # (the proxy is kept in float32, as computed, and widened to float64 a block of
        # rows at a time: the same floats as a float64 copy, in half the memory)
        with torch.no_grad():
            resid, _, valid = obs._residuals(y)
            n_terms = max(1, int(valid.sum()))
            proxy = torch.where(valid, resid, 0.0)
            del resid, valid
            proxy = proxy.clamp_min_(0).div_(obs.gain[:, None]).cpu().numpy()
        blocks = [slice(s0, s0 + 256) for s0 in range(0, n, 256)]

        def widened(src, rows):  # (rows, t) float64, the first p frames 0
            return np.concatenate([np.zeros((src[rows].shape[0], p)), src[rows]], 1)

        features = np.empty((n, t))
        for rows in blocks:
            features[rows] = _smooth(widened(proxy, rows))
        labels = self._initial_labels(features, k)
        del features
        gamma = torch.zeros(t, k, dtype=y.dtype, device=y.device)
        gamma[torch.arange(t, device=y.device), torch.as_tensor(labels, device=y.device)] = 1.0
        start, trans = _one_hot_chain(labels, k)
        first = np.empty((k, n))
        members = [labels == c for c in range(k)]
        for rows in blocks:
            w = widened(proxy, rows)
            for c in range(k):
                first[c, rows] = w[:, members[c]].mean(1)
        del proxy
        log_rates = torch.log(torch.as_tensor(first + RATE_FLOOR, dtype=y.dtype, device=y.device))
        gen = np.random.default_rng(self.random_state)
        n_obs = min(t - p, _OBS_FRAMES)
        frames = torch.as_tensor(
            np.sort(gen.choice(np.arange(p, t), n_obs, replace=False)), device=y.device
        )
        previous = -math.inf
        # one optimiser for the whole fit: its moment estimates carry over between M-steps
        # (a fresh Adam moves every parameter by about lr at its first steps, whatever the
        # gradient, and so wanders)
        opt = torch.optim.Adam(obs.parameters(), lr=0.01)
        self._n_iter = 0
        for it in range(int(self.n_iter)):
            self._n_iter = it + 1
            # M-step from the current posterior (the first one from the k-means labels)
            closed_form = p == 1 and int(self.observation_steps) > 0
            if closed_form:
                num, den, sums = self._pass(obs, y, log_rates, gamma, moments=True)
            else:
                num, den = self._pass(obs, y, log_rates, gamma)
            rates = (num / den.clamp_min(1e-12)).clamp_min(RATE_FLOOR)
            log_rates = torch.log(rates).to(y.dtype)
            if closed_form:
                if it == 0:
                    traces = self._ar1_trace_sums(y)
                self._ar1_update(obs, y, sums, traces)
            elif it < _OBS_ITERS:
                self._refine_observation(obs, opt, y, log_rates, gamma, frames)
            # E-step
            log_b = self._pass(obs, y, log_rates)
            kw = {"dtype": y.dtype, "device": y.device}
            log_start = torch.log(torch.as_tensor(start, **kw))
            log_trans = torch.log(torch.as_tensor(trans, **kw))
            gamma, xi, ll = forward_backward(log_b, log_start, log_trans)
            start, trans = self._em_chain(gamma, xi)
            ll = float(ll) / n_terms
            # |change|: the Adam steps on the kinetics may lower the likelihood a little
            # (a generalised M-step), which is no reason to stop
            if abs(ll - previous) < float(self.tol):
                break
            previous = ll
        num, den = self._pass(obs, y, log_rates, gamma)
        rates = (num / den.clamp_min(1e-12)).clamp_min(RATE_FLOOR)
        with torch.no_grad():
            params.update(
                roots=obs.roots.cpu().numpy().astype(np.float64),
                gain=obs.gain.cpu().numpy().astype(np.float64),
                noise=obs.noise_sd.cpu().numpy().astype(np.float64),
                baseline=obs.baseline_coef.cpu().numpy().astype(np.float64),
            )
        params.update(rates=rates.cpu().numpy(), startprob=start, transmat=trans)
        return params

    def _set_fitted(self, params: dict, keep: np.ndarray) -> None:
        import torch

        from ..model.calcium import ar_from_roots

        n = keep.size
        rates = np.full((self.n_states_, n), np.nan)
        rates[:, keep] = params["rates"]
        self.rates_ = rates
        decay = np.full((n, self.ar_order), np.nan)
        decay[keep] = ar_from_roots(torch.as_tensor(params["roots"])).numpy()
        self.decay_ = decay
        self.gain_ = np.full(n, np.nan)
        self.gain_[keep] = params["gain"] * params["scale"]
        self.noise_sd_ = np.full(n, np.nan)
        self.noise_sd_[keep] = params["noise"] * params["scale"]


# -- the Gaussian comparisons ------------------------------------------------------------
class _GaussianBase(_StateModel):
    def __init__(
        self,
        n_states: int | str = "auto",
        candidate_states: tuple[int, ...] = DEFAULT_CANDIDATES,
        holdout: float = 0.2,
        n_iter: int = 100,
        tol: float = 1e-4,
        random_state: int | None = 0,
        device: str = "cpu",
    ) -> None:
        self.n_states = n_states
        self.candidate_states = candidate_states
        self.holdout = holdout
        self.n_iter = n_iter
        self.tol = tol
        self.random_state = random_state
        self.device = device

    def _tensor(self, x: np.ndarray):
        import torch

        from ..model.device import resolve_device

        dev = resolve_device(self.device)
        dtype = torch.float32 if dev.type == "mps" else torch.float64  # MPS has no fp64
        return torch.as_tensor(x, dtype=dtype, device=dev)


class GaussianHMM(_GaussianBase):
    """Gaussian HMM with a diagonal covariance per state (hmmlearn's ``GaussianHMM``).

    hmmlearn fits on the frames every ROI has (NaN frames cut the sequence into pieces);
    emissions for scoring and decoding leave each NaN value out, as the calcium HMM does.
    Fitted attributes as :class:`CalciumHMM`, with ``means_`` and ``variances_`` (K, ROIs)
    in place of rates (``rates_`` is ``means_``: no spike rate in this model)."""

    def _fit_k(self, X: np.ndarray, k: int) -> dict:
        from hmmlearn.hmm import GaussianHMM as _Hmm

        from ..analysis._threads import openmp_threads_for

        ok = np.isfinite(X).all(0)
        if ok.sum() < k * FRAMES_PER_STATE:
            raise CalciumAvaeError(
                f"only {int(ok.sum())} frames have every ROI; too few for {k} Gaussian states"
            )
        # runs of complete frames are the sequences hmmlearn fits
        edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(int), [0]])))
        lengths = (edges[1::2] - edges[::2]).tolist()
        model = _Hmm(
            k,
            covariance_type="diag",
            n_iter=int(self.n_iter),
            tol=float(self.tol) * X.shape[0] * int(ok.sum()),
            random_state=self.random_state,
            min_covar=1e-4 * float(np.nanvar(X)),
        )
        with openmp_threads_for(int(ok.sum())), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X[:, ok].T, lengths)
        return {
            "means": model.means_,
            "variances": np.stack([np.diag(c) for c in model.covars_]),
            "startprob": np.clip(model.startprob_, 1e-12, None),
            "transmat": np.clip(model.transmat_, 1e-12, None),
        }

    def _log_emissions(self, X: np.ndarray, params: dict):
        import torch

        y = self._tensor(X)
        ok = torch.isfinite(y)
        y0 = torch.where(ok, y, 0.0)
        mu = self._tensor(params["means"])  # (K, N)
        var = self._tensor(params["variances"])
        ll = -0.5 * ((y0.T[:, None, :] - mu[None]) ** 2 / var[None] + torch.log(2 * math.pi * var))
        return torch.where(ok.T[:, None, :], ll, 0.0).sum(-1)

    def _set_fitted(self, params: dict, keep: np.ndarray) -> None:
        n = keep.size
        self.means_ = np.full((self.n_states_, n), np.nan)
        self.means_[:, keep] = params["means"]
        self.variances_ = np.full((self.n_states_, n), np.nan)
        self.variances_[:, keep] = params["variances"]
        self.rates_ = self.means_


class ARGaussianHMM(_GaussianBase):
    """Autoregressive Gaussian HMM: in state k, y_nt = a_kn y_n,t-1 + b_kn + N(0, v_kn).

    The seed's AR-Gaussian comparison (the calcium model without its spikes), diagonal,
    fitted by EM with a weighted least-squares M-step; conditioned on the first frame.
    Fitted attributes as :class:`CalciumHMM`, with ``ar_`` (K, ROIs), ``means_`` (the
    intercepts b) and ``variances_``; ``rates_`` is b / (1 - a), each state's level."""

    def _terms(self, X: np.ndarray):
        import torch

        y = self._tensor(X)
        cur, prev = y[:, 1:], y[:, :-1]
        ok = torch.isfinite(cur) & torch.isfinite(prev)
        zero = 0.0
        return torch.where(ok, cur, zero), torch.where(ok, prev, zero), ok

    def _log_emissions(self, X: np.ndarray, params: dict):
        import torch

        cur, prev, ok = self._terms(X)
        a, b, v = (self._tensor(params[key]) for key in ("ar", "means", "variances"))
        pred = a[None] * prev.T[:, None, :] + b[None]  # (T-1, K, N)
        ll = -0.5 * ((cur.T[:, None, :] - pred) ** 2 / v[None] + torch.log(2 * math.pi * v))
        ll = torch.where(ok.T[:, None, :], ll, 0.0).sum(-1)
        return torch.cat([torch.zeros(1, ll.shape[1], dtype=ll.dtype), ll], 0)

    def _m_step(self, cur, prev, ok, gamma, floor: float) -> dict:
        """Weighted least squares of y_t on (y_t-1, 1) per state and ROI."""
        import torch

        w = gamma[1:]  # (T-1, K)
        o = ok.to(w.dtype).T  # (T-1, N)
        x, z = prev.T, cur.T
        s0 = w.T @ o
        sx, sz = w.T @ (o * x), w.T @ (o * z)
        sxx, sxz, szz = w.T @ (o * x * x), w.T @ (o * x * z), w.T @ (o * z * z)
        det = s0 * sxx - sx**2
        good = det > 1e-9 * s0.clamp_min(1e-12) ** 2
        a = torch.where(good, (s0 * sxz - sx * sz) / det.clamp_min(1e-300), 0.0)
        b = torch.where(good, (sz - a * sx) / s0.clamp_min(1e-12), sz / s0.clamp_min(1e-12))
        rss = szz - 2 * a * sxz - 2 * b * sz + a**2 * sxx + 2 * a * b * sx + b**2 * s0
        v = (rss / s0.clamp_min(1e-12)).clamp_min(floor)
        return {"ar": a.cpu().numpy(), "means": b.cpu().numpy(), "variances": v.cpu().numpy()}

    def _fit_k(self, X: np.ndarray, k: int) -> dict:
        import torch

        cur, prev, ok = self._terms(X)
        t = X.shape[1]
        floor = 1e-4 * float(np.nanvar(np.diff(X, axis=1)))
        labels = self._initial_labels(_smooth(np.diff(X, axis=1, prepend=np.nan)), k)
        gamma = torch.zeros(t, k, dtype=cur.dtype, device=cur.device)
        gamma[torch.arange(t, device=cur.device), torch.as_tensor(labels, device=cur.device)] = 1.0
        start, trans = _one_hot_chain(labels, k)
        previous = -math.inf
        n_terms = max(1, int(ok.sum()))
        params = {}
        self._n_iter = 0
        for it in range(int(self.n_iter)):
            self._n_iter = it + 1
            params = self._m_step(cur, prev, ok, gamma, floor)
            params.update(startprob=start, transmat=trans)
            log_b = self._log_emissions(X, params)
            gamma, xi, ll = forward_backward(log_b, *self._log_chain(params, log_b))
            start, trans = self._em_chain(gamma, xi)
            ll = float(ll) / n_terms
            if ll - previous < float(self.tol):
                break
            previous = ll
        params = self._m_step(cur, prev, ok, gamma, floor)
        params.update(startprob=start, transmat=trans)
        return params

    def _set_fitted(self, params: dict, keep: np.ndarray) -> None:
        n = keep.size
        for name in ("ar", "means", "variances"):
            full = np.full((self.n_states_, n), np.nan)
            full[:, keep] = params[name]
            setattr(self, f"{name}_", full)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.rates_ = self.means_ / (1.0 - self.ar_)
