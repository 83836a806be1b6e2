"""The whole GUI flow on a real viewer: simulate, open, train, stop, apply, plot, save."""

from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from napari.utils.colormaps import DirectLabelColormap
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QMessageBox

from napari_calcium_avae._napari import _common
from napari_calcium_avae._napari._layers import (
    NOISE_COLOUR,
    RESULTS_KEY,
    cluster_colours,
    is_ours,
)
from napari_calcium_avae.nwb import list_series, read_traces

PLUGIN = "napari-calcium-avae"
FRAMES = 80  # 4 s at 20 Hz


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from napari_calcium_avae.simulate import simulate_dataset

    return simulate_dataset(
        tmp_path_factory.mktemp("sim"),
        types=("RS", "CH"),
        cultures_per_type=1,
        neurons_per_culture=16,
        duration_s=FRAMES / 20.0,
        frame_rate=20.0,
        dish_size_mm=1.0,
        seed=3,
    )


def open_rois(viewer, path: Path):
    viewer.open(str(path), plugin=PLUGIN)
    return [layer for layer in viewer.layers if is_ours(layer)][-1]


def dock(viewer, name: str):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def tiny(train, epochs: int, model: str = "avae") -> None:
    train.model_choice.setCurrentText(model)
    train.hidden.setValue(8)
    train.latent.setValue(2)
    train.batch_size.setValue(8)
    train.max_epochs.setValue(epochs)
    train.patience.setValue(epochs)
    train.device.setCurrentIndex(train.device.findData("cpu"))


def finish(qtbot, widget, timeout: int = 60_000) -> None:
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def test_open_train_apply_cluster_plot_save(
    make_napari_viewer, qtbot, sessions: list[Path], tmp_path: Path, notices
) -> None:
    viewer = make_napari_viewer()
    layers = [open_rois(viewer, path) for path in sessions]
    train = dock(viewer, "2. Train model")
    apply = dock(viewer, "3. Apply and cluster")
    plots = dock(viewer, "4. Latent space and traces")
    save = dock(viewer, "5. Save results to NWB")

    assert train.series.count() >= 2  # noisy default first, the noise-free one offered too
    assert train.series.currentData() == layers[0].metadata["calcium_avae_series"]
    tiny(train, epochs=3)
    train.timing.setValue(2)
    qtbot.mouseClick(train.run_button, Qt.MouseButton.LeftButton)
    assert train.run_button.text() == "Stop"
    finish(qtbot, train)
    assert train.run_button.text() == "Train"
    assert train.session.model.module_.timing.channels == 2
    assert [h["epoch"] for h in train.session.history] == [1, 2, 3]
    assert train.progress.value() == 3 and train.progress.maximum() == 3
    assert "val" in train.progress.text()
    assert len(plots.losses.ax.lines) >= 2  # train and validation curves
    assert "D2=2" in apply.model_label.text()

    apply.min_samples.setValue(3)
    apply.embedding.setCurrentText("PCA")  # t-SNE is slower and adds nothing to the test
    apply.run()
    finish(qtbot, apply)
    assert not [n for n in notices if n[0] == "error"], notices
    n_rois = 0
    for layer in layers:
        traces = layer.metadata["calcium_avae_traces"]
        n_rois += traces.n_rois
        features = layer.features
        assert {"latent_0", "latent_1", "cluster", "embedding_0", "embedding_1"} <= set(
            features.columns
        )
        assert np.isfinite(features[["latent_0", "latent_1"]].to_numpy()).all()
        assert isinstance(layer.colormap, DirectLabelColormap)
        colours = cluster_colours(features["cluster"].to_numpy())
        for row, label in enumerate(features["cluster"]):
            np.testing.assert_allclose(layer.colormap.map(row + 1), colours[int(label)])
            if label == -1:
                np.testing.assert_allclose(layer.colormap.map(row + 1), NOISE_COLOUR)
    assert "cluster(s)" in apply.summary.text() and "HDBSCAN" in apply.summary.text()
    # HDBSCAN (the default): a strip of membership probabilities per cluster, no eps
    assert apply.method.currentData() == "hdbscan" and not apply.eps.isEnabled()
    assert {"cluster_probability", "outlier_score"} <= set(layers[0].features.columns)
    labels = np.concatenate([layer.features["cluster"].to_numpy() for layer in layers])
    assert len(apply.curve.ax.collections) == len(set(labels[labels >= 0].tolist()))
    assert apply.curve.ax.get_ylabel() == "membership probability"
    # DBSCAN with the knee: the k-distance curve and the eps line
    apply.method.setCurrentIndex(apply.method.findData("dbscan"))
    assert apply.auto_eps.isEnabled() and not apply.min_cluster_size.isEnabled()
    apply.recluster()
    assert "DBSCAN, eps" in apply.summary.text()
    assert len(apply.curve.ax.lines) == 2
    assert layers[0].metadata[RESULTS_KEY].provenance["cluster_method"] == "dbscan"
    assert np.isnan(layers[0].features["outlier_score"]).all()

    # the latent space: every ROI a point; picking one selects it and shows its traces
    assert len(plots.points.xy) == n_rois
    assert plots.colour_by.currentText() == "cluster"
    plots.colour_by.setCurrentText("neuron_type")
    legend = [t.get_text() for t in plots.scatter.ax.get_legend().get_texts()]
    assert sorted(legend) == ["CH", "RS"]
    artist = next(iter(plots._picked_from))
    point = int(plots._picked_from[artist][0])
    plots._on_pick(SimpleNamespace(artist=artist, ind=[0]))
    layer, row = plots.points.layers[point], int(plots.points.rows[point])
    assert layer.selected_label == row + 1
    assert [line.get_label() for line in plots.trace.ax.lines] == ["raw", "denoised"]
    layers[0].selected_label = 5
    assert plots.current == (layers[0], 4)

    # manual eps: re-cluster without encoding again
    apply.auto_eps.setChecked(False)
    apply.eps.setValue(1e-4)
    apply.recluster()
    assert (layers[0].features["cluster"] == -1).all()  # nothing is that close
    np.testing.assert_allclose(layers[0].colormap.map(1), NOISE_COLOUR)

    save.layer.setCurrentIndex(save.layer.findText(layers[1].name))
    out = tmp_path / "with_results.nwb"
    save.output.setText(str(out))
    save.save()
    finish(qtbot, save)
    assert out.exists() and "saved" in save.status.text()
    back = read_traces(out, series=layers[1].metadata["calcium_avae_series"])
    np.testing.assert_allclose(
        back.roi_table[["latent_0", "latent_1"]],
        layers[1].features[["latent_0", "latent_1"]],
        rtol=1e-6,
    )
    assert len(list_series(out)) == len(list_series(sessions[1])) + 1  # + reconstruction


def test_default_model_trains_and_denoises_with_the_calcium_model(
    make_napari_viewer, qtbot, sessions: list[Path], notices
) -> None:
    viewer = make_napari_viewer()
    layers = [open_rois(viewer, path) for path in sessions]
    train = dock(viewer, "2. Train model")
    apply = dock(viewer, "3. Apply and cluster")
    assert train.model_choice.currentText() == "crop-vae"
    assert not train.timing.isVisibleTo(train) and train.crop_s.isVisibleTo(train)
    tiny(train, epochs=3, model="crop-vae")
    train.crop_s.setValue(3.0)
    train.n_crops.setValue(4)
    train.start()
    finish(qtbot, train)
    model = train.session.model
    assert type(model).__name__ == "CropFeatureVAE" and model.frame_rate == 20.0
    assert model.crop_s == 3.0 and model.n_crops == 4 and model.latent_size == 2
    assert "CropFeatureVAE" in apply.model_label.text()
    apply.min_samples.setValue(3)
    apply.embedding.setCurrentText("PCA")
    apply.run()
    finish(qtbot, apply)
    assert not [n for n in notices if n[0] == "error"], notices
    assert np.isfinite(layers[0].features[["latent_0", "latent_1"]].to_numpy()).all()
    train.model_choice.setCurrentText("avae")  # the paper's settings come back
    assert train.timing.isVisibleTo(train) and not train.crop_s.isVisibleTo(train)


def test_stop_ends_training_with_a_usable_model(
    make_napari_viewer, qtbot, sessions: list[Path]
) -> None:
    viewer = make_napari_viewer()
    layer = open_rois(viewer, sessions[0])
    train = dock(viewer, "2. Train model")
    tiny(train, epochs=10_000)
    ticks: list[bool] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(train.running))
    timer.start(10)
    train.start()
    # the timer keeps firing while the worker trains: the event loop is not blocked
    qtbot.waitUntil(lambda: sum(ticks) >= 5 and len(train.session.history) >= 2, timeout=60_000)
    train.toggle()  # the button reads Stop now
    assert train.run_button.text() == "Stopping…"
    finish(qtbot, train)
    timer.stop()
    model = train.session.model
    assert model is not None and len(train.session.history) < 10_000
    traces = layer.metadata["calcium_avae_traces"]
    assert model.transform(traces.data).shape == (traces.n_rois, 2)
    assert "stopped" in train.status.text()
    assert train.progress.text().startswith("stopped · epoch")  # not "val nan"
    assert "nan" not in train.progress.text() and "last val" in train.progress.text()


def test_model_file_round_trip(make_napari_viewer, qtbot, sessions: list[Path], tmp_path):
    viewer = make_napari_viewer()
    layer = open_rois(viewer, sessions[0])
    train = dock(viewer, "2. Train model")
    tiny(train, epochs=2)
    train.start()
    finish(qtbot, train)
    path = tmp_path / "model.pt"
    train.save_model(path)

    other = make_napari_viewer()
    open_rois(other, sessions[0])
    loaded = dock(other, "2. Train model")
    apply = dock(other, "3. Apply and cluster")
    loaded.load_model(path)
    traces = layer.metadata["calcium_avae_traces"]
    np.testing.assert_allclose(
        loaded.session.model.transform(traces.data), train.session.model.transform(traces.data)
    )
    assert "D2=2" in apply.model_label.text()


def test_bad_inputs_are_notices(
    make_napari_viewer, qtbot, sessions: list[Path], small_nwb: Path, notices
) -> None:
    viewer = make_napari_viewer()
    train = dock(viewer, "2. Train model")
    apply = dock(viewer, "3. Apply and cluster")
    save = dock(viewer, "5. Save results to NWB")
    simulate = dock(viewer, "1. Simulate cultures")

    train.start()
    apply.run()
    save.save()
    for box in simulate.types.values():
        box.setChecked(False)
    simulate.run()
    viewer.add_labels(np.zeros((4, 4), dtype=np.int32), name="painted")
    apply.recluster()
    messages = [m for kind, m in notices if kind == "error"]
    assert messages[0].startswith("no ROI layer chosen")
    assert messages[1].startswith("no model")
    assert messages[2].startswith("no ROI layer to save")
    assert messages[3].startswith("tick at least one neuron type")
    assert messages[4].startswith("no ROI layer chosen")  # 'painted' is not offered

    # recordings of different lengths cannot be trained together
    open_rois(viewer, sessions[0])
    open_rois(viewer, small_nwb)
    assert train.layer_list.layers() == [viewer.layers[sessions[0].stem]]  # one length ticked
    train.layer_list.set_checked([viewer.layers[sessions[0].stem], viewer.layers["small"]])
    notices.clear()
    train.start()
    assert not train.running
    assert "different numbers of frames" in notices[0][1]

    # a model trained on 80 frames, applied to a 64-frame recording
    train.layer_list.set_checked([viewer.layers[sessions[0].stem]])
    tiny(train, epochs=1)
    train.start()
    finish(qtbot, train)
    apply.layer_list.set_checked([viewer.layers["small"]])
    notices.clear()
    apply.run()
    finish(qtbot, apply)
    ((_, message),) = [n for n in notices if n[0] == "error"]
    assert "frames" in message
    assert "latent_0" not in viewer.layers["small"].features


def test_simulate_widget_writes_and_opens(
    make_napari_viewer, qtbot, tmp_path: Path, monkeypatch
) -> None:
    viewer = make_napari_viewer()
    simulate = dock(viewer, "1. Simulate cultures")
    simulate.types["IB"].setChecked(False)
    simulate.types["CH"].setChecked(False)
    simulate.neurons.setValue(8)
    simulate.duration.setValue(2.0)
    simulate.frame_rate.setValue(10.0)
    simulate.indicator.setCurrentText("GCaMP6f")
    simulate.folder.setText(str(tmp_path))
    simulate.run()
    finish(qtbot, simulate)
    files = sorted(tmp_path.rglob("*.nwb"))
    assert len(files) == 1
    with h5py.File(files[0], "r") as f:
        (plane,) = f["general/optophysiology"].values()
        assert plane["indicator"][()].decode() == "GCaMP6f"
    rois = [layer for layer in viewer.layers if is_ours(layer)]
    assert [layer.name for layer in rois] == [files[0].stem]
    assert rois[0].metadata["calcium_avae_traces"].data.shape == (8, 20)
    assert simulate.progress.value() == simulate.progress.maximum()

    # the same folder again: asked first; "No" keeps the sessions, "Yes" replaces them
    answers: list[str] = []
    monkeypatch.setattr(
        _common.QMessageBox, "question", lambda *args: answers.pop() if answers else None
    )
    before = files[0].read_bytes()
    simulate.seed.setValue(simulate.seed.value() + 1)
    answers.append(QMessageBox.StandardButton.No)
    simulate.run()
    assert simulate.worker is None and files[0].read_bytes() == before
    assert simulate.status.text() == f"not simulated: kept the sessions in {tmp_path}"
    answers.append(QMessageBox.StandardButton.Yes)
    simulate.run()
    finish(qtbot, simulate)
    assert files[0].read_bytes() != before


def test_series_choice_switches_the_layer(make_napari_viewer, sessions: list[Path]) -> None:
    viewer = make_napari_viewer()
    layer = open_rois(viewer, sessions[0])
    train = dock(viewer, "2. Train model")
    noisy = layer.metadata["calcium_avae_traces"]
    others = [train.series.itemData(i) for i in range(1, train.series.count())]
    noise_free = next(path for path in others if "noisefree" in path.lower())
    train.series.setCurrentIndex(train.series.findData(noise_free))
    traces = train._traces_for(layer)
    assert layer.metadata["calcium_avae_series"] == noise_free
    assert layer.metadata["calcium_avae_traces"] is traces
    assert traces.data.shape == noisy.data.shape
    assert not np.allclose(traces.data, noisy.data)


def test_hovering_a_roi_plots_its_trace(make_napari_viewer, small_nwb: Path) -> None:
    viewer = make_napari_viewer()
    layer = open_rois(viewer, small_nwb)
    plots = dock(viewer, "4. Latent space and traces")
    row = 7
    r, c = np.argwhere(layer.data == row + 1)[0]
    plots._on_hover(layer, SimpleNamespace(position=(float(r), float(c))))
    assert plots.current == (layer, row)
    (line,) = plots.trace.ax.lines  # raw only: nothing applied yet
    traces = layer.metadata["calcium_avae_traces"]
    np.testing.assert_allclose(line.get_ydata(), traces.data[row])
    assert plots.trace.ax.get_title().endswith(f"ROI {traces.roi_ids[row]}")


def test_widgets_are_in_the_plugins_menu(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    menu = viewer.window.plugins_menu
    titles = {a.text() for a in menu.actions()}
    submenu = next(a.menu() for a in menu.actions() if a.text() == "Calcium AVAE")
    names = [a.text().removesuffix(" (Calcium AVAE)") for a in submenu.actions()]
    assert "Calcium AVAE" in titles
    assert names == [
        "1. Simulate cultures",
        "2. Train model",
        "3. Apply and cluster",
        "4. Latent space and traces",
        "5. Save results to NWB",
        "6. Infer spikes",
        "7. Population",
        "8. Generate",
    ]


def test_plots_follow_the_theme_and_let_go_of_layers(
    make_napari_viewer, qtbot, small_nwb: Path
) -> None:
    from matplotlib.colors import to_hex
    from napari.utils.theme import get_theme

    viewer = make_napari_viewer()
    layer = open_rois(viewer, small_nwb)
    dock_widget, plots = viewer.window.add_plugin_dock_widget(PLUGIN, "4. Latent space and traces")
    viewer.theme = "light"
    light = get_theme("light").background.as_hex()
    assert to_hex(plots.trace.figure.get_facecolor()) == to_hex(light)
    assert plots._on_hover in layer.mouse_move_callbacks
    viewer.window.remove_dock_widget(dock_widget)
    plots.deleteLater()
    qtbot.waitUntil(lambda: plots._on_hover not in layer.mouse_move_callbacks, timeout=5000)


def test_save_widget_appends_in_place_only_when_asked(
    make_napari_viewer, qtbot, small_nwb: Path
) -> None:
    from napari_calcium_avae._napari._layers import put_results
    from napari_calcium_avae.results import Results

    viewer = make_napari_viewer()
    layer = open_rois(viewer, small_nwb)
    save = dock(viewer, "5. Save results to NWB")
    assert save.output.text() == str(small_nwb.with_name("small_avae.nwb"))
    n = layer.metadata["calcium_avae_traces"].n_rois
    put_results(layer, Results(latents=np.arange(2.0 * n).reshape(n, 2), labels=np.zeros(n)))
    save.in_place.setChecked(True)
    assert not save.output.isEnabled()
    save.save()
    finish(qtbot, save)
    assert not small_nwb.with_name("small_avae.nwb").exists()
    back = read_traces(small_nwb)
    np.testing.assert_allclose(back.roi_table["latent_1"], np.arange(1.0, 2.0 * n, 2))
