"""Output files that are never half written: the one place where the package writes a file.

Every writer (NWB results, simulated sessions, checkpoints, reports) goes through
:func:`atomic_output`: it writes into a temporary file beside the target, flushes it to disk
and renames it over the target, so that a kill or a crash leaves either the old file or the
complete new one. Temporary files carry :data:`TEMP_SUFFIX`, so that folder inputs never take
them for recordings and a later run can recognise and remove what a killed run left. They
keep the target's extension, because readers such as pynwb check it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import CalciumAvaeError

#: in the name of every temporary or lock file the package writes (hidden files, too)
TEMP_MARKER = ".calcium-avae-tmp"


def is_own_temporary(path: str | Path) -> bool:
    """True for a temporary or lock file left by :func:`atomic_output`."""
    name = Path(path).name
    return name.startswith(".") and TEMP_MARKER in name


def _lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{TEMP_MARKER}-lock")


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable: the folder's entry must reach the disk too."""
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_file(path: str | Path) -> None:
    """Flush a closed file's data and metadata to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _exclusive_lock(target: Path) -> Iterator[None]:
    """Hold a lock named after ``target`` so that a second writer of it gets a clear error."""
    lock_path = _lock_path(target)
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise CalciumAvaeError(
                    f"{target} is being written by another run; wait for it to finish"
                ) from err
            raise
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                lock_path.unlink()
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(target: str | Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target`` durably.

    ``overwrite=False`` refuses an existing target before any work is written. The
    temporary file is removed whatever happens; the target is untouched unless the block
    finished.
    """
    target = Path(target)
    if target.is_dir():
        raise CalciumAvaeError(f"{target} is a folder; give a file name")
    if not overwrite and target.exists():
        raise CalciumAvaeError(f"{target} exists; choose another name or overwrite (--overwrite)")
    if not target.parent.is_dir():
        raise CalciumAvaeError(f"the output folder {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK):
        raise CalciumAvaeError(f"cannot write to the folder {target.parent}")
    temporary = target.with_name(
        f".{target.stem}{TEMP_MARKER}-{uuid.uuid4().hex[:12]}{target.suffix}"
    )
    with _exclusive_lock(target):
        try:
            yield temporary
            if not overwrite and target.exists():
                raise CalciumAvaeError(f"{target} appeared while it was being written; kept it")
            fsync_file(temporary)
            os.replace(temporary, target)
            _fsync_folder(target.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()


#: room kept free beyond a write's own size: the filesystem and other programs need some
FREE_SPACE_MARGIN = 64 * 2**20


def check_free_space(folder: str | Path, needed_bytes: int) -> None:
    """Refuse, before writing, a file that would not fit on the disk of ``folder``.

    A disk that fills up mid-write keeps the user's files (the write goes to a temporary
    file), but HDF5 may then fail messily; saying so up front costs one statfs.
    """
    free = shutil.disk_usage(folder).free
    if needed_bytes + FREE_SPACE_MARGIN > free:
        raise CalciumAvaeError(
            f"not enough space in {folder}: the write needs about {needed_bytes / 1e6:,.0f} MB "
            f"and {free / 1e6:,.0f} MB are free; free some space or write elsewhere"
        )


def _held_by_a_live_run(lock_path: Path) -> bool:
    """A lock file outlives a killed run, but its lock does not: try to take it."""
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


_FICLONE = 0x40049409  # Linux ioctl: share the source's blocks (btrfs, XFS, bcachefs)


def copy_file(source: str | Path, target: str | Path) -> None:
    """Copy ``source`` to ``target``: a reflink where the filesystem offers one, else bytes."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
        except OSError:
            shutil.copyfileobj(src, dst, length=16 * 1024 * 1024)
    shutil.copymode(source, target)


def check_modifiable(path: str | Path) -> Path:
    """The file :func:`atomic_update` would replace (a symbolic link's target, not the
    link), once it is known to exist and to be writable, as its folder must be."""
    path = Path(path).resolve()
    if not path.is_file():
        raise CalciumAvaeError(f"no such file: {path}")
    if not os.access(path.parent, os.W_OK | os.X_OK) or not os.access(path, os.W_OK):
        raise CalciumAvaeError(f"cannot modify {path}: it or its folder is read-only")
    return path


@contextlib.contextmanager
def atomic_update(path: str | Path) -> Iterator[Path]:
    """Yield a private copy of ``path`` to modify; on success it replaces ``path`` durably.

    HDF5 updates its metadata in place, and a kill halfway through leaves a file that no
    reader opens. Editing a copy and renaming it over the original means the original is
    either untouched or completely updated, whenever the process dies.
    """
    path = check_modifiable(path)
    with open(path, "rb") as original:
        # HDF5 holds an exclusive flock while a file is open for writing: share-lock it so
        # that no writer changes it under the copy, and none opens it until we are done
        try:
            fcntl.flock(original.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as err:
            raise CalciumAvaeError(f"{path} is open for writing elsewhere; close it first") from err
        with atomic_output(path, overwrite=True) as temporary:
            copy_file(path, temporary)
            yield temporary


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary and lock files that killed runs left in ``folder``.

    Files of a run that is still writing (its lock is held) are left alone.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in sorted(folder.glob(f".*{TEMP_MARKER}*")):
        if path.name.endswith(f"{TEMP_MARKER}-lock"):
            lock = path
        else:
            stem = path.name[1:].split(TEMP_MARKER)[0]
            lock = _lock_path(folder / f"{stem}{path.suffix}")
        if _held_by_a_live_run(lock):
            continue
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    return removed


@contextlib.contextmanager
def interrupts_held() -> Iterator[list[int]]:
    """Hold Ctrl-C while a file is written: the write completes, then the caller sees the
    signal in the yielded list and says what was written. Outside the main thread (a GUI
    worker) signals cannot be held and the list stays empty."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)
