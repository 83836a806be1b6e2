from pathlib import Path

import numpy as np
import pandas as pd

from napari_calcium_avae._napari._layers import (
    SERIES_KEY,
    SOURCE_KEY,
    TILE,
    TRACES_KEY,
    roi_label_image,
    traces_layer_data,
)
from napari_calcium_avae._napari.reader import NOTHING_READ, get_reader, read_nwb
from napari_calcium_avae.traces import Traces

N_ROIS, SHAPE = 24, (40, 48)  # as written by conftest.write_small_nwb


def test_get_reader_declines_what_is_not_nwb(tmp_path: Path, small_nwb: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    renamed = tmp_path / "small.h5"
    renamed.write_bytes(small_nwb.read_bytes())
    zarr_folder = tmp_path / "zarr.nwb"
    zarr_folder.mkdir()
    assert get_reader(str(text)) is None
    assert get_reader(str(tmp_path / "missing.nwb")) is None
    assert get_reader(str(renamed)) is None
    assert get_reader(str(zarr_folder)) is None
    assert get_reader([str(small_nwb), str(text)]) is None
    assert get_reader(str(small_nwb)) is read_nwb


def test_nwb_that_is_not_hdf5_is_explained_in_one_line(tmp_path: Path, notices) -> None:
    garbage = tmp_path / "garbage.nwb"
    garbage.write_bytes(b"not an hdf5 file at all" * 10)
    reader = get_reader(str(garbage))
    assert reader is read_nwb
    assert reader(str(garbage)) == NOTHING_READ
    [(kind, message)] = notices
    assert kind == "error"
    assert message.startswith("garbage.nwb: ") and "not an NWB file (not HDF5)" in message
    assert "\n" not in message


def test_reader_layers(small_nwb: Path) -> None:
    layers = read_nwb(str(small_nwb))
    kinds = [kind for _, _, kind in layers]
    assert kinds == ["image", "labels"]  # reference image below the ROIs
    labels, attributes, _ = layers[-1]
    assert labels.shape == SHAPE
    assert set(np.unique(labels)) == set(range(N_ROIS + 1))
    features = attributes["features"]
    assert list(features["index"]) == list(range(1, N_ROIS + 1))
    assert list(features["roi_id"]) == list(range(N_ROIS))
    assert list(features["neuron_type"][:2]) == ["slow", "fast"]
    traces = attributes["metadata"][TRACES_KEY]
    assert traces.data.shape == (N_ROIS, 64)
    assert attributes["metadata"][SOURCE_KEY] == str(small_nwb)
    assert attributes["metadata"][SERIES_KEY] == "processing/ophys/Fluorescence/RoiResponseSeries"
    image, image_attributes, _ = layers[0]
    assert image.shape == SHAPE
    assert image_attributes["name"] == "small mean"


def test_truncated_nwb_is_reported_not_raised(tmp_path: Path, small_nwb: Path, notices) -> None:
    truncated = tmp_path / "truncated.nwb"
    truncated.write_bytes(small_nwb.read_bytes()[:2000])
    reader = get_reader(str(truncated))
    assert reader is read_nwb  # the signature is there; reading finds the damage
    assert reader(str(truncated)) == NOTHING_READ
    assert len(notices) == 1
    kind, message = notices[0]
    assert kind == "error" and message.startswith("truncated.nwb: ")


def test_viewer_opens_nwb_and_shows_features(make_napari_viewer, small_nwb: Path) -> None:
    viewer = make_napari_viewer()
    viewer.open(str(small_nwb), plugin="napari-calcium-avae")
    labels = viewer.layers["small"]
    assert labels._type_string == "labels"
    row = 5
    rr, cc = np.argwhere(labels.data == row + 1)[0]
    status = labels._get_properties((rr, cc))
    assert f"roi_id: {row}" in status
    assert "neuron_type: fast" in status


def test_viewer_open_of_broken_nwb_gives_a_notice(
    make_napari_viewer, tmp_path: Path, small_nwb: Path, notices
) -> None:
    viewer = make_napari_viewer()
    truncated = tmp_path / "cut.nwb"
    truncated.write_bytes(small_nwb.read_bytes()[:3000])
    viewer.open(str(truncated), plugin="napari-calcium-avae")
    assert len(viewer.layers) == 0
    assert [kind for kind, _ in notices] == ["error"]


def test_viewer_open_of_a_text_file_named_nwb_gives_one_notice(
    make_napari_viewer, tmp_path: Path, notices
) -> None:
    viewer = make_napari_viewer()
    garbage = tmp_path / "notes.nwb"
    garbage.write_text("not an nwb file\n")
    viewer.open(str(garbage), plugin="napari-calcium-avae")  # no "refused the file" error
    assert len(viewer.layers) == 0
    assert [kind for kind, _ in notices] == ["error"]
    assert "not HDF5" in notices[0][1]


def test_recording_without_masks_gets_one_tile_per_roi() -> None:
    traces = Traces(
        data=np.random.default_rng(0).normal(size=(10, 32)),
        roi_table=pd.DataFrame({"depth": np.arange(10.0)}),
    )
    labels = roi_label_image(traces)
    assert labels.shape == (3 * TILE, 4 * TILE)
    values, counts = np.unique(labels, return_counts=True)
    assert list(values) == list(range(11))
    assert set(counts[1:]) == {TILE * TILE}
    ((_, attributes, kind),) = traces_layer_data(traces, "no masks")
    assert kind == "labels"
    assert list(attributes["features"].columns) == ["index", "roi_id", "depth"]
