"""DBSCAN on the latent means, with eps chosen without labels.

Real data have no labels to tune eps against, so the default eps is the knee of the sorted
k-distance curve (k = min_samples, Ester et al. 1996); the curve itself is returned so a user
can see the choice and override it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import DBSCAN
from sklearn.neighbors import NearestNeighbors

from ..errors import CalciumAvaeError, CalciumAvaeWarning
from ._threads import openmp_threads_for


@dataclass
class Clustering:
    labels: np.ndarray
    """(n,) cluster per ROI, -1 = noise (also for ROIs with no latent)."""
    eps: float
    min_samples: int
    k_distances: np.ndarray
    """Sorted distance of each point to its (min_samples - 1)-th neighbour, for display."""
    eps_was_auto: bool

    @property
    def n_clusters(self) -> int:
        return len(set(self.labels[self.labels >= 0].tolist()))


def k_distances(latents: np.ndarray, min_samples: int) -> np.ndarray:
    """Sorted distances to the (min_samples - 1)-th nearest other point.

    scikit-learn's DBSCAN counts a point in its own neighbourhood, so a point is core when
    this distance is <= eps: the curve and the clustering agree exactly.
    """
    latents = np.asarray(latents, dtype=np.float64)
    k = min(min_samples, len(latents))
    if k < 2:
        return np.zeros(len(latents))
    with openmp_threads_for(len(latents)):
        distances, _ = NearestNeighbors(n_neighbors=k).fit(latents).kneighbors(latents)
    return np.sort(distances[:, -1])


def knee_eps(sorted_distances: np.ndarray) -> float:
    """The knee of an increasing curve: the point farthest below the chord joining its ends.

    The knee is kept above zero: when at least min_samples ROIs share one latent vector (a
    saturated encoder does this) it can land on a zero distance, which DBSCAN refuses, and
    the smallest positive distance is then the nearest label-free choice.
    """
    d = np.asarray(sorted_distances, dtype=np.float64)
    if len(d) == 0:
        raise CalciumAvaeError("cannot choose eps without any points")
    span = d[-1] - d[0]
    if len(d) < 3 or span <= 0:
        knee = float(d[-1])
    else:
        x = np.linspace(0.0, 1.0, len(d))
        knee = float(d[int(np.argmax(x - (d - d[0]) / span))])
    if knee > 0:
        return knee
    positive = d[d > 0]
    return float(positive.min()) if len(positive) else 1e-6


def cluster_latents(
    latents: np.ndarray, eps: float | str = "auto", min_samples: int = 5
) -> Clustering:
    """DBSCAN with a label-free or manual eps; rows with NaN latents are labelled noise."""
    latents = np.asarray(latents, dtype=np.float64)
    if latents.ndim != 2:
        raise CalciumAvaeError(f"latents must be 2-D (ROIs x dimensions), got {latents.shape}")
    if min_samples < 1:
        raise CalciumAvaeError(f"min_samples must be at least 1, got {min_samples}")
    valid = np.isfinite(latents).all(axis=1)
    points = latents[valid]
    labels = np.full(len(latents), -1, dtype=np.int64)
    curve = k_distances(points, min_samples) if len(points) else np.zeros(0)
    auto = isinstance(eps, str)
    if auto and eps != "auto":
        raise CalciumAvaeError(f"eps must be 'auto' or a positive number, got {eps!r}")
    if not auto and not float(eps) > 0:
        raise CalciumAvaeError(f"eps must be positive, got {eps}")
    if len(points) < min_samples:
        warnings.warn(
            f"only {len(points)} ROI(s) to cluster but min_samples is {min_samples}: "
            "every ROI is labelled noise (-1); lower min_samples or add ROIs",
            CalciumAvaeWarning,
            stacklevel=2,
        )
        value = float(eps) if not auto else float("nan")
        return Clustering(labels, value, min_samples, curve, auto)
    value = knee_eps(curve) if auto else float(eps)
    with openmp_threads_for(len(points)):
        labels[valid] = DBSCAN(eps=value, min_samples=min_samples).fit_predict(points)
    _warn_if_fragmented(labels[valid], min_samples)
    return Clustering(labels, value, min_samples, curve, auto)


def _warn_if_fragmented(labels: np.ndarray, min_samples: int) -> None:
    """Clusters that are mostly a ROI or two say more about eps than about the neurons."""
    n, n_clusters = len(labels), len(np.unique(labels[labels >= 0]))
    if min_samples < 2:
        why = (
            f"min_samples {min_samples} makes every ROI a core point, so each isolated ROI is "
            "a cluster of its own and none is noise"
        )
    elif n_clusters > n / 3:
        why = "most clusters hold only a few ROIs: eps is small for these latents"
    else:
        return
    warnings.warn(
        f"{n_clusters} clusters for {n} ROIs: {why}; raise min_samples (5 is the default) or eps",
        CalciumAvaeWarning,
        stacklevel=3,
    )
