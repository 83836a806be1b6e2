"""Out-of-core training: traces streamed from many NWB files, memory bounded.

:class:`NWBTraceDataset` is a torch ``IterableDataset`` over the ROI traces of many NWB
files. It reads each file's series lazily through h5py, a block of ``chunk_rois`` ROIs
(all frames) at a time, so a process holds a few blocks and a bounded shuffle buffer,
never a whole collection of sessions. Per epoch (``set_epoch``, as with torch's
``DistributedSampler``):

- the files are shuffled and shared out, first among the ranks of a distributed run
  (balanced by ROI count), then among the ``DataLoader`` workers of each rank;
- ``files_open`` files at a time are read together, their blocks in a random order, and
  the traces pass through a shuffle buffer of ``shuffle_buffer`` traces, so batches mix
  ROIs of several files;
- the validation split is decided per ROI by a hash of (file name, series, ROI row, seed):
  the same ROIs on every epoch, rank and worker, with no pass over the data.

``AVAE.fit(dataset)`` trains on it (docs/scaling.md); the in-memory path stays the
default for data that fits, where it is faster.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..errors import CalciumAvaeError, CalciumAvaeWarning
from ..traces import rate_from_timestamps

SPLITS = ("all", "train", "validation")
MISMATCHED = ("error", "skip")
"""What to do with a session whose frame count differs from the others'."""
MIN_FRAMES = 16
"""As the pipeline's: below this neither architecture has anything to learn from."""


@dataclass(frozen=True)
class Session:
    """One file's series, as far as streaming needs it (read from the metadata only)."""

    source: str
    """Local path or URL, as given."""
    name: str
    """File name: with ``series`` and the ROI row, what the validation split hashes."""
    series: str
    n_rois: int
    n_frames: int
    block_rois: int
    """ROIs per storage chunk (0: contiguous), so blocks are read whole."""
    size: int | None
    """Bytes on disk (None for a URL): part of the data's identity for --resume."""
    rate: float | None = None
    """Frames per second, where the series says."""


def _scan(source: str | Path, series: str | None) -> Session:
    from ..nwb.common import as_source, open_nwb
    from ..nwb.read import _choose_series, _rate, _walk

    path = as_source(source)
    with open_nwb(path) as f:
        chosen = _choose_series(path, _walk(f), series)
        group = f[chosen]
        rate = _rate(group) or (
            rate_from_timestamps(group["timestamps"][()]) if "timestamps" in group else None
        )
        data = f[chosen]["data"]
        shape = data.shape
        n_rois = int(shape[1]) if len(shape) > 1 else 1
        block = int(data.chunks[1]) if data.chunks is not None and len(shape) > 1 else 0
    size = os.path.getsize(path) if isinstance(path, Path) else None
    name = path.name if isinstance(path, Path) else str(path).rstrip("/").rsplit("/", 1)[-1]
    return Session(str(path), name, chosen, n_rois, int(shape[0]), block, size, rate)


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: uint64 -> well-mixed uint64, the same on every platform."""
    z = values.astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def in_validation(session: Session, rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Which ``rows`` of ``session`` are validation ROIs: a hash of (file name, series,
    row, seed) below ``fraction``. Deterministic, so every epoch, rank and worker agrees,
    and a ROI's side does not depend on which other files are streamed."""
    key = zlib.crc32(f"{session.name}\0{session.series}\0{seed}".encode())
    with np.errstate(over="ignore"):
        h = _mix(np.uint64(key) * np.uint64(0x9E3779B97F4A7C15) + rows.astype(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) / 2.0**53 < fraction


def per_trace_scale(block: np.ndarray) -> np.ndarray:
    """Each trace min-max scaled to [-0.5, 0.5] (float64 arithmetic, float32 out), as
    the estimator's ``normalise`` does in memory."""
    lo = block.min(axis=1, keepdims=True).astype(np.float64)
    span = block.max(axis=1, keepdims=True) - lo
    return ((block - lo) / span - 0.5).astype(np.float32)


def global_scale(block: np.ndarray, lo: float, span: float) -> np.ndarray:
    """All traces scaled with one range (``normalisation="global"``)."""
    return ((block - lo) / span - 0.5).astype(np.float32)


def _usable(block: np.ndarray) -> np.ndarray:
    """Rows that are finite and not flat, as the pipeline keeps in memory."""
    finite = np.isfinite(block).all(axis=1)
    with np.errstate(invalid="ignore"):
        span = block.max(axis=1) - block.min(axis=1)
    return finite & (span > 0)


def _read_block(f: Any, session: Session, start: int, stop: int) -> np.ndarray:
    """ROIs start:stop of the series, all frames, as ROIs x frames float32."""
    data = f[session.series]["data"]
    if data.ndim == 1:
        block = np.asarray(data[()], dtype=np.float32)[None, :]
    else:
        block = np.ascontiguousarray(np.asarray(data[:, start:stop], dtype=np.float32).T)
    conversion = float(data.attrs.get("conversion", 1.0))
    offset = float(data.attrs.get("offset", 0.0))
    if conversion != 1.0:
        block *= np.float32(conversion)
    if offset != 0.0:
        block += np.float32(offset)
    return block


def _balance(sizes: Sequence[int], parts: int) -> list[list[int]]:
    """Indices shared out into ``parts`` lists of similar total size (greedy, in the given
    order: the same answer in every process)."""
    shares: list[list[int]] = [[] for _ in range(parts)]
    totals = [0] * parts
    for i, size in enumerate(sizes):
        k = totals.index(min(totals))
        shares[k].append(i)
        totals[k] += size
    return shares


class NWBTraceDataset(IterableDataset):
    """The ROI traces of many NWB files, streamed (an ``IterableDataset``).

    ``paths`` are NWB files or URLs; ``series`` the RoiResponseSeries path (default: each
    file's default series). Sessions whose frame count differs from the most common one
    are an error naming them, or, with ``mismatched="skip"``, skipped with a warning.
    ``chunk_rois`` ROIs are read at a time (rounded up to whole storage chunks),
    ``files_open`` files are interleaved, ``shuffle_buffer`` traces are shuffled at once
    per worker, and ``num_workers`` is the ``DataLoader`` workers the estimator uses.

    Iterating yields one float32 trace (frames,) at a time. Which traces, and how, is set
    by :meth:`configure` (split, seed, rank) and :meth:`set_epoch`; the estimator does
    both. Traces with NaN/Inf, and flat traces, are left out, as in memory.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        series: str | None = None,
        *,
        chunk_rois: int = 64,
        shuffle_buffer: int = 2048,
        files_open: int = 4,
        num_workers: int = 0,
        mismatched: str = "error",
    ) -> None:
        super().__init__()
        for name, value, least in (
            ("chunk_rois", chunk_rois, 1),
            ("shuffle_buffer", shuffle_buffer, 1),
            ("files_open", files_open, 1),
            ("num_workers", num_workers, 0),
        ):
            if not isinstance(value, int | np.integer) or value < least:
                raise CalciumAvaeError(f"{name} must be an integer >= {least}, got {value!r}")
        if mismatched not in MISMATCHED:
            raise CalciumAvaeError(f"mismatched must be one of {MISMATCHED}, got {mismatched!r}")
        if not paths:
            raise CalciumAvaeError("no recordings given to train on")
        self.series = series
        self.chunk_rois = int(chunk_rois)
        self.shuffle_buffer = int(shuffle_buffer)
        self.files_open = int(files_open)
        self.num_workers = int(num_workers)
        self.mismatched = mismatched
        self.sessions = self._consistent([_scan(p, series) for p in paths])
        self.n_frames = self.sessions[0].n_frames
        if self.n_frames < MIN_FRAMES:
            raise CalciumAvaeError(
                f"the traces have {self.n_frames} frames but at least {MIN_FRAMES} are needed; "
                "use longer recordings"
            )
        self.split = "all"
        self.validation_fraction = 0.0
        self.seed = 0
        self.epoch = 0
        self.shuffle = False
        self.rank = 0
        self.world_size = 1
        self.transform: Callable[[np.ndarray], np.ndarray] | None = None

    def _consistent(self, sessions: list[Session]) -> list[Session]:
        counts = Counter(s.n_frames for s in sessions)  # ties: the first file's length
        common = max(counts, key=lambda n: counts[n])
        odd = [s for s in sessions if s.n_frames != common]
        if not odd:
            return sessions
        listed = ", ".join(f"{s.name} ({s.n_frames})" for s in odd[:5])
        more = f" and {len(odd) - 5} more" if len(odd) > 5 else ""
        if self.mismatched == "error":
            raise CalciumAvaeError(
                f"{len(odd)} session(s) have another number of frames than the {common} of "
                f"the others: {listed}{more}; leave them out, or skip them (mismatched='skip', "
                "fit --mismatched skip)"
            )
        warnings.warn(
            f"skipping {len(odd)} session(s) whose number of frames differs from the {common} "
            f"of the others: {listed}{more}",
            CalciumAvaeWarning,
            stacklevel=3,
        )
        return [s for s in sessions if s.n_frames == common]

    # --- what to stream ---------------------------------------------------------------

    def configure(
        self,
        *,
        split: str = "all",
        validation_fraction: float = 0.0,
        seed: int = 0,
        shuffle: bool = False,
        rank: int = 0,
        world_size: int = 1,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> NWBTraceDataset:
        """A copy that streams ``split`` ("all", "train" or "validation" ROIs, by the hash
        of :func:`in_validation`), shuffled or in file order, this rank's files only, each
        block passed through ``transform`` (ROIs x frames -> the same)."""
        import copy

        if split not in SPLITS:
            raise CalciumAvaeError(f"split must be one of {SPLITS}, got {split!r}")
        view = copy.copy(self)
        view.split, view.validation_fraction, view.seed = split, validation_fraction, seed
        view.shuffle, view.rank, view.world_size = shuffle, rank, world_size
        view.transform = transform
        return view

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order to stream: each epoch shuffles differently, and the same
        epoch the same way (a resumed fit streams as an uninterrupted one)."""
        self.epoch = int(epoch)

    @property
    def n_rois(self) -> int:
        """ROIs of all sessions (usable or not)."""
        return sum(s.n_rois for s in self.sessions)

    def count(self, split: str, validation_fraction: float, seed: int) -> int:
        """ROIs of a split, from the metadata alone (unusable traces included)."""
        n_val = sum(
            int(in_validation(s, np.arange(s.n_rois), validation_fraction, seed).sum())
            for s in self.sessions
        )
        return {"all": self.n_rois, "validation": n_val, "train": self.n_rois - n_val}[split]

    def fingerprint(self) -> str:
        """A digest of what is streamed (files, series, shapes, sizes), so a training
        checkpoint resumes only on the same data; reading every trace to hash it would
        cost a pass over all sessions."""
        digest = hashlib.sha256()
        for s in self.sessions:
            digest.update(f"{s.name}|{s.series}|{s.n_rois}|{s.n_frames}|{s.size}\n".encode())
        return "stream:" + digest.hexdigest()[:26]

    # --- reading ----------------------------------------------------------------------

    def _shares(self) -> list[Session]:
        """This rank's and this worker's sessions, in this epoch's order."""
        order = np.arange(len(self.sessions))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch, 7]).permutation(order)
        sessions = [self.sessions[i] for i in order]
        mine = _balance([s.n_rois for s in sessions], self.world_size)[self.rank]
        sessions = [sessions[i] for i in mine]
        info = get_worker_info()
        if info is not None and info.num_workers > 1:
            mine = _balance([s.n_rois for s in sessions], info.num_workers)[info.id]
            sessions = [sessions[i] for i in mine]
        return sessions

    def _blocks(self, session: Session) -> list[tuple[int, int]]:
        width = self.chunk_rois
        if session.block_rois:
            width = -(-width // session.block_rois) * session.block_rois
        return [(a, min(a + width, session.n_rois)) for a in range(0, session.n_rois, width)]

    def frame_rates(self) -> list[float]:
        """Each session's frame rate; an error naming the first that has none."""
        for s in self.sessions:
            if not s.rate:
                raise CalciumAvaeError(
                    f"{s.source} ({s.series}) has neither a frame rate nor increasing timestamps"
                )
        return [float(s.rate) for s in self.sessions]

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(session index, kept traces) of every block of this view, in file order: one
        pass for consumers that reduce each trace at once (the crop-feature VAE's
        features), holding one block at a time."""
        index = {id(s): i for i, s in enumerate(self.sessions)}
        for session, block in self._kept_blocks(np.random.default_rng(0)):
            if len(block):
                yield index[id(session)], block

    def _traces(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """Blocks' kept traces one by one (see ``_kept_blocks``)."""
        for _, block in self._kept_blocks(rng):
            yield from block

    def _kept_blocks(self, rng: np.random.Generator) -> Iterator[tuple[Session, np.ndarray]]:
        """(session, kept traces) per block, ``files_open`` files at a time, blocks in
        random order (in file order when not shuffling)."""
        from ..nwb.common import open_nwb

        sessions = self._shares()
        for first in range(0, len(sessions), self.files_open):
            group = sessions[first : first + self.files_open]
            units = [(k, a, b) for k, s in enumerate(group) for a, b in self._blocks(s)]
            if self.shuffle:
                units = [units[i] for i in rng.permutation(len(units))]
            with contextlib.ExitStack() as stack:
                files: dict[int, Any] = {}
                for k, start, stop in units:
                    session = group[k]
                    if k not in files:
                        files[k] = stack.enter_context(open_nwb(session.source))
                    try:
                        block = _read_block(files[k], session, start, stop)
                    except OSError as err:
                        raise CalciumAvaeError(
                            f"cannot read ROIs {start}-{stop - 1} of {session.series} in "
                            f"{session.source}: the file is truncated or damaged ({err})"
                        ) from err
                    keep = _usable(block)
                    if self.split != "all":
                        val = in_validation(
                            session, np.arange(start, stop), self.validation_fraction, self.seed
                        )
                        keep &= val if self.split == "validation" else ~val
                    block = block[keep]
                    if self.transform is not None and len(block):
                        block = self.transform(block)
                    yield session, block

    def __iter__(self) -> Iterator[torch.Tensor]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker])
        traces = self._traces(rng)
        if not self.shuffle:
            for trace in traces:
                yield torch.from_numpy(trace.copy())
            return
        buffer: list[np.ndarray] = []
        for trace in traces:
            trace = trace.copy()  # never a view that keeps its whole block alive
            if len(buffer) < self.shuffle_buffer:
                buffer.append(trace)
                continue
            i = int(rng.integers(len(buffer)))
            yield torch.from_numpy(buffer[i])
            buffer[i] = trace
        for i in rng.permutation(len(buffer)):
            yield torch.from_numpy(buffer[i])

    def value_range(self, validation_fraction: float, seed: int) -> tuple[float, float]:
        """(min, max) of the training split's usable traces: one streamed pass, for
        ``normalisation="global"``."""
        lo, hi = np.inf, -np.inf
        view = self.configure(split="train", validation_fraction=validation_fraction, seed=seed)
        rng = np.random.default_rng(0)
        for trace in view._traces(rng):
            lo, hi = min(lo, float(trace.min())), max(hi, float(trace.max()))
        return lo, hi


class StreamBatches:
    """The batches a training run draws from an :class:`NWBTraceDataset`: this rank's
    share, normalised, on the training device. ``batch_size`` is per rank."""

    def __init__(
        self,
        dataset: NWBTraceDataset,
        *,
        batch_size: int,
        device: torch.device,
        validation_fraction: float,
        seed: int,
        norm: tuple[float, float] | None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        transform = per_trace_scale
        if norm is not None:
            transform = partial(global_scale, lo=norm[0], span=norm[1])
        common = {
            "validation_fraction": validation_fraction,
            "seed": seed,
            "rank": rank,
            "world_size": world_size,
            "transform": transform,
        }
        self.train = dataset.configure(split="train", shuffle=True, **common)
        self.validation = dataset.configure(split="validation", **common)
        self.batch_size = int(batch_size)
        self.device = device
        self.num_workers = dataset.num_workers

    def _loader(self, view: NWBTraceDataset) -> Iterator[torch.Tensor]:
        loader = DataLoader(
            view,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        try:
            for batch in loader:
                yield batch.to(self.device, non_blocking=True)
        except CalciumAvaeError as error:
            text = str(error).strip()
            if not text.startswith("Caught "):
                raise
            # a worker's error comes back as "Caught ... Original Traceback ...", whose
            # last line is "...CalciumAvaeError: <the one-line message>"
            raise CalciumAvaeError(text.splitlines()[-1].split(": ", 1)[-1]) from None

    def train_batches(self, epoch: int) -> Iterator[torch.Tensor]:
        """This epoch's batches (epoch 1 is the first), shuffled across files."""
        self.train.set_epoch(epoch)
        return self._loader(self.train)

    def validation_batches(self) -> Iterator[torch.Tensor]:
        """The validation ROIs of this rank's files, in file order."""
        return self._loader(self.validation)
