"""NWB in and out: read ROI traces of suite2p, CaImAn and neuroconv files, write results."""

from .read import SeriesInfo, list_series, read_reconstruction, read_traces
from .write import write_results

__all__ = ["SeriesInfo", "list_series", "read_reconstruction", "read_traces", "write_results"]
