"""atomic_output: the target is the old file or the complete new one, never half of either."""

import multiprocessing
import os

import pytest

from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.files import (
    atomic_output,
    is_own_temporary,
    remove_stale_temporaries,
)


def test_writes_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.nwb"
    with atomic_output(target, overwrite=False) as tmp:
        assert is_own_temporary(tmp)
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nwb"]


def test_refuses_an_existing_file_unless_asked(tmp_path):
    target = tmp_path / "out.nwb"
    target.write_bytes(b"old")
    with pytest.raises(CalciumAvaeError, match="exists"), atomic_output(target, overwrite=False):
        pass
    with atomic_output(target, overwrite=True) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"


def test_a_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.nwb"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_output(target, overwrite=True) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nwb"]


def test_bad_targets_get_one_line(tmp_path):
    with pytest.raises(CalciumAvaeError, match="does not exist"):
        with atomic_output(tmp_path / "missing" / "out.nwb", overwrite=False):
            pass
    with pytest.raises(CalciumAvaeError, match="is a folder"):
        with atomic_output(tmp_path, overwrite=True):
            pass


def _hold_and_wait(target, started, release):
    with atomic_output(target, overwrite=False) as tmp:
        tmp.write_bytes(b"first")
        started.set()
        release.wait(30)


def test_a_second_writer_is_refused_while_the_first_writes(tmp_path):
    target = tmp_path / "out.nwb"
    ctx = multiprocessing.get_context("fork")
    started, release = ctx.Event(), ctx.Event()
    writer = ctx.Process(target=_hold_and_wait, args=(target, started, release))
    writer.start()
    try:
        assert started.wait(30)
        with pytest.raises(CalciumAvaeError, match="another run"):
            with atomic_output(target, overwrite=True):
                pass
        assert remove_stale_temporaries(tmp_path) == []  # the live run's files stay
    finally:
        release.set()
        writer.join(30)
    assert target.read_bytes() == b"first"


def test_stale_files_of_a_killed_run_are_removed(tmp_path):
    target = tmp_path / "out.nwb"
    ctx = multiprocessing.get_context("fork")
    started, release = ctx.Event(), ctx.Event()
    writer = ctx.Process(target=_hold_and_wait, args=(target, started, release))
    writer.start()
    assert started.wait(30)
    os.kill(writer.pid, 9)
    writer.join(30)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2 and all(is_own_temporary(name) for name in left)
    assert not target.exists()
    assert len(remove_stale_temporaries(tmp_path)) == 2
    assert list(tmp_path.iterdir()) == []
