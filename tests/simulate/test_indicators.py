"""Indicators: each one's single spike as documented, GCaMP6s exactly as before, and the
per-neuron variability, neuropil and drift options doing what they say."""

import numpy as np
import pytest
from pynwb import NWBHDF5IO
from scipy.signal import lfilter

from napari_calcium_avae.cli import build_parser
from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.simulate import (
    INDICATORS,
    SimulationSettings,
    culture_fluorescence,
    fluorescence,
    get_indicator,
    simulate_culture,
    simulate_dataset,
)


def _old_kernel_sums(spike_times_ms, frame_times_s, tau_s):
    """The kernel sums of the simulator before indicators existed (copied unchanged)."""
    n_rows, n_frames = len(spike_times_ms), len(frame_times_s)
    frame_ms = frame_times_s * 1000.0
    tau_ms = tau_s * 1000.0
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
    weight = np.exp(-(frame_ms[frame] - times) / tau_ms)
    jumps = np.bincount(owner * n_frames + frame, weight, minlength=n_rows * n_frames)
    jumps = jumps.reshape(n_rows, n_frames)
    return lfilter([1.0], [1.0, -np.exp(-interval / tau_ms)], jumps, axis=1)


def _old_fluorescence(spike_times_ms, duration_s, frame_rate, per_spike=False):
    """Today's GCaMP6s fluorescence as the code computed it before indicators existed."""
    f0, amplitude, p2, p3, tau_s = 42.0, 0.113, 0.81, -0.056, 1.82
    qa, qb, qc = 3 * p3, 2 * p2, 1 - p2 - p3
    kmax = float((-qb - np.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa))
    n_frames = int(np.floor(duration_s * frame_rate + 1e-9))
    frame_times = np.arange(n_frames) / frame_rate
    k1 = _old_kernel_sums(spike_times_ms, frame_times, tau_s)
    if per_spike:
        k2 = _old_kernel_sums(spike_times_ms, frame_times, tau_s / 2)
        k3 = _old_kernel_sums(spike_times_ms, frame_times, tau_s / 3)
        shape = k1 + p2 * (k2 - k1) + p3 * (k3 - k1)
    else:
        k = np.minimum(k1, kmax, out=k1)
        shape = k * p3
        shape += p2
        shape *= k
        shape += 1.0 - p2 - p3
        shape *= k
    shape *= f0 * amplitude
    shape += f0
    return shape.astype(np.float32)


@pytest.fixture(scope="module")
def spikes():
    rng = np.random.default_rng(7)
    return [np.sort(rng.uniform(-1500, 4000, k)).round() for k in (0, 1, 5, 40, 120)]


@pytest.mark.parametrize(("rate", "per_spike"), [(1000.0, False), (30.0, False), (7.0, False),
                                                 (100.0, True)])  # fmt: skip
def test_default_indicator_reproduces_todays_traces_bit_for_bit(spikes, rate, per_spike):
    expected = _old_fluorescence(spikes, 4.0, rate, per_spike)
    np.testing.assert_array_equal(fluorescence(spikes, 4.0, rate, per_spike), expected)
    got = fluorescence(spikes, 4.0, rate, per_spike, indicator="GCaMP6s")
    np.testing.assert_array_equal(got, expected)


def _measure(name, rate=2000.0):
    """Peak dF/F, time to peak and half decay (from the peak) of one simulated spike."""
    ind = INDICATORS[name]
    spike_ms = 500.0
    f = fluorescence([np.array([spike_ms])], 3.0, rate, indicator=name)[0].astype(np.float64)
    dff = f / ind.f0 - 1
    k = int(dff.argmax())
    below = np.flatnonzero(dff[k:] <= dff[k] / 2)[0]
    return dff[k], k / rate - spike_ms / 1000, below / rate


@pytest.mark.parametrize("name", list(INDICATORS))
def test_single_spike_has_the_documented_peak_rise_and_decay(name):
    ind = INDICATORS[name]
    peak, to_peak, half = _measure(name)
    assert peak == pytest.approx(ind.amplitude, rel=2e-3)
    assert to_peak == pytest.approx(ind.time_to_peak_s, abs=1e-3)
    assert half == pytest.approx(ind.half_decay_s, abs=1e-3)


def test_indicators_differ_as_the_literature_says():
    measured = {name: _measure(name) for name in INDICATORS}
    assert measured["GCaMP6f"][2] < measured["OGB-1"][2] < measured["GCaMP6s"][2]
    assert measured["GCaMP6f"][0] > measured["GCaMP6s"][0] > measured["GCaMP5k"][0]
    assert measured["GCaMP5k"][0] < measured["OGB-1"][0]


@pytest.mark.parametrize("name", list(INDICATORS))
@pytest.mark.parametrize("rate", [7.0, 30.0, 100.0])
def test_any_frame_rate_samples_the_same_continuous_response(name, rate):
    ind = INDICATORS[name]
    spike_s = 0.4321
    f = fluorescence([np.array([spike_s * 1000])], 5.0, rate, indicator=name)[0]
    t = np.arange(len(f)) / rate
    expected = ind.f0 * (1 + ind.single_spike(t - spike_s))
    np.testing.assert_allclose(f, expected, rtol=1e-5)


@pytest.mark.parametrize("name", [n for n in INDICATORS if n != "GCaMP6s"])
def test_hill_indicators_saturate_in_bursts(name):
    ind = INDICATORS[name]
    burst = [np.full(n, 100.0) for n in (1, 3, 30, 300)]
    f = fluorescence(burst, 0.3, 1000.0, indicator=name)
    peaks = f.max(1) / ind.f0 - 1
    assert peaks[0] == pytest.approx(ind.amplitude, rel=1e-3)
    assert np.all(np.diff(peaks) > 0)  # more calcium, more light ...
    assert (peaks[3] - peaks[2]) / 270 < ind.amplitude / 2  # ... but less per spike
    assert 0.6 * ind.max_dff < peaks[-1] <= ind.max_dff * (1 + 1e-6)  # near saturation


def test_a_bad_indicator_is_one_line_listing_the_choices():
    for call in (
        lambda: SimulationSettings(indicator="GCaMP7"),
        lambda: get_indicator("gcamp6s"),
        lambda: fluorescence([np.array([1.0])], 1.0, 30.0, indicator="GCaMP7"),
    ):
        with pytest.raises(CalciumAvaeError) as err:
            call()
        message = str(err.value)
        assert "\n" not in message and "Unknown indicator" in message
        assert all(name in message for name in INDICATORS)


def test_other_bad_options_are_refused():
    with pytest.raises(CalciumAvaeError, match="Per-spike fluorescence exists for GCaMP6s"):
        SimulationSettings(indicator="GCaMP6f", per_spike_fluorescence=True)
    with pytest.raises(CalciumAvaeError, match="Per-spike fluorescence needs"):
        fluorescence([np.array([1.0])], 1.0, 30.0, per_spike=True, indicator="OGB-1")
    for name in ("amplitude_cv", "decay_cv", "neuropil", "drift"):
        with pytest.raises(CalciumAvaeError, match=f"{name} must be between 0 and 2"):
            SimulationSettings(**{name: -0.1})


def test_the_simulate_command_has_the_new_options():
    parser = build_parser()
    args = parser.parse_args(
        ["simulate", "-o", "x", "--indicator", "OGB-1", "--amplitude-cv", "0.2",
         "--decay-cv", "0.1", "--neuropil", "0.7", "--drift", "0.05", "--frame-rate", "7"]
    )  # fmt: skip
    assert (args.indicator, args.amplitude_cv, args.decay_cv) == ("OGB-1", 0.2, 0.1)
    assert (args.neuropil, args.drift, args.frame_rate) == (0.7, 0.05, 7.0)
    help_text = parser._subparsers._group_actions[0].choices["simulate"].format_help()
    assert "--indicator" in help_text and "GCaMP5k" in help_text


@pytest.fixture(scope="module")
def culture():
    return simulate_culture("CH", n_neurons=120, dish_size_mm=0.6, duration_s=4.0, seed=2)


def test_zero_options_give_the_plain_fluorescence(culture):
    idx = np.flatnonzero(culture.spike_counts() > 0)[:10]
    plain = culture_fluorescence(culture, idx, 30.0)
    again = culture_fluorescence(
        culture, idx, 30.0, indicator="GCaMP6s", amplitude_cv=0, decay_cv=0, neuropil_r=0,
        drift=0, rng=np.random.default_rng(0),
    )  # fmt: skip
    np.testing.assert_array_equal(plain, again)
    with pytest.raises(CalciumAvaeError, match="random generator"):
        culture_fluorescence(culture, idx, 30.0, drift=0.1)


@pytest.mark.parametrize("name", ["GCaMP6s", "GCaMP6f"])
def test_amplitude_and_decay_variability(name):
    ind = INDICATORS[name]
    n, cv = 400, 0.3
    one = [np.array([200.0])] * n
    rng = np.random.default_rng(1)
    scale = np.exp(rng.normal(0, 0.3, n))
    f = fluorescence(one, 3.0, 500.0, indicator=name, amplitude_scale=scale)
    peaks = f.max(1) / ind.f0 - 1
    np.testing.assert_allclose(peaks, ind.amplitude * scale, rtol=1e-4)
    f = fluorescence(one, 3.0, 500.0, indicator=name, decay_scale=scale)
    dff = f / ind.f0 - 1
    assert np.allclose(dff.max(1), ind.amplitude, rtol=2e-3)  # amplitude untouched
    late = dff[:, round(0.2 * 500 + 2 * ind.half_decay_s * 500)]
    assert np.corrcoef(late, scale)[0, 1] > 0.95  # slower decay, more left later
    # drawn log-normal with the asked CV (mean 1) through culture_fluorescence
    culture = simulate_culture("CH", n_neurons=200, dish_size_mm=0.6, duration_s=2.0, seed=3)
    idx = np.arange(200)
    base = culture_fluorescence(culture, idx, 50.0, indicator=name)
    varied = culture_fluorescence(
        culture, idx, 50.0, indicator=name, amplitude_cv=cv, rng=np.random.default_rng(5)
    )
    active = (base.max(1) - base.min(1)) > 1
    ratio = (varied[active] - ind.f0).max(1) / (base[active] - ind.f0).max(1)
    assert ratio.std() / ratio.mean() == pytest.approx(cv, rel=0.3)
    assert ratio.mean() == pytest.approx(1.0, abs=0.1)


def test_neuropil_adds_one_shared_trace(culture):
    idx = np.arange(0, 120, 12)
    base = culture_fluorescence(culture, idx, 30.0, "GCaMP6f")
    mixed = culture_fluorescence(
        culture, idx, 30.0, "GCaMP6f", neuropil_r=0.7, rng=np.random.default_rng(0)
    )
    added = mixed.astype(np.float64) - base
    np.testing.assert_allclose(added, added[:1].repeat(len(idx), 0), atol=1e-4)
    # at least r x F0 (the neuropil's baseline) and it carries the culture's bursts
    assert added.min() >= 0.7 * 42 - 1e-3
    assert added.max() > 0.7 * 42 * 1.05
    assert np.corrcoef(added[0], base.mean(0))[0, 1] > 0.5


def test_drift_is_slow_multiplicative_and_of_the_asked_size():
    duration, rate, drift = 60.0, 10.0, 0.05
    quiet = [np.array([])] * 300  # no spikes: the baseline itself drifts
    culture = simulate_culture("RS", n_neurons=300, dish_size_mm=0.8, duration_s=duration)
    culture = type(culture)(**{**culture.__dict__, "spike_times_ms": quiet,
                               "discarded_spike_times_ms": quiet})  # fmt: skip
    f = culture_fluorescence(
        culture, np.arange(300), rate, drift=drift, rng=np.random.default_rng(3)
    )
    x = f / 42.0 - 1
    assert x.std() == pytest.approx(drift, rel=0.15)
    assert abs(x.mean()) < 0.01
    lag1 = np.mean(x[:, 1:] * x[:, :-1]) / np.mean(x * x)
    assert lag1 > 0.98  # slow: 10 s time scale at 10 Hz


def test_the_session_records_the_indicator_and_settings(tmp_path):
    [path] = simulate_dataset(
        tmp_path, types=("CH",), cultures_per_type=1, neurons_per_culture=4, frame_rate=15.0,
        duration_s=2.0, dish_size_mm=0.8, indicator="OGB-1", neuropil=0.3, seed=1,
    )  # fmt: skip
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        assert nwb.imaging_planes["ImagingPlane"].indicator == "OGB-1"
        assert "OGB-1" in nwb.session_description
        assert "neuropil r 0.3" in nwb.session_description
        assert len(nwb.units) == 4
