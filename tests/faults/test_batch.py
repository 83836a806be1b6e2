"""Batch runs that survive interruption: a run killed midway and rerun with --resume ends
with the outputs of an uninterrupted run; a failed input is reported and the others go
on; an existing output is skipped only when it holds this run's results."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cli_output import one_line_error
from napari_calcium_avae.cli import main
from napari_calcium_avae.files import is_own_temporary
from napari_calcium_avae.model import AVAE
from napari_calcium_avae.nwb import read_results, read_traces
from napari_calcium_avae.spikes import SpikeInference


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def data(tiny_sessions, tmp_path) -> Path:
    """A folder of three different recordings."""
    folder = tmp_path / "data"
    folder.mkdir()
    for session in tiny_sessions:
        shutil.copy(session, folder / session.name)
    return folder


def _assert_same_outputs(folder: Path, reference: Path) -> None:
    """Every result file holds what the reference run wrote: the recording and results."""
    names = sorted(p.name for p in reference.iterdir())
    assert sorted(p.name for p in folder.iterdir()) == names  # no temporaries either
    for name in names:
        a, b = read_results(folder / name), read_results(reference / name)
        for field in ("spike_rates", "decay_s", "spike_gain", "noise_sd", "latents", "labels"):
            x, y = getattr(a, field), getattr(b, field)
            assert (x is None) == (y is None), field
            if x is not None:
                np.testing.assert_array_equal(x, y, err_msg=f"{name}: {field}")
        assert a.provenance == b.provenance, name
        recording = read_traces(folder / name).fingerprint()
        assert recording == read_traces(reference / name).fingerprint(), name


def test_a_killed_batch_rerun_with_resume_matches_an_uninterrupted_run(data, tmp_path, capsys):
    reference, out = tmp_path / "reference", tmp_path / "out"
    assert main(["deconvolve", str(data), "-o", str(reference)]) == 0
    capsys.readouterr()
    command = [sys.executable, "-m", "napari_calcium_avae.cli", "deconvolve", str(data)]
    run = subprocess.Popen(
        [*command, "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 120
    while not list(out.glob("*_avae.nwb")) and run.poll() is None:
        assert time.monotonic() < deadline, "no output appeared"
        time.sleep(0.005)
    run.send_signal(signal.SIGKILL)  # as a power cut or an OOM kill would stop it
    run.wait()
    assert run.returncode == -signal.SIGKILL, "the batch ended before it could be killed"
    finished = sorted(out.glob("*_avae.nwb"))
    assert 1 <= len(finished) < 3
    assert all(is_own_temporary(p) for p in out.iterdir() if p not in finished)

    # the rerun in two worker processes: each input's outcome is the same as in one
    assert main(["deconvolve", str(data), "-o", str(out), "--resume", "--jobs", "2"]) == 0
    table = capsys.readouterr().out
    assert f"3 inputs: {3 - len(finished)} done, {len(finished)} skipped" in table
    for path in finished:
        assert f"{path}: already holds these results (--resume)" in table
    _assert_same_outputs(out, reference)
    # a second rerun has nothing left to do and changes nothing
    before = {p.name: _digest(p) for p in out.iterdir()}
    assert main(["deconvolve", str(data), "-o", str(out), "--resume"]) == 0
    assert "3 inputs: 3 skipped" in capsys.readouterr().out
    assert {p.name: _digest(p) for p in out.iterdir()} == before


def test_apply_resumes_to_the_outputs_of_an_uninterrupted_run(data, tmp_path, capsys):
    model = AVAE(hidden_size=8, latent_size=2, max_epochs=2, timing_channels=0, random_state=0)
    model.fit(read_traces(next(data.iterdir())).data)
    checkpoint = model.save(tmp_path / "model.pt")
    reference, out = tmp_path / "reference", tmp_path / "out"
    args = ["apply", str(checkpoint), str(data), "--embedding", "pca"]
    assert main([*args, "-o", str(reference)]) == 0
    # what a run killed after its first result file leaves
    shutil.copytree(reference, out)
    removed = sorted(out.iterdir())[1:]
    for path in removed:
        path.unlink()
    capsys.readouterr()
    assert main([*args, "-o", str(out), "--resume"]) == 0
    assert "3 inputs: 2 done, 1 skipped" in capsys.readouterr().out
    _assert_same_outputs(out, reference)


def test_streamed_apply_writes_what_the_in_memory_apply_writes(data, tmp_path, capsys):
    """apply --stream holds one recording at a time and reads each twice; its outputs are
    the in-memory run's, a broken input fails alone, and --resume skips complete ones."""
    from napari_calcium_avae.model import CropFeatureVAE

    recordings = [read_traces(p).data for p in sorted(data.iterdir())]
    model = CropFeatureVAE(frame_rate=20.0, crop_s=3.0, n_crops=4, max_epochs=3, hidden_size=8)
    checkpoint = model.fit(np.concatenate(recordings)).save(tmp_path / "model.pt")
    args = ["apply", str(checkpoint), str(data), "--embedding", "pca"]
    reference, out = tmp_path / "reference", tmp_path / "out"
    assert main([*args, "-o", str(reference)]) == 0
    broken = data / "a_broken.nwb"  # sorted first
    broken.write_bytes(b"\x89HDF\r\n\x1a\n and then nothing")
    capsys.readouterr()
    assert main([*args, "-o", str(out), "--stream"]) == 2
    assert "4 inputs: 3 done, 1 failed" in capsys.readouterr().out
    _assert_same_outputs(out, reference)
    for name in (p.name for p in reference.iterdir()):
        a, b = read_results(out / name), read_results(reference / name)
        np.testing.assert_array_equal(a.reconstruction, b.reconstruction)
        np.testing.assert_array_equal(a.embedding, b.embedding)
    broken.unlink()
    first = sorted(out.iterdir())[0]
    first.unlink()
    assert main([*args, "-o", str(out), "--stream", "--resume"]) == 0
    assert "3 inputs: 1 done, 2 skipped" in capsys.readouterr().out
    _assert_same_outputs(out, reference)


def test_a_failed_input_is_reported_and_the_others_go_on(data, tmp_path, capsys):
    broken = data / "a_broken.nwb"  # sorted first
    broken.write_bytes(b"\x89HDF\r\n\x1a\n and then nothing")
    out = tmp_path / "out"
    assert main(["deconvolve", str(data), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert "the file is truncated or damaged" in captured.err.splitlines()[-1]
    assert "1 of 4 inputs failed; first: " in captured.err.splitlines()[-1]
    assert f"failed   {broken}" in captured.out
    assert "4 inputs: 3 done, 1 failed" in captured.out
    assert len(list(out.glob("*_avae.nwb"))) == 3
    # told to stop: the first failure ends the run before any other input is touched
    shutil.rmtree(out)
    assert main(["deconvolve", str(data), "-o", str(out), "--stop-on-error"]) == 2
    captured = capsys.readouterr()
    assert "1 of 4 inputs failed (--stop-on-error)" in captured.err.splitlines()[-1]
    assert "4 inputs: 1 failed, 3 not run" in captured.out
    assert not out.exists() or not list(out.iterdir())


def test_resume_skips_only_results_of_this_run(data, tmp_path, capsys):
    session = sorted(data.iterdir())[0]
    out = tmp_path / "out.nwb"
    assert main(["deconvolve", str(session), "-o", str(out)]) == 0
    written = _digest(out)
    # other settings: refused, and the file stays
    default = SpikeInference().ar_order
    other_order = 3 - default  # the AR order that is not the default (1 or 2)
    args = ["deconvolve", str(session), "-o", str(out), "--resume", "--ar-order", str(other_order)]
    assert main(args) == 2
    message = one_line_error(capsys)
    assert f"holds other results (ar_order={default} where this run has {other_order})" in message
    assert "overwrite (--overwrite)" in message and _digest(out) == written
    # another recording: refused too
    other = sorted(data.iterdir())[1]
    assert main(["deconvolve", str(other), "-o", str(out), "--resume"]) == 2
    assert "holds another recording" in one_line_error(capsys) and _digest(out) == written
    # without --resume an existing output is refused before any work, as before
    assert main(["deconvolve", str(session), "-o", str(out)]) == 2
    assert "exists" in one_line_error(capsys)
    # in place: inputs that already hold this run's results are left alone
    assert main(["deconvolve", str(session), "--in-place"]) == 0
    appended = _digest(session)
    capsys.readouterr()
    assert main(["deconvolve", str(session), "--in-place", "--resume"]) == 0
    assert "already holds these results" in capsys.readouterr().err
    assert _digest(session) == appended
