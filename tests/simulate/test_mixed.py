"""Mixed cultures and mixed indicators: a neuron's type and indicator are its own, not its
culture's, so that a benchmark cannot score by recognising a culture's network bursts."""

import hashlib
import warnings
from dataclasses import replace

import numpy as np
import pytest

from cli_output import one_line_error
from napari_calcium_avae.cli import main
from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.nwb import read_traces
from napari_calcium_avae.simulate import (
    INDICATORS,
    NEURON_TYPES,
    SimulationSettings,
    culture_fluorescence,
    simulate_culture,
    simulate_imaged_cultures,
)
from napari_calcium_avae.simulate.dynamics import draw_types
from napari_calcium_avae.simulate.session import MIXED, culture_labels

TINY = {"density_per_mm2": 300.0, "dish_size_mm": 0.6, "duration_s": 2.0, "frame_rate": 20.0}

#: digest of the one-type path below, computed with the simulator of commit 8463dfc, before
#: mixed cultures existed (spikes, imaged rows, parameters, clean and noisy traces to 0.01)
ONE_TYPE_DIGEST = "34f7fd72888956b78c84bd84f16de462e67321042cdaf5d013f2bde6f7007648"


def _one_type_digest() -> tuple[str, int]:
    h = hashlib.sha256()
    spikes = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c in simulate_imaged_cultures(
            types=("RS", "CH"), cultures_per_type=1, neurons_per_culture=8, noise_levels=(1.0,),
            seed=11, amplitude_cv=0.2, decay_cv=0.1, neuropil=0.3, drift=0.05, **TINY,
        ):  # fmt: skip
            h.update(c.label.encode())
            h.update(np.asarray(c.imaged, np.int64).tobytes())
            for t in c.culture.spike_times_ms:
                h.update(np.asarray(t, np.int64).tobytes())
                h.update(b"|")
            h.update(np.round(c.clean.astype(np.float64), 2).tobytes())
            h.update(np.round(c.noisy[0].astype(np.float64), 2).tobytes())
            params = np.c_[c.culture.a, c.culture.b, c.culture.v0, c.culture.du]
            h.update(np.round(params, 6).tobytes())
            spikes += int(c.culture.spike_counts().sum())
    return h.hexdigest(), spikes


def test_one_type_cultures_are_unchanged_by_mixing():
    digest, spikes = _one_type_digest()
    assert spikes > 0
    assert digest == ONE_TYPE_DIGEST


@pytest.mark.parametrize(
    ("text", "shares"),
    [
        ("RS=0.4,IB=0.3,CH=0.3", {"RS": 0.4, "IB": 0.3, "CH": 0.3}),
        ("RS=2, CH=2", {"RS": 0.5, "IB": 0.0, "CH": 0.5}),
        ("IB,CH", {"RS": 0.0, "IB": 0.5, "CH": 0.5}),
        ("RS=3,IB=0,CH=1", {"RS": 0.75, "IB": 0.0, "CH": 0.25}),
    ],
)
def test_type_mix_is_parsed_and_normalised(text, shares):
    s = SimulationSettings(type_mix=text)
    assert s.type_shares == pytest.approx(shares)
    assert SimulationSettings(type_mix=s.type_mix) == s  # the canonical text reads back


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type_mix": "RS=-0.1,IB=1"}, "share of RS must be a number >= 0"),
        ({"type_mix": "RS=x"}, "share of RS must be a number >= 0"),
        ({"type_mix": "RS=inf"}, "share of RS must be a number >= 0"),
        ({"type_mix": "RS=0,CH=0"}, "sum to 0"),
        ({"type_mix": "XX=1"}, "Unknown neuron type 'XX'"),
        ({"type_mix": "RS,RS"}, "appears twice"),
        ({"indicator_mix": "GCaMP6s,GCaMP9"}, "Unknown indicator 'GCaMP9'"),
        ({"indicator_mix": "GCaMP6s=0"}, "sum to 0"),
        ({"indicator_mix": "GCaMP6s,OGB-1", "per_spike_fluorescence": True}, "not OGB-1"),
    ],
)
def test_bad_mixes_are_refused_in_one_line(change, message):
    with pytest.raises(CalciumAvaeError, match=message) as err:
        SimulationSettings(**change)
    assert "\n" not in str(err.value)


def test_a_type_mix_means_cultures_per_type_mixed_cultures():
    s = SimulationSettings(type_mix="RS,IB,CH", cultures_per_type=3)
    assert s.n_cultures == 3
    assert culture_labels(s) == ["MIX01", "MIX02", "MIX03"]
    assert SimulationSettings(cultures_per_type=2).n_cultures == 6  # one type per culture


def test_types_are_drawn_with_their_shares():
    n = 20_000
    shares = {"RS": 0.5, "IB": 0.2, "CH": 0.3}
    types = draw_types(shares, n, np.random.default_rng(0))
    for name, p in shares.items():
        se = np.sqrt(p * (1 - p) / n)
        assert abs(np.mean(types == name) - p) < 4 * se


def test_a_mixed_culture_draws_each_neurons_parameters_from_its_own_type():
    mix = {"RS": 0.4, "IB": 0.3, "CH": 0.3}
    c = simulate_culture(mix, 400, duration_s=0.5, seed=2)
    assert c.neuron_type == MIXED and c.neuron_types.shape == (400,)
    for name, p in mix.items():
        mine = c.neuron_types == name
        assert abs(mine.mean() - p) < 4 * np.sqrt(p * (1 - p) / 400)
        _, _, v0, du = NEURON_TYPES[name]
        # N(1, 0.05) around the type's values: RS, IB and CH never overlap at 4 SD in du
        np.testing.assert_allclose(c.du[mine], du, rtol=0.25)
        np.testing.assert_allclose(c.v0[mine], v0, rtol=0.25)
    assert c.spike_counts().sum() > 0
    again = simulate_culture(mix, 400, duration_s=0.5, seed=2)
    np.testing.assert_array_equal(c.neuron_types, again.neuron_types)
    single = simulate_culture("IB", 50, duration_s=0.5, seed=2)
    assert single.neuron_type == "IB" and (single.neuron_types == "IB").all()


def test_mixed_indicators_follow_their_shares_and_leave_the_spikes_alone():
    base = {"cultures_per_type": 1, "neurons_per_culture": None, "seed": 5, **TINY}
    plain = next(iter(simulate_imaged_cultures(type_mix="RS,CH", **base)))
    mixed = next(
        iter(simulate_imaged_cultures(type_mix="RS,CH", indicator_mix="GCaMP6s=3,OGB-1", **base))
    )
    assert plain.label == mixed.label == "MIX01"
    assert (plain.indicators == "GCaMP6s").all()
    n = len(mixed.imaged)
    assert n >= 100
    assert set(mixed.indicators) == {"GCaMP6s", "OGB-1"}
    assert abs(np.mean(mixed.indicators == "GCaMP6s") - 0.75) < 4 * np.sqrt(0.75 * 0.25 / n)
    for a, b in zip(plain.culture.spike_times_ms, mixed.culture.spike_times_ms, strict=True):
        np.testing.assert_array_equal(a, b)
    same = mixed.indicators == "GCaMP6s"
    np.testing.assert_array_equal(plain.clean[same], mixed.clean[same])
    assert not np.allclose(plain.clean[~same], mixed.clean[~same])
    np.testing.assert_array_equal(mixed.neuron_types, mixed.culture.neuron_types[mixed.imaged])


def _one_spike_culture(n: int, spike_ms: float = 500.0):
    c = simulate_culture("RS", 20, duration_s=3.0, seed=1)
    one = [np.array([spike_ms])] * n + [np.empty(0)] * (c.n_neurons - n)
    none = [np.empty(0)] * c.n_neurons
    return replace(c, spike_times_ms=one, discarded_spike_times_ms=none)


def test_each_neuron_gets_its_own_indicators_kinetics():
    names = list(INDICATORS)
    c = _one_spike_culture(len(names))
    rate = 2000.0
    f = culture_fluorescence(c, np.arange(len(names)), rate, indicator=names).astype(np.float64)
    halves = {}
    for row, name in enumerate(names):
        ind = INDICATORS[name]
        alone = culture_fluorescence(c, np.array([row]), rate, indicator=name)[0]
        np.testing.assert_array_equal(f[row], alone)
        dff = f[row] / ind.f0 - 1
        k = int(dff.argmax())
        halves[name] = np.flatnonzero(dff[k:] <= dff[k] / 2)[0] / rate
        assert dff[k] == pytest.approx(ind.amplitude, rel=2e-3)
        assert k / rate - 0.5 == pytest.approx(ind.time_to_peak_s, abs=1e-3)
        assert halves[name] == pytest.approx(ind.half_decay_s, abs=1e-3)
    assert halves["GCaMP6f"] < halves["OGB-1"] < halves["GCaMP6s"]


def test_one_indicator_per_neuron_or_one_for_all():
    c = simulate_culture("RS", 60, duration_s=1.0, seed=3)
    rows = np.arange(10)
    opts = {"amplitude_cv": 0.3, "decay_cv": 0.2, "neuropil_r": 0.4, "drift": 0.1}
    one = culture_fluorescence(
        c, rows, 30.0, indicator="GCaMP6f", rng=np.random.default_rng(1), **opts
    )
    each = culture_fluorescence(
        c, rows, 30.0, indicator=["GCaMP6f"] * 10, rng=np.random.default_rng(1), **opts
    )
    np.testing.assert_array_equal(one, each)
    mixed = culture_fluorescence(
        c, rows, 30.0, indicator=["GCaMP6f", "OGB-1"] * 5, rng=np.random.default_rng(1), **opts
    )
    assert mixed.shape == one.shape and np.isfinite(mixed).all() and mixed.dtype == np.float32
    with pytest.raises(CalciumAvaeError, match="one per neuron"):
        culture_fluorescence(c, rows, 30.0, indicator=["GCaMP6f"] * 3)


def test_the_simulate_command_mixes_types_and_indicators(tmp_path):
    args = ["simulate", "-o", str(tmp_path), "--cultures-per-type", "2", "--neurons", "0"]
    small = ["--density", "200", "--dish-size", "0.5", "--duration", "1", "--frame-rate", "20"]
    mix = ["--type-mix", "RS=0.5,CH=0.5", "--indicator-mix", "GCaMP6s,GCaMP6f"]
    assert main([*args, *small, *mix]) == 0
    paths = sorted(tmp_path.rglob("*.nwb"))
    assert [p.parent.name for p in paths] == ["sub-MIX01", "sub-MIX02"]
    table = read_traces(paths[0]).roi_table
    assert set(table["neuron_type"]) == {"RS", "CH"}
    assert set(table["indicator"]) == {"GCaMP6s", "GCaMP6f"}


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--type-mix", "RS=-1"], "share of RS must be a number >= 0"),
        (["--type-mix", "RS=1,XX=2"], "Unknown neuron type 'XX'"),
        (["--indicator-mix", "GCaMP6s=0,OGB-1=0"], "sum to 0"),
    ],
)
def test_bad_mixes_on_the_command_line_give_one_line(tmp_path, capsys, option, message):
    assert main(["simulate", "-o", str(tmp_path), *option]) == 2
    assert message in one_line_error(capsys)
    assert not list(tmp_path.rglob("*.nwb"))
