"""Two-dimensional views of the latent space, for display only (never for clustering)."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from ..errors import CalciumAvaeError
from ._threads import openmp_threads_for


def embed_2d(latents: np.ndarray, method: str = "tsne", random_state: int = 0) -> np.ndarray:
    """(n, 2) t-SNE or PCA of the latents; rows with NaN latents stay NaN.

    t-SNE needs a handful of points; with fewer than 5 it falls back to PCA, and the
    perplexity shrinks with small n so that small recordings still embed.
    """
    if method not in ("tsne", "pca"):
        raise CalciumAvaeError(f"embedding must be 'tsne' or 'pca', got {method!r}")
    latents = np.asarray(latents, dtype=np.float64)
    out = np.full((len(latents), 2), np.nan, dtype=np.float32)
    valid = np.isfinite(latents).all(axis=1)
    points = latents[valid]
    n = len(points)
    if n == 0:
        return out
    if n < 3 or points.shape[1] < 2:
        padded = np.zeros((n, 2))
        padded[:, : min(2, points.shape[1])] = points[:, :2] - points[:, :2].mean(0)
        out[valid] = padded
        return out
    if method == "pca" or n < 5:
        out[valid] = PCA(n_components=2, random_state=random_state).fit_transform(points)
        return out
    perplexity = float(min(30.0, (n - 1) / 3.0))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state)
    with openmp_threads_for(n):
        out[valid] = tsne.fit_transform(points)
    return out
