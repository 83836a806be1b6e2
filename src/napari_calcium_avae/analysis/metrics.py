"""The paper's evaluation: reconstruction MSE against the noise-free truth, and ARI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score

from .clustering import cluster_latents, k_distances


def reconstruction_mse(
    reconstruction: np.ndarray, clean: np.ndarray, noisy: np.ndarray
) -> np.ndarray:
    """Per-trace MSE between a reconstruction and the noise-free trace, in the noisy input's
    min-max scale.

    Abante et al. 2025 score both traces after the noisy trace's own [-0.5, 0.5] scaling; that map
    is affine, so the difference is (reconstruction - clean) / (max - min of the noisy trace)
    and the offset cancels. ``reconstruction`` is in the source's units.
    """
    noisy = np.asarray(noisy, dtype=np.float64)
    span = noisy.max(axis=1, keepdims=True) - noisy.min(axis=1, keepdims=True)
    diff = (np.asarray(reconstruction, np.float64) - np.asarray(clean, np.float64)) / span
    return np.mean(diff**2, axis=1)


GAUSSIAN_SDS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
"""Filter SDs (frames) the Gaussian-filter peer tries."""


def best_gaussian_filter(noisy: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """(mean reconstruction MSE, SD in frames) of the Gaussian filter whose SD fits the
    noise-free truth best: the peer a denoiser must beat, chosen so that it favours the
    filter (issue 15)."""
    from scipy.ndimage import gaussian_filter1d

    noisy = np.asarray(noisy, dtype=np.float64)
    scores = [
        (float(reconstruction_mse(gaussian_filter1d(noisy, sd, axis=1), clean, noisy).mean()), sd)
        for sd in GAUSSIAN_SDS
    ]
    return min(scores)


def adjusted_rand(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """ARI with DBSCAN noise kept as its own group, as the paper scores it."""
    return float(adjusted_rand_score(np.asarray(labels_true), np.asarray(labels_pred)))


def oracle_eps_ari(
    latents: np.ndarray, labels_true: np.ndarray, min_samples: int = 5, n_grid: int = 60
) -> tuple[float, float]:
    """(best ARI, its eps) over an eps grid spanning the k-distance curve.

    This is the paper's protocol (eps tuned against the true labels): an upper bound to
    report beside the label-free eps, never a way to choose eps on real data.
    """
    curve = k_distances(latents, min_samples)
    lo, hi = float(curve[0]), float(curve[-1])
    grid = np.linspace(max(lo, 1e-9), max(hi, 2e-9) * 1.05, n_grid)
    best = (-1.0, float(grid[0]))
    for eps in grid:
        score = adjusted_rand(labels_true, cluster_latents(latents, eps, min_samples).labels)
        if score > best[0]:
            best = (score, float(eps))
    return best


@dataclass(frozen=True)
class HeldOutScores:
    """The paper's scores of one fitted model on held-out neurons."""

    mse: float
    """Mean reconstruction MSE against the noise-free traces (see reconstruction_mse)."""
    ari_auto: float
    """ARI of DBSCAN with the label-free eps (the k-distance knee)."""
    ari_oracle: float
    """Best ARI over eps tuned against the true types: the paper's protocol, a bound."""
    eps_auto: float
    eps_oracle: float
    n_clusters_auto: int
    distinct_latents: int
    """Distinct latent vectors (rounded to 1e-5): far below the neuron count, the encoder
    has saturated and many neurons share one code."""
    ari_hdbscan: float = float("nan")
    """ARI of the product's own label-free clustering (HDBSCAN, its defaults)."""
    n_clusters_hdbscan: int = 0


def score_held_out(
    model: Any, noisy: np.ndarray, clean: np.ndarray, types: np.ndarray, min_samples: int = 5
) -> HeldOutScores:
    """MSE and ARI (both eps choices) of a fitted AVAE or PCABaseline on held-out traces."""
    z, reconstruction = model.transform_reconstruct(noisy)
    auto = cluster_latents(z, "auto", min_samples)
    best, best_eps = oracle_eps_ari(z, types, min_samples)
    product = cluster_latents(z)  # the default method, as apply runs it
    return HeldOutScores(
        mse=float(reconstruction_mse(reconstruction, clean, noisy).mean()),
        ari_auto=adjusted_rand(types, auto.labels),
        ari_oracle=best,
        eps_auto=auto.eps,
        eps_oracle=best_eps,
        n_clusters_auto=auto.n_clusters,
        distinct_latents=len(np.unique(np.round(z, 5), axis=0)),
        ari_hdbscan=adjusted_rand(types, product.labels),
        n_clusters_hdbscan=product.n_clusters,
    )
