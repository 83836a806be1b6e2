"""Synthetic population recordings from a fitted model (issue 17; docs/generation.md).

No Qt here: the CLI (``calcium-avae generate``) and Python call the same functions.
"""

from .generator import GeneratedRecording, PopulationGenerator, resample_transitions
from .nwb import read_ground_truth, write_generated

__all__ = [
    "GeneratedRecording",
    "PopulationGenerator",
    "read_ground_truth",
    "resample_transitions",
    "write_generated",
]
