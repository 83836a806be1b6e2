"""Regenerate the GUI screenshots in docs/images/ on a real napari viewer.

Run under a virtual display:  xvfb-run -a -s "-screen 0 1920x1200x24" \
    .venv/bin/python docs/make_screenshots.py
It opens the sample data (three simulated cultures), trains the default model (the
crop-feature VAE, with 5 s crops of the 20 s traces) for a few epochs, applies and clusters
it, picks a ROI, then saves each dock widget and the whole window as PNG files. On a
laptop-sized screen,  xvfb-run -a -s "-screen 0 1366x768x24" .venv/bin/python
docs/make_screenshots.py  does the same with all five docks open and saves only the whole
window, as a user of that screen sees it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

from napari_calcium_avae.model import DEFAULT_MODEL

PLUGIN = "napari-calcium-avae"
IMAGES = Path(__file__).parent / "images"
SAMPLE_CROP_S = 5.0
"""Crop length for the sample's 20 s traces at 30 Hz: 150 frames (the crop-feature VAE
needs at least 32, and at most the trace)."""


def wait(widget, timeout: float = 600.0) -> None:
    """Let the event loop run until the widget's background job has finished."""
    start = time.monotonic()
    while widget.worker is not None:
        QApplication.processEvents()
        time.sleep(0.02)
        if time.monotonic() - start > timeout:
            sys.exit(f"{type(widget).__name__} did not finish within {timeout} s")
    settle()


def settle(seconds: float = 0.5) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def grab(widget, name: str) -> None:
    widget.grab().save(str(IMAGES / name))
    print("wrote", IMAGES / name)


DOCK_WIDTH = 440
"""Width of a dock in its own screenshot: about what napari gives it beside the canvas."""
DOCK_WIDTHS = {"3. Apply and cluster": 470}
"""Docks whose rows are wider than ``DOCK_WIDTH`` (the eps row), so that no horizontal
scroll bar cuts them."""
DOCK_HEIGHTS = {
    "1. Simulate cultures": 460,
    "2. Train model": 880,
    "3. Apply and cluster": 680,
    "4. Latent space and traces": 700,
    "5. Save results to NWB": 175,
}
"""Height of each dock in its own screenshot: enough for its whole content, so that no
scroll bar cuts it (docked one under another they share the window's height)."""


def float_dock(dock, title: str) -> None:
    """Float a dock at the size its screenshot needs (``dock.setFloating(False)`` undoes it)."""
    dock.show()
    dock.setFloating(True)
    dock.resize(DOCK_WIDTHS.get(title, DOCK_WIDTH), DOCK_HEIGHTS[title])
    settle()


LAPTOP_HEIGHT = 800
"""A screen at most this tall gets the laptop screenshot only."""


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    viewer = napari.Viewer(title="napari-calcium-avae")
    screen = QApplication.primaryScreen().availableGeometry()
    laptop = screen.height() <= LAPTOP_HEIGHT
    if laptop:
        viewer.window._qt_window.setGeometry(screen)
    else:
        viewer.window._qt_window.resize(1800, 1100)
    viewer.open_sample(PLUGIN, "culture")
    docks = {}
    for name in (
        "1. Simulate cultures",
        "2. Train model",
        "3. Apply and cluster",
        "4. Latent space and traces",
        "5. Save results to NWB",
    ):
        dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=False)
        docks[name] = (dock, widget)
    simulate = docks["1. Simulate cultures"][1]
    train = docks["2. Train model"][1]
    apply = docks["3. Apply and cluster"][1]
    plots = docks["4. Latent space and traces"][1]
    save = docks["5. Save results to NWB"][1]
    if not laptop:
        for name in ("1. Simulate cultures", "5. Save results to NWB"):
            docks[name][0].hide()
    settle()

    if train.model_choice.currentText() != DEFAULT_MODEL:
        sys.exit(
            f"the Train dock opened on {train.model_choice.currentText()}, not {DEFAULT_MODEL}"
        )
    # crops shorter than the sample's 20 s, so that the two crops of a pair differ
    train.crop_s.setValue(SAMPLE_CROP_S)
    train.hidden.setValue(64)
    train.latent.setValue(4)
    train.batch_size.setValue(32)
    train.max_epochs.setValue(60)
    train.patience.setValue(10)
    train.start()
    wait(train)
    apply.min_samples.setValue(4)
    apply.run()
    wait(apply)
    rois = [layer for layer in viewer.layers if layer._type_string == "labels"]
    plots.choose(rois[1], 3)
    viewer.layers.selection.active = rois[1]
    if laptop:
        docks["4. Latent space and traces"][0].raise_()
        viewer.reset_view()
        settle(1.0)
        name = f"window_{screen.width()}x{screen.height()}.png"
        viewer.screenshot(str(IMAGES / name), canvas_only=False)
        print("wrote", IMAGES / name)
        viewer.close()
        return
    for name in ("2. Train model", "3. Apply and cluster"):
        docks[name][0].hide()
    settle()
    # zoom on two cultures (RS left, IB right), coloured by cluster, latent space beside
    height, width = rois[1].data.shape
    viewer.camera.center = (height / 2, rois[1].translate[1])
    canvas = viewer.window._qt_viewer.canvas.size
    viewer.camera.zoom = canvas[1] / (1.6 * width)
    settle(1.0)
    viewer.screenshot(str(IMAGES / "viewer.png"), canvas_only=False)
    print("wrote", IMAGES / "viewer.png")
    # each dock on its own, floated at a size that shows all of it (docked one under
    # another they share the window's height and scroll)
    for title, widget, image in (
        ("2. Train model", train, "train.png"),
        ("3. Apply and cluster", apply, "apply.png"),
        ("1. Simulate cultures", simulate, "simulate.png"),
        ("5. Save results to NWB", save, "save.png"),
    ):
        float_dock(docks[title][0], title)
        grab(widget, image)
        docks[title][0].setFloating(False)
    title = "4. Latent space and traces"
    float_dock(docks[title][0], title)
    grab(plots, "plots_rois.png")
    plots.colour_by.setCurrentText("neuron_type")
    settle()
    grab(plots, "plots_neuron_type.png")
    plots.tabs.setCurrentIndex(1)
    plots.mean_source.setCurrentText("denoised")
    settle()
    grab(plots, "plots_clusters.png")
    show_tab(plots, "Training")
    settle()
    grab(plots, "plots_training.png")
    docks[title][0].setFloating(False)
    viewer.close()


def show_tab(plots, name: str) -> None:
    titles = [plots.tabs.tabText(i) for i in range(plots.tabs.count())]
    plots.tabs.setCurrentIndex(titles.index(name))
    settle()


def spikes(path: Path, roi: int) -> None:
    """The Plots dock on a file written by ``calcium-avae deconvolve``: ROI ``roi``'s trace
    with its inferred spikes, and the raster of all ROIs."""
    viewer = napari.Viewer(title="napari-calcium-avae")
    viewer.window._qt_window.resize(1400, 900)
    viewer.open(str(path), plugin=PLUGIN)
    title = "4. Latent space and traces"
    dock, plots = viewer.window.add_plugin_dock_widget(PLUGIN, title)
    layer = next(layer for layer in viewer.layers if "calcium_avae_traces" in layer.metadata)
    plots.choose(layer, roi)
    float_dock(dock, title)
    dock.resize(720, DOCK_HEIGHTS[title])  # wide: minutes of recording on one axis
    settle()
    show_tab(plots, "ROIs")
    grab(plots.trace, "spikes_trace.png")
    show_tab(plots, "Spikes")
    settle()
    grab(plots.raster, "spikes_raster.png")
    viewer.close()


def population(path: Path, states: str = "3") -> None:
    """The Population dock on a recording (a ``calcium-avae deconvolve`` result, so that the
    assemblies and the raster use its inferred spikes): Run with ``states`` states, then the
    window with the ROIs coloured by assembly, and each of the dock's views."""
    viewer = napari.Viewer(title="napari-calcium-avae")
    viewer.window._qt_window.resize(1800, 1100)
    viewer.open(str(path), plugin=PLUGIN)
    title = "7. Population"
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, title)
    widget.states.setCurrentText(states)
    widget.device.setCurrentIndex(max(0, widget.device.findData("cpu")))
    widget.start()
    wait(widget, timeout=1800.0)
    widget.sort.setCurrentIndex(widget.sort.findData("assembly"))
    window = viewer.window._qt_window
    window.resizeDocks([dock], [720], Qt.Orientation.Horizontal)  # wide: a long recording
    settle(1.0)
    viewer.reset_view()
    settle(1.0)
    viewer.screenshot(str(IMAGES / "population_window.png"), canvas_only=False)
    print("wrote", IMAGES / "population_window.png")
    for tab, canvas, image in (
        ("Raster", widget.raster, "population_raster.png"),
        ("Correlation", widget.sliding, "population_correlation.png"),
        ("Matrix", widget.matrix, "population_matrix.png"),
        ("Assemblies", widget.activity, "population_activity.png"),
    ):
        show_tab(widget, tab)
        grab(canvas, image)
    viewer.close()


if __name__ == "__main__":
    # docs/make_screenshots.py [--spikes RESULT.nwb ROI | --population RESULT.nwb [K]]
    if sys.argv[1:2] == ["--spikes"]:
        spikes(Path(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1:2] == ["--population"]:
        population(Path(sys.argv[2]), *sys.argv[3:4])
    else:
        main()
