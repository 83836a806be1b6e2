import numpy as np
import pytest

from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.simulate.fluorescence import (
    AMPLITUDE,
    F0,
    TAU_CALCIUM_S,
    _kernel_sums,
    add_noise,
    fluorescence,
    polynomial,
    saturation_kappa,
)


def test_single_spike_peak_and_calcium_decay():
    f = fluorescence([np.array([1000.0])], 5.0, 1000.0)[0]
    assert np.allclose(f[:1000], F0)
    assert f[1000] == pytest.approx(F0 * (1 + AMPLITUDE))
    assert f.argmax() == 1000
    assert f[1000] - F0 == pytest.approx(4.746, abs=1e-3)
    kappa = _kernel_sums([np.array([1000.0])], np.arange(5000) / 1000.0, TAU_CALCIUM_S)[0]
    tau_frame = 1000 + round(TAU_CALCIUM_S * 1000)
    assert kappa[tau_frame] == pytest.approx(np.exp(-1.0), rel=1e-9)
    excess = F0 * AMPLITUDE * polynomial(np.exp(-1.0))
    assert f[tau_frame] - F0 == pytest.approx(excess, abs=1e-5)  # float32 output


def test_kernel_matches_direct_sum_at_any_frame_rate():
    rng = np.random.default_rng(0)
    spikes = [np.sort(rng.integers(-3000, 4000, 25)).astype(float) for _ in range(4)]
    for rate in (7.3, 33.0, 500.0):
        frames = np.arange(int(4 * rate)) / rate
        got = _kernel_sums(spikes, frames, TAU_CALCIUM_S)
        want = np.array(
            [
                [np.exp(-(t * 1000 - s[s <= t * 1000 + 1e-9]) / 1820.0).sum() for t in frames]
                for s in spikes
            ]
        )
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_frame_rates_sample_the_same_signal():
    spikes = [np.array([-500.0, 120.0, 121.0, 900.0, 2504.0])]
    fast = fluorescence(spikes, 3.0, 1000.0)[0]
    slow = fluorescence(spikes, 3.0, 40.0)[0]
    np.testing.assert_allclose(slow, fast[::25])


def test_saturation_is_at_the_polynomial_maximum_and_monotone():
    k = saturation_kappa()
    assert k == pytest.approx(9.79, abs=0.01)
    h = 1e-5
    assert polynomial(np.array([k - h]))[0] < polynomial(np.array([k]))[0]
    assert polynomial(np.array([k + h]))[0] < polynomial(np.array([k]))[0]
    peaks = [fluorescence([np.full(m, 100.0)], 0.2, 1000.0)[0, 100] for m in range(0, 30)]
    assert np.all(np.diff(peaks) >= 0)
    assert peaks[-1] == pytest.approx(F0 * (1 + AMPLITUDE * polynomial(np.array([k]))[0]))
    assert peaks[9] < peaks[-1]


def test_per_spike_option_sums_the_polynomial_of_each_kernel():
    spikes = [np.array([100.0, 400.0])]
    got = fluorescence(spikes, 2.0, 1000.0, per_spike=True)[0]
    t = np.arange(2000.0)
    each = [np.where(t >= s, np.exp(-(t - s) / 1820.0), 0.0) for s in spikes[0]]
    want = F0 * (1 + AMPLITUDE * sum(polynomial(e) for e in each))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    together = fluorescence(spikes, 2.0, 1000.0)[0]
    assert not np.allclose(got, together)


def test_noise_levels_share_the_clean_trace():
    clean = fluorescence([np.array([10.0]), np.array([])], 20.0, 500.0)
    noisy = add_noise(clean, (0.5, 2.0), np.random.default_rng(1))
    for sigma, x in zip((0.5, 2.0), noisy, strict=True):
        assert x.dtype == np.float32
        assert np.std(x - clean) == pytest.approx(sigma, rel=0.05)


def test_bad_arguments_raise_one_line_errors():
    with pytest.raises(CalciumAvaeError, match="Frame rate and duration must be positive"):
        fluorescence([np.array([1.0])], 0.0, 30.0)
    with pytest.raises(CalciumAvaeError, match=r"0\.01 s at 30\.0 Hz gives no frame"):
        fluorescence([np.array([1.0])], 0.01, 30.0)
    with pytest.raises(CalciumAvaeError, match=r"Noise level -1\.0 is negative"):
        add_noise(np.zeros((1, 3)), (-1.0,), np.random.default_rng(0))
