"""The models: the crop-feature VAE (the default), the AVAE of Abante et al. 2025 (two
architectures, the paper's model), their training loop and checkpoints, a PCA baseline."""

from __future__ import annotations

from pathlib import Path

from .crop_vae import CropFeatureVAE
from .estimator import AVAE, PCABaseline
from .training import EpochReport

MODELS = {"crop-vae": CropFeatureVAE, "avae": AVAE}
"""What ``fit --model`` and the Train dock offer: the default first, then the paper's."""
DEFAULT_MODEL = "crop-vae"


def load_model(path: str | Path, device: str = "auto") -> CropFeatureVAE | AVAE:
    """A fitted model from a file written by either model's ``save``, whichever it is."""
    from . import crop_vae, estimator
    from .checkpoint import file_format

    if file_format(path) == crop_vae.FORMAT:
        return CropFeatureVAE.load(path, device=device)
    return estimator.AVAE.load(path, device=device)


__all__ = [
    "AVAE",
    "DEFAULT_MODEL",
    "MODELS",
    "CropFeatureVAE",
    "EpochReport",
    "PCABaseline",
    "load_model",
]
