"""Spike inference from calcium traces under the observation model of seed 002."""

from .inference import MIN_FRAMES, SpikeInference

__all__ = ["MIN_FRAMES", "SpikeInference"]
