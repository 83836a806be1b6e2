"""Single-neuron representation learning from calcium imaging, NWB in and out."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-calcium-avae")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from .errors import CalciumAvaeError
from .results import Results
from .traces import Traces

__all__ = ["CalciumAvaeError", "Results", "Traces", "__version__"]
