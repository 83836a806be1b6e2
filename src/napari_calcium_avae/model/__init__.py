"""The AVAE of Abante et al. 2025 (two architectures), training loop, checkpoints, PCA baseline."""

from .estimator import AVAE, PCABaseline
from .training import EpochReport

load_model = AVAE.load
"""``load_model(path, device="auto")``: :meth:`AVAE.load` under a function's name."""

__all__ = ["AVAE", "EpochReport", "PCABaseline", "load_model"]
