"""NWB in and out: read ROI traces of suite2p, CaImAn and neuroconv files, write results."""

from .read import SeriesInfo, list_series, read_traces

__all__ = ["SeriesInfo", "list_series", "read_traces"]
