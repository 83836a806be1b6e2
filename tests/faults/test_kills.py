"""Kill a real CLI run at many points of each write; what the user owns must survive.

A preloaded shim (kill_at_call.c, compiled here) sends SIGKILL at the N-th call of a
writing libc function (pwrite64 for HDF5, write, fsync, rename) before the call runs, the
way a power cut or an OOM kill would stop it. After every kill the input must read exactly
as before, and the output must be absent or complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from napari_calcium_avae.files import is_own_temporary
from napari_calcium_avae.model import AVAE, load_model
from napari_calcium_avae.nwb import read_traces

COMPILER = shutil.which("cc") or shutil.which("gcc")
pytestmark = pytest.mark.skipif(
    COMPILER is None or not sys.platform.startswith("linux"),
    reason="needs a C compiler on Linux to build the kill shim",
)


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> Path:
    library = tmp_path_factory.mktemp("shim") / "kill_at_call.so"
    source = Path(__file__).with_name("kill_at_call.c")
    subprocess.run(
        [COMPILER, "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"],
        check=True,
    )
    return library


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cli(shim: Path, args: list[str], cwd: Path, **env: str) -> int:
    """Run the CLI with the shim preloaded; returns the exit status (-9 when killed)."""
    environment = {**os.environ, "LD_PRELOAD": str(shim), "OMP_NUM_THREADS": "1", **env}
    command = [sys.executable, "-m", "napari_calcium_avae.cli", *args]
    done = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, timeout=300)
    return done.returncode


def _count_calls(shim: Path, args: list[str], cwd: Path) -> dict[str, int]:
    """How many calls of each writing function an uninterrupted run makes."""
    counted = cwd / "calls.txt"
    assert _cli(shim, args, cwd, KILL_COUNT_FILE=str(counted)) == 0
    lines = counted.read_text().split("\n")
    counted.unlink()
    return {name: int(n) for name, n in (line.split() for line in lines if line)}


def _run_killed(shim: Path, args: list[str], call: str, nth: int, cwd: Path) -> int:
    return _cli(shim, args, cwd, KILL_CALL=call, KILL_AT=str(nth))


def _kill_points(shim: Path, args: list[str], cwd: Path, n_writes: int) -> list[tuple]:
    """Where to kill a run: spread over the calls that write the file (HDF5 uses pwrite64,
    torch.save writev), and at its every fsync and rename (the publishing one is last)."""
    points: list[tuple[str, int]] = []
    n_calls = _count_calls(shim, args, cwd)
    call = "pwrite64" if n_calls["pwrite64"] else "writev"
    points += [(call, int(k)) for k in np.unique(np.linspace(1, n_calls[call], n_writes))]
    points += [(c, k) for c in ("fsync", "rename") for k in range(1, n_calls[c] + 1)]
    assert points[0][0] in ("pwrite64", "writev") and points[-1][0] == "rename", points
    return points


@pytest.fixture(scope="module")
def model_and_session(tiny_sessions, tmp_path_factory):
    folder = tmp_path_factory.mktemp("kills")
    session = folder / "session.nwb"
    shutil.copy(tiny_sessions[0], session)
    model = AVAE(hidden_size=8, latent_size=2, max_epochs=2, timing_channels=0, random_state=0)
    model.fit(read_traces(session).data)
    return model.save(folder / "model.pt"), session


def _assert_complete_results(path: Path) -> None:
    with h5py.File(path, "r") as f:
        module = f["processing/calcium_avae"]
        assert module["results"]["latent"].shape[0] == module["reconstruction"]["data"].shape[1]


def test_kills_during_an_in_place_append_never_damage_the_recording(
    shim, model_and_session, tmp_path
):
    model, session = model_and_session
    original = _digest(session)
    with h5py.File(session, "r") as f:
        raw = f["processing/ophys/Fluorescence/RoiResponseSeries/data"][()]
    args = ["apply", str(model), "work.nwb", "--in-place", "--embedding", "pca"]
    work = tmp_path / "work.nwb"
    shutil.copy(session, work)
    points = _kill_points(shim, args, tmp_path, n_writes=4)
    for call, nth in points:
        shutil.copy(session, work)
        assert _run_killed(shim, args, call, nth, tmp_path) == -9, (call, nth)
        if _digest(work) != original:  # then the append must be whole
            _assert_complete_results(work)
        with h5py.File(work, "r") as f:
            data = f["processing/ophys/Fluorescence/RoiResponseSeries/data"][()]
        np.testing.assert_array_equal(data, raw)
        assert read_traces(work).n_rois == raw.shape[1]
    assert _digest(work) == original  # killed at the rename: the original stands
    assert _digest(session) == original


def test_kills_while_writing_a_new_result_leave_no_half_file(shim, model_and_session, tmp_path):
    model, session = model_and_session
    original = _digest(session)
    args = ["apply", str(model), str(session), "-o", "out.nwb", "--embedding", "pca", "--overwrite"]
    points = _kill_points(shim, args, tmp_path, n_writes=3)
    (tmp_path / "out.nwb").unlink()
    for call, nth in points:
        assert _run_killed(shim, args, call, nth, tmp_path) == -9, (call, nth)
        out = tmp_path / "out.nwb"
        if out.exists():  # killed after the rename (the folder's fsync): complete
            _assert_complete_results(out)
            out.unlink()
        left = [p for p in tmp_path.iterdir() if p.name != "out.nwb"]
        assert all(is_own_temporary(p) for p in left), left
    assert _digest(session) == original


def test_kills_while_saving_a_checkpoint_keep_the_old_one(shim, model_and_session, tmp_path):
    model, session = model_and_session
    target = tmp_path / "model.pt"
    shutil.copy(model, target)
    before = _digest(target)
    args = [
        "fit", str(session), "-o", "model.pt", "--overwrite", "--model", "avae",
        "--epochs", "1", "--hidden-size", "8", "--latent-size", "2",
    ]  # fmt: skip
    points = _kill_points(shim, args, tmp_path, n_writes=3)
    assert len(load_model(target).history_) == 1  # the run's own model: one epoch
    for call, nth in points:
        shutil.copy(model, target)
        assert _run_killed(shim, args, call, nth, tmp_path) == -9, (call, nth)
        # the old model (two epochs) or the whole new one (one epoch), never a damaged file
        assert _digest(target) == before or len(load_model(target).history_) == 1, (call, nth)
    assert _digest(target) == before  # killed at the rename: the old checkpoint stands
