"""Two-dimensional views of the latent space, for display only (never for clustering)."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from ..errors import CalciumAvaeError
from ._threads import openmp_threads_for

#: the 2-D views :func:`embed_2d` draws; "auto" is t-SNE up to TSNE_MAX_POINTS, else PCA
EMBEDDINGS = ("auto", "tsne", "pca")
#: t-SNE grows faster than linearly: 24 s for 5,000 points on one core here (2026-12), and
#: no output for over 900 s on 100,000; PCA of 100,000 takes 0.02 s
TSNE_MAX_POINTS = 3_000


def resolve_embedding(method: str, n_points: int) -> str:
    """The method "auto" stands for with ``n_points`` points ("tsne" or "pca")."""
    if method not in EMBEDDINGS:
        raise CalciumAvaeError(f"embedding must be one of {', '.join(EMBEDDINGS)}; got {method!r}")
    if method == "auto":
        return "tsne" if n_points <= TSNE_MAX_POINTS else "pca"
    return method


def embed_2d(latents: np.ndarray, method: str = "auto", random_state: int = 0) -> np.ndarray:
    """(n, 2) t-SNE or PCA of the latents; rows with NaN latents stay NaN.

    t-SNE needs a handful of points; with fewer than 5 it falls back to PCA, and the
    perplexity shrinks with small n so that small recordings still embed. "auto" takes
    PCA above TSNE_MAX_POINTS points, where t-SNE would take minutes.
    """
    method = resolve_embedding(method, len(latents))
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
