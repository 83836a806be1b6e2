"""Population states: the calcium HMM (seed 002) and its Gaussian comparisons."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch

from napari_calcium_avae.errors import CalciumAvaeError, CalciumAvaeWarning
from napari_calcium_avae.model.calcium import CalciumObservationModel
from napari_calcium_avae.population.hmm import (
    MIN_FRAMES,
    ARGaussianHMM,
    CalciumHMM,
    GaussianHMM,
    forward_backward,
    forward_log_likelihood,
    viterbi,
)

FAST = {"n_iter": 15, "device": "cpu"}


def planted(n_frames, k=3, group=3, on=0.6, off=0.01, stay=0.95, seed=0):
    """A sequential-state population: group g fires in state g; AR(1) calcium + noise."""
    rng = np.random.default_rng(seed)
    n = k * group
    states = np.empty(n_frames, dtype=int)
    states[0] = 0
    for t in range(1, n_frames):
        states[t] = states[t - 1] if rng.random() < stay else (states[t - 1] + 1) % k
    rates = np.full((k, n), off)
    for s in range(k):
        rates[s, s * group : (s + 1) * group] = on
    spikes = rng.poisson(rates[states].T)
    alpha = rng.uniform(0.7, 0.9, n)
    c = np.zeros((n, n_frames))
    for t in range(n_frames):
        c[:, t] = (alpha * c[:, t - 1] if t else 0) + spikes[:, t] + rng.normal(0, 0.1, n)
    return states, c + rng.normal(0, 0.1, c.shape)


def accuracy(true, found):
    """Accuracy under the best one-to-one relabelling (small K: all permutations)."""
    k = max(true.max(), found.max()) + 1
    return max(
        float((np.asarray(perm)[found] == true).mean()) for perm in itertools.permutations(range(k))
    )


def test_forward_backward_equals_brute_force_sum():
    gen = torch.Generator().manual_seed(0)
    t_len, k = 5, 3
    log_b = torch.randn(t_len, k, generator=gen, dtype=torch.float64) * 3
    start = torch.softmax(torch.randn(k, generator=gen, dtype=torch.float64), 0)
    trans = torch.softmax(torch.randn(k, k, generator=gen, dtype=torch.float64), 1)
    joint = {}
    for path in itertools.product(range(k), repeat=t_len):
        lp = math.log(start[path[0]]) + float(log_b[0, path[0]])
        for t in range(1, t_len):
            lp += math.log(trans[path[t - 1], path[t]]) + float(log_b[t, path[t]])
        joint[path] = lp
    total = np.logaddexp.reduce(list(joint.values()))
    gamma, xi, ll = forward_backward(log_b, start.log(), trans.log())
    assert float(ll) == pytest.approx(total, abs=1e-9)
    assert forward_log_likelihood(log_b, start.log(), trans.log()) == pytest.approx(total)
    # the posterior marginals and the expected transitions of the brute-force joint
    post = {p: math.exp(v - total) for p, v in joint.items()}
    for t in range(t_len):
        for s in range(k):
            want = sum(w for p, w in post.items() if p[t] == s)
            assert float(gamma[t, s]) == pytest.approx(want, abs=1e-9)
    want_xi = np.zeros((k, k))
    for p, w in post.items():
        for t in range(1, t_len):
            want_xi[p[t - 1], p[t]] += w
    np.testing.assert_allclose(xi.numpy(), want_xi, atol=1e-9)
    best = max(joint, key=joint.get)
    assert tuple(viterbi(log_b, start.log(), trans.log())) == best


def test_calcium_hmm_score_equals_brute_force_over_states():
    """score() sums the states out exactly, with emissions that equal the observation
    model's per-frame likelihood (counts summed out) at each state's rates."""
    _, y = planted(200, k=2, group=2, seed=1)
    model = CalciumHMM(n_states=2, **FAST).fit(y)
    seg = y[:, 100:106].copy()
    seg[1, 3] = np.nan  # a masked value: that neuron's terms at frames 3 and 4 drop out
    prm = model._params
    obs = CalciumObservationModel(4, 1, 1, False, torch.float64)
    obs.set_parameters(
        roots=torch.as_tensor(prm["roots"]),
        gain=torch.as_tensor(prm["gain"]),
        noise_sd=torch.as_tensor(prm["noise"]),
        baseline=torch.as_tensor(prm["baseline"]),
    )
    z = torch.as_tensor((seg - prm["offset"][:, None]) / prm["scale"][:, None])
    per_state = []
    for k in range(2):
        lam = torch.as_tensor(prm["rates"][k])[:, None].expand_as(z)
        terms, mask = obs.frame_log_likelihood(z, lam)
        terms = terms - mask * torch.as_tensor(np.log(prm["scale"]))[:, None]
        per_state.append(terms.sum(0).detach().numpy())
    log_b = np.stack(per_state, 1)
    total = -np.inf
    for path in itertools.product(range(2), repeat=seg.shape[1]):
        lp = np.log(prm["startprob"][path[0]]) + log_b[0, path[0]]
        for t in range(1, seg.shape[1]):
            lp += np.log(prm["transmat"][path[t - 1], path[t]]) + log_b[t, path[t]]
        total = np.logaddexp(total, lp)
    assert model.score(seg) == pytest.approx(total, rel=1e-4)


def test_calcium_hmm_recovers_planted_states():
    states, y = planted(600)
    model = CalciumHMM(n_states=3, **FAST).fit(y)
    assert model.states_.shape == (600,)
    assert model.state_probabilities_.shape == (600, 3)
    np.testing.assert_allclose(model.state_probabilities_.sum(1), 1.0, atol=1e-5)
    assert model.rates_.shape == (3, 9)
    assert model.transmat_.shape == (3, 3)
    np.testing.assert_allclose(model.transmat_.sum(1), 1.0)
    assert accuracy(states, model.states_) >= 0.9
    # each state's most active group is a different one; its calcium influx (gain x
    # rate, the seed's c * lambda: gain and rate trade off under noise) near the planted 0.6
    influx = (model.rates_ * model.gain_[None]).reshape(3, 3, 3).mean(2)
    assert sorted(influx.argmax(1)) == [0, 1, 2]
    assert 0.4 < influx.max(1).min() and influx.max(1).max() < 0.9


def test_auto_chooses_the_planted_number_of_states():
    states, y = planted(800, on=0.8, off=0.0, seed=2)
    model = CalciumHMM(candidate_states=(2, 3, 4), n_iter=10, device="cpu").fit(y)
    assert set(model.selection_scores_) == {2, 3, 4}
    assert model.n_states_ == 3
    assert accuracy(states, model.states_) >= 0.9


def test_nan_values_and_frames_are_masked():
    states, y = planted(600, seed=3)
    y[0, 100:140] = np.nan  # one neuron missing for a while
    y[:, 300:305] = np.nan  # every neuron missing: the chain carries the state
    model = CalciumHMM(n_states=3, **FAST).fit(y)
    assert np.isfinite(model.state_probabilities_).all()
    assert np.isfinite(model.rates_).all() and np.isfinite(model.log_likelihood_)
    assert accuracy(states, model.states_) >= 0.9
    # a missing value changes only its own frame's and the next frame's emissions
    full = model._log_emissions(y[:, 150:200], model._params)
    holed = y[:, 150:200].copy()
    holed[2, 20] = np.nan
    part = model._log_emissions(holed, model._params)
    changed = np.flatnonzero((full - part).abs().sum(1).numpy() > 0)
    assert changed.tolist() == [20, 21]


def test_all_nan_roi_is_dropped_with_a_warning():
    _, y = planted(300, seed=4)
    y = y.astype(np.float32)  # as Traces.data is
    y[4] = np.nan
    with pytest.warns(CalciumAvaeWarning, match="all NaN"):
        model = CalciumHMM(n_states=3, **FAST).fit(y)
    assert np.isnan(model.rates_[:, 4]).all()
    assert np.isfinite(np.delete(model.rates_, 4, axis=1)).all()
    assert np.isfinite(model.score(y))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda y: y[:1], "at least 2 ROIs"),
        (lambda y: y[:, : MIN_FRAMES - 1], "too short"),
        (lambda y: np.vstack([y[:1], np.full_like(y[:1], np.nan)]), "at least 2 ROIs"),
        (lambda y: y[None], "2-D"),
    ],
)
def test_bad_input_gets_one_line(make, message):
    _, y = planted(200, seed=5)
    with pytest.raises(CalciumAvaeError, match=message) as err, warnings.catch_warnings():
        warnings.simplefilter("ignore", CalciumAvaeWarning)
        CalciumHMM(n_states=2, **FAST).fit(make(y))
    assert "\n" not in str(err.value)


def test_more_states_than_the_data_support_is_refused():
    _, y = planted(100, seed=6)
    with pytest.raises(CalciumAvaeError, match="more than 100 frames"):
        CalciumHMM(n_states=20, **FAST).fit(y)
    with pytest.raises(CalciumAvaeError, match="n_states"):
        CalciumHMM(n_states="many").fit(y)
    with pytest.raises(CalciumAvaeError, match="held-out part"):
        CalciumHMM(candidate_states=(2, 3), **FAST).fit(y)


def test_parameters_follow_scikit_learn():
    from sklearn.base import clone

    model = CalciumHMM(n_states=4, ar_order=2, holdout=0.25)
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(CalciumAvaeError, match="ar_order"):
        CalciumHMM(n_states=2, ar_order=3).fit(planted(100)[1])


def test_scoring_needs_the_fitted_rois():
    _, y = planted(200, seed=7)
    model = CalciumHMM(n_states=2, **FAST).fit(y)
    with pytest.raises(CalciumAvaeError, match="fitted on 9"):
        model.score(y[:5])
    assert model.predict(y[:, :50]).shape == (50,)
    assert model.predict_proba(y[:, :50]).shape == (50, 2)


@pytest.mark.parametrize("cls", [GaussianHMM, ARGaussianHMM])
def test_gaussian_comparisons_share_the_interface(cls):
    states, y = planted(600, on=0.8, seed=8)
    y[1, 50:60] = np.nan
    model = cls(n_states=3).fit(y)
    assert model.states_.shape == (600,)
    assert model.state_probabilities_.shape == (600, 3)
    assert model.rates_.shape == (3, 9) and model.transmat_.shape == (3, 3)
    assert accuracy(states, model.states_) >= 0.8
    assert np.isfinite(model.score(y))


def _tiny_model(seed=0, n=4, t=40, k=3):
    """A CalciumHMM's observation model, standardised traces (one NaN) and rates."""
    _, y = planted(t, k=2, group=n // 2, seed=seed)
    y[1, 7] = np.nan
    model = CalciumHMM(n_states=k, device="cpu")
    prm = {
        "offset": np.nanmedian(y, 1),
        "scale": np.nanstd(y, 1),
        "roots": np.full((n, 1), 0.8),
        "gain": np.linspace(0.8, 1.6, n),
        "noise": np.linspace(0.1, 0.3, n),
        "baseline": np.zeros((n, 1)),
    }
    obs = model._observation(prm)
    z = model._standardise(y, prm, obs)
    gen = torch.Generator().manual_seed(seed)
    log_rates = torch.log(torch.rand(k, n, generator=gen) * 0.8 + 0.01)
    return model, obs, z, log_rates


def _direct_terms(obs, z, log_rates):
    """Each state's per-(neuron, frame) log-likelihood, straight from the mixture."""
    from napari_calcium_avae.model.calcium import choose_max_count, mixture_log_terms

    resid, _, valid = obs._residuals(z)
    r = choose_max_count(torch.exp(log_rates))
    terms = []
    for lr in log_rates:
        lam = torch.exp(lr)[:, None].expand_as(resid)
        mix = mixture_log_terms(resid, lam, obs.gain, obs.noise_sd, r)
        terms.append(torch.where(valid, torch.logsumexp(mix, -1), 0.0))
    return torch.stack(terms, -1), valid  # (N, T - p, K)


def test_emission_and_count_sums_match_the_direct_mixture():
    """The factored mixture (one product per state) equals logsumexp over the counts of
    mixture_log_terms, and the M-step's sums equal the counts' posterior means."""
    from napari_calcium_avae.model.calcium import choose_max_count, mixture_log_terms

    model, obs, z, log_rates = _tiny_model()
    terms, valid = _direct_terms(obs, z, log_rates)
    with torch.no_grad():
        log_b = model._pass(obs, z, log_rates)
    np.testing.assert_allclose(log_b[1:].numpy(), terms.sum(0).detach().numpy(), rtol=1e-5)
    assert (log_b[0] == 0).all()
    gamma = torch.softmax(torch.randn(z.shape[1], 3, dtype=torch.float64), 1)
    num, den = model._pass(obs, z, log_rates, gamma)
    resid, _, _ = obs._residuals(z)
    r = choose_max_count(torch.exp(log_rates))
    j = torch.arange(r + 1, dtype=z.dtype)
    g = gamma[1:].to(z.dtype)
    for k, lr in enumerate(log_rates):
        lam = torch.exp(lr)[:, None].expand_as(resid)
        post = torch.softmax(mixture_log_terms(resid, lam, obs.gain, obs.noise_sd, r), -1)
        mean = torch.where(valid, (post * j).sum(-1), 0.0)
        want = (mean * g[:, k]).sum(1).detach().numpy()
        np.testing.assert_allclose(num[k].numpy(), want, rtol=1e-4)
        np.testing.assert_allclose(den[k].numpy(), (valid * g[:, k]).sum(1).numpy(), rtol=1e-5)


@pytest.mark.parametrize("classify", [False, True])
def test_kinetics_gradient_equals_the_mixture_gradient(classify, monkeypatch):
    """The kinetics' step takes the gradient from the counts' posterior moments (Fisher's
    identity); it must equal back-propagation through the mixture's logsumexp."""
    import napari_calcium_avae.population.hmm as hmm

    model, obs, z, log_rates = _tiny_model(seed=1)
    t = z.shape[1]
    gamma = torch.softmax(torch.randn(t, 3, dtype=torch.float64) * 3, 1)
    frames = torch.arange(1, t)
    if classify:  # every frame takes only its most probable state
        monkeypatch.setattr(hmm, "_REFINE_ELEMENTS", 1)
    model.observation_steps = 1
    opt = torch.optim.SGD(obs.parameters(), lr=0.0)
    model._refine_observation(obs, opt, z, log_rates, gamma, frames)
    fast = [p.grad.clone() for p in obs.parameters()]
    opt.zero_grad()
    terms, valid = _direct_terms(obs, z, log_rates)
    g = gamma[1:].to(z.dtype)
    if classify:
        g = torch.nn.functional.one_hot(g.argmax(1), 3).to(z.dtype)
    (-(terms * g[None]).sum() / valid.sum()).backward()
    for a, p in zip(fast, obs.parameters(), strict=True):
        np.testing.assert_allclose(a.numpy(), p.grad.numpy(), rtol=1e-4, atol=1e-7)


def _spiking_model(on, off, noise, rates_range, seed=0, n=20, t=300, k=3):
    """A CalciumHMM's observation model at known parameters (gain 1, AR(1) 0.8), traces
    simulated with it (two groups firing ``on`` and ``off`` spikes per frame in turn) with
    NaN frames (single and in runs), and random state rates in ``rates_range``."""
    rng = np.random.default_rng(seed)
    half = (np.arange(t) // 50) % 2
    lam = np.where((np.arange(n) < n // 2)[:, None] == half[None].astype(bool), on, off)
    spikes = rng.poisson(lam)
    c = np.zeros((n, t))
    for i in range(t):
        c[:, i] = (0.8 * c[:, i - 1] if i else 0) + spikes[:, i] + rng.normal(0, noise, n)
    c[2, 17] = c[5, 100:104] = c[7, -1] = np.nan
    model = CalciumHMM(n_states=k, device="cpu")
    prm = {
        "offset": np.zeros(n),
        "scale": np.ones(n),
        "roots": np.full((n, 1), 0.8),
        "gain": np.ones(n),
        "noise": np.full(n, noise),
        "baseline": np.zeros((n, 1)),
    }
    obs = model._observation(prm)
    z = model._standardise(c, prm, obs)
    low, high = rates_range
    log_rates = torch.log(torch.as_tensor(rng.uniform(low, high, (k, n)), dtype=z.dtype))
    gamma = torch.softmax(torch.as_tensor(rng.normal(0, 2, (t, k))), 1)
    return model, obs, z, log_rates, gamma


def _direct_float64(obs, z, log_rates, gamma):
    """log emissions, the M-step's (num, den) and the AR(1) moments' sums, in float64
    from the count mixture itself (``mixture_log_terms``), state by state."""
    from napari_calcium_avae.model.calcium import choose_max_count, mixture_log_terms

    with torch.no_grad():
        resid, _, valid = obs._residuals(z)
        resid, gain, sd = resid.double(), obs.gain.double(), obs.noise_sd.double()
    rates = torch.exp(log_rates).double()
    r = choose_max_count(torch.exp(log_rates))
    j = torch.arange(r + 1, dtype=torch.float64)
    g = gamma[1:].double()
    k, n = rates.shape
    log_b = torch.zeros(z.shape[1], k, dtype=torch.float64)
    num, den = torch.zeros(k, n, dtype=torch.float64), torch.zeros(k, n, dtype=torch.float64)
    e1, e2 = torch.zeros_like(resid), torch.zeros_like(resid)
    for s in range(k):
        mix = mixture_log_terms(resid, rates[s][:, None].expand_as(resid), gain, sd, r)
        log_b[1:, s] = torch.where(valid, torch.logsumexp(mix, -1), 0.0).sum(0)
        post = torch.softmax(mix, -1)
        m1 = torch.where(valid, (post * j).sum(-1), 0.0)
        m2 = torch.where(valid, (post * j**2).sum(-1), 0.0)
        num[s], den[s] = (m1 * g[:, s]).sum(1), (valid * g[:, s]).sum(1)
        e1 += g[:, s] * m1
        e2 += g[:, s] * m2
    y = torch.where(torch.isfinite(z), z, 0.0).double()
    sums = torch.stack([e1.sum(1), e2.sum(1), (y[:, :-1] * e1).sum(1), (y[:, 1:] * e1).sum(1)])
    return log_b, num, den, sums


@pytest.mark.parametrize(
    "case",
    [
        # the benchmark's regime: most pairs quiet, many of them close to the series' limit
        {
            "on": 0.2,
            "off": 0.01,
            "noise": 0.27,
            "rates_range": (0.01, 0.3),
            "active": (0.02, 0.3),
            "rtol": 1e-6,
        },
        # frequent spikes and high rates: most pairs take the exact path
        {
            "on": 2.0,
            "off": 0.5,
            "noise": 0.2,
            "rates_range": (0.3, 3.0),
            "active": (0.5, 1.0),
            "rtol": 1e-5,
        },
    ],
    ids=["mostly-quiet", "mostly-active"],
)
def test_fast_pass_equals_the_direct_mixture(case):
    """The E-step's emissions and the M-step's sums (series for quiet pairs, the exact
    mixture for the others) equal the direct float64 computation, NaN frames included."""
    from napari_calcium_avae.model.calcium import choose_max_count
    from napari_calcium_avae.population import hmm

    model, obs, z, log_rates, gamma = _spiking_model(
        case["on"], case["off"], case["noise"], case["rates_range"]
    )
    with torch.no_grad():  # the split is what the case says it is
        resid, _, valid = obs._residuals(z)
        rates = torch.exp(log_rates)
        series = hmm._QuietSeries(
            obs.gain, obs.noise_sd, rates, choose_max_count(rates), 8, hmm._SERIES_TOL
        )
        u = resid * (obs.gain / obs.noise_sd**2)[:, None]
        pw, active = series.split(u.clone(), valid, torch.empty(8 * u.numel()))
    share = float(active.sum() / valid.sum())
    assert case["active"][0] < share < case["active"][1]
    assert float(pw[0].max()) > 0.05  # quiet pairs near the limit are in the test
    log_b, num, den, sums = _direct_float64(obs, z, log_rates, gamma)
    fast_log_b = model._pass(obs, z, log_rates).double()
    # float32 sums of 20 terms per frame (the old bmm pass: 9e-6 and 1.4e-4 off at most
    # in the two cases); a series term off would move quiet frames by > 1e-4
    np.testing.assert_allclose(fast_log_b.numpy(), log_b.numpy(), rtol=case["rtol"], atol=2e-5)
    fast_num, fast_den, fast_sums = model._pass(obs, z, log_rates, gamma, moments=True)
    np.testing.assert_allclose(fast_num.numpy(), num.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast_den.numpy(), den.numpy(), rtol=1e-6)
    np.testing.assert_allclose(fast_sums.numpy(), sums.numpy(), rtol=1e-5, atol=1e-6)
    plain_num, _ = model._pass(obs, z, log_rates, gamma)
    np.testing.assert_array_equal(plain_num.numpy(), fast_num.numpy())


@pytest.mark.parametrize("a", [0.3, 2.0, 7.0, 40.0])
@pytest.mark.parametrize("r", [2, 6, 20])
def test_quiet_series_hold_to_their_limit(a, r):
    """The truncated series of log P(z), E[s](z) and E[s^2](z) are within _SERIES_TOL of
    the polynomials themselves for every z up to the quiet limit, and the limit is not
    so small that few pairs are quiet."""
    from napari_calcium_avae.population import hmm

    gain = torch.ones(1, dtype=torch.float64)
    sd = torch.full((1,), 1 / math.sqrt(2 * a), dtype=torch.float64)
    rates = torch.tensor([[0.5], [2.0]], dtype=torch.float64)
    terms = hmm._SERIES_TERMS
    series = hmm._QuietSeries(gain, sd, rates, r, terms, hmm._SERIES_TOL)
    limit = math.exp(float(series.log_limit[0]))
    assert limit > 0.1
    zz = np.linspace(0, limit, 201)
    j = np.arange(r + 1)
    kappa = np.exp(-(j * (j - 1.0)) * a - np.array([math.lgamma(i + 1.0) for i in j]))
    poly = zz[:, None] ** j[None] * kappa[None]  # (Z, R+1)
    exact = [
        np.log(poly.sum(1)),
        (poly * j).sum(1) / poly.sum(1),
        (poly * j**2).sum(1) / poly.sum(1),
    ]
    coef = hmm._series_coefficients(np.array([a]), r)[:, 0, 1 : terms + 1]  # (3, Q)
    powers = zz[:, None] ** np.arange(1, terms + 1)[None]
    for want, c in zip(exact, coef, strict=True):
        assert np.abs(powers @ c - want).max() <= hmm._SERIES_TOL
    # and the rates' factor: the coefficients at a rate below the largest are scaled
    rhs = series.rhs.reshape(3, 2, terms, 1)  # (3, K, Q, N)
    rho = 0.5 / 2.0
    np.testing.assert_allclose(
        rhs[:, 0, :, 0].numpy(), coef * rho ** np.arange(1, terms + 1), rtol=1e-12, atol=1e-300
    )


@pytest.mark.parametrize("ar_order", [1, 2])
def test_window_residuals_are_the_models(ar_order):
    """The E- and M-step's per-chunk residuals are bit for bit the observation model's,
    with NaN and infinite samples; and the pass's chunks give the whole's result."""
    from napari_calcium_avae.population import hmm

    _, y = planted(300, k=2, group=3, seed=4)
    y[1, 7] = np.nan
    y[2, 50:53] = np.inf
    y[4, -1] = -np.inf
    model = CalciumHMM(n_states=2, ar_order=ar_order, device="cpu")
    n = y.shape[0]
    prm = {
        "offset": np.zeros(n),
        "scale": np.ones(n),
        "roots": np.tile([0.8, 0.3][:ar_order], (n, 1)),
        "gain": np.linspace(0.8, 1.6, n),
        "noise": np.linspace(0.1, 0.3, n),
        "baseline": np.linspace(-0.2, 0.3, n)[:, None],
    }
    obs = model._observation(prm)
    z = model._standardise(y, prm, obs)
    with torch.no_grad():
        want, _, valid = obs._residuals(z)
        for sl in (slice(0, 300), slice(40, 97)):
            window = z[:, sl.start : sl.stop]
            res, v, zeroed = hmm._window_residuals(obs, window)
            np.testing.assert_array_equal(res.numpy(), want[:, sl.start : sl.stop - ar_order])
            np.testing.assert_array_equal(v.numpy(), valid[:, sl.start : sl.stop - ar_order])
            np.testing.assert_array_equal(
                zeroed.numpy(), np.nan_to_num(window.numpy(), nan=0, posinf=0, neginf=0)
            )


def test_ar1_update_is_the_exact_m_step():
    """The AR(1) observation update: its sums are the counts' posterior moments, and the
    parameters it sets maximise the expected complete-data log-likelihood under that
    posterior (its gradient there is zero, and it is above the starting point's)."""
    from napari_calcium_avae.model.calcium import choose_max_count, mixture_log_terms

    model, obs, z, log_rates = _tiny_model(seed=3, n=6, t=400)
    gamma = torch.softmax(torch.randn(z.shape[1], 3, dtype=torch.float64) * 2, 1)
    _, _, sums = model._pass(obs, z, log_rates, gamma, moments=True)
    resid, _, valid = obs._residuals(z)
    r = choose_max_count(torch.exp(log_rates))
    j = torch.arange(r + 1, dtype=z.dtype)
    g = gamma[1:].to(z.dtype)
    e1 = torch.zeros_like(resid)
    e2 = torch.zeros_like(resid)
    with torch.no_grad():
        for k, lr in enumerate(log_rates):
            lam = torch.exp(lr)[:, None].expand_as(resid)
            post = torch.softmax(mixture_log_terms(resid, lam, obs.gain, obs.noise_sd, r), -1)
            e1 += g[:, k] * (post * j).sum(-1)
            e2 += g[:, k] * (post * j**2).sum(-1)
    e1, e2 = torch.where(valid, e1, 0.0), torch.where(valid, e2, 0.0)
    y = torch.where(torch.isfinite(z), z, 0.0)
    want = [e1.sum(1), e2.sum(1), (y[:, :-1] * e1).sum(1), (y[:, 1:] * e1).sum(1)]
    np.testing.assert_allclose(sums.numpy(), torch.stack(want).numpy(), rtol=1e-4, atol=1e-6)

    def expected_log_likelihood() -> torch.Tensor:
        res, _, v = obs._residuals(z)
        sd, gain = obs.noise_sd[:, None], obs.gain[:, None]
        sq = res**2 - 2 * gain * res * e1 + gain**2 * e2
        return torch.where(v, -0.5 * sq / sd**2 - torch.log(sd), 0.0).sum()

    with torch.no_grad():
        before = float(expected_log_likelihood())
    model._ar1_update(obs, z, sums)
    q = expected_log_likelihood()
    q.backward()
    q = float(q.detach())
    assert q > before + 100  # the start is far from the maximum (1514 -> 2460 nats)
    for param in (obs.raw_roots, obs.raw_gain, obs.raw_noise, obs.baseline_coef):
        assert float(param.grad.abs().max()) < 1e-5 * abs(q)  # 6e-4 at most when written


def test_scaled_recursion_matches_log_space_and_falls_back():
    """The scaled recursion equals the log-space one on emissions thousands of nats apart,
    and a chain that cannot reach the state a frame demands falls back to log space."""
    from napari_calcium_avae.population.hmm import _forward_backward_log

    gen = torch.Generator().manual_seed(2)
    log_b = torch.randn(300, 4, generator=gen, dtype=torch.float64) * 500
    start = torch.softmax(torch.randn(4, generator=gen, dtype=torch.float64), 0).log()
    trans = torch.softmax(torch.randn(4, 4, generator=gen, dtype=torch.float64) * 4, 1).log()
    for a, b in zip(
        forward_backward(log_b, start, trans),
        _forward_backward_log(log_b, start, trans),
        strict=True,
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-9)
    # state 1 -> 0 is impossible, and frame 2 needs state 0 after frame 1 needed state 1
    log_b = torch.tensor([[0.0, -800.0], [-800.0, 0.0], [0.0, -800.0]], dtype=torch.float64)
    trans = torch.tensor([[0.5, 0.5], [0.0, 1.0]], dtype=torch.float64).log()
    start = torch.tensor([0.5, 0.5], dtype=torch.float64).log()
    gamma, _, ll = forward_backward(log_b, start, trans)
    want = _forward_backward_log(log_b, start, trans)
    assert np.isfinite(float(ll)) and float(ll) == pytest.approx(float(want[2]))
    np.testing.assert_allclose(gamma.numpy(), want[0].numpy())
    assert forward_log_likelihood(log_b, start, trans) == pytest.approx(float(want[2]))


# -- the setup: moment start, standardised traces, k-means features ---------------------
def _messy_traces(n, t, dtype, seed=0):
    """Calcium-like rows with the cases the start treats apart: NaN runs and scattered
    NaN, a row with only two finite frames, a constant row."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(0, 0.1, (n, t)), 1) + rng.poisson(0.1, (n, t))
    x[1, ::3] = np.nan
    x[2, 10:40] = np.nan
    x[3, 2:] = np.nan
    x[4] = 2.5
    return x.astype(dtype)


@pytest.mark.parametrize(
    ("t", "dtype", "ar_order"),
    [(120, np.float32, 1), (700, np.float32, 2), (700, np.float64, 1)],
)
def test_moment_start_is_the_spike_inference_start(t, dtype, ar_order):
    """``_moment_start`` (rows in blocks, vectorised medians for rows without NaN) gives
    the floats of ``_row_stats`` then ``_initial_guess`` on the standardised traces, bit
    for bit. NumPy's nan-functions take another path under 600 frames, hence both sizes."""
    from napari_calcium_avae.population.hmm import _moment_start
    from napari_calcium_avae.spikes.inference import _initial_guess, _row_stats

    X = _messy_traces(23, t, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        stats = _row_stats(X)
        scale = np.where(stats["std"] > 0, stats["std"], 1.0)
        xs = (X - stats["median"][:, None]) / scale[:, None]
        want = _initial_guess(xs, ar_order, 1)
    want.update(offset=stats["median"], scale=scale)
    got = _moment_start(X, ar_order, block=5)  # several blocks, the last one short
    assert set(got) == {"offset", "scale", "roots", "gain", "noise", "baseline"}
    for key, value in got.items():
        assert value.shape == want[key].shape, key
        np.testing.assert_array_equal(value, want[key], err_msg=key)


def test_standardise_and_smooth_are_the_whole_array_formulas():
    """Both work a block of rows at a time; the floats equal the one-array formulas."""
    from napari_calcium_avae.population.hmm import _moment_start, _smooth

    X = _messy_traces(300, 90, np.float32)  # more rows than one block (256)
    model = CalciumHMM(n_states=2, device="cpu")
    params = _moment_start(X, 1)
    obs = model._observation(params)
    want = (X - params["offset"][:, None]) / params["scale"][:, None]
    got = model._standardise(X, params, obs)
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), want.astype(np.float32))
    for x in (X, X.astype(np.float64)):
        c = np.cumsum(np.pad(np.nan_to_num(x, nan=0.0), ((0, 0), (5, 0))), 1)
        want = (c[:, 5:] - c[:, :-5]) / 5
        got = _smooth(x)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_kmeans_features_are_not_changed_and_nan_is_zero():
    """k-means takes finite features as they are (no copy; the caller's array is left
    alone) and NaN as 0."""
    from napari_calcium_avae.population.hmm import _kmeans_labels

    rng = np.random.default_rng(0)
    f = np.concatenate([rng.normal(0, 0.1, (40, 30)), rng.normal(3, 0.1, (40, 30))])
    before = f.copy()
    labels = _kmeans_labels(f, 2, 0)
    np.testing.assert_array_equal(f, before)
    assert len(set(labels[:40])) == 1 and len(set(labels[40:])) == 1
    assert labels[0] != labels[-1]
    g = f.copy()
    g[::7, 3] = np.nan
    h = f.copy()
    h[::7, 3] = 0.0
    np.testing.assert_array_equal(_kmeans_labels(g, 2, 0), _kmeans_labels(h, 2, 0))
