"""The calcium observation likelihood (seed 002) against brute force, gradients, masking."""

import itertools
import math
import warnings

import numpy as np
import pytest
import torch

from napari_calcium_avae.errors import CalciumAvaeError, CalciumAvaeWarning
from napari_calcium_avae.model.calcium import (
    R_MAX,
    CalciumObservationModel,
    ar_from_roots,
    choose_max_count,
)


def _model(ar_order, n=2, saturation=False, n_baseline=2, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    m = CalciumObservationModel(n, ar_order, n_baseline, saturation, dtype)
    m.set_parameters(
        roots=torch.rand(n, ar_order, generator=gen, dtype=torch.float64) * 0.8 + 0.1,
        gain=torch.rand(n, generator=gen, dtype=torch.float64) + 0.5,
        noise_sd=torch.rand(n, generator=gen, dtype=torch.float64) * 0.5 + 0.3,
        baseline=torch.randn(n, n_baseline, generator=gen, dtype=torch.float64) * 0.3,
        saturation=torch.rand(n, generator=gen, dtype=torch.float64) * 0.5 + 0.1,
    )
    return m


def _brute_force(m, y, lam, r):
    """log of sum over every count sequence in {0..R}^T of p(s) p(y_{p:} | y_{:p}, s), from
    the generative equations written out directly (no shared code with the model)."""
    p = m.ar_order
    n, t = y.shape
    gamma = m.ar_coefficients.detach()
    gain, sd = m.gain.detach(), m.noise_sd.detach()
    b = m.baseline(t).detach()
    out = []
    for i in range(n):
        z = [float(y[i, j] - b[i, j]) for j in range(t)]
        if m.saturation:
            a = float(m.saturation_strength[i].detach())
            c = [math.expm1(a * v) / a for v in z]
            logjac = [a * v for v in z]
        else:
            c, logjac = z, [0.0] * t
        total = 0.0
        for seq in itertools.product(range(r + 1), repeat=t - p):
            dens = 1.0
            for j, k in enumerate(seq):
                tt = j + p
                lj = float(lam[i, tt])
                prior = math.exp(-lj) * lj**k / math.factorial(k)
                mean = (
                    sum(float(gamma[i, q]) * c[tt - 1 - q] for q in range(p)) + float(gain[i]) * k
                )
                s = float(sd[i])
                dens *= prior * math.exp(-0.5 * ((c[tt] - mean) / s) ** 2 + logjac[tt])
                dens /= s * math.sqrt(2 * math.pi)
            total += dens
        out.append(math.log(total))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("ar_order", [1, 2])
@pytest.mark.parametrize("saturation", [False, True])
def test_matches_brute_force_over_all_count_sequences(ar_order, saturation):
    m = _model(ar_order, saturation=saturation)
    gen = torch.Generator().manual_seed(1)
    y = torch.rand(2, 4 + ar_order - 1, generator=gen, dtype=torch.float64) * 2
    lam = torch.rand(2, y.shape[1], generator=gen, dtype=torch.float64) * 0.8 + 0.05
    got = m(y, lam, max_count=3).detach()
    want = _brute_force(m, y, lam, 3)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_ar2_roots_give_stable_coefficients():
    g = ar_from_roots(torch.tensor([[0.9, 0.5]]))
    torch.testing.assert_close(g, torch.tensor([[1.4, -0.45]]))
    # both characteristic roots inside the unit circle
    roots = np.roots([1, -1.4, 0.45])
    assert np.all(np.abs(roots) < 1)


@pytest.mark.parametrize("ar_order", [1, 2])
def test_gradcheck_float64(ar_order):
    m = _model(ar_order, saturation=True)
    gen = torch.Generator().manual_seed(2)
    y = torch.randn(2, 6, generator=gen, dtype=torch.float64)
    lam = (torch.rand(2, 6, generator=gen, dtype=torch.float64) + 0.1).requires_grad_()
    params = [m.raw_roots, m.raw_gain, m.raw_noise, m.baseline_coef, m.raw_saturation]

    def f(lam_, *ps):
        return torch.func.functional_call(
            m,
            {
                "raw_roots": ps[0],
                "raw_gain": ps[1],
                "raw_noise": ps[2],
                "baseline_coef": ps[3],
                "raw_saturation": ps[4],
            },
            (y, lam_, 4),
        )

    inputs = (lam, *[p.detach().clone().requires_grad_() for p in params])
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("ar_order", [1, 2])
def test_nan_frames_are_masked_as_a_cut_trace(ar_order):
    m = _model(ar_order, n=1, n_baseline=1)
    gen = torch.Generator().manual_seed(3)
    y = torch.randn(1, 30, generator=gen, dtype=torch.float64)
    lam = torch.full_like(y, 0.2)
    gap = y.clone()
    gap[0, 12:14] = float("nan")
    whole = m(gap, lam, 5)
    # a constant baseline: the likelihood of the pieces before and after the gap
    pieces = m(y[:, :12], lam[:, :12], 5) + m(y[:, 14:], lam[:, 14:], 5)
    torch.testing.assert_close(whole, pieces)
    terms, mask = m.frame_log_likelihood(gap, lam, 5)
    assert not mask[0, 12 : 14 + ar_order].any() and mask[0, 14 + ar_order :].all()
    assert torch.isfinite(terms).all()
    whole.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters())


def test_nan_data_do_not_change_the_unmasked_terms():
    m = _model(1, n=1)
    y = torch.randn(1, 20, dtype=torch.float64)
    lam = torch.full_like(y, 0.3)
    a, _ = m.frame_log_likelihood(y, lam, 5)
    y2 = y.clone()
    y2[0, 5] = float("nan")
    b, mask = m.frame_log_likelihood(y2, lam, 5)
    torch.testing.assert_close(a[mask], b[mask])
    assert mask.sum() == 20 - 1 - 2


@pytest.mark.parametrize("ar_order", [1, 2])
def test_float32_agrees_with_float64(ar_order):
    m64 = _model(ar_order, n=3, saturation=True)
    m32 = _model(ar_order, n=3, saturation=True, dtype=torch.float32)
    y = torch.randn(3, 200, dtype=torch.float64)
    lam = torch.rand(3, 200, dtype=torch.float64)
    a = m64(y, lam)
    b = m32(y.float(), lam.float())
    assert b.dtype == torch.float32
    torch.testing.assert_close(b.double(), a, rtol=1e-4, atol=1e-2)


def test_far_outliers_stay_finite():
    m = _model(1, n=1, dtype=torch.float32)
    y = torch.tensor([[0.0, 1e4, -1e4, 0.0]])
    lam = torch.tensor([[1e-8, 1e-8, 3.0, 0.5]])
    out = m(y, lam)
    assert torch.isfinite(out).all()


def test_max_count_drops_less_than_the_tail():
    from scipy.stats import poisson

    for lam in (0.01, 0.3, 2.0, 8.0):
        r = choose_max_count(lam)
        assert poisson.sf(r, lam) < 1e-6
        assert r == 1 or poisson.sf(r - 1, lam) >= 1e-6
    assert choose_max_count(torch.tensor([[0.1, float("nan"), 2.0]])) == choose_max_count(2.0)
    assert choose_max_count(0.0) == 1


def test_max_count_cap_warns():
    with pytest.warns(CalciumAvaeWarning, match="R_MAX"):
        assert choose_max_count(35.0) == R_MAX
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        choose_max_count(5.0)


def test_bad_shapes_and_orders():
    with pytest.raises(CalciumAvaeError, match="ar_order"):
        CalciumObservationModel(1, ar_order=3)
    m = _model(2, n=1)
    with pytest.raises(CalciumAvaeError, match="more than 2 frames"):
        m(torch.zeros(1, 2, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64))
    with pytest.raises(CalciumAvaeError, match="must match"):
        m(torch.zeros(1, 5, dtype=torch.float64), torch.ones(1, 4, dtype=torch.float64))


def test_count_posterior_is_a_distribution_and_sees_a_spike():
    m = _model(1, n=1, n_baseline=1)
    m.set_parameters(
        roots=torch.tensor([[0.5]]),
        gain=torch.tensor([2.0]),
        noise_sd=torch.tensor([0.1]),
        baseline=torch.tensor([[0.0]]),
    )
    y = torch.tensor([[0.0, 0.0, 2.0, 1.0, 0.5]], dtype=torch.float64)
    post, mask = m.count_posterior(y, torch.full_like(y, 0.1), 4)
    torch.testing.assert_close(post.sum(-1), torch.ones(1, 5, dtype=torch.float64))
    assert post[0, 2].argmax() == 1 and post[0, 3].argmax() == 0
    assert not mask[0, 0] and mask[0, 1:].all()


def test_subset_of_all_frames_is_the_full_likelihood():
    m = _model(2, n=2, saturation=True)
    y = torch.randn(2, 40, dtype=torch.float64)
    y[1, 7] = float("nan")
    lam = torch.full_like(y, 0.4)
    total, n_valid = m.subset_log_likelihood(y, lam, torch.arange(2, 40), 6)
    torch.testing.assert_close(total, m(y, lam, 6))
    assert n_valid.tolist() == [38, 35]
    part, n_part = m.subset_log_likelihood(y, lam, torch.tensor([5, 9, 30]), 6)
    terms, _ = m.frame_log_likelihood(y, lam, 6)
    torch.testing.assert_close(part, terms[:, [5, 9, 30]].sum(1))
    assert n_part.tolist() == [3, 2]
