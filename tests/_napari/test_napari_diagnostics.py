"""The apply widget says when the latents carry nothing, and draws no embedding of them."""

from pathlib import Path

import numpy as np
import torch

from napari_calcium_avae._napari._layers import RESULTS_KEY, is_ours
from napari_calcium_avae.model import AVAE

PLUGIN = "napari-calcium-avae"


def collapsed_model(data: np.ndarray) -> AVAE:
    model = AVAE(hidden_size=8, latent_size=3, max_epochs=2, batch_size=8, device="cpu")
    model.fit(data)
    for head in (model.module_.mu, model.module_.logvar):  # the posterior is the prior
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
    return model


def open_small(viewer, path: Path):
    viewer.open(str(path), plugin=PLUGIN)
    return next(layer for layer in viewer.layers if is_ours(layer))


def apply_collapsed(viewer, qtbot, layer):
    """Apply a collapsed model to ``layer`` from the Apply dock; returns the dock."""
    _, apply = viewer.window.add_plugin_dock_widget(PLUGIN, "3. Apply and cluster")
    apply.session.set_model(collapsed_model(layer.metadata["calcium_avae_traces"].data))
    apply.layer_list.set_checked([layer])
    apply.run()
    qtbot.waitUntil(lambda: apply.worker is None, timeout=60_000)
    return apply


def test_apply_widget_shows_the_collapse_warning(
    make_napari_viewer, qtbot, small_nwb: Path, notices
) -> None:
    viewer = make_napari_viewer()
    layer = open_small(viewer, small_nwb)
    apply = apply_collapsed(viewer, qtbot, layer)

    assert not [n for n in notices if n[0] == "error"], notices
    lines = apply.summary.text().splitlines()
    assert "cluster(s)" in lines[0]
    assert any(
        line.startswith("⚠ small: all 3 latent dimensions are the same for every ROI")
        for line in lines[1:]
    ), lines
    assert any("same for every ROI" in message for kind, message in notices if kind == "warning")
    assert "embedding_0" not in layer.features
    assert layer.metadata[RESULTS_KEY].embedding is None

    # re-clustering keeps the warning in view
    apply.recluster()
    assert "same for every ROI" in apply.summary.text()


def _scatter_text(plots) -> str:
    return " ".join(text.get_text() for text in plots.scatter.ax.texts)


def test_plots_say_the_latents_collapsed_instead_of_asking_for_a_model(
    make_napari_viewer, qtbot, small_nwb: Path, notices
) -> None:
    viewer = make_napari_viewer()
    layer = open_small(viewer, small_nwb)
    _, plots = viewer.window.add_plugin_dock_widget(PLUGIN, "4. Latent space and traces")
    assert "apply a model to see the latent space" in _scatter_text(plots)
    assert "collapsed" not in _scatter_text(plots)

    apply_collapsed(viewer, qtbot, layer)
    assert not [n for n in notices if n[0] == "error"], notices

    text = _scatter_text(plots)
    assert "apply a model" not in text
    assert "latents collapsed: all 3 dimensions are the same" in text
    assert "no latent space to draw" in text and "Train longer" in text
    assert not plots.scatter.ax.collections  # no point drawn for identical latents
    # the clusters tab still works: one cluster of identical latents is a mean trace
    assert plots.means.ax.lines
