"""Clustering, display embeddings and the paper's metrics: plain numpy / scikit-learn."""

from .clustering import Clustering, cluster_latents, k_distances, knee_eps
from .diagnostics import LatentDiagnostics, latent_diagnostics, latents_identical
from .embedding import embed_2d
from .metrics import (
    HeldOutScores,
    adjusted_rand,
    best_gaussian_filter,
    oracle_eps_ari,
    reconstruction_mse,
    score_held_out,
)

__all__ = [
    "Clustering",
    "HeldOutScores",
    "LatentDiagnostics",
    "adjusted_rand",
    "best_gaussian_filter",
    "cluster_latents",
    "embed_2d",
    "k_distances",
    "knee_eps",
    "latent_diagnostics",
    "latents_identical",
    "oracle_eps_ari",
    "reconstruction_mse",
    "score_held_out",
]
