"""npe2 reader for ``*.nwb``: ROIs as a Labels layer, reference images as Image layers.

napari asks every reader whose pattern matches; returning None from ``get_reader`` means
"not mine" and lets another plugin try, so the check is cheap and never raises: an existing
file named ``*.nwb`` (an NWB-Zarr folder is left to other plugins). Such a file that turns
out to be unusable (not HDF5, no RoiResponseSeries, truncated) is ours to explain, since no
other reader can do better: a notification with the library's one-line reason, and npe2's
"read, nothing to add" sentinel ``[(None,)]``, so napari does not add its vaguer "refused
the file ... see the stack trace".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from napari.utils.notifications import show_error

from ..errors import CalciumAvaeError
from ._layers import LayerData, traces_layer_data
from ._placement import right_edge, side_by_side


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """Our reader for NWB files, None for anything else (napari then asks other plugins)."""
    paths = [path] if isinstance(path, str | Path) else list(path)
    if not paths:
        return None
    for p in paths:
        if not str(p).lower().endswith(".nwb") or not Path(p).is_file():
            return None
    return read_nwb


def layers_from_file(path: str | Path, series: str | None = None) -> list[LayerData]:
    """Layer data of one NWB file; raises CalciumAvaeError when it cannot be read."""
    from ..nwb import read_results, read_traces

    traces = read_traces(path, series=series)
    results = read_results(path, series=traces.series_path)
    return traces_layer_data(traces, Path(path).stem, results)


NOTHING_READ = [(None,)]


def read_nwb(path: str | list[str]) -> list[LayerData] | list[tuple[None]]:
    """Read one or several NWB files; a file that fails is reported and skipped.

    The recordings go right of those the viewer shows already, so none covers another.
    """
    from napari import current_viewer

    paths = [path] if isinstance(path, str | Path) else list(path)
    per_file: list[list[LayerData]] = []
    for p in paths:
        try:
            per_file.append(layers_from_file(p))
        except CalciumAvaeError as error:
            show_error(f"{Path(p).name}: {error}")
    return side_by_side(per_file, start=right_edge(current_viewer())) or NOTHING_READ
