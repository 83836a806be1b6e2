"""Clustering of the latent means without labels: HDBSCAN by default, DBSCAN for the paper.

Real data have no labels to tune a clustering against. HDBSCAN (Campello et al. 2013;
McInnes et al. 2017; scikit-learn's ``HDBSCAN``) needs no distance threshold: it keeps the
clusters that persist longest over every density level, so groups of different density
are found together. DBSCAN (Ester et al. 1996) cuts at one radius eps; its label-free eps
is the knee of the sorted k-distance curve (k = min_samples), which on groups of unequal
density often merges them into one cluster. DBSCAN stays for the paper's protocol (eps
tuned against known types, or set by hand).

The latents are clustered as they are, not standardised: the AVAE's KL term puts every
latent dimension on the prior's unit scale, and a collapsed (inactive) dimension has
near-zero spread; standardising would blow its noise up to the weight of an informative
dimension. Both methods see the same Euclidean latent space, so their labels compare.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import DBSCAN, HDBSCAN
from sklearn.neighbors import NearestNeighbors

from ..errors import CalciumAvaeError, CalciumAvaeWarning
from ._threads import openmp_threads_for

METHODS: dict[str, str] = {
    "hdbscan": "clusters of any density, no radius to choose (the default)",
    "dbscan": "one radius eps, the k-distance knee or set by hand (the paper's protocol)",
}
"""The clustering methods, the default first: the CLI's choices and the GUI's combo."""
DEFAULT_METHOD = next(iter(METHODS))
DEFAULT_MIN_SAMPLES = 5
"""Neighbours (the ROI itself included) that make a core ROI, for both methods."""
DEFAULT_MIN_CLUSTER_SIZE = 5
"""HDBSCAN: the fewest ROIs a cluster may hold (scikit-learn's default)."""


@dataclass
class Clustering:
    labels: np.ndarray
    """(n,) cluster per ROI, -1 = noise (also for ROIs with no latent)."""
    eps: float
    """DBSCAN's radius; NaN for HDBSCAN (or when too few ROIs were clustered)."""
    min_samples: int
    k_distances: np.ndarray
    """Sorted distance of each point to its (min_samples - 1)-th neighbour, for display
    (DBSCAN; empty for HDBSCAN, which has no radius to show it against)."""
    eps_was_auto: bool
    method: str = "dbscan"
    min_cluster_size: int | None = None
    """HDBSCAN's smallest cluster; None for DBSCAN."""
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(n,) membership strength in [0, 1]. HDBSCAN: scikit-learn's ``probabilities_``
    (density level at which the ROI leaves its cluster over the cluster's highest level);
    DBSCAN: 1 for core and border members, 0 for noise. NaN for ROIs with no latent."""
    outlier_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(n,) GLOSH outlier score in [0, 1] (HDBSCAN only; NaN for DBSCAN and ROIs with no
    latent): how much sparser the ROI's neighbourhood is than the densest part of the
    cluster it falls out of, in the condensed tree (Campello et al. 2015)."""
    stability: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(n_clusters,) HDBSCAN's stability (persistence) of each cluster, by label: the sum over
    its ROIs of the density range over which they stay in it. Empty for DBSCAN."""
    condensed_tree: np.ndarray | None = None
    """HDBSCAN's condensed tree (rows parent, child, lambda_val, child_size; ROIs are
    children below n, clusters from n up, n = clustered ROIs), for drawing; None for DBSCAN."""

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


def resolve_method(method: str | None, eps: float | str | None) -> str:
    """The method a call means: a named one, else DBSCAN when an eps is given, else HDBSCAN.

    An eps is DBSCAN's parameter, so ``cluster_latents(z, "auto", 5)`` (the paper's
    protocol, as the benchmarks call it) keeps meaning DBSCAN with the knee.
    """
    if method is None:
        return "dbscan" if eps is not None else DEFAULT_METHOD
    if method not in METHODS:
        raise CalciumAvaeError(
            f"unknown clustering method {method!r}: choose one of {', '.join(METHODS)}"
        )
    return method


def cluster_latents(
    latents: np.ndarray,
    eps: float | str | None = None,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    *,
    method: str | None = None,
    min_cluster_size: int | None = None,
) -> Clustering:
    """Cluster the latent means without labels; rows with NaN latents are labelled noise.

    ``method`` is "hdbscan" (the default: no radius to choose) or "dbscan" (``eps`` "auto"
    for the k-distance knee, or a radius); see :func:`resolve_method` for ``None``.
    """
    method = resolve_method(method, eps)
    latents = np.asarray(latents, dtype=np.float64)
    if latents.ndim != 2:
        raise CalciumAvaeError(f"latents must be 2-D (ROIs x dimensions), got {latents.shape}")
    if min_samples < 1:
        raise CalciumAvaeError(f"min_samples must be at least 1, got {min_samples}")
    if method == "hdbscan":
        if eps not in (None, "auto"):
            raise CalciumAvaeError(
                f"eps {eps} is DBSCAN's radius; HDBSCAN needs none: leave eps out or use dbscan"
            )
        min_cluster_size = (
            DEFAULT_MIN_CLUSTER_SIZE if min_cluster_size is None else min_cluster_size
        )
        if min_cluster_size < 2:
            raise CalciumAvaeError(f"min_cluster_size must be at least 2, got {min_cluster_size}")
    elif min_cluster_size is not None:
        raise CalciumAvaeError("min_cluster_size is HDBSCAN's: DBSCAN's clusters follow eps")
    eps = "auto" if eps is None else eps
    auto = isinstance(eps, str)
    if auto and eps != "auto":
        raise CalciumAvaeError(f"eps must be 'auto' or a positive number, got {eps!r}")
    if not auto and not float(eps) > 0:
        raise CalciumAvaeError(f"eps must be positive, got {eps}")

    valid = np.isfinite(latents).all(axis=1)
    points = latents[valid]
    curve = k_distances(points, min_samples) if len(points) and method == "dbscan" else None
    curve = np.zeros(0) if curve is None else curve
    labels = np.full(len(latents), -1, dtype=np.int64)
    probabilities = np.where(valid, 0.0, np.nan)
    outliers = np.full(len(latents), np.nan)
    result = Clustering(
        labels,
        float("nan") if auto or method == "hdbscan" else float(eps),
        min_samples,
        curve,
        auto,
        method,
        min_cluster_size,
        probabilities,
        outliers,
    )
    needed = max(min_samples, min_cluster_size or 0)
    if len(points) < needed:
        what = "min_samples" if needed == min_samples else "min_cluster_size"
        warnings.warn(
            f"only {len(points)} ROI(s) to cluster but {what} is {needed}: "
            f"every ROI is labelled noise (-1); lower {what} or add ROIs",
            CalciumAvaeWarning,
            stacklevel=2,
        )
        return result
    if method == "dbscan":
        result.eps = knee_eps(curve) if auto else float(eps)
        with openmp_threads_for(len(points)):
            labels[valid] = DBSCAN(eps=result.eps, min_samples=min_samples).fit_predict(points)
        probabilities[valid] = (labels[valid] >= 0).astype(np.float64)
        _warn_if_fragmented(
            labels[valid], min_samples, "raise min_samples (5 is the default) or eps"
        )
        return result
    if (points == points[0]).all():
        # one latent vector for every ROI (a collapsed encoder): a group at infinite
        # density, one cluster as DBSCAN finds it, where HDBSCAN, which never returns a
        # single cluster by default, would call all of it noise
        labels[valid], probabilities[valid], outliers[valid] = 0, 1.0, 0.0
        result.stability = np.array([np.inf])
        return result
    with openmp_threads_for(len(points)):
        fitted = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, copy=True).fit(
            points
        )
    labels[valid] = fitted.labels_
    probabilities[valid] = fitted.probabilities_
    hierarchy = getattr(fitted, "_single_linkage_tree_", None)
    if hierarchy is not None:
        tree = condense_tree(hierarchy, min_cluster_size)
        outliers[valid] = glosh_scores(tree, len(points))
        result.stability = _stability_by_label(tree, fitted.labels_)
        result.condensed_tree = tree
    else:  # a future scikit-learn without its single-linkage tree: no scores, said once
        result.stability = np.full(result.n_clusters, np.nan)
        warnings.warn(
            "this scikit-learn keeps no single-linkage tree: outlier scores and cluster "
            "stability are left empty (NaN)",
            CalciumAvaeWarning,
            stacklevel=2,
        )
    if result.n_clusters == 0:
        warnings.warn(
            f"HDBSCAN found no cluster among {len(points)} ROIs (all noise): no group of "
            f"{min_cluster_size} or more ROIs is denser than its surroundings; lower "
            "min_cluster_size or min_samples",
            CalciumAvaeWarning,
            stacklevel=2,
        )
    _warn_if_fragmented(labels[valid], min_samples, "raise min_cluster_size", method)
    return result


CONDENSED_DTYPE = np.dtype(
    [
        ("parent", np.int64),
        ("child", np.int64),
        ("lambda_val", np.float64),
        ("child_size", np.int64),
    ]
)


def condense_tree(hierarchy: np.ndarray, min_cluster_size: int) -> np.ndarray:
    """HDBSCAN's condensed tree from a single-linkage tree (McInnes et al. 2017).

    ``hierarchy`` has n - 1 rows (left, right, distance, size) in scipy's linkage layout,
    as scikit-learn's HDBSCAN keeps it. Walking down from the root, a split whose both
    sides hold at least min_cluster_size ROIs makes two clusters; a smaller side is ROIs
    falling out of the cluster at that density level (lambda = 1 / distance). Node i's
    children are below i, so visiting nodes from the root downwards is a single pass.
    """
    if hierarchy.dtype.names:  # scikit-learn's record array: left, right, distance, size
        rows = np.column_stack([hierarchy[name] for name in hierarchy.dtype.names[:4]])
    else:
        rows = np.asarray(hierarchy)
    rows = rows.astype(np.float64).reshape(-1, 4)
    n = len(rows) + 1
    left, right = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64)
    with np.errstate(divide="ignore"):
        lambdas = np.where(rows[:, 2] > 0, 1.0 / rows[:, 2], np.inf)
    sizes = np.ones(2 * n - 1, dtype=np.int64)
    sizes[n:] = rows[:, 3].astype(np.int64)
    cluster = np.full(2 * n - 1, -1, dtype=np.int64)  # the condensed cluster a node is in
    drop_to = np.full(2 * n - 1, -1, dtype=np.int64)  # the cluster a node's ROIs fell out of
    drop_at = np.zeros(2 * n - 1)  # ...and the lambda at which they did
    cluster[2 * n - 2] = n
    splits: list[tuple[int, int, float, int]] = []
    next_label = n + 1
    for node in range(2 * n - 2, n - 1, -1):
        a, b, lam = left[node - n], right[node - n], lambdas[node - n]
        if drop_to[node] >= 0:
            drop_to[[a, b]], drop_at[[a, b]] = drop_to[node], drop_at[node]
            continue
        parent = cluster[node]
        big_a, big_b = sizes[a] >= min_cluster_size, sizes[b] >= min_cluster_size
        if big_a and big_b:
            for child in (a, b):
                cluster[child] = next_label
                splits.append((parent, next_label, lam, int(sizes[child])))
                next_label += 1
            continue
        for child, big in ((a, big_a), (b, big_b)):
            if big:
                cluster[child] = parent
            else:
                drop_to[child], drop_at[child] = parent, lam
    tree = np.empty(len(splits) + n, dtype=CONDENSED_DTYPE)
    if splits:
        tree[: len(splits)] = np.array(splits, dtype=CONDENSED_DTYPE)
    tail = tree[len(splits) :]
    tail["parent"], tail["child"] = drop_to[:n], np.arange(n)
    tail["lambda_val"], tail["child_size"] = drop_at[:n], 1
    return tree


def _deaths(tree: np.ndarray, n: int) -> np.ndarray:
    """Per cluster (index - n), the highest lambda at which any of its ROIs, in it or in a
    cluster below it, is still in a cluster."""
    n_clusters = int(max(tree["parent"].max(), tree["child"].max(initial=n))) - n + 1
    deaths = np.zeros(n_clusters)
    points = tree["child"] < n
    np.maximum.at(deaths, tree["parent"][points] - n, tree["lambda_val"][points])
    splits = tree[~points]
    for row in splits[np.argsort(-splits["child"])]:  # children carry higher labels
        p, c = row["parent"] - n, row["child"] - n
        deaths[p] = max(deaths[p], deaths[c])
    return deaths


def glosh_scores(tree: np.ndarray, n: int) -> np.ndarray:
    """GLOSH outlier score of each ROI (Campello et al. 2015), on the condensed tree as the
    hdbscan library computes it: 1 - lambda(x) / lambda_max(C), with C the cluster x falls
    out of and lambda_max(C) the highest density level of any ROI in C or below it."""
    points = tree[tree["child"] < n]
    order = np.argsort(points["child"])
    lam = points["lambda_val"][order]
    top = _deaths(tree, n)[points["parent"][order] - n]
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(np.isinf(top), np.where(np.isinf(lam), 0.0, 1.0), 1.0 - lam / top)
    return np.clip(np.where(top > 0, scores, 0.0), 0.0, 1.0)


def cluster_stabilities(tree: np.ndarray, n: int) -> dict[int, float]:
    """Stability of every condensed cluster: sum of (lambda - lambda_birth) x size over its
    rows, the quantity HDBSCAN's excess-of-mass selection maximises."""
    births = {n: 0.0}
    births.update(
        zip(
            tree["child"][tree["child"] >= n].tolist(),
            tree["lambda_val"][tree["child"] >= n].tolist(),
            strict=True,
        )
    )
    stability = dict.fromkeys(births, 0.0)
    for parent, lam, size in zip(
        tree["parent"].tolist(),
        tree["lambda_val"].tolist(),
        tree["child_size"].tolist(),
        strict=True,
    ):
        stability[parent] += (lam - births[parent]) * size
    return stability


def _stability_by_label(tree: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each label's stability: its cluster is the deepest one holding every ROI of the label
    (the one scikit-learn selected); NaN where that cluster's size differs from the label's."""
    n = len(labels)
    stability = cluster_stabilities(tree, n)
    splits = tree[tree["child"] >= n]
    parent_of = dict(zip(splits["child"].tolist(), splits["parent"].tolist(), strict=True))
    size_of = dict(zip(splits["child"].tolist(), splits["child_size"].tolist(), strict=True))
    size_of[n] = n
    fell_from = np.empty(n, dtype=np.int64)
    points = tree[tree["child"] < n]
    fell_from[points["child"]] = points["parent"]

    def ancestors(c: int) -> list[int]:
        chain = [c]
        while chain[-1] in parent_of:
            chain.append(parent_of[chain[-1]])
        return chain

    out = []
    for label in range(int(labels.max(initial=-1)) + 1):
        members = np.unique(fell_from[labels == label]).tolist()
        if not members:
            out.append(np.nan)
            continue
        common = ancestors(members[0])
        for c in members[1:]:
            chain = set(ancestors(c))
            common = [a for a in common if a in chain]
        chosen = common[0]
        ok = size_of.get(chosen) == int((labels == label).sum())
        out.append(stability[chosen] if ok else np.nan)
    return np.asarray(out, dtype=np.float64)


def _warn_if_fragmented(
    labels: np.ndarray, min_samples: int, remedy: str, method: str = "dbscan"
) -> None:
    """Clusters that are mostly a ROI or two say more about the settings than the neurons."""
    n, n_clusters = len(labels), len(np.unique(labels[labels >= 0]))
    if method == "dbscan" and min_samples < 2:
        why = (
            f"min_samples {min_samples} makes every ROI a core point, so each isolated ROI is "
            "a cluster of its own and none is noise"
        )
    elif n_clusters > n / 3:
        why = "most clusters hold only a few ROIs: " + (
            "eps is small for these latents" if method == "dbscan" else "clusters are small"
        )
    else:
        return
    warnings.warn(
        f"{n_clusters} clusters for {n} ROIs: {why}; {remedy}", CalciumAvaeWarning, stacklevel=3
    )
