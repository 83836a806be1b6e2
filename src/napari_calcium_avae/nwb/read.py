"""Read ROI traces, masks, per-ROI columns and reference images from NWB files.

The file is read with h5py alone: the NWB layout on disk (``neurodata_type`` attributes,
DynamicTable columns, object references) is the same for pynwb 2.x / hdmf 3.x and later,
so the reader does not depend on any pynwb version, and the big trace matrix is read in
blocks of frames straight into a ROIs x frames buffer, which pynwb's lazy wrappers cannot
do quickly.

Mask orientation. NWB stores images as (x, y) with x the horizontal axis, so a standard
file (neuroconv) needs ``row = y, col = x`` for napari, and image arrays are transposed.
suite2p instead writes ``(ypix, xpix, lam)`` into the (x, y, weight) fields and its
images as (rows, cols); a file is treated as suite2p when its ``source_script`` names
suite2p or it holds suite2p's names (an Images container ``Backgrounds_*`` or a series
``plane<N>``), and then x is read as the row and images are not transposed. Masks and
images of one file always get the same rule, so they stay aligned.
"""

from __future__ import annotations

import os
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ..errors import CalciumAvaeError
from ..results import PER_ROI, Results
from ..traces import Traces
from .common import (
    RESULTS_MODULE,
    SERIES_NAME,
    SPIKES_NAME,
    TABLE_NAME,
    as_source,
    neurodata_type,
    open_nwb,
    text,
)
from .session import NOISE_FREE

_NOT_DEFAULT = (
    "neuropil",
    "deconvolved",
    "denoised",
    "noise_free",
    NOISE_FREE.lower(),
    "reconstruction",
    "spikes",
)
_MASK_COLUMNS = ("image_mask", "pixel_mask", "voxel_mask")
_RESULTS_MODULE = f"processing/{RESULTS_MODULE}"
_BLOCK_BYTES = 64 * 2**20
_MAX_VECTOR_COLUMN = 16


@dataclass
class SeriesInfo:
    """One RoiResponseSeries of a file, enough to let a user pick it."""

    path: str
    n_rois: int
    n_frames: int
    rate: float | None
    unit: str
    is_default: bool
    description: str


def _walk(f: h5py.File) -> list[tuple[str, h5py.HLObject]]:
    found: list[tuple[str, h5py.HLObject]] = []
    f.visititems(lambda name, obj: found.append((name, obj)))
    return found


def _is_suite2p(f: h5py.File, objects: list[tuple[str, h5py.HLObject]]) -> bool:
    if "general/source_script" in f:
        script = f["general/source_script"][()]
        if "suite2p" in text(script).lower():
            return True
    for name, obj in objects:
        leaf = name.rsplit("/", 1)[-1]
        kind = neurodata_type(obj)
        if kind == "Images" and leaf.startswith("Backgrounds_"):
            return True
        if kind == "RoiResponseSeries" and re.fullmatch(r"plane\d+", leaf):
            return True
    return False


def _rate(group: h5py.Group) -> float | None:
    if "starting_time" in group:
        return float(group["starting_time"].attrs["rate"])
    return None


def _is_excluded(path: str) -> bool:
    parts = path.lower().split("/")[-2:]
    return any(word in part for part in parts for word in _NOT_DEFAULT)


def _default_path(series: list[tuple[str, h5py.Group]]) -> str | None:
    """dF/F first, then raw fluorescence; by name RoiResponseSeries, then plane0, then path."""
    ranked = []
    for path, group in series:
        if _is_excluded(path):
            continue
        parent = group.parent
        is_dff = (
            neurodata_type(parent) == "DfOverF"
            or "dff" in path.lower()
            or "dfoverf" in path.lower()
        )
        leaf = path.rsplit("/", 1)[-1]
        name_rank = 0 if leaf == "RoiResponseSeries" else 1 if leaf == "plane0" else 2
        ranked.append((not is_dff, name_rank, path))
    return min(ranked)[2] if ranked else None


def _series_groups(objects: list[tuple[str, h5py.HLObject]]) -> list[tuple[str, h5py.Group]]:
    return [
        (name, obj)
        for name, obj in objects
        if isinstance(obj, h5py.Group) and neurodata_type(obj) == "RoiResponseSeries"
    ]


def _no_series_message(path: Path, objects: list[tuple[str, h5py.HLObject]]) -> str:
    skip = {
        "",
        "NWBFile",
        "LabMetaData",
        "ProcessingModule",
        "VectorData",
        "VectorIndex",
        "ElementIdentifiers",
        "Subject",
        "Device",
        "OpticalChannel",
    }
    seen = []
    for name, obj in objects:
        kind = neurodata_type(obj)
        if kind not in skip and not name.startswith("specifications"):
            seen.append(f"{kind} '{name.rsplit('/', 1)[-1]}'")
    contents = ", ".join(seen[:8]) + (f" and {len(seen) - 8} more" if len(seen) > 8 else "")
    return (
        f"{path} contains {contents or 'no data objects'} but no RoiResponseSeries; "
        "open a file with ROI fluorescence traces (suite2p, CaImAn, neuroconv)"
    )


def no_series_message(path: str | Path) -> str:
    """What a file holds instead of RoiResponseSeries: the line read_traces raises for it."""
    with open_nwb(path) as f:
        return _no_series_message(as_source(path), _walk(f))


def list_series(path: str | Path) -> list[SeriesInfo]:
    """Every RoiResponseSeries in the file, with the one :func:`read_traces` reads by default."""
    with open_nwb(path) as f:
        objects = _walk(f)
        series = _series_groups(objects)
        default = _default_path(series)
        infos = []
        for name, group in series:
            data = group["data"]
            shape = data.shape
            n_rois = shape[1] if len(shape) > 1 else 1
            infos.append(
                SeriesInfo(
                    path=name,
                    n_rois=int(n_rois),
                    n_frames=int(shape[0]),
                    rate=_rate(group),
                    unit=text(data.attrs.get("unit", "a.u.")),
                    is_default=name == default,
                    description=text(group.attrs.get("description", "")),
                )
            )
        return infos


def _deflate_filters(dataset: h5py.Dataset) -> tuple[bool, bool] | None:
    """(shuffled, deflated) when gzip and shuffle are the only filters, else None."""
    if dataset.chunks is None:
        return None
    plist = dataset.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    if filters == [h5py.h5z.FILTER_DEFLATE]:
        return False, True
    if filters == [h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_DEFLATE]:
        return True, True
    return None


def _read_deflated(dataset: h5py.Dataset, out: np.ndarray, shuffled: bool) -> None:
    """Inflate the chunks in threads: zlib releases the GIL, h5py's own filter does not."""
    n_frames, n_rois = dataset.shape
    chunk_t, chunk_r = dataset.chunks
    n_chunks = dataset.id.get_num_chunks()
    if n_chunks < -(-n_frames // chunk_t) * -(-n_rois // chunk_r):
        out[...] = dataset.fillvalue
    offsets = [dataset.id.get_chunk_info(i).chunk_offset for i in range(n_chunks)]
    dtype = dataset.dtype

    def place(offset: tuple[int, int]) -> None:
        t0, r0 = offset
        t1, r1 = min(t0 + chunk_t, n_frames), min(r0 + chunk_r, n_rois)
        skipped, raw = dataset.id.read_direct_chunk(offset)
        if skipped:
            out[r0:r1, t0:t1] = dataset[t0:t1, r0:r1].T
            return
        flat = np.frombuffer(zlib.decompress(raw), dtype=np.uint8)
        if shuffled:
            flat = flat.reshape(dtype.itemsize, -1).T.copy()
        block = flat.view(dtype).reshape(chunk_t, chunk_r)
        out[r0:r1, t0:t1] = block[: t1 - t0, : r1 - r0].T

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(place, offsets))


def _read_data(dataset: h5py.Dataset) -> np.ndarray:
    """Time x ROIs on disk into a ROIs x frames float32 buffer, a block of frames at a time."""
    if dataset.ndim == 1:
        return np.asarray(dataset[()], dtype=np.float32)[None, :]
    n_frames, n_rois = dataset.shape[:2]
    out = np.empty((n_rois, n_frames), dtype=np.float32)
    step = max(1, _BLOCK_BYTES // max(1, 4 * n_rois))
    chunks = dataset.chunks
    deflate = _deflate_filters(dataset) if dataset.ndim == 2 else None
    if deflate is not None:
        _read_deflated(dataset, out, shuffled=deflate[0])
    elif chunks is not None and chunks[0] > step:
        # chunks that are tall in time (ROI-major storage): blocks of ROIs read each once
        width = max(chunks[1], _BLOCK_BYTES // max(1, 4 * n_frames) // chunks[1] * chunks[1])
        for start in range(0, n_rois, width):
            stop = min(start + width, n_rois)
            out[start:stop] = dataset[:, start:stop].T
    else:
        if chunks is not None:
            step = step // chunks[0] * chunks[0]
        block = np.empty((min(step, n_frames), n_rois), dtype=np.float32)
        for start in range(0, n_frames, step):
            stop = min(start + step, n_frames)
            view = block[: stop - start]
            dataset.read_direct(view, np.s_[start:stop])
            out[:, start:stop] = view.T
    conversion = float(dataset.attrs.get("conversion", 1.0))
    offset = float(dataset.attrs.get("offset", 0.0))
    if conversion != 1.0:
        out *= np.float32(conversion)
    if offset != 0.0:
        out += np.float32(offset)
    return out


def _ragged_rows(table: h5py.Group, column: str, rows: np.ndarray) -> list[np.ndarray]:
    values = table[column][()]
    ends = table[f"{column}_index"][()].astype(np.int64)
    starts = np.concatenate([[0], ends[:-1]])
    return [values[starts[r] : ends[r]] for r in rows]


def _masks(
    table: h5py.Group, rows: np.ndarray, suite2p: bool
) -> tuple[list[np.ndarray] | None, tuple[int, int] | None]:
    """Per-ROI (row, col, weight) arrays, and the plane shape when an image_mask gives it."""
    if "pixel_mask" in table and "pixel_mask_index" in table:
        masks = []
        for px in _ragged_rows(table, "pixel_mask", rows):
            x, y = px["x"].astype(np.float64), px["y"].astype(np.float64)
            w = px["weight"].astype(np.float64)
            rc = (x, y) if suite2p else (y, x)
            masks.append(np.column_stack([rc[0], rc[1], w]))
        return masks, None
    if "voxel_mask" in table and "voxel_mask_index" in table:
        masks = []
        for vx in _ragged_rows(table, "voxel_mask", rows):
            x, y = vx["x"].astype(np.int64), vx["y"].astype(np.int64)
            w = vx["weight"].astype(np.float64)
            r, c = (x, y) if suite2p else (y, x)
            mask = np.column_stack([r, c, w])
            # project the volume onto the plane: one entry per pixel, its largest weight
            order = np.lexsort((-w, c, r))
            mask = mask[order]
            first = np.ones(len(mask), dtype=bool)
            first[1:] = (np.diff(mask[:, 0]) != 0) | (np.diff(mask[:, 1]) != 0)
            masks.append(mask[first])
        return masks, None
    if "image_mask" in table:
        dataset = table["image_mask"]
        plane = dataset.shape[1:3]
        shape = plane if suite2p else plane[::-1]
        masks_by_row: dict[int, np.ndarray] = {}
        wanted = np.unique(rows)
        step = max(1, _BLOCK_BYTES // max(1, 8 * int(np.prod(dataset.shape[1:]))))
        for start in range(0, len(wanted), step):
            chunk = wanted[start : start + step]
            block = dataset[chunk.tolist()]
            for r, image in zip(chunk, block, strict=True):
                if image.ndim == 3:
                    image = image.max(axis=2)
                if not suite2p:
                    image = image.T
                rr, cc = np.nonzero(image)
                masks_by_row[int(r)] = np.column_stack([rr, cc, image[rr, cc]]).astype(np.float64)
        return [masks_by_row[int(r)] for r in rows], (int(shape[0]), int(shape[1]))
    return None, None


def _roi_table(table: h5py.Group, rows: np.ndarray) -> pd.DataFrame:
    """Scalar and short vector columns of a DynamicTable, in the given row order."""
    columns: dict[str, np.ndarray] = {}
    names = [text(c) for c in np.atleast_1d(table.attrs.get("colnames", []))]
    for name in names:
        if name in _MASK_COLUMNS or name not in table or f"{name}_index" in table:
            continue
        dataset = table[name]
        if not isinstance(dataset, h5py.Dataset) or dataset.dtype.names is not None:
            continue
        if dataset.dtype.kind == "O" and h5py.check_string_dtype(dataset.dtype) is None:
            continue
        if dataset.ndim > 2 or (dataset.ndim == 2 and dataset.shape[1] > _MAX_VECTOR_COLUMN):
            continue
        values = dataset[()][rows]
        if h5py.check_string_dtype(dataset.dtype) is not None or values.dtype.kind == "S":
            values = np.array([text(v) for v in values.ravel()], dtype=object).reshape(values.shape)
        if values.ndim == 1:
            columns[name] = values
        else:
            for k in range(values.shape[1]):
                columns[f"{name}_{k}"] = values[:, k]
    return pd.DataFrame(columns)


def _images(objects: list[tuple[str, h5py.HLObject]], suite2p: bool) -> dict[str, np.ndarray]:
    images: dict[str, np.ndarray] = {}
    for name, obj in objects:
        if not isinstance(obj, h5py.Group) or neurodata_type(obj) != "Images":
            continue
        for key, item in obj.items():
            if not isinstance(item, h5py.Dataset) or item.ndim != 2:
                continue
            data = item[()]
            label = key if key not in images else f"{name.rsplit('/', 1)[-1]}/{key}"
            images[label] = data if suite2p else data.T
    return images


def _image_shape(
    masks: list[np.ndarray] | None,
    images: dict[str, np.ndarray],
    from_masks: tuple[int, int] | None,
) -> tuple[int, int] | None:
    """The plane the masks live on: image_mask size, else the largest image that holds them."""
    if from_masks is not None:
        return from_masks
    extent = (0, 0)
    pixels = [m for m in masks or [] if len(m)]
    if pixels:
        top = np.max([m[:, :2].max(axis=0) for m in pixels], axis=0)
        extent = (int(top[0]) + 1, int(top[1]) + 1)
    fitting = [
        img.shape
        for img in images.values()
        if img.shape[0] >= extent[0] and img.shape[1] >= extent[1]
    ]
    if fitting:
        return max(fitting, key=lambda s: s[0] * s[1])
    return extent if pixels else None


def _latest_results(f: h5py.File, series_path: str, table_path: str) -> h5py.Group | None:
    """The newest results table written by write_results for this series, if any."""
    if _RESULTS_MODULE not in f:
        return None
    found = []
    for key, group in f[_RESULTS_MODULE].items():
        # population tables (assembly_rois, state_rates) point at the ROIs too
        if re.fullmatch(rf"{TABLE_NAME}(_\d+)?", key) is None:
            continue
        if not isinstance(group, h5py.Group) or "rois" not in group:
            continue
        if neurodata_type(group) != "DynamicTable":
            continue
        description = text(group.attrs.get("description", ""))
        match = re.search(r"source series: (\S+?);", description + ";")
        if match is None or match.group(1).strip("/") != series_path:
            continue
        target = group["rois"].attrs.get("table")
        if target is None or f[target].name.strip("/") != table_path:
            continue
        suffix = re.search(r"_(\d+)$", key)
        found.append((int(suffix.group(1)) if suffix else 1, key))
    if not found:
        return None
    return f[_RESULTS_MODULE][max(found)[1]]


def _positions(written_rows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Where each of ``rows`` sits in a results object's ``rois`` column (-1: not there).

    Results may cover a subset of the ROIs, in any order; this lines them up with the
    series being read.
    """
    position = {int(r): i for i, r in enumerate(written_rows)}
    return np.array([position.get(int(r), -1) for r in rows], dtype=np.int64)


def _scalar(value: str) -> str | int | float:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _provenance(description: str) -> dict[str, str | int | float]:
    """The ``key=value`` facts write_results put into a description, numbers as numbers."""
    facts: dict[str, str | int | float] = {}
    for part in description.split("; "):
        key, sep, value = part.partition("=")
        if sep:
            facts[key] = _scalar(value)
    return facts


def _table_results(group: h5py.Group, rows: np.ndarray, **series: np.ndarray | None) -> Results:
    """A results table (and the ``series`` of its run) as Results lined up with ``rows``."""
    description = text(group.attrs.get("description", ""))
    values = _per_roi_values(group, rows)
    return Results(**values, **series, provenance=_provenance(description))


def _per_roi_values(group: h5py.Group, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The per-ROI fields a results table holds, lined up with ``rows``; ROIs it lacks get
    each field's fill."""
    index = _positions(group["rois"][()], rows)
    present = index >= 0
    values = {}
    for name, column in PER_ROI.items():
        if column.name not in group:
            continue
        stored = group[column.name][()]
        if column.vector:
            stored = np.atleast_2d(stored.T).T
        out = np.full((len(rows), *stored.shape[1:]), column.fill, dtype=column.dtype)
        out[present] = stored[index[present]]
        values[name] = out
    return values


def _series_of_run(
    f: h5py.File, table: h5py.Group, rows: np.ndarray, base: str
) -> np.ndarray | None:
    """A series written with a results table (denoised traces, inferred spikes), ROIs x
    frames in ``rows`` order."""
    key = table.name.rsplit("/", 1)[1]
    name = base + key[len(TABLE_NAME) :]
    module = f[_RESULTS_MODULE]
    if name not in module or "data" not in module[name]:
        return None
    recon = module[name]
    index = _positions(recon["rois"][()], rows)
    data = _read_data(recon["data"])
    out = np.full((len(rows), data.shape[1]), np.nan, dtype=np.float32)
    out[index >= 0] = data[index[index >= 0]]
    return out


def _choose_series(path: Path, objects: list[tuple[str, h5py.HLObject]], series: str | None) -> str:
    """The path of the series to read: the one asked for, or the default one."""
    all_series = _series_groups(objects)
    if not all_series:
        raise CalciumAvaeError(_no_series_message(path, objects))
    paths = [name for name, _ in all_series]
    if series is None:
        chosen = _default_path(all_series)
        if chosen is None:
            raise CalciumAvaeError(
                f"{path} has only neuropil/deconvolved/derived series; choose one of: "
                + ", ".join(paths)
            )
    else:
        chosen = series.strip("/")
        if chosen not in paths:
            raise CalciumAvaeError(
                f"no RoiResponseSeries '{series}' in {path}; available: " + ", ".join(paths)
            )
    return chosen


def read_traces(path: str | Path, series: str | None = None) -> Traces:
    """Load one RoiResponseSeries (the default one unless ``series`` names it) as Traces."""
    path = as_source(path)
    with open_nwb(path) as f:
        objects = _walk(f)
        chosen = _choose_series(path, objects, series)
        group = f[chosen]
        suite2p = _is_suite2p(f, objects)
        try:
            data = _read_data(group["data"])
        except OSError as err:
            raise CalciumAvaeError(
                f"cannot read the traces of {chosen} in {path}: the file is truncated or "
                f"damaged ({err})"
            ) from err
        rate = _rate(group)
        timestamps = group["timestamps"][()] if "timestamps" in group else None
        starting_time = (
            float(group["starting_time"][()])
            if "starting_time" in group
            else float(timestamps[0])
            if timestamps is not None and len(timestamps)
            else 0.0
        )
        unit = text(group["data"].attrs.get("unit", "a.u."))
        rows = np.arange(data.shape[0])
        table_path = None
        masks = None
        plane_shape = None
        roi_ids = None
        roi_table = pd.DataFrame()
        if "rois" in group and "table" in group["rois"].attrs:
            rows = np.asarray(group["rois"][()], dtype=np.int64)
            table = f[group["rois"].attrs["table"]]
            table_path = table.name.strip("/")
            if "id" in table:
                roi_ids = table["id"][()][rows]
            masks, plane_shape = _masks(table, rows, suite2p)
            roi_table = _roi_table(table, rows)
            stored = _latest_results(f, chosen, table_path)
            if stored is not None:
                # the latest results as columns too, so the table shows all a ROI has
                roi_table = roi_table.copy()
                per_roi = _per_roi_values(stored, rows)
                columns = Results(**per_roi).table().items() if per_roi else []
                for name, values in columns:
                    roi_table[name] = values.to_numpy()
        if len(rows) != data.shape[0]:
            raise CalciumAvaeError(
                f"{chosen} in {path} has {data.shape[0]} ROI columns but its rois region "
                f"names {len(rows)} ROIs; the file is inconsistent"
            )
        images = _images(objects, suite2p)
        return Traces(
            data=data,
            rate=rate,
            timestamps=timestamps,
            starting_time=starting_time,
            roi_ids=roi_ids,
            masks=masks,
            image_shape=_image_shape(masks, images, plane_shape),
            roi_table=roi_table,
            unit=unit,
            source_file=path,
            series_path=chosen,
            plane_segmentation_path=table_path,
            roi_rows=rows,
            images=images,
        )


def read_results(path: str | Path, series: str | None = None) -> Results | None:
    """The latest write_results run for a series as Results, or None when there is none.

    Rows line up with ``read_traces(path, series)``: results may cover a subset of the
    ROIs, in any order, and the ROIs they lack get NaN latents and cluster -1. Provenance
    comes back from the table's description (numbers as numbers); the diagnostics live
    there too, so ``diagnostics`` is None.
    """
    path = as_source(path)
    with open_nwb(path) as f:
        chosen = _choose_series(path, _walk(f), series)
        group = f[chosen]
        if "rois" not in group or "table" not in group["rois"].attrs:
            return None
        table_path = f[group["rois"].attrs["table"]].name.strip("/")
        stored = _latest_results(f, chosen, table_path)
        if stored is None:
            return None
        rows = np.asarray(group["rois"][()], dtype=np.int64)
        return _table_results(
            stored,
            rows,
            reconstruction=_series_of_run(f, stored, rows, SERIES_NAME),
            spike_rates=_series_of_run(f, stored, rows, SPIKES_NAME),
        )


def read_reconstruction(path: str | Path, series: str | None = None) -> np.ndarray | None:
    """Denoised traces of the latest write_results run for a series, or None.

    ROIs x frames float32 in the series' own ROI order, so the rows line up with
    ``read_traces(path, series)``; ROIs the run did not cover are NaN.
    """
    results = read_results(path, series)
    return None if results is None else results.reconstruction
