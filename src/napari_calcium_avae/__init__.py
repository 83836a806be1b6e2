"""Single-neuron representation learning from calcium imaging, NWB in and out.

The public API is importable from here; the heavy parts (torch, pynwb, scikit-learn) load
on first use, so that napari can import the plugin's reader without paying for torch.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("napari-calcium-avae")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from .errors import CalciumAvaeError, CalciumAvaeWarning
from .results import Results
from .traces import Traces

_LAZY = {
    "AVAE": "model",
    "PCABaseline": "model",
    "load_model": "model",
    "read_traces": "nwb",
    "read_results": "nwb",
    "list_series": "nwb",
    "write_results": "nwb",
    "simulate_culture": "simulate",
    "simulate_dataset": "simulate",
    "cluster_latents": "analysis",
    "embed_2d": "analysis",
}

__all__ = [
    "CalciumAvaeError",
    "CalciumAvaeWarning",
    "Results",
    "Traces",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
