"""The calcium observation model of seed 002: Poisson spike counts drive an autoregressive
calcium process, and the unobserved counts are summed out exactly, frame by frame.

Model (Ganmor et al. 2016, generalised to AR(p) by Keeley et al., "Modeling neural
population activity from calcium imaging data", eLife 2026, doi:10.7554/eLife.109405):
for neuron ``n`` and frame ``t``, with fluorescence ``y`` and its baseline ``b``,

    z_t = y_t - b_t                                   (fluorescence above baseline)
    c_t = z_t                       (or, with saturation, c_t = expm1(a z_t) / a)
    c_t = sum_{i=1..p} gamma_i c_{t-i} + gain * s_t + eps_t,   eps_t ~ N(0, sd^2)
    s_t ~ Poisson(lambda_t)

The Gaussian noise is *fed through the AR process* (the seed's "additive Gaussian noise is
fed through the AR process"), so the calcium is the observed trace itself and each frame's
density given the ``p`` frames before it depends on one count only:

    p(y_t | y_{t-p..t-1}, lambda_t)
        = sum_{k=0..R} Poisson(k; lambda_t) N(c_t; sum_i gamma_i c_{t-i} + gain k, sd^2)
          * |dc_t / dy_t|

The log-likelihood is the sum of these per-frame terms for t >= p, conditioned on the first
``p`` frames (the seed's "likelihood evaluation": the bins are independent given the past,
so the marginal is a per-frame sum over 0..R counts). It equals the brute-force sum over
all count sequences in {0..R}^T of the joint density, which the tests check.

Masking: a frame's term needs ``y_t`` and its ``p`` predecessors; a term any of them is
NaN for (or whose rate is NaN) is left out, never interpolated. A NaN gap therefore costs
the gap plus the ``p`` frames after it, exactly as if the trace were cut into pieces there.

Saturation (off by default): fluorescence above baseline is a concave, monotone function
of calcium, ``z = log1p(a c) / a`` (a > 0 learned; a -> 0 is linear). Its inverse is
defined for every ``z``, and the Jacobian ``exp(a z)`` enters the density.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from ..errors import CalciumAvaeError, CalciumAvaeWarning

#: Most spike counts per frame the likelihood sums over; rates that need more warn.
R_MAX = 40
#: The Poisson mass the sum over 0..R may drop at the current rates.
TAIL = 1e-6

_LOG_2PI = math.log(2.0 * math.pi)


def choose_max_count(rates: torch.Tensor | float, tail: float = TAIL, r_max: int = R_MAX) -> int:
    """The smallest R with P(Poisson(max rate) > R) < ``tail``, capped at ``r_max``.

    The rate that needs the most counts is the largest, so R is chosen for it; when the
    cap bites a :class:`CalciumAvaeWarning` says how much mass is dropped.
    """
    if isinstance(rates, torch.Tensor):
        finite = rates.detach()[torch.isfinite(rates.detach())]
        lam = float(finite.max()) if finite.numel() else 0.0
    else:
        lam = float(rates)
    lam = max(lam, 0.0)
    if lam == 0.0:
        return 1
    k = torch.arange(r_max + 1, dtype=torch.float64)
    log_pmf = k * math.log(lam) - lam - torch.lgamma(k + 1)
    # upper tail P(N > R) = 1 - cdf(R), in float64 (enough for a 1e-6 tail)
    cdf = torch.cumsum(torch.exp(log_pmf), 0)
    above = (1.0 - cdf).clamp_min(0.0)
    ok = torch.nonzero(above < tail)
    if ok.numel():
        return max(1, int(ok[0, 0]))
    warnings.warn(
        f"spike rate {lam:.3g} per frame needs more than R_MAX={r_max} spikes per frame in "
        f"the likelihood; the sum is capped at {r_max} (dropped mass {float(above[-1]):.2g})",
        CalciumAvaeWarning,
        stacklevel=2,
    )
    return r_max


def _inv_softplus(x: torch.Tensor) -> torch.Tensor:
    return x + torch.log(-torch.expm1(-x))


def baseline_basis(n_frames: int, n_terms: int, dtype=None, device=None) -> torch.Tensor:
    """(n_terms, n_frames) slow cosine basis: a constant, then half-cosines of rising order.

    A low-order DCT basis models slow drift or bleaching without touching spike-scale
    structure (``n_terms`` = 1 is a constant baseline)."""
    t = (torch.arange(n_frames, dtype=torch.float64) + 0.5) / n_frames
    k = torch.arange(n_terms, dtype=torch.float64)[:, None]
    basis = torch.cos(math.pi * k * t[None, :])
    return basis.to(dtype=dtype or torch.get_default_dtype(), device=device)


def ar_from_roots(roots: torch.Tensor) -> torch.Tensor:
    """AR coefficients (N, p) of the process whose characteristic roots are ``roots``.

    Roots in (0, 1) make the process stable and its kernel a positive sum of decaying
    exponentials: AR(1) gamma = r; AR(2) gamma = (r1 + r2, -r1 r2), r1 decay, r2 rise."""
    if roots.shape[-1] == 1:
        return roots
    if roots.shape[-1] == 2:
        r1, r2 = roots[..., 0], roots[..., 1]
        return torch.stack([r1 + r2, -r1 * r2], dim=-1)
    raise CalciumAvaeError(f"ar_order must be 1 or 2, not {roots.shape[-1]}")


def mixture_log_terms(
    resid: torch.Tensor, rates: torch.Tensor, gain: torch.Tensor, sd: torch.Tensor, max_count: int
) -> torch.Tensor:
    """log Poisson(k; rate) + log N(resid; gain k, sd^2) for k = 0..max_count: (N, T, R+1).

    The one place the per-frame count mixture is written; its logsumexp over the last axis
    is a frame's log-likelihood (used by the model below and by the neuron VAE's decoder).
    """
    k = torch.arange(max_count + 1, dtype=resid.dtype, device=resid.device)
    sd = sd[:, None, None]
    log_poisson = torch.special.xlogy(k, rates[..., None]) - rates[..., None] - torch.lgamma(k + 1)
    z = (resid[..., None] - gain[:, None, None] * k) / sd
    return log_poisson - 0.5 * z**2 - torch.log(sd) - 0.5 * _LOG_2PI


class CalciumObservationModel(nn.Module):
    """Per-neuron calcium observation parameters and the exact marginal log-likelihood.

    Parameters (all per neuron, all learned): AR roots in (0, 1) (a logit each), gain > 0
    (softplus), noise SD > 0 (softplus), baseline coefficients on :func:`baseline_basis`,
    and, with ``saturation=True``, the saturation strength a >= 0 (softplus).
    """

    def __init__(
        self,
        n_neurons: int,
        ar_order: int = 1,
        n_baseline: int = 1,
        saturation: bool = False,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        if ar_order not in (1, 2):
            raise CalciumAvaeError(f"ar_order must be 1 or 2, not {ar_order!r}")
        if n_baseline < 1:
            raise CalciumAvaeError(f"n_baseline must be at least 1, not {n_baseline!r}")
        self.ar_order = ar_order
        self.n_baseline = n_baseline
        self.saturation = saturation
        kw = {"dtype": dtype, "device": device}
        roots = torch.tensor([0.9, 0.3][:ar_order], **kw).expand(n_neurons, ar_order)
        self.raw_roots = nn.Parameter(torch.logit(roots).clone())
        self.raw_gain = nn.Parameter(_inv_softplus(torch.ones(n_neurons, **kw)))
        self.raw_noise = nn.Parameter(_inv_softplus(torch.full((n_neurons,), 0.1, **kw)))
        self.baseline_coef = nn.Parameter(torch.zeros(n_neurons, n_baseline, **kw))
        if saturation:
            self.raw_saturation = nn.Parameter(torch.full((n_neurons,), -4.0, **kw))

    # -- parameters in natural units ------------------------------------------------------
    @property
    def roots(self) -> torch.Tensor:
        return torch.sigmoid(self.raw_roots)

    @property
    def ar_coefficients(self) -> torch.Tensor:
        """(N, p) gamma_i of c_t = sum_i gamma_i c_{t-i} + ..."""
        return ar_from_roots(self.roots)

    @property
    def gain(self) -> torch.Tensor:
        return nn.functional.softplus(self.raw_gain)

    @property
    def noise_sd(self) -> torch.Tensor:
        return nn.functional.softplus(self.raw_noise)

    @property
    def saturation_strength(self) -> torch.Tensor | None:
        return nn.functional.softplus(self.raw_saturation) if self.saturation else None

    def baseline(self, n_frames: int) -> torch.Tensor:
        """(N, T) baseline."""
        basis = baseline_basis(
            n_frames, self.n_baseline, self.baseline_coef.dtype, self.baseline_coef.device
        )
        return self.baseline_coef @ basis

    @torch.no_grad()
    def set_parameters(
        self,
        roots: torch.Tensor | None = None,
        gain: torch.Tensor | None = None,
        noise_sd: torch.Tensor | None = None,
        baseline: torch.Tensor | None = None,
        saturation: torch.Tensor | None = None,
    ) -> None:
        """Set parameters from natural units (N,) / (N, p) / (N, n_baseline)."""

        def _as(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
            return torch.as_tensor(x, dtype=like.dtype, device=like.device).expand_as(like)

        if roots is not None:
            r = _as(roots, self.raw_roots).clamp(1e-6, 1 - 1e-6)
            self.raw_roots.copy_(torch.logit(r))
        if gain is not None:
            self.raw_gain.copy_(_inv_softplus(_as(gain, self.raw_gain).clamp_min(1e-8)))
        if noise_sd is not None:
            self.raw_noise.copy_(_inv_softplus(_as(noise_sd, self.raw_noise).clamp_min(1e-8)))
        if baseline is not None:
            self.baseline_coef.copy_(_as(baseline, self.baseline_coef))
        if saturation is not None and self.saturation:
            s = _as(saturation, self.raw_saturation).clamp_min(1e-8)
            self.raw_saturation.copy_(_inv_softplus(s))

    # -- likelihood -----------------------------------------------------------------------
    def _residuals(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Innovation c_t - sum gamma_i c_{t-i} (N, T-p), log-Jacobian, and validity mask."""
        p = self.ar_order
        t = y.shape[1]
        if t <= p:
            raise CalciumAvaeError(f"a trace needs more than {p} frames for AR({p}), not {t}")
        finite = torch.isfinite(y)
        # zeros where NaN so that no NaN reaches any gradient; masked terms are dropped.
        z = torch.where(finite, y, torch.zeros((), dtype=y.dtype, device=y.device))
        z = z - self.baseline(t)
        if self.saturation:
            a = self.saturation_strength[:, None]
            c = torch.expm1(a * z) / a
            log_jac = (a * z)[:, p:]
        else:
            c = z
            log_jac = torch.zeros((), dtype=y.dtype, device=y.device)
        gamma = self.ar_coefficients
        pred = sum(gamma[:, i - 1 : i] * c[:, p - i : t - i] for i in range(1, p + 1))
        resid = c[:, p:] - pred
        valid = finite[:, p:].clone()
        for i in range(1, p + 1):
            valid &= finite[:, p - i : t - i]
        return resid, log_jac, valid

    def _log_joint(
        self,
        y: torch.Tensor,
        rates: torch.Tensor,
        max_count: int | None,
        frames: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log p(c_t, s_t = k | past) for k = 0..R: (N, T-p, R+1), and the validity mask;
        only the frames ``frames`` (indices >= p) when given."""
        if y.shape != rates.shape:
            raise CalciumAvaeError(f"rates {tuple(rates.shape)} must match y {tuple(y.shape)}")
        resid, log_jac, valid = self._residuals(y)
        p = self.ar_order
        lam = rates[:, p:]
        if frames is not None:
            cols = frames - p
            resid, valid, lam = resid[:, cols], valid[:, cols], lam[:, cols]
            if self.saturation:
                log_jac = log_jac[:, cols]
        valid = valid & torch.isfinite(lam)
        lam = torch.where(valid, lam, torch.ones((), dtype=lam.dtype, device=lam.device))
        if max_count is None:
            max_count = choose_max_count(lam[valid] if valid.any() else lam)
        joint = mixture_log_terms(resid, lam, self.gain, self.noise_sd, max_count)
        if self.saturation:
            joint = joint + log_jac[..., None]
        return joint, valid

    def frame_log_likelihood(
        self, y: torch.Tensor, rates: torch.Tensor, max_count: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame terms log p(y_t | y_{t-p..t-1}, lambda_t), (N, T); 0 where masked
        (the first ``p`` frames, NaN frames and the ``p`` after each), and the mask."""
        joint, valid = self._log_joint(y, rates, max_count)
        terms = torch.logsumexp(joint, dim=-1)
        terms = torch.where(valid, terms, torch.zeros((), dtype=terms.dtype, device=terms.device))
        p = self.ar_order
        pad = torch.zeros(y.shape[0], p, dtype=terms.dtype, device=terms.device)
        mask_pad = torch.zeros(y.shape[0], p, dtype=torch.bool, device=terms.device)
        return torch.cat([pad, terms], 1), torch.cat([mask_pad, valid], 1)

    def forward(
        self, y: torch.Tensor, rates: torch.Tensor, max_count: int | None = None
    ) -> torch.Tensor:
        """Log-likelihood per neuron (N,), the counts summed out over 0..R per frame."""
        terms, _ = self.frame_log_likelihood(y, rates, max_count)
        return terms.sum(1)

    def subset_log_likelihood(
        self,
        y: torch.Tensor,
        rates: torch.Tensor,
        frames: torch.Tensor,
        max_count: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum of the per-frame terms at ``frames`` (indices >= p) per neuron, and how many
        of them are unmasked. The terms are conditionally independent given the observed
        past, so a fixed subset gives an unbiased estimate of the mean term at a fraction
        of the cost (used to fit kinetics on long recordings)."""
        joint, valid = self._log_joint(y, rates, max_count, frames)
        terms = torch.logsumexp(joint, dim=-1)
        terms = torch.where(valid, terms, torch.zeros((), dtype=terms.dtype, device=terms.device))
        return terms.sum(1), valid.sum(1)

    @torch.no_grad()
    def count_posterior(
        self, y: torch.Tensor, rates: torch.Tensor, max_count: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """p(s_t = k | y_t, past, lambda_t): (N, T, R+1), and the mask of frames that have
        it (elsewhere the row is the Poisson prior truncated to 0..R)."""
        joint, valid = self._log_joint(y, rates, max_count)
        post = torch.softmax(joint, dim=-1)
        p = self.ar_order
        lam = torch.nan_to_num(rates, nan=0.0).clamp_min(0)
        k = torch.arange(post.shape[-1], dtype=post.dtype, device=post.device)
        prior = torch.softmax(torch.special.xlogy(k, lam[..., None]) - torch.lgamma(k + 1), dim=-1)
        full = prior.clone()
        full[:, p:] = torch.where(valid[..., None], post, prior[:, p:])
        mask = torch.zeros_like(torch.isfinite(rates))
        mask[:, p:] = valid
        return full, mask
