"""The Infer spikes dock: rates join a layer's results (and are saved), Stop keeps the
finished blocks of ROIs, a recording without timing is a notice."""

from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt

from napari_calcium_avae import Results, Traces
from napari_calcium_avae._napari import deconvolve_widget
from napari_calcium_avae._napari._layers import (
    RESULTS_KEY,
    is_ours,
    put_results,
    traces_layer_data,
)
from napari_calcium_avae._napari.writer import save_layer_results
from napari_calcium_avae.nwb import read_results
from napari_calcium_avae.pipeline import AUTO_MIN_BLOCK_ROIS
from napari_calcium_avae.spikes import SpikeInference

PLUGIN = "napari-calcium-avae"
DOCK = "6. Infer spikes"


def open_layer(viewer, path: Path):
    viewer.open(str(path), plugin=PLUGIN)
    return next(layer for layer in viewer.layers if is_ours(layer))


def dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, DOCK)
    widget.max_iter.setValue(40)  # small data, a quick fit
    widget.device.setCurrentIndex(widget.device.findData("cpu"))
    return widget


def finish(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)


def test_rates_join_the_latents_and_are_saved(
    make_napari_viewer, qtbot, small_nwb: Path, tmp_path: Path, notices
) -> None:
    viewer = make_napari_viewer()
    layer = open_layer(viewer, small_nwb)
    n = layer.metadata["calcium_avae_traces"].n_rois
    latents = np.arange(2 * n, dtype=np.float32).reshape(n, 2)
    put_results(layer, Results(latents=latents, labels=np.zeros(n, dtype=np.int64)))
    widget = dock(viewer)
    # the form's defaults are the estimator's
    defaults = SpikeInference().get_params()
    shown = ("ar_order", "sparsity", "n_baseline", "detrend_s")
    assert {k: widget.params()[k] for k in shown} == {k: defaults[k] for k in shown}
    widget.detrend.setValue(0.0)  # "off" is the estimator's None
    assert widget.detrend.text() == "off" and widget.params()["detrend_s"] is None
    widget.detrend.setValue(defaults["detrend_s"])
    assert "small: 30 Hz (file rate)" in widget.rates.text()
    seen = []
    widget.progressed.connect(lambda done, total: seen.append((done, total)))

    widget.toggle()
    assert widget.run_button.text() == "Stop"
    finish(qtbot, widget)

    result = layer.metadata[RESULTS_KEY]
    assert result.spike_rates.shape == (n, 64) and np.isfinite(result.spike_rates).all()
    assert np.isfinite(result.decay_s).all() and (result.decay_s > 0).all()
    np.testing.assert_array_equal(result.latents, latents)  # kept, not wiped
    assert "calcium_decay_s" in layer.features and "latent_0" in layer.features
    assert result.provenance["spikes_model"] == "SpikeInference"
    assert seen[-1] == (n, n) and widget.run_button.text() == "Infer spikes"
    assert widget.status.text().startswith("done: spikes inferred for 24 ROIs")
    assert not [kind for kind, _ in notices if kind == "error"]

    out = save_layer_results(tmp_path / "out.nwb", layer.name, layer.features, layer.metadata)
    back = read_results(out)
    np.testing.assert_allclose(back.spike_rates, result.spike_rates, rtol=1e-6)
    np.testing.assert_allclose(back.latents, latents)


def test_stop_keeps_the_finished_block(
    make_napari_viewer, qtbot, small_nwb: Path, monkeypatch
) -> None:
    shown = []
    monkeypatch.setattr(deconvolve_widget, "show_warning", shown.append)
    viewer = make_napari_viewer()
    layer = open_layer(viewer, small_nwb)
    n = layer.metadata["calcium_avae_traces"].n_rois
    assert n > AUTO_MIN_BLOCK_ROIS  # two blocks: 16 ROIs, then 8
    widget = dock(viewer)
    # Stop as the first block's progress arrives, in the worker thread itself, so that
    # the second block never starts however fast it would be
    direct = Qt.ConnectionType.DirectConnection
    widget.progressed.connect(lambda *_: widget.stop_event.set(), direct)
    widget.toggle()
    finish(qtbot, widget)

    rates = layer.metadata[RESULTS_KEY].spike_rates
    done = AUTO_MIN_BLOCK_ROIS
    assert np.isfinite(rates[:done]).all() and np.isnan(rates[done:]).all()
    assert np.isnan(layer.features["calcium_decay_s"].to_numpy()[done:]).all()
    assert shown == [
        f"stopped: spikes inferred for {done} of {n} ROIs in 'small' (the other ROIs' rates "
        "and kinetics are NaN)"
    ]
    assert widget.status.text() == shown[0]


def test_stop_button_and_a_recording_without_timing(
    make_napari_viewer, qtbot, small_nwb: Path, notices, monkeypatch
) -> None:
    monkeypatch.setattr(deconvolve_widget, "show_warning", lambda m: notices.append(("warning", m)))
    viewer = make_napari_viewer()
    layer = open_layer(viewer, small_nwb)
    widget = dock(viewer)
    widget.toggle()
    widget.toggle()  # Stop at once: the worker may or may not have begun its first block
    assert widget.run_button.text() == "Stopping…" and not widget.run_button.isEnabled()
    finish(qtbot, widget)
    assert widget.run_button.text() == "Infer spikes" and widget.run_button.isEnabled()
    if RESULTS_KEY in layer.metadata:  # the first block had begun: it is kept, no more
        rates = layer.metadata[RESULTS_KEY].spike_rates
        assert np.isfinite(rates).all(axis=1).sum() == AUTO_MIN_BLOCK_ROIS
        assert notices[-1][1].startswith(f"stopped: spikes inferred for {AUTO_MIN_BLOCK_ROIS} ")
    else:
        assert notices == [("warning", "stopped before any ROI was done: nothing changed")]
    notices.clear()

    data = np.random.default_rng(0).normal(size=(3, 80)).astype(np.float32)
    for array, attributes, kind in traces_layer_data(Traces(data=data), "untimed"):
        if kind == "labels":
            viewer.add_labels(array, **attributes)
    widget.layer_list.set_checked([viewer.layers["untimed"]])
    assert "neither a frame rate nor increasing timestamps" in widget.rates.text()
    widget.toggle()
    ((kind, message),) = notices
    assert kind == "error" and message.startswith("layer 'untimed': the recording has neither")
    assert widget.worker is None and RESULTS_KEY not in viewer.layers["untimed"].metadata
