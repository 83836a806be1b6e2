"""A careful user's worst day on the command line: wrong paths, existing files, absurd
values, Ctrl-C. Every case ends in one line and status 2 (130 for Ctrl-C), and nothing
the user owns changes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import torch

from cli_output import one_line_error
from napari_calcium_avae import files as files_module
from napari_calcium_avae.cli import main
from napari_calcium_avae.files import TEMP_MARKER
from napari_calcium_avae.model import AVAE, load_model
from napari_calcium_avae.nwb import read_traces

SMALL = ["--model", "avae", "--hidden-size", "8", "--latent-size", "2", "--epochs", "2"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def model_path(tiny_sessions, tmp_path_factory) -> Path:
    model = AVAE(hidden_size=8, latent_size=2, max_epochs=2, timing_channels=0, random_state=0)
    model.fit(read_traces(tiny_sessions[0]).data)
    return model.save(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture
def two_sessions(tiny_sessions, tmp_path) -> list[Path]:
    """Copies of two sessions in a folder of their own, safe to damage."""
    folder = tmp_path / "data"
    folder.mkdir()
    return [Path(shutil.copy(s, folder / s.name)) for s in tiny_sessions[:2]]


# --- inputs are never modified, existing files never replaced without --overwrite ------


def test_fit_refuses_to_write_over_its_own_input(two_sessions, capsys):
    before = _digest(two_sessions[0])
    assert main(["fit", *map(str, two_sessions), "-o", str(two_sessions[0]), *SMALL]) == 2
    assert "is one of the inputs" in one_line_error(capsys)
    assert _digest(two_sessions[0]) == before


def test_apply_refuses_to_replace_an_unrelated_file(model_path, two_sessions, capsys):
    a, b = two_sessions
    before = _digest(b)
    assert main(["apply", str(model_path), str(a), "-o", str(b), "--embedding", "pca"]) == 2
    assert "exists; choose another name or overwrite (--overwrite)" in one_line_error(capsys)
    assert _digest(b) == before
    out = b.with_name("new.nwb")
    out.write_bytes(b"an earlier result")
    args = ["apply", str(model_path), str(a), "-o", str(out), "--embedding", "pca"]
    assert main(args) == 2 and out.read_bytes() == b"an earlier result"
    capsys.readouterr()
    assert main([*args, "--overwrite"]) == 0
    assert read_traces(out).n_rois == read_traces(a).n_rois


def test_a_second_run_to_the_same_output_is_refused(model_path, two_sessions, capsys):
    out = two_sessions[0].parent / "out.nwb"
    args = ["apply", str(model_path), str(two_sessions[0]), "-o", str(out), "--embedding", "pca"]
    assert main(args) == 0
    written = _digest(out)
    args[2] = str(two_sessions[1])
    assert main(args) == 2
    assert "exists" in one_line_error(capsys)
    assert _digest(out) == written


def test_fit_refuses_an_existing_checkpoint_unless_told(model_path, two_sessions, capsys):
    target = two_sessions[0].parent / "model.pt"
    shutil.copy(model_path, target)
    before = _digest(target)
    assert main(["fit", str(two_sessions[0]), "-o", str(target), *SMALL]) == 2
    assert "exists" in one_line_error(capsys) and _digest(target) == before
    assert main(["fit", str(two_sessions[0]), "-o", str(target), *SMALL, "--overwrite"]) == 0
    assert _digest(target) != before and load_model(target).n_features_in_ > 0


# --- folder inputs: no temporaries, no result files, no duplicates ---------------------


def test_folder_inputs_skip_temporaries_hidden_files_and_results(model_path, two_sessions, capsys):
    folder = two_sessions[0].parent
    # what a killed run leaves, a hidden copy, and a result written beside the recordings
    (folder / f".out{TEMP_MARKER}-0123456789ab.nwb").write_bytes(b"\x89HDF\r\n half a file")
    shutil.copy(two_sessions[0], folder / ".hidden.nwb")
    assert main(["apply", str(model_path), str(two_sessions[0]), "-o", str(folder)]) == 0
    capsys.readouterr()
    assert main(["fit", str(folder), "-o", str(folder.parent / "m.pt"), *SMALL]) == 0
    err = capsys.readouterr().err
    n_rois = sum(read_traces(s).n_rois for s in two_sessions)
    assert f"training on {n_rois} ROIs from 2 file(s)" in err
    assert "skipped 1 result file(s)" in err
    # asked to take result files too: the same recording twice is refused
    args = ["fit", str(folder), "-o", str(folder.parent / "m2.pt"), *SMALL, "--include-results"]
    assert main(args) == 2
    assert "hold the same recording" in one_line_error(capsys)


def test_the_same_file_twice_is_an_error(model_path, two_sessions, capsys):
    a = two_sessions[0]
    before = _digest(a)
    again = a.parent / ".." / a.parent.name / a.name
    assert main(["apply", str(model_path), str(a), str(again), "--in-place"]) == 2
    assert "is given twice" in one_line_error(capsys)
    assert _digest(a) == before


def test_temporaries_of_a_killed_run_are_removed_by_the_next(model_path, two_sessions, capsys):
    folder = two_sessions[0].parent / "results"
    folder.mkdir()
    stale = folder / f".{two_sessions[0].stem}_avae{TEMP_MARKER}-0123456789ab.nwb"
    stale.write_bytes(b"half a file")
    args = ["apply", str(model_path), str(two_sessions[0]), "-o", str(folder), "--embedding", "pca"]
    assert main(args) == 0
    assert "removed 1 temporary file(s)" in capsys.readouterr().err
    assert not stale.exists()
    assert sorted(p.name for p in folder.iterdir()) == [f"{two_sessions[0].stem}_avae.nwb"]


# --- bad outputs fail before any work ---------------------------------------------------


def test_bad_outputs_fail_before_training(two_sessions, tmp_path, capsys, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(AVAE, "fit_iter", no_training)
    a = str(two_sessions[0])
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("x")
    for output, message in [
        (tmp_path / "folder", "is a folder; give a file name for the model"),
        (tmp_path / "a_file" / "m.pt", "a_file is a file; give a folder"),
    ]:
        assert main(["fit", a, "-o", str(output), *SMALL]) == 2
        assert message in one_line_error(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_a_read_only_output_folder_fails_before_training(two_sessions, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["fit", str(two_sessions[0]), "-o", str(locked / "m.pt"), *SMALL]) == 2
        assert "cannot write to the folder" in one_line_error(capsys)
        assert "training" not in capsys.readouterr().err
    finally:
        locked.chmod(0o755)


def test_apply_output_mistakes(model_path, two_sessions, capsys):
    m, a, b = str(model_path), str(two_sessions[0]), str(two_sessions[1])
    same = two_sessions[0].parent / "same.nwb"
    assert main(["apply", m, a, "--in-place", "-o", str(same)]) == 2
    assert "--in-place writes into the inputs" in one_line_error(capsys)
    assert main(["apply", m, a, b, "-o", str(same)]) == 2
    assert "names one file for 2 inputs" in one_line_error(capsys)
    assert not same.exists()


def test_a_checkpoint_with_an_impossible_length_is_one_line(model_path, two_sessions, capsys):
    payload = torch.load(model_path, map_location="cpu", weights_only=True)
    config = json.loads(payload["config"])
    config["n_frames"] = -1
    payload["config"] = json.dumps(config)
    bad = two_sessions[0].parent / "bad.pt"
    torch.save(payload, bad)
    out = two_sessions[0].parent / "o.nwb"
    assert main(["apply", str(bad), str(two_sessions[0]), "-o", str(out)]) == 2
    assert "damaged" in one_line_error(capsys)


# --- simulate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--duration", "nan"], "must be positive numbers"),
        (["--duration", "inf"], "must be positive numbers"),
        (["--frame-rate", "nan"], "Frame rate must be a positive number"),
        (["--frame-rate", "inf"], "Frame rate must be a positive number"),
        (["--seed", "-1"], "seed must be between 0 and 2\\*\\*32 - 1"),
        (["--noise", "nan"], "finite sigma"),
        (["--frame-rate", "1e9"], "GB of memory"),
        (["--duration", "1e7"], "GB of memory"),
    ],
)
def test_simulate_refuses_impossible_values_before_running(tmp_path, capsys, option, message):
    import re

    out = tmp_path / "cultures"
    assert main(["simulate", "-o", str(out), *option]) == 2
    assert re.search(message, one_line_error(capsys))
    assert not out.exists()


def test_simulate_never_replaces_a_file_or_sessions(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    assert main(["simulate", "-o", str(a_file)]) == 2
    assert "is a file" in one_line_error(capsys) and a_file.read_text() == "mine"
    args = ["--types", "RS", "--cultures-per-type", "1", "--neurons", "5", "--duration", "3"]
    args += ["--frame-rate", "10", "--dish-size", "1"]
    out = tmp_path / "cultures"
    assert main(["simulate", "-o", str(out), *args]) == 0
    (session,) = out.rglob("*.nwb")
    before = _digest(session)
    assert main(["simulate", "-o", str(out), *args, "--seed", "1"]) == 2
    assert "exists; choose another folder or overwrite (--overwrite)" in one_line_error(capsys)
    assert _digest(session) == before
    assert main(["simulate", "-o", str(out), *args, "--seed", "1", "--overwrite"]) == 0
    assert _digest(session) != before


def test_a_failed_simulation_leaves_no_empty_folders(tmp_path, capsys):
    out = tmp_path / "new" / "cultures"
    # 50 ms of a tiny dish: no neuron spikes, so the first culture fails
    args = ["--types", "RS", "--cultures-per-type", "1", "--duration", "0.05", "--dish-size", "0.2"]
    assert main(["simulate", "-o", str(out), *args]) == 2
    assert "no neuron spiked" in one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []


# --- Ctrl-C -----------------------------------------------------------------------------


def _ctrl_c_during_fsync(monkeypatch) -> list[Path]:
    """Send this process SIGINT while each file is being made durable, as a user pressing
    Ctrl-C in the middle of a write would."""
    synced: list[Path] = []
    original = files_module.fsync_file

    def interrupted(path):
        synced.append(Path(path))
        os.kill(os.getpid(), signal.SIGINT)
        original(path)

    monkeypatch.setattr(files_module, "fsync_file", interrupted)
    return synced


def test_ctrl_c_during_an_in_place_write_finishes_it_and_says_so(
    model_path, two_sessions, capsys, monkeypatch
):
    synced = _ctrl_c_during_fsync(monkeypatch)
    args = ["apply", str(model_path), *map(str, two_sessions), "--in-place"]
    assert main([*args, "--embedding", "pca"]) == 130
    assert len(synced) == 1
    assert "interrupted: 1 of 2 result files were written" in capsys.readouterr().err
    with h5py.File(two_sessions[0], "r") as f:
        assert "calcium_avae" in f["processing"]
    with h5py.File(two_sessions[1], "r") as f:
        assert "calcium_avae" not in f["processing"]
    # one input: the interrupted write was the last, so the run succeeded
    monkeypatch.undo()
    _ctrl_c_during_fsync(monkeypatch)
    out = two_sessions[0].parent / "one.nwb"
    args = ["apply", str(model_path), str(two_sessions[1]), "-o", str(out), "--embedding", "pca"]
    assert main(args) == 0
    assert read_traces(out).n_rois > 0


def test_ctrl_c_during_the_checkpoint_save_keeps_the_model(two_sessions, capsys, monkeypatch):
    _ctrl_c_during_fsync(monkeypatch)
    target = two_sessions[0].parent / "m.pt"
    assert main(["fit", str(two_sessions[0]), "-o", str(target), *SMALL]) == 0
    assert "saved model to" in capsys.readouterr().out
    assert load_model(target).history_


def test_ctrl_c_during_interpreter_exit_prints_no_traceback(tiny_sessions):
    # an exit handler that takes a moment, as finalisers of torch or HDF5 can; Ctrl-C then
    script = (
        "import atexit, os, signal, time\n"
        "from napari_calcium_avae.cli import run\n"
        "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.2)))\n"
        "run()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "inspect", str(tiny_sessions[0])],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr
    assert "RoiResponseSeries" in done.stdout


def test_large_inputs_get_a_fast_embedding_and_say_each_step(
    model_path, two_sessions, capsys, monkeypatch
):
    from napari_calcium_avae.analysis import embedding
    from napari_calcium_avae.nwb import read_results

    out = two_sessions[0].parent / "big.nwb"
    args = ["apply", str(model_path), str(two_sessions[0]), "-o", str(out)]
    monkeypatch.setattr(embedding, "TSNE_MAX_POINTS", 5)  # "large" for a 12-ROI recording
    assert main(args) == 0
    steps = capsys.readouterr().err
    for step in ("encoding 12 ROIs of 1 recording(s)", "clustering", "embedding the latents"):
        assert step in steps
    assert "in 2-D (pca)" in steps
    assert read_results(out).provenance["embedding"] == "pca"
    monkeypatch.undo()
    assert main([*args, "--overwrite"]) == 0
    assert "in 2-D (tsne)" in capsys.readouterr().err
    assert read_results(out).provenance["embedding"] == "tsne"


def test_a_disk_too_full_for_the_output_is_refused_before_writing(
    model_path, two_sessions, capsys, monkeypatch
):
    import shutil as shutil_module
    from collections import namedtuple

    real = shutil_module.disk_usage
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage(10**9, 10**9, 10**6))
    a = two_sessions[0]
    before = _digest(a)
    out = a.parent / "out.nwb"
    assert main(["apply", str(model_path), str(a), "-o", str(out), "--embedding", "pca"]) == 2
    assert "not enough space in" in one_line_error(capsys)
    assert main(["apply", str(model_path), str(a), "--in-place", "--embedding", "pca"]) == 2
    assert "MB are free" in one_line_error(capsys)
    assert main(["fit", str(a), "-o", str(a.parent / "m.pt"), *SMALL]) == 2
    err = capsys.readouterr().err
    assert "not enough space" in err and "training" not in err  # refused before training
    assert not out.exists() and not (a.parent / "m.pt").exists() and _digest(a) == before
    assert not [p for p in a.parent.iterdir() if TEMP_MARKER in p.name]
    monkeypatch.setattr(shutil_module, "disk_usage", real)
    assert main(["apply", str(model_path), str(a), "-o", str(out), "--embedding", "pca"]) == 0
