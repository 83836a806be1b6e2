"""Population analysis: co-active assemblies and network states (no Qt).

``AssemblyDetector`` (assemblies.py) finds groups of ROIs that are active together;
``CalciumHMM`` (hmm.py) finds the network's discrete states. Both are imported lazily, so
that importing the package costs nothing until one is used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AssemblyDetector", "CalciumHMM"]


def __getattr__(name: str) -> Any:
    if name == "AssemblyDetector":
        from .assemblies import AssemblyDetector

        return AssemblyDetector
    if name == "CalciumHMM":
        from .hmm import CalciumHMM

        return CalciumHMM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
