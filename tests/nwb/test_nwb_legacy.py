"""Files written by pynwb 2.x / hdmf 3.x read, export and append with today's pynwb.

The fixtures in tests/nwb/data/ were written by make_legacy_files.py with pynwb 2.8.3,
hdmf 3.14.6 and numpy 1.26.4 (NWB schema 2.7.0, cached in the files); the expected
arrays are recomputed from that module's numpy-only functions, and checked against raw
h5py reads as well. Tests only ever touch copies in tmp_path.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import make_legacy_files as legacy
import numpy as np
import pytest

from napari_calcium_avae import Results
from napari_calcium_avae.nwb import list_series, read_reconstruction, read_traces, write_results
from napari_calcium_avae.nwb.validate import dandi_validate_problems, validation_problems

SUITE2P_F = "processing/ophys/Fluorescence/plane0"
SUITE2P_NEUROPIL = "processing/ophys/Neuropil/plane0"
CAIMAN_DFF = "processing/ophys/DfOverF/RoiResponseSeries"
CAIMAN_F = "processing/ophys/Fluorescence/RoiResponseSeries"
RECONSTRUCTION = "processing/calcium_avae/reconstruction"


def copy_of(source: Path, tmp_path: Path) -> Path:
    path = tmp_path / source.name
    shutil.copy(source, path)
    return path


@pytest.fixture
def suite2p_copy(tmp_path: Path) -> Path:
    return copy_of(legacy.SUITE2P_FILE, tmp_path)


@pytest.fixture
def caiman_copy(tmp_path: Path) -> Path:
    return copy_of(legacy.CAIMAN_FILE, tmp_path)


def expected_mask(i: int) -> np.ndarray:
    r, c = legacy.roi_pixels(i)
    return np.column_stack([r, c, legacy.roi_weights(i)])


def make_results(data: np.ndarray) -> Results:
    n = len(data)
    return Results(
        latents=np.arange(3 * n, dtype=np.float32).reshape(n, 3),
        labels=np.array([0, 0, 1, 1, -1, 0][:n]),
        embedding=np.linspace(-1, 1, 2 * n).reshape(n, 2),
        reconstruction=data * 0.5 + 1,
        provenance={"D2": 3, "seed": 11},
    )


@pytest.mark.parametrize(
    "source", [legacy.SUITE2P_FILE, legacy.CAIMAN_FILE], ids=["suite2p", "caiman"]
)
def test_fixtures_are_pynwb2_files_fit_for_dandi(source: Path, tmp_path: Path) -> None:
    path = copy_of(source, tmp_path)
    with h5py.File(path, "r") as f:
        assert f.attrs["nwb_version"] == "2.7.0"
        assert list(f["specifications/core"]) == ["2.7.0"]
        assert "pynwb 2.8.3, hdmf 3.14.6" in f["general/source_script"][()].decode()
    assert validation_problems(path) == []


def test_list_series_defaults(suite2p_copy: Path, caiman_copy: Path) -> None:
    suite2p = {s.path: s for s in list_series(suite2p_copy)}
    assert suite2p.keys() == {SUITE2P_F, SUITE2P_NEUROPIL}
    assert [p for p, s in suite2p.items() if s.is_default] == [SUITE2P_F]
    assert suite2p[SUITE2P_F].rate == legacy.RATE and suite2p[SUITE2P_F].unit == "lumens"
    assert (suite2p[SUITE2P_F].n_rois, suite2p[SUITE2P_F].n_frames) == (6, 200)

    caiman = {s.path: s for s in list_series(caiman_copy)}
    assert caiman.keys() == {CAIMAN_DFF, CAIMAN_F}
    assert [p for p, s in caiman.items() if s.is_default] == [CAIMAN_DFF]
    assert caiman[CAIMAN_DFF].rate is None and caiman[CAIMAN_DFF].unit == "n.a."


def test_read_suite2p(suite2p_copy: Path) -> None:
    traces = read_traces(suite2p_copy)
    assert traces.series_path == SUITE2P_F
    np.testing.assert_array_equal(traces.data, legacy.fluorescence())
    with h5py.File(suite2p_copy, "r") as f:
        np.testing.assert_array_equal(traces.data, f[SUITE2P_F]["data"][()].T)
    assert traces.rate == legacy.RATE and traces.timestamps is None
    assert traces.unit == "lumens"
    np.testing.assert_array_equal(traces.roi_rows, np.arange(6))
    np.testing.assert_array_equal(traces.roi_ids, np.arange(6))
    # suite2p's (ypix, xpix, lam) rows: ypix is the napari row
    for i, mask in enumerate(traces.masks):
        np.testing.assert_allclose(mask, expected_mask(i), rtol=1e-6)
    assert traces.image_shape == (legacy.ROWS, legacy.COLS)
    assert traces.images.keys() == {"meanImg", "max_proj"}
    np.testing.assert_array_equal(traces.images["meanImg"], legacy.image())
    np.testing.assert_array_equal(traces.images["max_proj"], legacy.image(2.0))
    np.testing.assert_allclose(traces.roi_table["iscell_1"], 0.9 - 0.1 * np.arange(6))

    neuropil = read_traces(suite2p_copy, SUITE2P_NEUROPIL)
    np.testing.assert_array_equal(neuropil.data, legacy.neuropil())


def test_read_caiman(caiman_copy: Path) -> None:
    rows = legacy.CAIMAN_DFF_ROWS
    traces = read_traces(caiman_copy)
    assert traces.series_path == CAIMAN_DFF
    np.testing.assert_array_equal(traces.data, legacy.dff()[rows])
    with h5py.File(caiman_copy, "r") as f:
        np.testing.assert_array_equal(traces.data, f[CAIMAN_DFF]["data"][()].T)
    assert traces.rate is None
    np.testing.assert_array_equal(traces.timestamps, legacy.timestamps())
    assert traces.starting_time == legacy.timestamps()[0]
    # the region holds table rows (out of order), not the ROI ids
    np.testing.assert_array_equal(traces.roi_rows, rows)
    np.testing.assert_array_equal(traces.roi_ids, legacy.CAIMAN_IDS[rows])
    # image_mask is (n, x, y): x is the napari column
    for row, mask in zip(rows, traces.masks, strict=True):
        np.testing.assert_allclose(mask, expected_mask(row), rtol=1e-6)
    assert traces.image_shape == (legacy.ROWS, legacy.COLS)
    assert traces.images.keys() == {"mean", "correlation"}
    np.testing.assert_array_equal(traces.images["mean"], legacy.image())
    np.testing.assert_array_equal(traces.images["correlation"], legacy.image(0.5))
    np.testing.assert_array_equal(traces.roi_table["accepted"], (rows % 2 == 0).astype(int))

    raw = read_traces(caiman_copy, CAIMAN_F)
    np.testing.assert_array_equal(raw.data, legacy.fluorescence())
    np.testing.assert_array_equal(raw.roi_rows, np.arange(6))
    np.testing.assert_array_equal(raw.timestamps, legacy.timestamps())


def assert_results_read_back(path: Path, traces, results: Results) -> None:
    back = read_traces(path)
    assert back.series_path == traces.series_path
    np.testing.assert_array_equal(back.data, traces.data)
    # against the masks the legacy file was made with, not the reader's view of the source
    np.testing.assert_array_equal(back.roi_rows, traces.roi_rows)
    for row, got in zip(back.roi_rows, back.masks, strict=True):
        np.testing.assert_allclose(got, expected_mask(row), rtol=1e-6)
    table = back.roi_table
    np.testing.assert_allclose(table[["latent_0", "latent_1", "latent_2"]], results.latents)
    np.testing.assert_array_equal(table["cluster"], results.labels)
    np.testing.assert_allclose(table[["embedding_0", "embedding_1"]], results.embedding, rtol=1e-6)
    np.testing.assert_allclose(read_reconstruction(path), results.reconstruction, rtol=1e-6)
    recon = read_traces(path, RECONSTRUCTION)
    np.testing.assert_array_equal(recon.roi_rows, traces.roi_rows)
    assert recon.unit == traces.unit and recon.rate == traces.rate
    if traces.timestamps is not None:
        np.testing.assert_array_equal(recon.timestamps, traces.timestamps)
    assert validation_problems(path) == []


@pytest.mark.parametrize("layout", ["suite2p_copy", "caiman_copy"])
def test_export_from_legacy_file(
    layout: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source: Path = request.getfixturevalue(layout)
    before = source.read_bytes()
    traces = read_traces(source)
    results = make_results(traces.data)
    out = write_results(traces, results, tmp_path / "out.nwb")
    assert source.read_bytes() == before
    with h5py.File(out, "r") as f, h5py.File(source, "r") as g:
        assert f["identifier"][()] != g["identifier"][()]
    assert_results_read_back(out, traces, results)


def test_export_from_legacy_file_passes_dandi_validate(caiman_copy: Path, tmp_path: Path) -> None:
    traces = read_traces(caiman_copy)
    out = write_results(traces, make_results(traces.data), tmp_path / "out.nwb")
    assert dandi_validate_problems(out) == []


@pytest.mark.parametrize("layout", ["suite2p_copy", "caiman_copy"])
def test_in_place_append_to_legacy_file(layout: str, request: pytest.FixtureRequest) -> None:
    """Appending adds new objects and grows no existing table, so unchunked tables are fine."""
    path: Path = request.getfixturevalue(layout)
    traces = read_traces(path)
    results = make_results(traces.data)
    assert write_results(traces, results, None, in_place=True) == path
    assert_results_read_back(path, traces, results)

    again = Results(latents=np.full((6, 3), 7.0))
    assert write_results(read_traces(path), again, None, in_place=True) == path
    np.testing.assert_array_equal(read_traces(path).roi_table["latent_0"], np.full(6, 7.0))
    assert RECONSTRUCTION in [s.path for s in list_series(path)]
    assert validation_problems(path) == []
