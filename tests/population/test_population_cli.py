"""calcium-avae population: results files on a simulated session, one-line errors on bad input."""

import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from pynwb import NWBHDF5IO, NWBFile
from pynwb.ophys import Fluorescence, ImageSegmentation, OpticalChannel

from napari_calcium_avae.cli import main
from napari_calcium_avae.nwb.population import read_population


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in line for line in err), err
    assert err and err[-1].startswith("calcium-avae: error:"), err
    return err[-1]


def recording(path: Path, data: np.ndarray, rate: float = 10.0) -> Path:
    """A minimal NWB recording of ``data`` (ROIs x frames), one pixel per ROI."""
    nwbfile = NWBFile(
        session_description="population CLI test",
        identifier=str(uuid.uuid4()),
        session_start_time=datetime(2024, 5, 1, tzinfo=UTC),
    )
    device = nwbfile.create_device(name="Microscope", description="test")
    plane = nwbfile.create_imaging_plane(
        name="ImagingPlane",
        optical_channel=OpticalChannel(name="Green", description="g", emission_lambda=510.0),
        imaging_rate=rate,
        description="plane",
        device=device,
        excitation_lambda=920.0,
        indicator="GCaMP6s",
        location="cortex",
    )
    module = nwbfile.create_processing_module(name="ophys", description="ophys")
    segmentation = ImageSegmentation()
    module.add(segmentation)
    ps = segmentation.create_plane_segmentation(
        name="PlaneSegmentation", description="ROIs", imaging_plane=plane
    )
    for i in range(data.shape[0]):
        ps.add_roi(pixel_mask=[(i % 30, i // 30, 1.0)])
    fluorescence = Fluorescence()
    module.add(fluorescence)
    fluorescence.create_roi_response_series(
        name="RoiResponseSeries",
        data=np.ascontiguousarray(data.T, dtype=np.float32),
        rois=ps.create_roi_table_region(region=list(range(data.shape[0])), description="all"),
        unit="a.u.",
        rate=rate,
    )
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


def planted(n=30, frames=2000, seed=0) -> np.ndarray:
    """Two groups of 10 that fire together, and 10 independent neurons."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    spikes = rng.poisson(0.05, (n, frames)).astype(float)
    for rows in (slice(0, 10), slice(10, 20)):
        on = rng.random(frames) < 0.015
        spikes[rows, on] += rng.poisson(2.0, (10, on.sum()))
    calcium = lfilter([1.0], [1.0, -0.95], spikes, axis=1)
    return 42 * (1 + 0.113 * calcium) + rng.standard_normal((n, frames))


def test_population_writes_assemblies(tmp_path, capsys):
    source = recording(tmp_path / "rec.nwb", planted())
    out = tmp_path / "out" / "pop.nwb"
    (tmp_path / "out").mkdir()
    assert main(["population", str(source), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 assemblies (2 significant, from fluorescence)" in printed
    back = read_population(out)
    assert back.n_assemblies == 2
    groups = {frozenset(np.flatnonzero(back.labels == a)) for a in range(2)}
    assert groups == {frozenset(range(10)), frozenset(range(10, 20))}
    assert back.provenance["assemblies_input"] == "fluorescence"
    # an override, appended in place: the latest run is read back
    assert main(["population", str(source), "--in-place", "--assemblies", "1"]) == 0
    assert read_population(source).n_assemblies == 1


def test_population_states(tmp_path, capsys):
    pytest.importorskip("napari_calcium_avae.population.hmm")
    source = recording(tmp_path / "rec.nwb", planted(frames=400))
    out = tmp_path / "pop.nwb"
    args = ["population", str(source), "-o", str(out), "--assemblies", "none"]
    assert main([*args, "--states", "2", "--device", "cpu"]) == 0
    back = read_population(out)
    assert back.n_assemblies is None
    assert back.states.shape == (400,) and back.transmat.shape == (2, 2)


@pytest.mark.parametrize(
    ("data", "extra", "expected"),
    [
        (planted()[:1], [], "at least 2 ROIs"),
        (np.full((5, 200), np.nan), [], "usable ROI"),
        (planted(frames=10), [], "frames"),
        (planted(frames=300), ["--assemblies", "50"], "only 30 usable"),
        (planted(frames=300), ["--assemblies", "many"], "'auto', a number or 'none'"),
        (planted(frames=300), ["--assemblies", "none"], "nothing to do"),
    ],
)
def test_bad_input_one_line(tmp_path, capsys, data, extra, expected):
    source = recording(tmp_path / "rec.nwb", data)
    assert main(["population", str(source), "-o", str(tmp_path / "o.nwb"), *extra]) == 2
    assert expected in one_line_error(capsys)
    assert not (tmp_path / "o.nwb").exists()


def test_help_and_missing_output(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["population", "--help"])
    assert exc.value.code == 0
    assert "--assemblies" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["population", "x.nwb"])
    assert exc.value.code == 2
    assert "needs -o OUTPUT" in capsys.readouterr().err


def test_batch_goes_on_past_a_failed_input_and_resumes(tmp_path, capsys):
    good = recording(tmp_path / "good.nwb", planted(frames=600))
    bad = recording(tmp_path / "bad.nwb", planted(frames=10))
    out = tmp_path / "out"
    assert main(["population", str(good), str(bad), "-o", str(out)]) == 2
    assert "1 of 2 inputs failed" in one_line_error(capsys)
    assert read_population(out / "good_avae.nwb").n_assemblies is not None
    assert not (out / "bad_avae.nwb").exists()
    assert main(["population", str(good), "-o", str(out), "--resume"]) == 0
    assert "already holds population results" in capsys.readouterr().err


def test_population_assembly_method_is_recorded(tiny_sessions, tmp_path):
    out = tmp_path / "events.nwb"
    code = main(
        [
            "population",
            str(tiny_sessions[0]),
            "-o",
            str(out),
            "--assemblies",
            "2",
            "--assembly-method",
            "events",
        ]
    )
    assert code == 0
    assert read_population(out).provenance["assemblies_method"] == "events"
