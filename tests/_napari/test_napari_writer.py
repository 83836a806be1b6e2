from pathlib import Path

import numpy as np

from napari_calcium_avae._napari._layers import RESULTS_KEY, put_results
from napari_calcium_avae._napari.writer import write_labels
from napari_calcium_avae.nwb import read_traces
from napari_calcium_avae.results import Results


def fake_results(n_rois: int, n_frames: int) -> Results:
    rng = np.random.default_rng(1)
    return Results(
        latents=rng.normal(size=(n_rois, 3)),
        labels=np.arange(n_rois) % 3 - 1,
        embedding=rng.normal(size=(n_rois, 2)),
        reconstruction=rng.normal(size=(n_rois, n_frames)).astype(np.float32),
        provenance={"model": "test"},
    )


def test_writer_round_trip(make_napari_viewer, small_nwb: Path, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    viewer.open(str(small_nwb), plugin="napari-calcium-avae")
    layer = viewer.layers["small"]
    traces = layer.metadata["calcium_avae_traces"]
    results = fake_results(traces.n_rois, traces.n_frames)
    put_results(layer, results)
    features = layer.features.copy()
    features.loc[0, "cluster"] = 7  # an edit made in the features table is what gets saved
    layer.features = features
    before = small_nwb.read_bytes()

    data, attributes, _ = layer.as_layer_data_tuple()
    written = write_labels(str(tmp_path / "out.nwb"), data, attributes)

    assert written == [str(tmp_path / "out.nwb")]
    assert small_nwb.read_bytes() == before
    back = read_traces(written[0])
    table = back.roi_table
    np.testing.assert_allclose(table[["latent_0", "latent_1", "latent_2"]], results.latents)
    assert table["cluster"].iloc[0] == 7
    np.testing.assert_array_equal(table["cluster"].iloc[1:], results.labels[1:])
    np.testing.assert_allclose(table[["embedding_0", "embedding_1"]], results.embedding)


def test_saving_through_the_viewer_and_reopening(
    make_napari_viewer, small_nwb: Path, tmp_path: Path
) -> None:
    viewer = make_napari_viewer()
    viewer.open(str(small_nwb), plugin="napari-calcium-avae")
    layer = viewer.layers["small"]
    traces = layer.metadata["calcium_avae_traces"]
    results = fake_results(traces.n_rois, traces.n_frames)
    put_results(layer, results)
    viewer.layers.selection = {layer}
    out = tmp_path / "saved.nwb"
    viewer.layers.save(str(out), selected=True, plugin="napari-calcium-avae")

    reopened = make_napari_viewer()
    reopened.open(str(out), plugin="napari-calcium-avae")
    again = reopened.layers["saved"]
    assert {"latent_0", "cluster", "embedding_0"} <= set(again.features.columns)
    # reopened results are coloured by cluster, noise grey
    noise_row = int(np.flatnonzero(again.features["cluster"] == -1)[0])
    np.testing.assert_allclose(again.colormap.map(noise_row + 1), [0.5, 0.5, 0.5, 1.0])
    # the denoised traces come back with the layer, for the trace plot and a later save
    np.testing.assert_allclose(again.metadata[RESULTS_KEY].reconstruction, results.reconstruction)


def test_writing_a_layer_that_is_not_ours_is_a_notice(
    make_napari_viewer, tmp_path: Path, notices
) -> None:
    viewer = make_napari_viewer()
    layer = viewer.add_labels(np.zeros((8, 8), dtype=np.int32), name="painted")
    data, attributes, _ = layer.as_layer_data_tuple()
    assert write_labels(str(tmp_path / "x.nwb"), data, attributes) == []
    assert not (tmp_path / "x.nwb").exists()
    ((kind, message),) = notices
    assert kind == "error" and "'painted' holds no calcium traces" in message


def test_writing_without_results_is_a_notice(
    make_napari_viewer, small_nwb: Path, tmp_path: Path, notices
) -> None:
    viewer = make_napari_viewer()
    viewer.open(str(small_nwb), plugin="napari-calcium-avae")
    layer = viewer.layers["small"]
    data, attributes, _ = layer.as_layer_data_tuple()
    assert write_labels(str(tmp_path / "x.nwb"), data, attributes) == []
    assert "no AVAE results to save" in notices[0][1]
    assert RESULTS_KEY not in layer.metadata
