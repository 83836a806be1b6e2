"""Assemblies and states written to NWB: read back as written, and fit for DANDI."""

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.nwb import read_results, read_traces
from napari_calcium_avae.nwb.population import read_population, write_population
from napari_calcium_avae.nwb.validate import dandi_validate_problems, validation_problems
from napari_calcium_avae.population import AssemblyDetector


def _detector(traces, k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an override on a tiny recording: not significant
        return AssemblyDetector(n_assemblies=k, member_threshold=0.0, min_size=1, n_shuffles=5).fit(
            traces.data
        )


def _states(traces, k=3, seed=0):
    """A fitted state model as CalciumHMM exposes it (the writer reads only these)."""
    rng = np.random.default_rng(seed)
    probabilities = rng.dirichlet(np.ones(k), size=traces.n_frames)
    rates = rng.gamma(2.0, 0.05, size=(k, traces.n_rois))
    rates[:, 0] = np.nan  # a ROI the model left out
    return SimpleNamespace(
        n_states_=k,
        states_=probabilities.argmax(axis=1),
        state_probabilities_=probabilities,
        rates_=rates,
        transmat_=rng.dirichlet(np.ones(k), size=k),
    )


def test_round_trip_and_validation(tiny_sessions, tmp_path):
    traces = read_traces(tiny_sessions[0])
    det = _detector(traces, 2)
    states = _states(traces)
    out = write_population(
        traces, tmp_path / "pop.nwb", assemblies=det, states=states, facts={"input": "test"}
    )
    assert validation_problems(out) == []
    assert dandi_validate_problems(out) == []
    back = read_population(out)
    np.testing.assert_array_equal(back.roi_rows, traces.roi_rows)
    assert back.n_assemblies == det.n_assemblies_
    np.testing.assert_array_equal(back.memberships, det.memberships_)
    np.testing.assert_allclose(back.weights, np.where(det.memberships_.T, det.weights_, 0.0))
    np.testing.assert_array_equal(back.labels, det.labels_)
    np.testing.assert_allclose(back.activity, det.activity_, rtol=1e-6)
    np.testing.assert_allclose(back.p_values, det.p_values_)
    np.testing.assert_array_equal(back.significant, det.significant_)
    np.testing.assert_array_equal(back.states, states.states_)
    np.testing.assert_allclose(back.state_probabilities, states.state_probabilities_, rtol=1e-6)
    np.testing.assert_allclose(back.rates, states.rates_)  # NaN kept
    np.testing.assert_allclose(back.transmat, states.transmat_)
    assert back.provenance["input"] == "test"
    # the traces are still there, unchanged; the population's per-ROI tables are not
    # taken for a per-ROI results table
    again = read_traces(out)
    np.testing.assert_allclose(again.data, traces.data)
    assert read_results(out) is None


def test_no_assemblies_in_place_and_reruns(tiny_sessions, tmp_path):
    import shutil

    source = tmp_path / "session.nwb"
    shutil.copy(tiny_sessions[1], source)
    traces = read_traces(source)
    assert read_population(source) is None
    empty = AssemblyDetector().fit(np.random.default_rng(0).standard_normal(traces.data.shape))
    assert empty.n_assemblies_ == 0
    write_population(traces, None, assemblies=empty, in_place=True)
    back = read_population(source)
    assert back.n_assemblies == 0 and (back.labels == -1).all()
    assert back.activity.shape == (0, traces.n_frames) and back.states is None
    # a second run is added beside the first, and is the one read back
    det = _detector(traces, 2)
    write_population(traces, None, assemblies=det, states=_states(traces, 2), in_place=True)
    back = read_population(source)
    assert back.n_assemblies == det.n_assemblies_ and back.transmat.shape == (2, 2)
    assert validation_problems(source) == []


def test_refusals(tiny_sessions, tmp_path):
    traces = read_traces(tiny_sessions[0])
    other = read_traces(tiny_sessions[1])
    det = _detector(traces, 2)
    with pytest.raises(CalciumAvaeError, match="nothing to write"):
        write_population(traces, tmp_path / "a.nwb")
    with pytest.raises(CalciumAvaeError, match="not fitted"):
        write_population(traces, tmp_path / "a.nwb", assemblies=AssemblyDetector())
    if other.n_rois != traces.n_rois or other.n_frames != traces.n_frames:
        with pytest.raises(CalciumAvaeError, match="write results computed on these traces"):
            write_population(other, tmp_path / "a.nwb", assemblies=det)
    with pytest.raises(CalciumAvaeError, match="is the input"):
        write_population(traces, tiny_sessions[0], assemblies=det)
    out = write_population(traces, tmp_path / "a.nwb", assemblies=det)
    with pytest.raises(CalciumAvaeError, match="exists"):
        write_population(traces, out, assemblies=det)


def test_real_calcium_hmm_states_are_written(tiny_sessions, tmp_path):
    hmm = pytest.importorskip("napari_calcium_avae.population.hmm")
    traces = read_traces(tiny_sessions[0])
    model = hmm.CalciumHMM(n_states=2, n_iter=2, observation_steps=0, device="cpu").fit(
        traces.data, frame_rate=traces.rate
    )
    out = write_population(traces, tmp_path / "hmm.nwb", states=model)
    back = read_population(out)
    np.testing.assert_array_equal(back.states, model.states_)
    np.testing.assert_allclose(back.rates, model.rates_)
    assert back.n_assemblies is None
    assert validation_problems(out) == []
