"""What the NWB reader and writers share: opening a file, HDF5 text, the results' names."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..errors import CalciumAvaeError

RESULTS_MODULE = "calcium_avae"
"""Processing module that holds the results (``processing/calcium_avae``)."""
TABLE_NAME = "results"
"""Per-ROI results table written by write_results (``results_2``... on reruns)."""
SERIES_NAME = "reconstruction"
"""Its denoised traces, with the same numeric suffix as the table of the same run."""
SPIKES_NAME = "inferred_spikes"
"""Its inferred spikes per frame (same suffix); readers never take them for fluorescence."""
SPIKES_UNIT = "spikes per frame"


def text(value: object) -> str:
    """An HDF5 attribute or string value as str (h5py gives bytes, str or 0-d arrays)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return text(value[()])
    return str(value)


def neurodata_type(obj: h5py.HLObject) -> str:
    """The NWB type of a group or dataset, "" when it has none."""
    return text(obj.attrs.get("neurodata_type", ""))


def as_source(path: str | Path) -> Path | str:
    """A local path as a Path; a URL (see nwb.remote) stays the str it is."""
    from .remote import is_url

    return path if is_url(path) else Path(path)


def open_nwb(path: str | Path) -> h5py.File:
    """Open an NWB file read-only (a local path or a URL, read lazily), turning every way
    it can be unreadable into one line."""
    from .remote import is_url, open_url

    if is_url(path):
        f = open_url(path)
        if neurodata_type(f) != "NWBFile":
            f.close()
            raise CalciumAvaeError(f"{path} is an HDF5 file but not an NWB file")
        return f
    path = Path(path)
    if not path.exists():
        raise CalciumAvaeError(f"no such file: {path}")
    if path.is_dir():
        raise CalciumAvaeError(f"{path} is a folder, not an NWB file")
    if not h5py.is_hdf5(path):
        raise CalciumAvaeError(f"{path} is not an NWB file (not HDF5)")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise CalciumAvaeError(
            f"cannot open {path}: the file is truncated or damaged ({err})"
        ) from err
    if neurodata_type(f) != "NWBFile":
        f.close()
        raise CalciumAvaeError(f"{path} is an HDF5 file but not an NWB file")
    return f
