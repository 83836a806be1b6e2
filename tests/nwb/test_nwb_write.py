"""Results written to NWB: new file by default, valid for DANDI, read back with the traces."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from nwb_files import roi_pixels

from napari_calcium_avae import Results
from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.nwb import (
    list_series,
    read_reconstruction,
    read_results,
    read_traces,
    write_results,
)
from napari_calcium_avae.nwb.validate import dandi_validate_problems, validation_problems


def make_results(n: int, n_frames: int, data: np.ndarray, seed: int = 0) -> Results:
    rng = np.random.default_rng(seed)
    return Results(
        latents=rng.normal(size=(n, 3)),
        labels=np.array([0, 1, -1, 0][:n]),
        probabilities=np.array([0.75, 1.0, 0.0, 0.5][:n]),
        outlier_scores=np.array([0.25, 0.0, np.nan, 0.5][:n]),
        embedding=rng.normal(size=(n, 2)),
        reconstruction=data * 0.9 + seed,
        provenance={"D1": 32, "D2": 3, "beta": 0.5, "seed": seed},
    )


def by_pixel(mask: np.ndarray) -> np.ndarray:
    """(row, col, weight) rows sorted by row, then col."""
    return mask[np.lexsort((mask[:, 1], mask[:, 0]))]


def written_mask(layout: str, row: int) -> np.ndarray:
    """ROI `row`'s mask as nwb_files built it: (row, col, weight), napari orientation."""
    r, c = roi_pixels(row)
    weights = np.linspace(1.0, 2.0, len(r)) if layout == "suite2p_file" else np.ones(len(r))
    return by_pixel(np.column_stack([r, c, weights]))


def digest(path: Path) -> tuple[str, float]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime


def root_attrs(path: Path) -> tuple[str, str]:
    with h5py.File(path, "r") as f:
        return f["identifier"][()].decode(), f.attrs["object_id"]


@pytest.mark.parametrize("layout", ["suite2p_file", "caiman_file", "neuroconv_file"])
def test_round_trip_new_file(layout: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    source: Path = request.getfixturevalue(layout)
    before = digest(source)
    traces = read_traces(source)
    results = make_results(traces.n_rois, traces.n_frames, traces.data)
    out = write_results(traces, results, tmp_path / "out.nwb")

    assert out == tmp_path / "out.nwb"
    assert digest(source) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert validation_problems(out) == []
    identifier, object_id = root_attrs(out)
    assert identifier != root_attrs(source)[0] and object_id != root_attrs(source)[1]

    back = read_traces(out)
    assert back.series_path == traces.series_path
    np.testing.assert_allclose(back.data, traces.data)
    assert back.image_shape == traces.image_shape and back.images.keys() == traces.images.keys()
    # against the masks the fixture wrote, not against the reader's own view of the source
    assert len(back.masks) == len(back.roi_rows) == traces.n_rois
    for row, got in zip(back.roi_rows, back.masks, strict=True):
        np.testing.assert_allclose(by_pixel(got), written_mask(layout, int(row)), rtol=1e-6)
    table = back.roi_table
    np.testing.assert_allclose(
        table[["latent_0", "latent_1", "latent_2"]].to_numpy(), results.latents, rtol=1e-6
    )
    np.testing.assert_array_equal(table["cluster"], results.labels)
    # membership and outlier score sit next to the label; NaN (no score) stays NaN
    np.testing.assert_array_equal(table["cluster_probability"], results.probabilities)
    np.testing.assert_array_equal(table["outlier_score"], results.outlier_scores)
    np.testing.assert_allclose(table[["embedding_0", "embedding_1"]], results.embedding, rtol=1e-6)
    stored = read_results(out)
    np.testing.assert_array_equal(stored.probabilities, results.probabilities)
    np.testing.assert_array_equal(stored.outlier_scores, results.outlier_scores)

    recon = read_traces(out, "processing/calcium_avae/reconstruction")
    np.testing.assert_allclose(recon.data, results.reconstruction, rtol=1e-6)
    np.testing.assert_array_equal(recon.roi_rows, traces.roi_rows)
    assert recon.unit == traces.unit
    assert recon.rate == traces.rate and recon.starting_time == traces.starting_time
    if traces.timestamps is not None:
        np.testing.assert_array_equal(recon.timestamps, traces.timestamps)
    with h5py.File(out, "r") as f:
        description = f["processing/calcium_avae/results"].attrs["description"]
    assert f"source series: {traces.series_path};" in description
    assert "beta=0.5" in description and "napari-calcium-avae" in description


def test_rerun_adds_numbered_results_and_reads_latest(neuroconv_file: Path, tmp_path: Path) -> None:
    traces = read_traces(neuroconv_file)
    first = write_results(traces, make_results(4, traces.n_frames, traces.data), tmp_path / "a.nwb")
    again = read_traces(first)
    second_results = make_results(4, traces.n_frames, traces.data, seed=7)
    second = write_results(again, second_results, tmp_path / "b.nwb")
    paths = [s.path for s in list_series(second)]
    assert "processing/calcium_avae/reconstruction" in paths
    assert "processing/calcium_avae/reconstruction_2" in paths
    assert not any(s.is_default for s in list_series(second) if "calcium_avae" in s.path)
    latest = read_traces(second).roi_table
    np.testing.assert_allclose(latest["latent_0"], second_results.latents[:, 0], rtol=1e-6)
    np.testing.assert_allclose(read_reconstruction(second), second_results.reconstruction)
    assert read_reconstruction(neuroconv_file) is None
    assert validation_problems(second) == []
    assert dandi_validate_problems(second) == []


def test_in_place_appends_to_the_source(caiman_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "copy.nwb"
    shutil.copy(caiman_file, path)
    traces = read_traces(path)
    results = Results(latents=np.ones((4, 2)), reconstruction=traces.data + 1)
    assert write_results(traces, results, None, in_place=True) == path
    assert list(read_traces(path).roi_table.columns) == ["latent_0", "latent_1"]
    recon = read_traces(path, "processing/calcium_avae/reconstruction")
    np.testing.assert_allclose(recon.data, traces.data + 1)
    assert validation_problems(path) == []


def test_latents_only(caiman_file: Path, tmp_path: Path) -> None:
    traces = read_traces(caiman_file)
    out = write_results(traces, Results(latents=np.ones((4, 1))), tmp_path / "o.nwb")
    assert list(read_traces(out).roi_table.columns) == ["latent_0"]
    assert read_reconstruction(out) is None
    assert "processing/calcium_avae/reconstruction" not in [s.path for s in list_series(out)]
    assert validation_problems(out) == []


def test_output_equal_to_input_is_refused(caiman_file: Path) -> None:
    traces = read_traces(caiman_file)
    before = digest(caiman_file)
    with pytest.raises(CalciumAvaeError, match="is the input file"):
        write_results(traces, Results(latents=np.zeros((4, 2))), caiman_file)
    with pytest.raises(CalciumAvaeError, match="give an output path"):
        write_results(traces, Results(latents=np.zeros((4, 2))), None)
    assert digest(caiman_file) == before


def test_results_of_other_traces_are_refused(caiman_file: Path, tmp_path: Path) -> None:
    traces = read_traces(caiman_file)
    with pytest.raises(CalciumAvaeError, match="3 ROIs but the traces have 4"):
        write_results(traces, Results(latents=np.zeros((3, 2))), tmp_path / "o.nwb")
    bad = Results(latents=np.zeros((4, 2)), reconstruction=np.zeros((4, 5)))
    with pytest.raises(CalciumAvaeError, match="reconstruction has shape"):
        write_results(traces, bad, tmp_path / "o.nwb")
    assert [p.name for p in tmp_path.iterdir()] == ["caiman.nwb"]


def test_missing_output_folder(caiman_file: Path, tmp_path: Path) -> None:
    traces = read_traces(caiman_file)
    with pytest.raises(CalciumAvaeError, match="does not exist"):
        write_results(traces, Results(latents=np.zeros((4, 2))), tmp_path / "no" / "o.nwb")


def test_in_place_refuses_a_file_open_for_writing(caiman_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "busy.nwb"
    shutil.copy(caiman_file, path)
    traces = read_traces(path)
    with (
        h5py.File(path, "a"),
        pytest.raises(CalciumAvaeError, match=r"open for writing elsewhere; close it first"),
    ):
        write_results(traces, Results(latents=np.ones((4, 2))), None, in_place=True)
    assert "calcium_avae" not in [s.path.split("/")[1] for s in list_series(path)]


def test_in_place_beside_a_reader_replaces_the_file_whole(caiman_file: Path, tmp_path: Path):
    """A reader keeps the version it opened; the file on disk gets the results."""
    path = tmp_path / "read.nwb"
    shutil.copy(caiman_file, path)
    traces = read_traces(path)
    with h5py.File(path, "r") as reader:
        before = sorted(reader)
        write_results(traces, Results(latents=np.ones((4, 2))), None, in_place=True)
        assert sorted(reader) == before
    with h5py.File(path, "r") as after:
        assert "calcium_avae" in after["processing"]


def test_inferred_spikes_and_kinetics_round_trip(suite2p_file: Path, tmp_path: Path) -> None:
    traces = read_traces(suite2p_file)
    n = traces.n_rois
    rng = np.random.default_rng(1)
    results = Results(
        spike_rates=rng.poisson(0.2, size=traces.data.shape).astype(np.float32),
        decay_s=np.linspace(0.5, 1.5, n),
        spike_gain=np.full(n, 3.0),
        noise_sd=np.linspace(0.1, 0.4, n),
        provenance={"model": "SpikeInference", "ar_order": 1},
    )
    out = write_results(traces, results, tmp_path / "spikes.nwb")
    back = read_results(out)
    assert back.latents is None and back.reconstruction is None
    np.testing.assert_array_equal(back.spike_rates, results.spike_rates)
    for name in ("decay_s", "spike_gain", "noise_sd"):
        np.testing.assert_allclose(getattr(back, name), getattr(results, name), rtol=1e-6)
    assert back.provenance["model"] == "SpikeInference"
    # the rates are never taken for fluorescence, and say what they are
    assert read_traces(out).series_path == traces.series_path
    (info,) = [s for s in list_series(out) if s.path.endswith("inferred_spikes")]
    assert info.unit == "spikes per frame" and not info.is_default
    assert validation_problems(out) == []
    with pytest.raises(CalciumAvaeError, match="the spike_rates has shape"):
        bad = Results(spike_rates=np.zeros((n, 3)))
        write_results(traces, bad, tmp_path / "bad.nwb")


def test_subject_gaps_name_what_dandi_requires() -> None:
    from datetime import UTC, datetime

    from nwb_files import new_file
    from pynwb import NWBFile
    from pynwb.file import Subject

    from napari_calcium_avae.nwb.validate import subject_gaps

    assert subject_gaps(new_file()) == []

    def with_subject(**fields) -> NWBFile:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        subject = Subject(**fields) if fields else None
        return NWBFile("s", "id", start, subject=subject)

    assert subject_gaps(with_subject()) == ["the subject itself"]
    fish = {"subject_id": "z1", "species": "Danio rerio", "sex": "U"}
    assert subject_gaps(with_subject(**fish)) == ["age (or date of birth)"]
    born = datetime(2025, 12, 25, tzinfo=UTC)
    assert subject_gaps(with_subject(**fish, date_of_birth=born)) == []
    assert subject_gaps(with_subject(**{**fish, "sex": "female"}, age="P7D")) == [
        "sex (one of M, F, U, O)"
    ]


def test_a_source_without_the_subjects_age_is_written_with_a_warning(
    caiman_file: Path, tmp_path: Path
) -> None:
    from napari_calcium_avae.errors import CalciumAvaeWarning

    source = tmp_path / "no_age.nwb"
    shutil.copy(caiman_file, source)
    with h5py.File(source, "a") as f:
        del f["general/subject/age"]
    traces = read_traces(source)
    out = tmp_path / "out.nwb"
    with pytest.warns(CalciumAvaeWarning, match=r"out\.nwb lacks .*: age \(or date of birth\)"):
        write_results(traces, Results(latents=np.zeros((traces.n_rois, 2))), out)
    assert read_results(out).latents.shape == (traces.n_rois, 2)  # written all the same
