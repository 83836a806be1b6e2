"""Clustering, display embeddings and the paper's metrics: plain numpy / scikit-learn."""

from .clustering import Clustering, cluster_latents, k_distances, knee_eps
from .embedding import embed_2d
from .metrics import (
    HeldOutScores,
    adjusted_rand,
    oracle_eps_ari,
    reconstruction_mse,
    score_held_out,
)

__all__ = [
    "Clustering",
    "HeldOutScores",
    "adjusted_rand",
    "cluster_latents",
    "embed_2d",
    "k_distances",
    "knee_eps",
    "oracle_eps_ari",
    "reconstruction_mse",
    "score_held_out",
]
