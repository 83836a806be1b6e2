"""The AVAE of seed 000 (two architectures), its training loop, checkpoints and PCA baseline."""

from .checkpoint import load_checkpoint as load_model
from .estimator import AVAE, PCABaseline
from .training import EpochReport

__all__ = ["AVAE", "EpochReport", "PCABaseline", "load_model"]
