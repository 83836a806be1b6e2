"""Write per-ROI results and reconstructions back to NWB, next to the data they came from.

By default a new file is exported from the source (new identifier, fresh object ids), so
the source is never touched and the result is a complete, self-contained session that
DANDI accepts. The export goes to a temporary file in the output folder and is moved
into place only when complete, so a crash leaves no half-written NWB.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
from hdmf.common import DynamicTable, DynamicTableRegion, VectorData
from hdmf.data_utils import GenericDataChunkIterator
from pynwb import NWBHDF5IO
from pynwb.ophys import RoiResponseSeries

from .. import __version__
from ..errors import CalciumAvaeError, CalciumAvaeWarning
from ..files import atomic_output, atomic_update, check_free_space
from ..results import PER_ROI, PER_ROW, Results
from ..traces import Traces
from .common import (
    RESULTS_MODULE,
    SERIES_NAME,
    SPIKES_NAME,
    SPIKES_UNIT,
    TABLE_NAME,
    as_source,
    open_nwb,
    text,
)
from .remote import is_url, open_io
from .remote import size as remote_size
from .validate import subject_gaps


class _FramesByRois(GenericDataChunkIterator):
    """A ROIs x frames array written as time x ROIs a block at a time, never copied whole."""

    def __init__(self, data: np.ndarray) -> None:
        self._data = data
        n_rois, n_frames = data.shape
        chunk_frames = max(1, min(n_frames, 2**20 // max(1, n_rois)))
        super().__init__(
            chunk_shape=(chunk_frames, n_rois),
            buffer_shape=(
                max(
                    chunk_frames,
                    min(n_frames, 2**24 // max(1, n_rois) // chunk_frames * chunk_frames),
                ),
                n_rois,
            ),
            display_progress=False,
        )

    def _get_data(self, selection: tuple[slice, ...]) -> np.ndarray:
        return np.asarray(self._data[selection[1], selection[0]].T, dtype=np.float32)

    def _get_maxshape(self) -> tuple[int, int]:
        return self._data.shape[1], self._data.shape[0]

    def _get_dtype(self) -> np.dtype:
        return np.dtype("float32")


def provenance_text(traces: Traces, facts: dict) -> str:
    """Flat "key=value; ..." text; the reader finds the source series in it."""
    parts = [
        f"source series: {traces.series_path}",
        f"software: napari-calcium-avae {__version__}",
    ]
    # "; " separates the facts: a value keeps its text with any ";" made a ","
    parts += [f"{key}={str(value).replace(';', ',')}" for key, value in sorted(facts.items())]
    return "; ".join(parts)


def check_source(traces: Traces) -> Path | str:
    """The NWB file (path or URL) that results of ``traces`` are written beside."""
    if traces.source_file is None or traces.series_path is None:
        raise CalciumAvaeError(
            "these traces were not read from an NWB file; results can only be written next "
            "to the NWB series they came from"
        )
    if traces.plane_segmentation_path is None:
        raise CalciumAvaeError(
            f"{traces.series_path} has no PlaneSegmentation to point the results at"
        )
    return as_source(traces.source_file)


def _check(traces: Traces, results: Results) -> None:
    if results.n_rois != traces.n_rois:
        raise CalciumAvaeError(
            f"the results have {results.n_rois} ROIs but the traces have {traces.n_rois}; "
            "write results computed on these traces"
        )
    for name in ("reconstruction", "spike_rates"):
        value = getattr(results, name)
        if value is not None and np.shape(value) != traces.data.shape:
            raise CalciumAvaeError(
                f"the {name} has shape {np.shape(value)}, the traces "
                f"{traces.data.shape}; write results computed on these traces"
            )


def _object_ids(source: Path | str, *paths: str) -> list[str]:
    with open_nwb(source) as f:
        missing = [p for p in paths if p not in f]
        if missing:
            raise CalciumAvaeError(f"{source} has no {missing[0]}; was it changed since reading?")
        return [text(f[p].attrs["object_id"]) for p in paths]


def _load_compound_columns(nwbfile) -> None:
    """Load pixel/voxel mask columns into memory before an export.

    hdmf's export copies compound datasets one row at a time (45 s for the 250,000 mask
    rows of 10,000 ROIs); loaded in one read they are written in one go. Columns holding
    object references are left alone: hdmf must resolve those itself.
    """
    for obj in nwbfile.objects.values():
        dataset = getattr(getattr(obj, "data", None), "dataset", None)
        if not isinstance(dataset, h5py.Dataset) or dataset.dtype.names is None:
            continue
        fields = dataset.dtype.names
        if any(h5py.check_dtype(ref=dataset.dtype[name]) for name in fields):
            continue
        obj.transform(lambda data: data.dataset[()])


def free_suffix(module, names: tuple[str, ...]) -> str:
    """ "" for the first run, then "_2", "_3"...: earlier results stay as they were."""
    k = 1
    while True:
        suffix = "" if k == 1 else f"_{k}"
        if not any(f"{name}{suffix}" in module.data_interfaces for name in names):
            return suffix
        k += 1


def _containers(nwbfile, traces: Traces) -> tuple:
    """The source series and PlaneSegmentation as pynwb objects (before ids are renewed)."""
    series_id, table_id = _object_ids(
        as_source(traces.source_file), traces.series_path, traces.plane_segmentation_path
    )
    return nwbfile.objects[series_id], nwbfile.objects[table_id]


def _add_results(nwbfile, containers: tuple, traces: Traces, results: Results, name: str) -> None:
    source_series, plane_segmentation = containers
    provenance = provenance_text(traces, results.provenance)
    module = nwbfile.processing.get(name)
    if module is None:
        module = nwbfile.create_processing_module(
            name=name, description=f"calcium_avae results per ROI; first run: {provenance}"
        )
    suffix = free_suffix(module, (TABLE_NAME, SERIES_NAME))
    rows = [int(r) for r in traces.roi_rows]
    columns = [
        DynamicTableRegion(
            name="rois",
            data=rows,
            description=f"rows of {traces.plane_segmentation_path} these results belong to",
            table=plane_segmentation,
        ),
    ]
    for field, column in PER_ROI.items():
        values = getattr(results, field)
        if values is not None:
            columns.append(
                VectorData(
                    name=column.name,
                    data=np.asarray(values, dtype=column.dtype),
                    description=column.description,
                )
            )
    module.add(
        DynamicTable(
            name=f"{TABLE_NAME}{suffix}",
            description=f"calcium_avae results per ROI; {provenance}",
            id=list(range(traces.n_rois)),
            columns=columns,
        )
    )
    timing: dict = {}
    if traces.timestamps is not None:
        timing["timestamps"] = (
            source_series if source_series.timestamps is not None else traces.timestamps
        )
    else:
        timing["rate"] = float(traces.rate or 1.0)
        timing["starting_time"] = float(traces.starting_time)
    series = [
        (
            SERIES_NAME,
            results.reconstruction,
            traces.unit,
            "reconstruction (denoised traces) in the source unit",
        ),
        (
            SPIKES_NAME,
            results.spike_rates,
            SPIKES_UNIT,
            "inferred spikes: expected spike count per frame under the calcium observation "
            "model (not fluorescence)",
        ),
    ]
    for base, values, unit, what in series:
        if values is None:
            continue
        module.add(
            RoiResponseSeries(
                name=f"{base}{suffix}",
                data=_FramesByRois(np.asarray(values, dtype=np.float32)),
                rois=plane_segmentation.create_roi_table_region(
                    region=rows, description=f"the ROIs of {traces.series_path}"
                ),
                unit=unit,
                description=f"{what}; {provenance}",
                **timing,
            )
        )


#: ends the name of every result file the package names itself
RESULT_SUFFIX = "_avae.nwb"


def result_path(source: str | Path, folder: str | Path | None = None) -> Path:
    """The default result file of a recording: ``<stem>_avae.nwb`` in ``folder``, else
    beside the source. The CLI, the GUI and the demo all name their outputs with it."""
    source = Path(source)
    return Path(source.parent if folder is None else folder) / f"{source.stem}{RESULT_SUFFIX}"


def is_result_file(path: str | Path) -> bool:
    """True for a file named as :func:`result_path` names results: folder inputs skip
    them, so that a recording and its results are not taken as two recordings."""
    return Path(path).name.endswith(RESULT_SUFFIX)


def write_results(
    traces: Traces,
    results: Results,
    output: str | Path | None,
    *,
    in_place: bool = False,
    name: str = RESULTS_MODULE,
    overwrite: bool = False,
) -> Path:
    """Write ``results`` into a new NWB file exported from the traces' source (or append).

    Returns the path written; an existing output file is refused unless ``overwrite``.
    Results go into the processing module ``name``: a table
    ``results`` and a series ``reconstruction``; later runs add ``results_2``... .
    """
    check_source(traces)
    _check(traces, results)
    results_bytes = sum(
        np.asarray(value).nbytes
        for field in PER_ROW
        if (value := getattr(results, field)) is not None
    )
    return write_beside(
        traces,
        output,
        lambda nwbfile, containers: _add_results(nwbfile, containers, traces, results, name),
        extra_bytes=results_bytes,
        in_place=in_place,
        overwrite=overwrite,
    )


def write_beside(
    traces: Traces,
    output: str | Path | None,
    add: Callable[[object, tuple], None],
    *,
    extra_bytes: int = 0,
    in_place: bool = False,
    overwrite: bool = False,
) -> Path:
    """Export the traces' source with ``add(nwbfile, (series, plane_segmentation))``
    applied into the new file ``output``, or apply it to the source in place.

    The one way every result writer reaches a file: checks the target, the free space
    (``extra_bytes`` on top of the source's size), and writes atomically.
    """
    source = check_source(traces)
    remote = is_url(source)
    if in_place and remote:
        raise CalciumAvaeError(
            f"{source} is a remote file: results go to a new local file, not in place"
        )
    if in_place:
        if output is not None and Path(output).resolve() != source.resolve():
            raise CalciumAvaeError(
                "in_place writes into the source file; give no other output path"
            )
        target = source
    else:
        if output is None:
            raise CalciumAvaeError(
                "give an output path for the new NWB file (or in_place=True to append to "
                "the source)"
            )
        target = Path(output)
        if not remote and target.resolve() == source.resolve():
            raise CalciumAvaeError(
                f"the output {target} is the input file; write to a new file or pass "
                "in_place=True to append to it"
            )
        if not target.parent.is_dir():
            raise CalciumAvaeError(f"the output folder {target.parent} does not exist")
    # a new file or the in-place copy holds the whole recording plus the results
    source_bytes = remote_size(source) if remote else source.stat().st_size
    check_free_space(target.parent, source_bytes + extra_bytes)
    if in_place:
        try:
            with atomic_update(source) as tmp, NWBHDF5IO(str(tmp), "a") as io:
                nwbfile = io.read()
                add(nwbfile, _containers(nwbfile, traces))
                io.write(nwbfile)
                gaps = subject_gaps(nwbfile)
        except CalciumAvaeError:
            raise  # already says what is wrong (it is a ValueError too)
        except (OSError, ValueError, RuntimeError) as err:
            raise CalciumAvaeError(
                f"cannot append to {source} in place ({err}); it may be open elsewhere or "
                "read-only: write a new file instead"
            ) from err
        _warn_subject_gaps(source, gaps)
        return source
    try:
        with (
            open_io(source) if remote else NWBHDF5IO(str(source), "r") as io,
            atomic_output(target, overwrite=overwrite) as tmp,
        ):
            nwbfile = io.read()
            containers = _containers(nwbfile, traces)
            _load_compound_columns(nwbfile)
            nwbfile.generate_new_id()
            # a new file is a new session record for DANDI: a new identifier too
            nwbfile.fields["identifier"] = str(uuid.uuid4())
            nwbfile.set_modified()
            add(nwbfile, containers)
            with NWBHDF5IO(str(tmp), "w") as out:
                # a remote source has no file name for hdmf to compare: copy, never link
                copy = {"write_args": {"link_data": False}} if remote else {}
                out.export(src_io=io, nwbfile=nwbfile, **copy)
            gaps = subject_gaps(nwbfile)
    except (OSError, RuntimeError) as err:  # h5py raises RuntimeError when a close fails
        raise CalciumAvaeError(f"cannot write {target}: {err}") from err
    _warn_subject_gaps(target, gaps)
    return target


def _warn_subject_gaps(path: Path, gaps: list[str]) -> None:
    """One line when the file written lacks what DANDI requires of its subject: the
    results are sound, but an upload would be refused until the metadata is added."""
    if gaps:
        warnings.warn(
            f"{path.name} lacks what DANDI requires of the subject: {', '.join(gaps)} "
            "(as its source does); add it to the source before uploading",
            CalciumAvaeWarning,
            stacklevel=3,
        )
