"""The Population dock: Run finds planted assemblies and shows them on the layer, picking an
assembly selects its ROIs and picking a ROI shows its memberships, states draw under the
raster, Stop and bad input leave the layer as it was with a notice."""

import numpy as np
import pytest

from napari_calcium_avae import Traces
from napari_calcium_avae._napari import population_widget
from napari_calcium_avae._napari._layers import traces_layer_data
from napari_calcium_avae._napari.population_widget import POPULATION_KEY
from napari_calcium_avae.errors import CalciumAvaeWarning
from napari_calcium_avae.nwb.population import PopulationResults

PLUGIN = "napari-calcium-avae"
DOCK = "7. Population"
GROUPS, SIZE, LONERS, FRAMES, RATE = 3, 8, 6, 600, 10.0


def planted(seed: int = 0) -> np.ndarray:
    """Groups of ROIs whose spikes share events, through calcium decay, plus noise."""
    rng = np.random.default_rng(seed)
    n = GROUPS * SIZE + LONERS
    spikes = rng.poisson(0.02, (n, FRAMES)).astype(float)
    for g in range(GROUPS):
        events = rng.random(FRAMES) < 0.03
        spikes[g * SIZE : (g + 1) * SIZE] += rng.poisson(2.0, (SIZE, FRAMES)) * events
    calcium = np.zeros_like(spikes)
    for k in range(1, FRAMES):
        calcium[:, k] = np.exp(-1 / RATE) * calcium[:, k - 1] + spikes[:, k]
    return (calcium + 0.3 * rng.standard_normal((n, FRAMES)) + 5).astype(np.float32)


@pytest.fixture
def setup(make_napari_viewer, notices, monkeypatch):
    monkeypatch.setattr(population_widget, "show_warning", lambda m: notices.append(("warning", m)))
    viewer = make_napari_viewer()
    for array, attributes, kind in traces_layer_data(Traces(data=planted(), rate=RATE), "planted"):
        if kind == "labels":
            layer = viewer.add_labels(array, **attributes)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, DOCK)
    widget.device.setCurrentIndex(widget.device.findData("cpu"))
    return layer, widget


def run(qtbot, widget) -> None:
    widget.toggle()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)


def test_assemblies_show_on_the_layer_and_can_be_picked(qtbot, setup, notices) -> None:
    layer, widget = setup
    assert widget.layer_box.currentText() == "planted" and widget.order is not None
    run(qtbot, widget)
    assert not [m for kind, m in notices if kind == "error"], notices
    population = layer.metadata[POPULATION_KEY]
    truth = np.repeat([0, 1, 2, -1], [SIZE, SIZE, SIZE, LONERS])
    from sklearn.metrics import adjusted_rand_score

    assert population.n_assemblies == GROUPS
    assert adjusted_rand_score(truth, population.labels) > 0.9
    np.testing.assert_array_equal(layer.features["assembly"], population.labels)
    assert widget.status.text().startswith("done: 3 assemblies")
    assert widget.assembly_list.count() == GROUPS + 1  # "all" first

    # sorted by assembly, each assembly's rows are contiguous in the raster
    widget.sort.setCurrentIndex(widget.sort.findData("assembly"))
    positions = np.empty(len(truth), dtype=int)
    positions[widget.order] = np.arange(len(truth))
    for a in range(GROUPS):
        rows = np.sort(positions[population.labels == a])
        assert rows[-1] - rows[0] == rows.size - 1

    # picking an assembly selects its ROIs; picking a ROI shows its memberships
    widget.assembly_list.setCurrentRow(2)  # assembly 1
    np.testing.assert_array_equal(widget.picked, np.flatnonzero(population.memberships[:, 1]))
    member = int(widget.picked[-1])  # label 1 is selected already: no event
    assert tuple(layer.colormap.color_dict[member + 1]) != population_widget.DIM
    layer.selected_label = member + 1
    assert "main assembly 1" in widget.membership.text()
    loner = int(np.flatnonzero(population.labels < 0)[0])
    widget.choose_row(int(np.flatnonzero(widget.order == loner)[0]))  # a raster row
    assert layer.selected_label == loner + 1
    assert widget.membership.text().endswith("in no assembly")


def test_states_draw_under_the_raster(setup, monkeypatch) -> None:
    layer, widget = setup
    monkeypatch.setattr(population_widget, "MATRIX_MAX_ROIS", 10)  # as for a large recording
    n = layer.metadata["calcium_avae_traces"].n_rois
    states = np.repeat([0, 1, 2], FRAMES // 3)
    population = PopulationResults(
        roi_rows=np.arange(n),
        states=states,
        state_probabilities=np.eye(3)[states],
        rates=np.ones((3, n)),
        transmat=np.full((3, 3), 1 / 3),
    )
    population_widget.put_population(layer, population)
    widget.draw()
    axes = widget.raster.figure.axes
    assert len(axes) == 2  # the raster, the state strip
    np.testing.assert_array_equal(axes[1].images[0].get_array()[0], states)
    r_image = widget.sliding.figure.axes[0].images[0]
    assert r_image.get_array().shape[0] == n and r_image.get_clim() == (-1, 1)
    matrix = widget.matrix.figure.axes[0]
    assert matrix.images[0].get_array().shape == (10, 10)  # every 3rd of the 30 ROIs
    assert matrix.get_title().endswith("one ROI in 3)")


def test_bad_input_and_stop_leave_the_layer_alone(qtbot, setup, notices) -> None:
    layer, widget = setup
    widget.assemblies.setCurrentText("many")
    widget.toggle()
    assert widget.worker is None
    assert notices[-1] == ("error", "assemblies must be 'auto', a number or 'none', got 'many'")

    widget.assemblies.setCurrentText("none")
    widget.states.setCurrentText("none")
    run(qtbot, widget)
    assert notices[-1][0] == "error" and "nothing to do" in notices[-1][1]

    widget.assemblies.setCurrentText("auto")
    widget.states.setCurrentText("3")
    widget.toggle()
    widget.toggle()  # Stop at once: ends at the next step, nothing kept
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert POPULATION_KEY not in layer.metadata and "assembly" not in layer.features
    assert widget.status.text() == "stopped: nothing changed"
    assert notices[-1] == ("warning", "population analysis stopped: nothing changed")


def test_save_and_reopen_show_the_same_assemblies(
    make_napari_viewer, qtbot, small_nwb, tmp_path, notices
) -> None:
    from napari_calcium_avae._napari._layers import is_ours
    from napari_calcium_avae.nwb.population import read_population

    viewer = make_napari_viewer()
    viewer.open(str(small_nwb), plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, DOCK)
    widget.save(tmp_path / "early.nwb")
    assert "nothing to save for 'small'" in notices[-1][1]
    run(qtbot, widget)
    source = next(layer for layer in viewer.layers if is_ours(layer))
    labels = source.metadata[POPULATION_KEY].labels
    out = widget.save(tmp_path / "population.txt")
    assert out == tmp_path / "population.nwb" and widget.status.text() == f"saved {out}"
    np.testing.assert_array_equal(read_population(out).labels, labels)
    # a layer whose file holds population results shows them (without Run)
    from types import SimpleNamespace

    traces = source.metadata["calcium_avae_traces"]
    from_file = SimpleNamespace(
        name="saved", metadata={"calcium_avae_traces": traces, "calcium_avae_source": str(out)}
    )
    found = population_widget.population_from_file(from_file)
    np.testing.assert_array_equal(found.labels, labels)
    np.testing.assert_allclose(found.activity, source.metadata[POPULATION_KEY].activity, rtol=1e-5)


def test_a_population_file_opens_with_its_assemblies(
    make_napari_viewer, small_nwb, tmp_path
) -> None:
    from napari_calcium_avae._napari._layers import is_ours
    from napari_calcium_avae.nwb import read_traces
    from napari_calcium_avae.nwb.population import write_population
    from napari_calcium_avae.population import AssemblyDetector

    traces = read_traces(small_nwb)
    with pytest.warns(CalciumAvaeWarning, match="not significant"):
        detector = AssemblyDetector(n_assemblies=2).fit(traces.data)
    out = write_population(traces, tmp_path / "population.nwb", assemblies=detector)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, DOCK)
    viewer.open(str(out), plugin=PLUGIN)  # the dock shows the new layer, from its file
    layer = next(layer for layer in viewer.layers if is_ours(layer))
    assert widget.layer_box.currentData() is layer
    np.testing.assert_array_equal(layer.metadata[POPULATION_KEY].labels, detector.labels_)
    np.testing.assert_array_equal(layer.features["assembly"], detector.labels_)
