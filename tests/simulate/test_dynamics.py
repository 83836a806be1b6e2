import numpy as np
import pytest
import scipy.sparse as sp

from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.simulate import firing_statistics, simulate_culture
from napari_calcium_avae.simulate.dynamics import (
    NEURON_TYPES,
    draw_parameters,
    gaussian_block,
    simulate_spikes,
)


def _dense_reference(w, params, n_steps, rng):
    """Plain per-step integration with explicit P and R vectors (no event-driven tricks)."""
    a, b, c, d = params.a, params.b, params.v0, params.du
    n = len(a)
    v = rng.uniform(c, c + 30.0)
    u = b * v
    p = rng.random(n)
    r = rng.random(n)
    noise = gaussian_block(rng, (n_steps, n)).astype(np.float64) * np.sqrt(2 * 2.25)
    wd = w.toarray()
    spikes = []
    for t in range(n_steps):
        current = wd @ p
        for _ in range(2):
            v = v + 0.5 * (0.04 * v * v + 5 * v + 140 - u + current + noise[t])
        u = u + a * (b * v - u)
        fired = np.flatnonzero(v >= 30)
        v[fired] = c[fired]
        u[fired] += d[fired]
        p = p * np.exp(-1 / 10)
        p[fired] += r[fired]
        r[fired] *= 0.2
        r = 1 - (1 - r) * np.exp(-1 / 8000)
        spikes += [(t, i) for i in fired]
    return spikes


def test_event_driven_network_equals_dense_integration():
    rng = np.random.default_rng(0)
    n = 40
    dense = (rng.random((n, n)) < 0.3) * rng.normal(6, 3, (n, n))
    np.fill_diagonal(dense, 0)
    w = sp.csc_matrix(dense)
    params = draw_parameters("CH", n, rng)
    times = simulate_spikes(w, params, 400, np.random.default_rng(7))
    got = sorted((int(t), i) for i, ts in enumerate(times) for t in ts)
    want = sorted(_dense_reference(w, params, 400, np.random.default_rng(7)))
    assert len(want) > 50
    assert got == want


def test_noise_is_standard_normal():
    x = gaussian_block(np.random.default_rng(0), (400, 1000)).astype(np.float64).ravel()
    assert x.dtype == np.float64 and np.isfinite(x).all()
    assert abs(x.mean()) < 0.005
    assert x.std() == pytest.approx(1.0, abs=0.005)
    assert ((x - x.mean()) ** 4).mean() / x.var() ** 2 == pytest.approx(3.0, abs=0.05)
    assert (np.abs(x) > 1.96).mean() == pytest.approx(0.05, abs=0.002)


def test_parameters_vary_five_percent_around_the_type():
    p = draw_parameters("IB", 20_000, np.random.default_rng(0))
    for values, base in zip((p.a, p.b, p.v0, p.du), NEURON_TYPES["IB"], strict=True):
        assert values.mean() == pytest.approx(base, rel=0.002)
        assert values.std() == pytest.approx(abs(base) * 0.05, rel=0.05)
    with pytest.raises(CalciumAvaeError, match="Unknown neuron type 'FS'"):
        draw_parameters("FS", 3, np.random.default_rng(0))


@pytest.fixture(scope="module")
def small_cultures():
    # 400 neurons on a 1.2 mm dish (278/mm^2): seconds for all three types
    return {
        t: simulate_culture(t, n_neurons=400, dish_size_mm=1.2, duration_s=8.0, seed=11)
        for t in ("RS", "IB", "CH")
    }


def test_types_fire_measurably_differently(small_cultures):
    stats = {t: firing_statistics(c) for t, c in small_cultures.items()}
    # bursting types fire doublets / bursts: more short ISIs and spikes per burst
    short = [stats[t]["fraction_isi_below_10ms"] for t in ("RS", "IB", "CH")]
    assert short[0] < 0.2 < short[1] < short[2]
    per_burst = [stats[t]["spikes_per_burst"] for t in ("RS", "IB", "CH")]
    assert per_burst[0] < per_burst[1] < per_burst[2]


def test_same_seed_same_spikes_other_seed_other_spikes(small_cultures):
    again = simulate_culture("RS", n_neurons=400, dish_size_mm=1.2, duration_s=8.0, seed=11)
    first = small_cultures["RS"]
    assert all(
        np.array_equal(x, y)
        for x, y in zip(first.spike_times_ms, again.spike_times_ms, strict=True)
    )
    other = simulate_culture("RS", n_neurons=400, dish_size_mm=1.2, duration_s=8.0, seed=12)
    assert not np.array_equal(first.positions_um, other.positions_um)


def test_recorded_window_and_discarded_stretch(small_cultures):
    c = small_cultures["CH"]
    rec = np.concatenate(c.spike_times_ms)
    dis = np.concatenate(c.discarded_spike_times_ms)
    assert 1000.0 <= c.discarded_ms <= 3000.0
    assert rec.min() >= 0 and rec.max() < 8000.0
    assert dis.max() < 0 and dis.min() >= -c.discarded_ms
    assert np.all(np.mod(rec, 1.0) == 0)  # 1 ms resolution


def test_paper_culture_fires_like_the_released_run():
    """2,250 neurons, 3 mm dish, released wiring: the released run gave 0.57 Hz, 15% silent."""
    c = simulate_culture("RS", duration_s=6.0, seed=2, released_wiring=True)
    s = firing_statistics(c)
    assert c.n_neurons == 2250
    assert 0.2 < s["mean_rate_hz"] < 1.0
    assert 0.08 < s["fraction_silent"] < 0.3
    assert s["n_bursts"] >= 2
    assert s["max_burst_participation"] > 0.5  # network bursts recruit most active neurons
    # released wiring: "inhibitory" neurons only receive negative input and stay silent
    silent = c.spike_counts() == 0
    assert silent[~c.excitatory].mean() > 0.6
    assert silent[c.excitatory].mean() < 0.05
    # biological orientation: inhibitory neurons are excited like the others
    bio = simulate_culture("RS", duration_s=6.0, seed=2)
    silent = bio.spike_counts() == 0
    assert abs(silent[~bio.excitatory].mean() - silent[bio.excitatory].mean()) < 0.1


def test_bad_culture_arguments():
    with pytest.raises(CalciumAvaeError, match="Unknown neuron type 'XX'"):
        simulate_culture("XX")
    with pytest.raises(CalciumAvaeError, match="Duration, dish size and density must be positive"):
        simulate_culture("RS", duration_s=0)
    with pytest.raises(CalciumAvaeError, match="A culture needs at least 2 neurons; got 1"):
        simulate_culture("RS", n_neurons=1)
