"""Inferred spikes in the Plots dock: under the picked ROI's trace, and as a raster."""

from pathlib import Path

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.image import AxesImage

from napari_calcium_avae import Results
from napari_calcium_avae._napari._layers import is_ours
from napari_calcium_avae.nwb import read_traces, write_results

PLUGIN = "napari-calcium-avae"


def test_spikes_show_under_the_trace_and_as_a_raster(
    make_napari_viewer, small_nwb: Path, tmp_path: Path
) -> None:
    traces = read_traces(small_nwb)
    spikes = np.zeros(traces.data.shape, dtype=np.float32)
    spikes[3, 10] = 2.0  # one burst in ROI 3, nothing elsewhere
    out = write_results(traces, Results(spike_rates=spikes), tmp_path / "spikes.nwb")
    viewer = make_napari_viewer()
    viewer.open(str(out), plugin=PLUGIN)
    layer = next(layer for layer in viewer.layers if is_ours(layer))
    _, plots = viewer.window.add_plugin_dock_widget(PLUGIN, "4. Latent space and traces")

    (image,) = [a for a in plots.raster.ax.get_children() if isinstance(a, AxesImage)]
    np.testing.assert_array_equal(image.get_array(), spikes)
    assert "inferred spikes per frame" in plots.raster.ax.get_title()

    plots.choose(layer, 3)
    main, twin = plots.trace.figure.axes
    (filled,) = [a for a in twin.get_children() if isinstance(a, PolyCollection)]
    assert filled.get_paths()[0].vertices[:, 1].max() == 2.0
    assert "inferred spikes" in [t.get_text() for t in main.get_legend().get_texts()]
    plots.choose(layer, 4)  # the previous ROI's spike axis goes
    assert len(plots.trace.figure.axes) == 2


def test_raster_says_how_to_get_spikes(make_napari_viewer, small_nwb: Path) -> None:
    viewer = make_napari_viewer()
    viewer.open(str(small_nwb), plugin=PLUGIN)
    _, plots = viewer.window.add_plugin_dock_widget(PLUGIN, "4. Latent space and traces")
    assert (
        plots.raster.ax.get_title()
        == "no inferred spikes yet: dock 6 (Infer spikes) or calcium-avae deconvolve"
    )
