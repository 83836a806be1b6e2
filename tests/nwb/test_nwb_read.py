"""The reader on the three producer layouts and on every kind of bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from nwb_files import (
    COLS,
    N_FRAMES,
    N_ROIS,
    RATE,
    ROWS,
    mean_image,
    new_file,
    plane_segmentation,
    roi_pixels,
    traces,
)
from nwb_files import write as write_nwb
from pynwb import TimeSeries
from pynwb.ophys import Fluorescence

from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.nwb import list_series, read_traces


def wide_roi_rows_cols(mask: np.ndarray) -> tuple[set[int], set[int]]:
    return set(mask[:, 0].astype(int)), set(mask[:, 1].astype(int))


def test_suite2p_default_is_fluorescence_plane0(suite2p_file: Path) -> None:
    series = list_series(suite2p_file)
    assert {s.path for s in series} == {
        f"processing/ophys/{c}/plane0" for c in ("Fluorescence", "Neuropil", "Deconvolved")
    }
    assert [s.path for s in series if s.is_default] == ["processing/ophys/Fluorescence/plane0"]
    t = read_traces(suite2p_file)
    assert t.data.shape == (N_ROIS, N_FRAMES) and t.data.dtype == np.float32
    np.testing.assert_allclose(t.data, traces())
    assert t.rate == RATE and t.timestamps is None


def test_suite2p_masks_swap_ypix_xpix_and_images_keep_rows(suite2p_file: Path) -> None:
    t = read_traces(suite2p_file)
    assert wide_roi_rows_cols(t.masks[0]) == ({2, 3, 4}, set(range(10, 20)))
    assert t.image_shape == (ROWS, COLS)
    np.testing.assert_array_equal(t.images["meanImg"], mean_image())
    assert list(t.roi_table.columns) == ["iscell_0", "iscell_1"]
    np.testing.assert_allclose(t.roi_table["iscell_1"], [0.9, 0.8, 0.7, 0.6])
    labels = t.label_image()
    assert (labels == 1).sum() == 30 and labels[2:5, 10:20].min() == 1


def test_other_series_by_path(suite2p_file: Path) -> None:
    t = read_traces(suite2p_file, "/processing/ophys/Neuropil/plane0")
    np.testing.assert_allclose(t.data, traces() * 0.5)
    assert t.series_path == "processing/ophys/Neuropil/plane0"


def test_caiman_image_mask_is_x_y(caiman_file: Path) -> None:
    t = read_traces(caiman_file)
    assert t.series_path == "processing/ophys/Fluorescence/RoiResponseSeries"
    assert t.image_shape == (ROWS, COLS)
    assert wide_roi_rows_cols(t.masks[0]) == ({2, 3, 4}, set(range(10, 20)))
    for i in range(N_ROIS):
        r, c = roi_pixels(i)
        assert set(zip(r, c, strict=True)) == {(int(a), int(b)) for a, b, _ in t.masks[i]}
    assert t.starting_time == 2.0 and t.rate == RATE


def test_neuroconv_default_dff_and_region_rows(neuroconv_file: Path) -> None:
    defaults = [s.path for s in list_series(neuroconv_file) if s.is_default]
    assert defaults == ["processing/ophys/DfOverF/RoiResponseSeries"]
    t = read_traces(neuroconv_file)
    order = [2, 0, 3, 1]
    np.testing.assert_array_equal(t.roi_rows, order)
    np.testing.assert_array_equal(t.roi_ids, [100 + i for i in order])
    np.testing.assert_allclose(t.data, traces()[order] / 40 - 1, rtol=1e-6)
    np.testing.assert_allclose(t.roi_table["quality"], [0.5 + 0.1 * i for i in order])
    assert t.rate is None and len(t.timestamps) == N_FRAMES
    assert t.starting_time == pytest.approx(t.timestamps[0])
    # series row 1 is table row 0, the wide ROI, written as (x=col, y=row)
    assert wide_roi_rows_cols(t.masks[1]) == ({2, 3, 4}, set(range(10, 20)))
    np.testing.assert_array_equal(t.images["mean"], mean_image())


def test_only_derived_series_need_a_choice(tmp_path: Path, suite2p_file: Path) -> None:
    path = tmp_path / "derived.nwb"
    shutil.copy(suite2p_file, path)
    with h5py.File(path, "a") as f:
        del f["processing/ophys/Fluorescence"]
    with pytest.raises(CalciumAvaeError, match=r"choose one of.*Neuropil/plane0"):
        read_traces(path)
    assert not any(s.is_default for s in list_series(path))


def test_conversion_is_applied(tmp_path: Path, caiman_file: Path) -> None:
    path = tmp_path / "scaled.nwb"
    shutil.copy(caiman_file, path)
    with h5py.File(path, "a") as f:
        f["processing/ophys/Fluorescence/RoiResponseSeries/data"].attrs["conversion"] = 2.0
    np.testing.assert_allclose(read_traces(path).data, traces() * 2)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CalciumAvaeError, match="no such file"):
        read_traces(tmp_path / "nothere.nwb")


def test_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "text.nwb"
    path.write_text("not an nwb file\n")
    with pytest.raises(CalciumAvaeError, match="not HDF5"):
        list_series(path)


def test_truncated(tmp_path: Path, suite2p_file: Path) -> None:
    path = tmp_path / "cut.nwb"
    path.write_bytes(suite2p_file.read_bytes()[: suite2p_file.stat().st_size // 2])
    with pytest.raises(CalciumAvaeError, match="truncated or damaged"):
        read_traces(path)


def test_hdf5_but_not_nwb(tmp_path: Path) -> None:
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(CalciumAvaeError, match="HDF5 file but not an NWB file"):
        read_traces(path)


def test_nwb_without_roi_response_series(tmp_path: Path) -> None:
    nwbfile = new_file()
    nwbfile.add_acquisition(
        TimeSeries(name="running", data=np.arange(10.0), unit="m", rate=10.0, description="speed")
    )
    path = write_nwb(nwbfile, tmp_path / "empty.nwb")
    with pytest.raises(
        CalciumAvaeError, match=r"contains TimeSeries 'running'.*no RoiResponseSeries"
    ):
        read_traces(path)


def test_unknown_series_lists_available(suite2p_file: Path) -> None:
    with pytest.raises(CalciumAvaeError, match=r"available: .*Fluorescence/plane0"):
        read_traces(suite2p_file, "processing/ophys/Fluorescence/plane9")


def replace_data(path: Path, data: np.ndarray | None, **options) -> None:
    with h5py.File(path, "a") as f:
        group = f["processing/ophys/Fluorescence/RoiResponseSeries"]
        attrs = dict(group["data"].attrs)
        del group["data"]
        if data is None:
            group.create_dataset("data", shape=(N_FRAMES, N_ROIS), dtype="f4", **options)
        else:
            group.create_dataset("data", data=data, **options)
        group["data"].attrs.update(attrs)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"chunks": (N_FRAMES, 1)},
        {"chunks": (N_FRAMES, 1), "compression": "lzf"},
        {"chunks": (7, N_ROIS), "compression": "gzip"},
        {"chunks": (13, 3), "compression": "gzip", "shuffle": True},
        {"chunks": (13, 3), "compression": "gzip", "fletcher32": True},
    ],
)
def test_block_reads_match_for_any_storage(
    options: dict, tmp_path: Path, caiman_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("napari_calcium_avae.nwb.read._BLOCK_BYTES", 100)
    path = tmp_path / "stored.nwb"
    shutil.copy(caiman_file, path)
    replace_data(path, traces().T.astype(">f8"), **options)
    np.testing.assert_allclose(read_traces(path).data, traces())


def test_unwritten_chunks_read_as_fill_value(tmp_path: Path, caiman_file: Path) -> None:
    path = tmp_path / "partial.nwb"
    shutil.copy(caiman_file, path)
    replace_data(path, None, chunks=(50, 2), compression="gzip", fillvalue=-1.0)
    with h5py.File(path, "a") as f:
        f["processing/ophys/Fluorescence/RoiResponseSeries/data"][:50, :2] = 3.0
    data = read_traces(path).data
    assert (data[:2, :50] == 3).all() and (data[2:] == -1).all() and (data[:, 50:] == -1).all()


def test_voxel_mask_projects_onto_the_plane(tmp_path: Path) -> None:
    nwbfile = new_file()
    ophys, ps = plane_segmentation(nwbfile)
    for i in range(N_ROIS):
        r, c = roi_pixels(i)
        voxels = [(x, y, z, 0.5 + z) for x, y in zip(c, r, strict=True) for z in (0, 1)]
        ps.add_roi(voxel_mask=voxels)
    fl = Fluorescence(name="Fluorescence")
    ophys.add(fl)
    fl.create_roi_response_series(
        name="RoiResponseSeries",
        data=traces().T,
        unit="a.u.",
        rate=RATE,
        rois=ps.create_roi_table_region(region=list(range(N_ROIS)), description="all"),
        description="traces",
    )
    t = read_traces(write_nwb(nwbfile, tmp_path / "voxel.nwb"))
    assert len(t.masks[0]) == 30
    assert wide_roi_rows_cols(t.masks[0]) == ({2, 3, 4}, set(range(10, 20)))
    assert set(t.masks[0][:, 2]) == {1.5}
    assert t.image_shape == (16, 20)  # no image in the file: the extent of the masks
