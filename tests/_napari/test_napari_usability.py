"""What a user meets on a real recording, checked on a real viewer with the widgets' controls:
docks that fit a laptop screen, recordings side by side, what gets ticked, saving over a
file, the numbers the widgets show, cluster mean traces and imported reference labels."""

import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_qtagg import NavigationToolbar2QT
from qtpy.QtWidgets import QMessageBox

from conftest import N_FRAMES, N_ROIS, write_small_nwb
from napari_calcium_avae._napari import _common
from napari_calcium_avae._napari._layers import cluster_colours, is_ours, put_results
from napari_calcium_avae._napari.plots_widget import trace_axis_label
from napari_calcium_avae._napari.train_widget import progress_text
from napari_calcium_avae._napari.writer import save_layer_results
from napari_calcium_avae.analysis.label_table import agreement
from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.results import Results
from napari_calcium_avae.traces import Traces

PLUGIN = "napari-calcium-avae"
DOCKS = (
    "1. Simulate cultures",
    "2. Train model",
    "3. Apply and cluster",
    "4. Latent space and traces",
    "5. Save results to NWB",
)
LAPTOP_HEIGHT = 768


def open_rois(viewer, path: Path):
    viewer.open(str(path), plugin=PLUGIN)
    return [layer for layer in viewer.layers if is_ours(layer)][-1]


def dock(viewer, name: str):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def two_clusters(layer, reconstruction: bool = False) -> np.ndarray:
    """Results with the test file's two families (slow: even rows, fast: odd) as clusters."""
    traces = layer.metadata["calcium_avae_traces"]
    labels = np.arange(traces.n_rois) % 2
    latents = np.stack([labels * 5.0, np.arange(traces.n_rois) * 0.01], axis=1)
    put_results(
        layer,
        Results(
            latents=latents,
            labels=labels,
            reconstruction=traces.data * 0.5 if reconstruction else None,
        ),
    )
    return labels


LAPTOP_DOCK_WIDTH = 280
"""Width a dock's scroll area shows on a 1,366 x 768 screen (docs/images/window_1366x768.png)."""


def test_plots_fit_the_width_of_a_dock_on_a_laptop_screen(make_napari_viewer) -> None:
    from qtpy.QtWidgets import QScrollArea

    viewer = make_napari_viewer()
    plots = dock(viewer, "4. Latent space and traces")
    for i in range(plots.tabs.count()):
        (area,) = plots.tabs.widget(i).findChildren(QScrollArea)
        # wider content scrolls sideways and cuts the plots' right edge
        least = area.widget().minimumSizeHint().width()
        assert least <= LAPTOP_DOCK_WIDTH, (plots.tabs.tabText(i), least)


@pytest.mark.parametrize("short_screen", [True, False])
def test_all_docks_fit_a_laptop_screen(
    make_napari_viewer, qtbot, small_nwb: Path, monkeypatch: pytest.MonkeyPatch, short_screen
) -> None:
    monkeypatch.setattr(_common, "SHORT_SCREEN_PX", 10**6 if short_screen else 0)
    viewer = make_napari_viewer(show=True)
    open_rois(viewer, small_nwb)
    widgets = [dock(viewer, name) for name in DOCKS]
    qtbot.wait(50)  # docks are tabbed once napari has docked them
    window = viewer.window._qt_window
    # before the docks scrolled, docks 2-5 alone made the window at least 1,871 px tall
    assert window.minimumSizeHint().height() <= LAPTOP_HEIGHT
    for widget in widgets:  # each dock can shrink to a few lines and scroll the rest
        assert widget.minimumSizeHint().height() < 200, type(widget).__name__
    docks = [widget.parentWidget() for widget in widgets]
    tabbed = window.tabifiedDockWidgets(docks[0])
    if short_screen:  # one tab each, each with the full height
        assert set(tabbed) == set(docks[1:])
    else:
        assert tabbed == []


def test_recordings_open_side_by_side(make_napari_viewer, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    first = open_rois(viewer, write_small_nwb(tmp_path / "a.nwb"))
    second = open_rois(viewer, write_small_nwb(tmp_path / "b.nwb"))
    width = first.data.shape[1]
    assert first.translate[1] == 0
    assert second.translate[1] > width  # beside the first, with a gap
    assert viewer.layers["b mean"].translate[1] == second.translate[1]  # its image with it
    # a point of the second recording is one of its ROIs, never one of the first's
    r, c = np.argwhere(second.data == 3)[0]
    world = (r, c + second.translate[1])
    assert first.get_value(world, world=True) in (None, 0)
    assert second.get_value(world, world=True) == 3


def test_only_recordings_that_can_train_together_are_ticked(
    make_napari_viewer, tmp_path: Path
) -> None:
    viewer = make_napari_viewer()
    train = dock(viewer, "2. Train model")
    first = open_rois(viewer, write_small_nwb(tmp_path / "a.nwb"))
    same = open_rois(viewer, write_small_nwb(tmp_path / "b.nwb"))
    shorter = open_rois(viewer, write_small_nwb(tmp_path / "c.nwb", n_frames=N_FRAMES // 2))
    two_clusters(first)
    saved = save_layer_results(tmp_path / "a_avae.nwb", first.name, first.features, first.metadata)
    reopened = open_rois(viewer, saved)
    assert "calcium_avae_results" in reopened.metadata
    assert train.layer_list.layers() == [first, same]  # not the other length, not results
    train.start()  # and so training starts instead of failing on the lengths
    assert train.running
    train.stop()
    train.layer_list.set_checked([shorter])
    assert train.layer_list.layers() == [shorter]


def test_save_asks_before_replacing_and_names_the_file(
    make_napari_viewer, qtbot, small_nwb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    viewer = make_napari_viewer()
    layer = open_rois(viewer, small_nwb)
    two_clusters(layer)
    save = dock(viewer, "5. Save results to NWB")
    asked: list[str] = []
    answer = QMessageBox.StandardButton.No

    def question(parent, title, text, *args):
        asked.append(text)
        return answer

    monkeypatch.setattr(_common.QMessageBox, "question", question)
    typed = small_nwb.with_name("out_rs.txt")
    save.output.setText(str(typed))
    save.save()
    qtbot.waitUntil(lambda: save.worker is None, timeout=30_000)
    written = small_nwb.with_name("out_rs.nwb")
    assert written.exists() and not typed.exists() and not asked  # nothing to replace yet
    assert save.status.text() == f"saved {written} (not out_rs.txt)"

    before = written.stat().st_mtime_ns
    save.save()  # the same name again: asked, answered No, kept
    assert len(asked) == 1 and str(written) in asked[0]
    assert save.worker is None and written.stat().st_mtime_ns == before
    assert save.status.text() == "not saved: out_rs.nwb exists and was kept"

    answer = QMessageBox.StandardButton.Yes
    save.save()
    qtbot.waitUntil(lambda: save.worker is None, timeout=30_000)
    assert len(asked) == 2 and written.stat().st_mtime_ns != before
    assert save.status.text().startswith(f"saved {written}")
    # a file that appears between the question and the write is kept: overwrite=False
    with pytest.raises(CalciumAvaeError, match="exists"):
        save_layer_results(written, layer.name, layer.features, layer.metadata, overwrite=False)


def test_eps_box_shows_the_eps_in_use(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    apply = dock(viewer, "3. Apply and cluster")
    apply.auto_eps.setChecked(False)
    apply.eps.setValue(1e-6)
    assert apply.eps.value() == pytest.approx(1e-6) and apply.eps.text() == "1e-06"
    assert apply.eps_value() == pytest.approx(1e-6)
    apply.eps.lineEdit().setText("2.5e-05")
    apply.eps.interpretText()
    assert apply.eps.value() == pytest.approx(2.5e-5)
    apply.eps.stepUp()  # steps are relative, so they mean something at any scale
    assert apply.eps.value() == pytest.approx(2.75e-5)


def test_progress_after_stop_shows_the_last_measured_loss() -> None:
    history = [
        {"epoch": 1, "n_epochs": 9, "train_loss": 3.0, "val_loss": 2.5, "stop_reason": None},
        {"epoch": 2, "n_epochs": 9, "train_loss": 2.0, "val_loss": math.nan,
         "stop_reason": "stopped"},
    ]  # fmt: skip
    assert progress_text(history) == "stopped · epoch %v/%m · last val 2.5"
    assert progress_text(history, trained=True) == "stopped · epoch %v/%m · last val 2.5"
    assert progress_text(history[:1]) == "epoch %v/%m · train 3 · val 2.5"
    assert progress_text(history[:1], trained=True) == "trained · epoch %v/%m · val 2.5"


def test_min_samples_one_is_a_warning_that_says_why(
    make_napari_viewer, small_nwb: Path, notices
) -> None:
    viewer = make_napari_viewer()
    layer = open_rois(viewer, small_nwb)
    two_clusters(layer)
    apply = dock(viewer, "3. Apply and cluster")
    apply.min_samples.setValue(1)
    apply.auto_eps.setChecked(False)
    apply.eps.setValue(1e-3)
    apply.recluster()
    assert layer.features["cluster"].nunique() == N_ROIS
    ((kind, message),) = notices
    assert kind == "warning" and "min_samples 1 makes every ROI a core point" in message


def test_trace_plot_zooms_and_names_its_axis(make_napari_viewer, small_nwb: Path) -> None:
    viewer = make_napari_viewer()
    layer = open_rois(viewer, small_nwb)
    plots = dock(viewer, "4. Latent space and traces")
    assert plots.trace.findChild(NavigationToolbar2QT) is not None
    layer.selected_label = 3
    assert plots.trace.ax.get_ylabel() == "fluorescence (a.u.)"  # the file says 'a.u.'
    data = np.zeros((1, 4), dtype=np.float32)
    assert trace_axis_label(Traces(data, unit="n.a.")) == "fluorescence (a.u.)"
    assert trace_axis_label(Traces(data, unit="dF/F")) == "dF/F"
    assert trace_axis_label(Traces(data, unit="n.a.", series_path="x/DfOverF/s")) == "dF/F"
    assert trace_axis_label(Traces(data, unit="lumens")) == "fluorescence (lumens)"


def test_cluster_mean_traces(make_napari_viewer, small_nwb: Path) -> None:
    viewer = make_napari_viewer()
    layer = open_rois(viewer, small_nwb)
    plots = dock(viewer, "4. Latent space and traces")
    assert "no clusters" in plots.means.ax.get_title()
    labels = two_clusters(layer)
    plots.session.results_changed.emit()
    traces = layer.metadata["calcium_avae_traces"]
    lines = plots.means.ax.lines
    assert [line.get_label() for line in lines] == ["0 (12)", "1 (12)"]
    for label, line in enumerate(lines):
        np.testing.assert_allclose(line.get_ydata(), traces.data[labels == label].mean(axis=0))
        np.testing.assert_allclose(line.get_color(), cluster_colours(labels)[label])
    band = plots.means.ax.collections[0].get_paths()[0].vertices[:, 1]
    sd = traces.data[labels == 0].std(axis=0)
    assert band.max() == pytest.approx((traces.data[labels == 0].mean(axis=0) + sd).max())
    plots.mean_source.setCurrentText("denoised")
    assert "no denoised traces" in plots.means.ax.get_title()
    two_clusters(layer, reconstruction=True)
    plots.session.results_changed.emit()
    np.testing.assert_allclose(
        plots.means.ax.lines[0].get_ydata(), 0.5 * traces.data[labels == 0].mean(axis=0)
    )


def test_imported_labels_colour_the_rois_and_score_the_clusters(
    make_napari_viewer, small_nwb: Path, tmp_path: Path, notices
) -> None:
    viewer = make_napari_viewer()
    layer = open_rois(viewer, small_nwb)
    plots = dock(viewer, "4. Latent space and traces")
    csv = tmp_path / "assemblies.csv"
    rows = ["roi,assemblies"] + [f"{i},{'' if i < 4 else f'{i % 3} 7'}" for i in range(N_ROIS)]
    csv.write_text("\n".join(rows) + "\n")
    viewer.layers.selection.active = viewer.layers["small mean"]
    plots.import_labels(csv)
    assert notices[0][1].startswith("select the ROI layer")
    viewer.layers.selection.active = layer
    plots.import_labels(csv)
    expected = np.array([-1] * 4 + [i % 3 for i in range(4, N_ROIS)])
    np.testing.assert_array_equal(layer.features["assemblies"], expected)
    colours = cluster_colours(expected)
    for row in (0, 5, 6):
        np.testing.assert_allclose(layer.colormap.map(row + 1), colours[expected[row]])
    assert "apply a model" in plots.agreement.text()
    clusters = two_clusters(layer)
    plots.session.results_changed.emit()
    score = agreement(clusters, expected)
    assert f"ARI of the clusters with 'assemblies' on small: {score:.3f}" in plots.agreement.text()
