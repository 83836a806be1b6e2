"""SpikeInference on simulated traces: recovery, noise-only rows, bad input, sklearn API."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone

from napari_calcium_avae.errors import CalciumAvaeError, CalciumAvaeWarning
from napari_calcium_avae.spikes import MIN_FRAMES, SpikeInference


def _simulate(n, t, rate=0.05, decay=0.95, amp=1.0, sd=0.2, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.poisson(rate, (n, t)).astype(float)
    c = np.zeros((n, t))
    for i in range(t):
        c[:, i] = (decay * c[:, i - 1] if i else 0.0) + s[:, i]
    return s, amp * c + sd * rng.standard_normal((n, t))


def _burst():
    """Two neurons firing rarely, then 50 frames at 0.6 spikes per frame (decay 0.9)."""
    rate = np.full(800, 0.005)
    rate[400:450] = 0.6
    return _simulate(2, 800, rate=rate, decay=0.9, sd=0.1, seed=6)


def _binned_r(a, b, width=4):
    t = a.shape[1] // width * width
    a = a[:, :t].reshape(a.shape[0], -1, width).sum(-1)
    b = b[:, :t].reshape(b.shape[0], -1, width).sum(-1)
    return np.array([np.corrcoef(x, y)[0, 1] for x, y in zip(a, b, strict=True)])


@pytest.fixture(scope="module")
def fitted():
    s, y = _simulate(6, 1500)
    est = SpikeInference(ar_order=1, device="cpu", max_iter=200).fit(y)
    return s, y, est


def test_recovers_spikes_better_than_first_difference(fitted):
    s, y, est = fitted
    rates = est.transform(y)
    assert rates.shape == y.shape and rates.dtype == np.float32
    first_diff = np.clip(np.diff(y, prepend=y[:, :1]), 0, None)
    r_model, r_diff = _binned_r(rates, s).mean(), _binned_r(first_diff, s).mean()
    assert r_model > 0.85 and r_model > r_diff + 0.03, (r_model, r_diff)
    # the spike count is right within 20 %
    assert abs(np.nansum(rates) / s.sum() - 1) < 0.2
    np.testing.assert_allclose(est.decay_[:, 0], 0.95, atol=0.1)
    # the L1 penalty shrinks the fit and the least-squares baseline takes up part of the
    # calcium, so one spike's size reads low (0.62-0.68 of the truth here)
    np.testing.assert_allclose(est.gain_, 1.0, rtol=0.45)
    assert est.input_kind_ == "dff" and est.n_features_in_ == 1500
    assert not est.noise_only_.any()


def test_credible_band_brackets_the_mean(fitted):
    s, y, est = fitted
    mean, lo, hi = est.credible_band(y[:, :], level=0.9)
    # a discrete posterior's 5 % quantile can lie above its mean (p(1) = 0.96), so the
    # band is checked against itself and the truth, and the mean against transform
    assert np.all(lo <= hi) and np.all(lo >= 0)
    np.testing.assert_allclose(mean, est.transform(y), rtol=1e-6, atol=1e-7)
    # frames with a true spike of 2+ have a band above 0 most of the time
    assert (lo[s >= 2] >= 1).mean() > 0.7
    # most true counts lie inside the band
    assert ((s >= lo) & (s <= hi)).mean() > 0.85


def test_denoise_beats_the_best_gaussian_filter(fitted):
    from napari_calcium_avae.analysis import best_gaussian_filter, reconstruction_mse

    s, y, est = fitted
    clean = np.zeros_like(y)
    for i in range(y.shape[1]):
        clean[:, i] = (0.95 * clean[:, i - 1] if i else 0.0) + s[:, i]
    denoised = est.denoise(y)
    assert denoised.shape == y.shape and denoised.dtype == np.float32
    ours = reconstruction_mse(denoised, clean, y).mean()
    assert ours < 0.7 * best_gaussian_filter(y, clean)[0]
    # NaN frames are filled by the model, the others barely move
    gappy = y.copy()
    gappy[:, 700:710] = np.nan
    filled = est.denoise(gappy)
    assert np.isfinite(filled).all()
    assert np.abs(filled[:, 700:710] - clean[:, 700:710]).mean() < 3 * 0.2


def test_saturating_fit_denoises_in_fluorescence():
    rng = np.random.default_rng(9)
    s = rng.poisson(0.05, (2, 1500)).astype(float)
    c = np.zeros_like(s)
    for i in range(s.shape[1]):
        c[:, i] = (0.95 * c[:, i - 1] if i else 0.0) + s[:, i]
    a = 0.3
    clean = np.log1p(a * c) / a
    y = clean + 0.1 * rng.standard_normal(c.shape)
    est = SpikeInference(ar_order=1, saturation=True, max_iter=300, device="cpu").fit(y)
    # the saturation is on for these rows or not (the fit decides); either way the trace
    # comes back in fluorescence, close to the truth
    assert np.sqrt(np.mean((est.denoise(y) - clean) ** 2)) < 0.1


def test_noise_only_rows_give_rates_near_zero_and_warn():
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((3, 800))
    with pytest.warns(CalciumAvaeWarning, match="no spikes above the noise"):
        est = SpikeInference(ar_order=1, device="cpu", max_iter=150).fit(noise)
    assert est.noise_only_.all()
    assert np.nanmean(est.transform(noise)) < 0.02


def test_raw_fluorescence_is_detected_and_reported():
    _, y = _simulate(2, 600, seed=2)
    est = SpikeInference(ar_order=1, device="cpu", max_iter=50).fit(100.0 + 10.0 * y)
    assert est.input_kind_ == "raw"
    # within one spike's amplitude (10): the AR-through-noise model biases it upwards when
    # there is measurement noise (the decay is underestimated)
    np.testing.assert_allclose(est.baseline_[:, 0], 100.0, atol=10.0)
    np.testing.assert_allclose(est.gain_, 10.0, rtol=0.45)  # reads low, as above
    with pytest.raises(CalciumAvaeError, match="negative baseline"):
        SpikeInference(input_kind="raw", max_iter=5).fit(y - 5.0)


def test_nan_frames_give_nan_and_the_rest_is_finite():
    _, y = _simulate(2, 400, seed=3)
    y[0, 100:110] = np.nan
    est = SpikeInference(ar_order=1, device="cpu", max_iter=30).fit(y)
    out = est.transform(y)
    assert np.isnan(out[0, 100:110]).all()
    assert np.isfinite(np.delete(out[0], range(100, 110))).all() and np.isfinite(out[1]).all()


def test_bad_input_is_one_line():
    with pytest.raises(CalciumAvaeError, match=f"at least {MIN_FRAMES}"):
        SpikeInference().fit(np.zeros((2, MIN_FRAMES - 1)))
    x = np.random.default_rng(0).standard_normal((2, 100))
    x[1] = np.nan
    with pytest.raises(CalciumAvaeError, match="all NaN"):
        SpikeInference().fit(x)
    with pytest.raises(CalciumAvaeError, match="ar_order"):
        SpikeInference(ar_order=3).fit(np.ones((1, 100)))
    est = SpikeInference(ar_order=1, max_iter=5, device="cpu").fit(
        np.random.default_rng(0).random((2, 100))
    )
    with pytest.raises(CalciumAvaeError, match="2 neurons"):
        est.transform(np.zeros((3, 100)))


def test_sklearn_clone_and_params():
    est = SpikeInference(ar_order=2, max_iter=7, frame_rate=30.0)
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert twin.get_params()["ar_order"] == 2
    twin.set_params(max_iter=3)
    assert twin.max_iter == 3 and est.max_iter == 7


def test_ar2_fits_and_reports_time_constants():
    _, y = _simulate(2, 600, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalciumAvaeWarning)
        est = SpikeInference(ar_order=2, frame_rate=30.0, max_iter=60, device="cpu").fit(y)
    assert est.decay_.shape == (2, 2) and est.time_constants_.shape == (2, 2)
    assert np.all(est.time_constants_ > 0)
    assert np.isfinite(est.transform(y)).all()


def test_autocovariance_decay_survives_measurement_noise():
    _, y = _simulate(3, 1500, sd=0.6, seed=5)
    est = SpikeInference(
        ar_order=1, decay_estimate="autocovariance", max_iter=60, device="cpu"
    ).fit(y)
    np.testing.assert_allclose(est.decay_[:, 0], 0.95, atol=0.03)
    with pytest.raises(CalciumAvaeError, match="decay_estimate"):
        SpikeInference(decay_estimate="fast").fit(y)


def test_spikes_follow_a_burst():
    _, y = _burst()
    est = SpikeInference(ar_order=1, max_iter=100, device="cpu").fit(y)
    out = est.transform(y)
    assert np.isfinite(out).all()
    # a long burst lengthens the fitted decay (0.98 for 0.9 here) and the spikes are
    # over-counted (3x), a weakness recorded in docs/spikes.md; the burst still stands out
    assert out[:, 400:450].mean() > 3 * out[:, :350].mean()


def test_long_recording_fits_on_a_subset_of_frames():
    from napari_calcium_avae.spikes import inference

    s, y = _simulate(2, inference._FIT_FRAMES + 1000, seed=7)
    est = SpikeInference(ar_order=1, max_iter=80, device="cpu").fit(y)
    assert _binned_r(est.transform(y), s).mean() > 0.8


def test_drifting_baseline_is_followed_with_more_baseline_terms():
    s, y = _simulate(3, 1500, seed=8)
    drift = 3.0 * np.linspace(0, 1, y.shape[1]) ** 2
    y = y + drift
    flat = SpikeInference(ar_order=1, n_baseline=1, max_iter=200, device="cpu").fit(y)
    slow = SpikeInference(ar_order=1, n_baseline=4, max_iter=200, device="cpu").fit(y)
    r_flat = _binned_r(flat.transform(y), s).mean()
    r_slow = _binned_r(slow.transform(y), s).mean()
    assert r_slow > 0.75 and r_slow >= r_flat - 0.01, (r_slow, r_flat)
    assert slow.baseline_.shape == (3, 4)


def _wandering(n, t, seed, width=300):
    """A slow random baseline of SD 1: a random walk averaged over ``width`` frames."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.standard_normal((n, t + 2 * width)), axis=1)
    kernel = np.ones(width) / width
    slow = np.array([np.convolve(w, kernel, mode="same")[width:-width] for w in walk])
    slow -= slow.mean(1, keepdims=True)
    return slow / slow.std(1, keepdims=True)


def test_running_baseline_follows_drift_under_sparse_events():
    from napari_calcium_avae.spikes.inference import running_baseline

    t = 3000
    drift = 2.0 * np.sin(np.linspace(0, np.pi, t))[None, :]
    events = np.zeros((1, t))
    events[0, ::150] = 5.0  # one-frame events, far apart
    noise = 0.1 * np.random.default_rng(0).standard_normal((1, t))
    base = running_baseline(drift + events + noise, 200)
    assert base.shape == (1, t) and base.dtype == np.float64
    # the baseline follows the drift and ignores the events (the low percentile reads a
    # little below the middle of the noise)
    assert np.abs(base - drift)[:, 150:-150].max() < 0.4
    # NaN frames are left out; a row of NaN windows is still filled
    gappy = drift + noise
    gappy[0, 1000:1400] = np.nan
    filled = running_baseline(gappy, 200)
    assert np.isfinite(filled).all() and np.abs(filled - drift)[:, 150:-150].max() < 0.5


def test_running_baseline_keeps_spikes_from_a_wandering_baseline():
    s, y = _simulate(4, 3000, decay=0.8, seed=9)
    y = y + _wandering(4, 3000, seed=10)
    kept = SpikeInference(ar_order=1, frame_rate=30.0, max_iter=100, device="cpu").fit(y)
    off = SpikeInference(
        ar_order=1, frame_rate=30.0, detrend_s=None, max_iter=100, device="cpu"
    ).fit(y)
    r_kept = _binned_r(kept.transform(y), s).mean()
    r_off = _binned_r(off.transform(y), s).mean()
    assert r_kept > 0.8 and r_kept > r_off + 0.2, (r_kept, r_off)  # 0.87 and 0.48 here
    # drift read as calcium lengthens the decay (0.99 for 0.8); less so after detrending
    assert (kept.decay_[:, 0] < 0.95).all() and (off.decay_[:, 0] > 0.98).all()
    # the denoised trace puts the running baseline back: it follows the raw trace
    assert np.corrcoef(kept.denoise(y).ravel(), y.ravel())[0, 1] > 0.9


def test_running_baseline_is_taken_off_only_where_the_trace_drifts():
    from scipy.signal import lfilter

    s, y = _simulate(4, 3000, decay=0.8, sd=0.3, seed=11)
    clean = lfilter([1.0], [1.0, -0.8], s, axis=1)
    drift = _wandering(4, 3000, seed=11)

    def fitted(x, **params):
        est = SpikeInference(ar_order=1, frame_rate=30.0, max_iter=100, device="cpu", **params)
        return est.fit(x)

    # without drift the windows' percentiles move by sampling noise only: not taken off,
    # so the fit is the one without a running baseline
    steady, none = fitted(y), fitted(y, detrend_s=None)
    np.testing.assert_allclose(steady.denoise(y), none.denoise(y), atol=1e-5)
    np.testing.assert_array_equal(steady.roots_, none.roots_)
    # with drift it follows it (denoising error 0.025 against 0.075 without)
    moving = y + drift
    error = np.mean((fitted(moving).denoise(moving) - clean - drift) ** 2)
    error_none = np.mean((fitted(moving, detrend_s=None).denoise(moving) - clean - drift) ** 2)
    assert error < 0.5 * error_none, (error, error_none)


def test_solves_stop_once_the_spikes_settle(monkeypatch):
    from napari_calcium_avae.spikes import inference

    s, y = _simulate(3, 1500, decay=0.97, seed=12)  # a slow kernel: many steps to settle
    settled = SpikeInference(ar_order=1, device="cpu").fit(y).transform(y)
    monkeypatch.setattr(inference, "_FISTA_TOL", 0.0)  # every solve runs max_iter steps
    full = SpikeInference(ar_order=1, device="cpu", max_iter=3000).fit(y).transform(y)
    assert _binned_r(settled, s).mean() > _binned_r(full, s).mean() - 0.01
    np.testing.assert_allclose(np.nansum(settled, 1), np.nansum(full, 1), rtol=0.05)


def test_detrend_window_is_checked():
    y = np.random.default_rng(0).standard_normal((1, 200))
    for bad in (0, -1.0, float("nan"), "10"):
        with pytest.raises(CalciumAvaeError, match="detrend_s"):
            SpikeInference(detrend_s=bad, frame_rate=30.0).fit(y)


def test_saturating_indicator_fits():
    rng = np.random.default_rng(9)
    s = rng.poisson(0.05, (2, 1500)).astype(float)
    c = np.zeros_like(s)
    for i in range(s.shape[1]):
        c[:, i] = (0.95 * c[:, i - 1] if i else 0.0) + s[:, i]
    a = 0.3  # z = log1p(a c) / a: the model's own saturating map
    y = np.log1p(a * c) / a + 0.1 * rng.standard_normal(c.shape)
    est = SpikeInference(ar_order=1, saturation=True, max_iter=300, device="cpu").fit(y)
    plain = SpikeInference(ar_order=1, max_iter=300, device="cpu").fit(y)
    assert est.saturation_.shape == (2,) and np.all(est.saturation_ >= 0)
    # the strength is chosen from a grid by the fit's error in fluorescence, linear
    # included; it is never worse than the linear fit (here it keeps linear: r 0.988)
    r_sat = _binned_r(est.transform(y), s).mean()
    r_lin = _binned_r(plain.transform(y), s).mean()
    assert r_sat > 0.85 and r_sat >= r_lin - 0.01, (r_sat, r_lin)


def test_allowed_settings_are_the_module_constants():
    from napari_calcium_avae.spikes import inference

    assert inference.AR_ORDERS == (1, 2)
    assert inference.INPUT_KINDS == ("auto", "dff", "raw")
    assert inference.DECAY_ESTIMATES == ("likelihood", "autocovariance")
    defaults = SpikeInference().get_params()
    assert defaults["ar_order"] in inference.AR_ORDERS
    assert defaults["input_kind"] in inference.INPUT_KINDS
    assert defaults["decay_estimate"] in inference.DECAY_ESTIMATES
    for name, bad in (("ar_order", 0), ("input_kind", "F"), ("decay_estimate", "none")):
        with pytest.raises(CalciumAvaeError, match=name):
            SpikeInference(**{name: bad}).fit(np.zeros((1, 100)))


def test_large_input_is_not_cached_and_gives_nearly_the_same_spikes(monkeypatch):
    from napari_calcium_avae.spikes import inference

    s, y = _simulate(5, 600, seed=10)
    cached = SpikeInference(ar_order=1, max_iter=50, device="cpu").fit(y)
    monkeypatch.setattr(inference, "_CACHE_VALUES", 10)
    est = SpikeInference(ar_order=1, max_iter=50, device="cpu", chunk_size=2).fit(y)
    assert est._cache is None
    out = est.transform(y)
    np.testing.assert_allclose(est.rate_, out.mean(1), rtol=1e-5)
    # the fit's own spikes come from a solve warm-started on the kinetics window, the
    # uncached ones from a cold solve: the same optimum, not the same iterate
    np.testing.assert_allclose(est.roots_, cached.roots_, rtol=1e-5)
    assert _binned_r(out, s).mean() > _binned_r(cached.transform(y), s).mean() - 0.05
