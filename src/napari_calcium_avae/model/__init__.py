"""The AVAE of Abante et al. 2025 (two architectures), training loop, checkpoints, PCA baseline."""

from .checkpoint import load_checkpoint as load_model
from .estimator import AVAE, PCABaseline
from .training import EpochReport

__all__ = ["AVAE", "EpochReport", "PCABaseline", "load_model"]
