"""Synthetic population recordings from a fitted model (issue 17; docs/generation.md).

No Qt here: the CLI (``calcium-avae generate``) and Python call the same functions. The
NWB writer (pynwb, h5py) is imported only when it is used.
"""

from typing import Any

from .generator import GeneratedRecording, PopulationGenerator, resample_transitions

__all__ = [
    "GeneratedRecording",
    "PopulationGenerator",
    "read_ground_truth",
    "resample_transitions",
    "write_generated",
]


def __getattr__(name: str) -> Any:
    if name in ("read_ground_truth", "write_generated", "recording_facts"):
        from . import nwb

        return getattr(nwb, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
