"""The Generate dock: a generator file or a fit on a layer, a new ROI layer of generated
traces, Save to NWB with the ground truth, and one-line notices for what a user can get
wrong."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from napari_calcium_avae import Traces
from napari_calcium_avae._napari import generate_widget
from napari_calcium_avae._napari._layers import TRACES_KEY, traces_layer_data
from napari_calcium_avae._napari.generate_widget import FROM_FILE, GENERATED_KEY
from napari_calcium_avae.generate import PopulationGenerator, read_ground_truth
from napari_calcium_avae.nwb import read_traces

PLUGIN = "napari-calcium-avae"
DOCK = "8. Generate"
RATE, FRAMES, N = 10.0, 400, 8


def planted(seed: int = 0) -> np.ndarray:
    """Two groups of 4 neurons that fire together in their own state, AR(1) calcium."""
    rng = np.random.default_rng(seed)
    states = np.repeat(rng.integers(0, 3, FRAMES // 20), 20)
    rates = np.full((3, N), 0.02)
    rates[1, :4] = rates[2, 4:] = 0.5
    spikes = rng.poisson(rates[states].T)
    calcium = np.stack([lfilter([1.0], [1.0, -0.9], s) for s in spikes])
    return (calcium + 0.1 * rng.standard_normal(calcium.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory) -> str:
    gen = PopulationGenerator(n_states=3, spike_iter=30, hmm_iter=5, device="cpu")
    path = tmp_path_factory.mktemp("gen") / "gen.npz"
    return str(gen.fit(planted(), frame_rate=RATE).save(path))


@pytest.fixture
def dock(make_napari_viewer, notices, monkeypatch):
    monkeypatch.setattr(generate_widget, "show_warning", lambda m: notices.append(("warning", m)))
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, DOCK)
    return viewer, widget


def run(qtbot, widget) -> None:
    widget.toggle()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)


def test_generate_from_file_adds_a_layer_and_saves_nwb(
    qtbot, dock, notices, generator_file, tmp_path
) -> None:
    viewer, widget = dock
    assert widget.source.currentText() == FROM_FILE
    widget.file.setText(generator_file)
    widget.neurons.setValue(12)
    widget.duration.setValue(20.0)
    widget.seed.setValue(3)
    run(qtbot, widget)
    assert not [m for kind, m in notices if kind == "error"], notices
    layer = viewer.layers[-1]
    traces = layer.metadata[TRACES_KEY]
    recording = layer.metadata[GENERATED_KEY]
    assert traces.data.shape == (12, 200) and traces.rate == RATE
    # what the dock shows is what the library generates with the same options
    again = PopulationGenerator.load(generator_file).generate(12, 20.0, seed=3)
    np.testing.assert_array_equal(traces.data, again.traces)
    assert widget.save_button.isEnabled()

    path = widget.save(tmp_path / "generated.nwb")
    np.testing.assert_array_equal(read_traces(path).data, recording.traces)
    truth = read_ground_truth(path)
    np.testing.assert_array_equal([len(t) for t in truth["spike_times"]], recording.spikes.sum(1))
    widget.save(tmp_path / "generated.txt")
    assert notices[-1] == (
        "error",
        f"the generated recording is an NWB file: end {tmp_path / 'generated.txt'} in .nwb",
    )


def test_fit_on_a_layer_then_independent_neurons(qtbot, dock, notices) -> None:
    viewer, widget = dock
    for array, attributes, kind in traces_layer_data(Traces(data=planted(), rate=RATE), "rec"):
        if kind == "labels":
            viewer.add_labels(array, **attributes)
    widget.source.setCurrentIndex(widget.source.findText("fit on 'rec'"))
    widget.states.setValue(3)
    widget.device.setCurrentIndex(widget.device.findData("cpu"))
    assert not widget.file.isEnabled()
    monkey_fast(widget)
    run(qtbot, widget)
    assert not [m for kind, m in notices if kind == "error"], notices
    first = viewer.layers[-1]
    assert first.metadata[TRACES_KEY].data.shape == (N, FRAMES)
    fitted = widget.generator
    # the fit is kept: a second run generates from it without fitting again
    widget.independent.setChecked(True)
    run(qtbot, widget)
    assert widget.generator is fitted
    second = viewer.layers[-1]
    assert second is not first and second.name != first.name
    assert second.metadata[GENERATED_KEY].states.shape == (N, FRAMES)  # one chain per neuron


def monkey_fast(widget) -> None:
    """A short fit: the dock's defaults fit as long as the CLI does."""
    choose = widget.choose_generator

    def fast():
        gen, fit_on = choose()
        if fit_on is not None:
            gen.set_params(spike_iter=30, hmm_iter=5)
        return gen, fit_on

    widget.choose_generator = fast


def test_mistakes_are_one_line_notices(qtbot, dock, notices, generator_file) -> None:
    _, widget = dock
    widget.toggle()  # no file chosen
    assert notices[-1][0] == "error" and "choose a generator file" in notices[-1][1]
    assert widget.worker is None
    widget.file.setText(generator_file)
    widget.neurons.setValue(10_000)  # more than 20 copies of 8 neurons
    run(qtbot, widget)
    assert notices[-1][0] == "error"
    assert "fit it on a recording with at least" in notices[-1][1]
    assert widget.progress.format() == "failed"
