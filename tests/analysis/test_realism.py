"""The realism report: measures by hand, halves of one recording agree, broken correlations
are caught, and ``calcium-avae compare`` writes its three files."""

import json
import math

import numpy as np
import pytest

from cli_output import one_line_error
from napari_calcium_avae.analysis import realism
from napari_calcium_avae.cli import main
from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.spikes import SpikeInference
from napari_calcium_avae.traces import Traces

RATE = 10.0


def toy_population(n: int, frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Spikes and dF/F of neurons that share up-states of 2 s (so pairs correlate):
    Poisson counts, AR(1) calcium (decay 0.9 per frame), per-neuron gain, white noise."""
    rng = np.random.default_rng(seed)
    up = np.repeat(rng.random(frames // 20 + 1) < 0.15, 20)[:frames]
    spikes = rng.poisson(np.where(up, 0.12, 0.01) * rng.uniform(0.5, 1.5, (n, 1)))
    calcium = np.zeros((n, frames))
    for k in range(1, frames):
        calcium[:, k] = 0.9 * calcium[:, k - 1] + spikes[:, k]
    dff = calcium * rng.uniform(0.5, 1.0, (n, 1)) + rng.normal(0, 0.15, (n, frames))
    return spikes.astype(np.float64), dff


# --- the van Rossum distance, by hand ---------------------------------------------------


def test_van_rossum_matches_hand_computed_cases():
    dt, tau = 0.1, 0.5
    trains = np.zeros((4, 50))
    trains[0, 10] = 1  # one spike at 1.0 s
    trains[1, 13] = 1  # one spike at 1.3 s
    # row 2: no spikes
    trains[3, [10, 13]] = 1  # both
    d = realism.van_rossum_distances(trains, dt, tau)
    # D^2 = (2 / tau) * integral of (f - g)^2, f and g filtered by exp(-t / tau)
    assert d[0, 1] == pytest.approx(math.sqrt(2 * (1 - math.exp(-0.3 / tau))))
    assert d[0, 2] == pytest.approx(1.0)  # one spike vs none
    # two spikes 0.3 s apart vs none: 1 + 1 + 2 exp(-0.3/tau)
    assert d[3, 2] == pytest.approx(math.sqrt(2 + 2 * math.exp(-0.3 / tau)))
    assert d[3, 0] == pytest.approx(1.0)  # the extra spike alone
    np.testing.assert_allclose(np.diag(d), 0, atol=1e-12)
    np.testing.assert_allclose(d, d.T)
    norm = realism.normalised_van_rossum(trains, dt, tau)
    assert norm[0, 1] == pytest.approx(1 - math.exp(-0.3 / tau))  # D^2 / (1 + 1)
    assert np.isnan(norm[2, 2])  # empty vs empty: undefined


def test_van_rossum_equals_the_integral_of_filtered_trains():
    rng = np.random.default_rng(1)
    counts = rng.poisson(0.3, (2, 40)).astype(float)
    dt, tau = 0.05, 0.2
    fine = 200  # integrate on a grid 200 x finer than the bins
    t = np.arange(40 * fine + 20 * fine) * dt / fine
    kernel = np.exp(-t / tau)
    trains = np.zeros((2, len(t)))
    trains[:, : 40 * fine : fine] = counts
    filtered = np.array([np.convolve(row, kernel)[: len(t)] for row in trains])
    integral = 2 * ((filtered[0] - filtered[1]) ** 2).sum() * (dt / fine) / tau
    d = realism.van_rossum_distances(counts, dt, tau)[0, 1]
    assert d**2 == pytest.approx(integral, rel=0.02)


def test_bad_van_rossum_settings_are_refused():
    with pytest.raises(CalciumAvaeError, match="positive"):
        realism.van_rossum_distances(np.zeros((2, 5)), 0.1, 0.0)


# --- the comparison --------------------------------------------------------------------


def test_halves_of_one_recording_are_close():
    _, dff = toy_population(80, 600)
    real = Traces(data=dff[:40], rate=RATE)
    other = Traces(data=dff[40:], rate=RATE)
    report = realism.compare_recordings(
        real, other, estimator=SpikeInference(device="cpu", max_iter=100)
    )
    assert [r.statistic for r in report.rows] == [s.name for s in realism.STATISTICS]
    # 40 neurons a side: the ratio of two samples of one population scatters around 1
    # (the true spikes of this toy give 2.4 for firing rate), so the bound is loose and
    # the test that matters is the contrast below
    halves = {}
    for name in ("firing_rate", "pairwise_correlation", "event_amplitude"):
        halves[name] = report.row(name).ratio
        assert 0.3 < halves[name] < 2.5, (name, report.row(name))
    # a population three times as busy, with no shared up-states, is far from the real one
    spikes, _ = toy_population(40, 600, seed=5)
    rng = np.random.default_rng(3)
    busy = rng.poisson(3 * spikes.mean(), spikes.shape).astype(float)
    calcium = np.zeros_like(busy)
    for k in range(1, busy.shape[1]):
        calcium[:, k] = 0.9 * calcium[:, k - 1] + busy[:, k]
    busy_traces = Traces(data=0.75 * calcium + rng.normal(0, 0.15, busy.shape), rate=RATE)
    far = realism.compare_recordings(
        real, busy_traces, estimator=SpikeInference(device="cpu", max_iter=100)
    )
    for name in ("firing_rate", "pairwise_correlation"):
        assert far.row(name).ratio > 2 * halves[name], (name, far.row(name))
    assert report.facts["real_input_kind"] == "dff"
    text = report.to_json()
    assert json.loads(text)["rows"][0]["statistic"] == "firing_rate"


def test_independent_neurons_lose_on_pairwise_correlation():
    spikes, dff = toy_population(40, 1200, seed=2)
    real = realism.recording_statistics(dff, spikes, RATE)
    shifted = realism.circular_shift(Traces(data=dff, rate=RATE), random_state=0)
    # the same shifts applied to the spikes: each neuron unchanged, pairs broken
    rng = np.random.default_rng(0)
    shifts = [int(rng.integers(spikes.shape[1])) for _ in spikes]
    rolled = np.stack([np.roll(row, k) for row, k in zip(spikes, shifts, strict=True)])
    np.testing.assert_allclose(
        shifted.data,
        np.stack([np.roll(row, k) for row, k in zip(dff, shifts, strict=True)]),
        rtol=1e-6,
    )
    independent = realism.recording_statistics(shifted.data.astype(float), rolled, RATE)
    rows = {r.statistic: r for r in realism.compare_statistics(real, independent)}
    assert rows["pairwise_correlation"].ratio > 3
    assert rows["pairwise_correlation"].generated_median < rows["pairwise_correlation"].real_median
    assert rows["firing_rate"].ratio < 1.6  # every neuron keeps its spikes


def test_too_few_neurons_are_refused():
    spikes, dff = toy_population(3, 200)
    stats = realism.recording_statistics(dff, spikes, RATE)
    with pytest.raises(CalciumAvaeError, match="at least 4"):
        realism.compare_statistics(stats, stats)


# --- the command -----------------------------------------------------------------------


def test_compare_writes_report_files(tmp_path, capsys, tiny_sessions):
    out = tmp_path / "report"
    real, generated = map(str, tiny_sessions[:2])
    assert main(["compare", real, generated, "-o", str(out), "--splits", "3"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md", "report.png"]
    content = json.loads((out / "report.json").read_text())
    assert {r["statistic"] for r in content["rows"]} == {s.name for s in realism.STATISTICS}
    assert "| pairwise_correlation |" in (out / "report.md").read_text()
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    # no overwrite without --overwrite, said in one line before any work
    assert main(["compare", real, generated, "-o", str(out)]) == 2
    assert "--overwrite" in one_line_error(capsys)
    assert main(["compare", real, str(tmp_path / "missing.nwb"), "-o", str(out)]) == 2
    assert "no such file" in one_line_error(capsys)
