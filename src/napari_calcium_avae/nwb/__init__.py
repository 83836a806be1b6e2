"""NWB in and out: read ROI traces of suite2p, CaImAn and neuroconv files, write results."""

from .read import SeriesInfo, list_series, read_reconstruction, read_results, read_traces
from .write import result_path, write_results

__all__ = [
    "SeriesInfo",
    "list_series",
    "read_reconstruction",
    "read_results",
    "read_traces",
    "result_path",
    "write_results",
]
