"""What the population views draw, computed without Qt: row orders for rasters, each
neuron's sliding correlation with the population, and the sorted correlation matrix.

- **Row orders** (:func:`row_order`): by cluster, by main assembly, or by similarity, which
  puts neurons with similar activity next to each other. Rastermap (Stringer et al. 2024,
  Nat Neurosci, doi:10.1038/s41593-024-01783-4) is the field's reference for that sort,
  but it is GPL-3.0, so it is not a dependency. Our default, :func:`similarity_order`, is
  the leaf order of an average-linkage tree on correlation distance (1 - r), with the
  leaves ordered so that neighbours are as similar as possible (optimal leaf ordering,
  Bar-Joseph, Gifford & Jaakkola 2001, Bioinformatics 17: S22-S29; scipy).
- **Sliding correlation** (:func:`sliding_correlation`): seed 001's neuron x time matrix,
  each neuron's Pearson correlation with the population response (the mean of the other
  neurons, each z-scored over the recording so that every neuron counts the same) in a
  window that slides along the recording.
- **Correlation matrix** (:func:`correlation_matrix`) in any row order.

ROIs with NaN/Inf samples or a flat trace (``checks.usable_rows``) are sorted last and
their correlations are NaN (drawn as missing data).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import CalciumAvaeError, CalciumAvaeWarning

SORTS = {
    "similarity": "neurons with similar activity together (correlation tree, leaf order)",
    "cluster": "by the cluster of the AVAE latents (noise last), similar neurons together inside",
    "assembly": "by main assembly (none last), similar neurons together inside",
}
DEFAULT_SORT = "similarity"
MAX_BINS = 4000
"""The similarity sort correlates at most this many time bins (frames averaged in bins):
the slow co-activity it looks for survives, and 10,000 ROIs stay quick."""
MAX_TREE_ROIS = 5000
"""Above this many ROIs the tree's N^2 distances are too large: k-means first groups the
ROIs (in their leading principal components), a tree orders the groups' centroids, and
a tree inside each group orders its ROIs."""
PCS = 64
"""Principal components the ROIs are grouped in above MAX_TREE_ROIS."""
ROIS_PER_GROUP = 25
"""Above MAX_TREE_ROIS: about this many ROIs per k-means group (at most MAX_GROUPS)."""
MAX_GROUPS = 400
MAX_LEAF_ORDERING_ROIS = 1500
"""Optimal leaf ordering grows as N^3; above this many ROIs the tree's own order is kept."""
ROW_BLOCK = 256
"""Sliding correlations are computed for this many ROIs at a time (memory)."""


def _usable(X: np.ndarray) -> np.ndarray:
    """Rows that are finite and not flat (quietly: the views say nothing a fit did not)."""
    finite = np.isfinite(X).all(axis=1)
    varies = np.zeros_like(finite)
    varies[finite] = np.ptp(X[finite], axis=1) > 0
    return varies


def _as_matrix(X: Any) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 2:
        raise CalciumAvaeError(
            f"the views need ROIs x frames activity with at least 2 frames, got shape {X.shape}"
        )
    return X


def _zscored(X: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
    Z = np.asarray(X, dtype=dtype)
    Z = Z - Z.mean(axis=1, keepdims=True)
    return Z / Z.std(axis=1, keepdims=True)


def _binned(X: np.ndarray, max_bins: int) -> np.ndarray:
    """Frames averaged in consecutive bins, at most ``max_bins`` of them."""
    n, t = X.shape
    width = int(np.ceil(t / max_bins))
    if width <= 1:
        return np.asarray(X, dtype=np.float64)
    bins = t // width
    return np.asarray(X[:, : bins * width], dtype=np.float64).reshape(n, bins, width).mean(2)


def similarity_order(X: Any) -> np.ndarray:
    """Row indices that put ROIs with similar activity next to each other.

    Leaf order of an average-linkage tree on correlation distance, optimally ordered (see
    the module docstring); above ``MAX_TREE_ROIS`` the angle in the two leading principal
    components. Unusable rows go last, in their own order.
    """
    X = _as_matrix(X)
    usable = _usable(X)
    rows = np.flatnonzero(usable)
    rest = np.flatnonzero(~usable)
    if rows.size <= 2:
        return np.concatenate([rows, rest])
    Z = _binned(X[rows], MAX_BINS)
    Z -= Z.mean(axis=1, keepdims=True)
    sd = Z.std(axis=1)
    varies = sd > 0  # a trace that varies only inside bins is flat at this scale: all 0
    Z[varies] /= sd[varies, None]
    Z[~varies] = 0.0
    if rows.size <= MAX_TREE_ROIS:
        return np.concatenate([rows[_tree_order(Z / np.sqrt(Z.shape[1]))], rest])
    return np.concatenate([rows[_grouped_order(Z)], rest])


def _tree_order(Y: np.ndarray) -> np.ndarray:
    """Leaf order of the average-linkage tree of rows whose dot products are their
    correlations (rows of unit norm, or 0 for flat ones), optimally ordered when small."""
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    if len(Y) <= 2:
        return np.arange(len(Y))
    D = np.clip(1.0 - Y @ Y.T, 0.0, 2.0)
    np.fill_diagonal(D, 0.0)
    condensed = squareform((D + D.T) / 2, checks=False)
    tree = linkage(condensed, method="average")
    if len(Y) <= MAX_LEAF_ORDERING_ROIS:
        tree = optimal_leaf_ordering(tree, condensed)
    return leaves_list(tree)


def _grouped_order(Z: np.ndarray) -> np.ndarray:
    """The order for many ROIs (z-scored rows): k-means groups in the leading principal
    components, groups in the tree order of their centroids, ROIs in each group in theirs.
    (Rastermap too starts from k-means clusters; its code is not used here.)"""
    from sklearn.cluster import KMeans
    from sklearn.utils.extmath import randomized_svd

    n = Z.shape[0]
    U, S, _ = randomized_svd(Z, min(PCS, *Z.shape), n_iter=4, random_state=0)
    Y = U * S
    norms = np.linalg.norm(Y, axis=1, keepdims=True)
    Y = np.divide(Y, norms, out=np.zeros_like(Y), where=norms > 0)  # dot product: cosine
    k = int(min(MAX_GROUPS, max(2, n // ROIS_PER_GROUP)))
    labels = KMeans(n_clusters=k, n_init=1, random_state=0).fit_predict(Y)
    centroids = np.stack([Y[labels == g].mean(axis=0) for g in range(k)])
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    centroids = np.divide(centroids, norms, out=np.zeros_like(centroids), where=norms > 0)
    parts = []
    for g in _tree_order(centroids):
        members = np.flatnonzero(labels == g)
        if members.size > MAX_TREE_ROIS:  # one huge group: keep k-means' view of it
            parts.append(members)
        else:
            parts.append(members[_tree_order(Y[members])])
    return np.concatenate(parts)


def group_order(groups: Any, X: Any) -> np.ndarray:
    """Row indices sorted by group (ascending, -1 = none last), and inside each group by
    similarity, so that a group's neurons are contiguous and similar ones adjacent."""
    X = _as_matrix(X)
    groups = np.asarray(groups)
    if groups.shape != (X.shape[0],):
        raise CalciumAvaeError(
            f"{groups.size} group labels for {X.shape[0]} ROIs: the labels must come from "
            "this recording"
        )
    groups = groups.astype(np.int64)
    rank = np.empty(X.shape[0], dtype=np.int64)
    rank[similarity_order(X)] = np.arange(X.shape[0])
    key = np.where(groups < 0, np.iinfo(np.int64).max, groups)
    return np.lexsort((rank, key))


def row_order(X: Any, by: str = DEFAULT_SORT, groups: Any = None) -> np.ndarray:
    """The raster's row order: ``by`` one of :data:`SORTS`; ``groups`` are the clusters or
    the main assemblies for those sorts (a one-line error when missing)."""
    if by not in SORTS:
        raise CalciumAvaeError(f"unknown sort {by!r}; choose one of {', '.join(SORTS)}")
    if by == "similarity":
        return similarity_order(X)
    if groups is None:
        step = "apply a model and cluster" if by == "cluster" else "find the assemblies"
        raise CalciumAvaeError(f"no {by} labels to sort by: {step} first")
    return group_order(groups, X)


def window_starts(n_frames: int, window: int, step: int) -> np.ndarray:
    """First frame of each window: every ``step`` frames while a whole window fits."""
    return np.arange(0, n_frames - window + 1, step)


def sliding_correlation(
    X: Any, frame_rate: float, window_s: float = 10.0, step_s: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each neuron's Pearson correlation with the population response, window by window.

    The population response for neuron i is the mean of the other usable neurons, each
    z-scored over the whole recording. Windows are ``window_s`` long and start every
    ``step_s`` (default: half a window). Returns the ROIs x windows matrix (NaN for
    unusable ROIs and for windows where a neuron or its population is flat) and each
    window's centre in seconds from the first frame.
    """
    X = _as_matrix(X)
    if not frame_rate or not np.isfinite(frame_rate) or frame_rate <= 0:
        raise CalciumAvaeError(f"the frame rate must be a positive number, got {frame_rate!r}")
    step_s = window_s / 2 if step_s is None else step_s
    if window_s <= 0 or step_s <= 0:
        raise CalciumAvaeError("the window and its step must be positive durations (seconds)")
    n, t = X.shape
    frame_rate, window_s, step_s = float(frame_rate), float(window_s), float(step_s)
    window = round(window_s * frame_rate)
    step = max(1, round(step_s * frame_rate))
    if window < 3:
        raise CalciumAvaeError(
            f"a {window_s:g} s window is {window} frame(s) at {frame_rate:.4g} Hz; use at "
            "least 3 frames"
        )
    if window > t:
        raise CalciumAvaeError(
            f"the window ({window_s:g} s = {window} frames) is longer than the recording "
            f"({t} frames); use a shorter window"
        )
    starts = window_starts(t, window, step)
    centres = (starts + (window - 1) / 2) / frame_rate
    out = np.full((n, starts.size), np.nan, dtype=np.float32)
    usable = np.flatnonzero(_usable(X))
    if usable.size < 2:
        warnings.warn(
            "fewer than 2 usable ROIs: no population to correlate with",
            CalciumAvaeWarning,
            stacklevel=2,
        )
        return out, centres
    total = np.zeros(t)
    for block in np.array_split(usable, max(1, int(np.ceil(usable.size / ROW_BLOCK)))):
        total += _zscored(X[block]).sum(axis=0)

    def windowed(a: np.ndarray) -> np.ndarray:
        """Sums of ``a`` (rows x frames) over each window, by cumulative sums."""
        c = np.zeros((a.shape[0], t + 1))
        np.cumsum(a, axis=1, out=c[:, 1:])
        return c[:, starts + window] - c[:, starts]

    s_total = windowed(total[None])[0]
    ss_total = windowed(total[None] ** 2)[0]
    for block in np.array_split(usable, max(1, int(np.ceil(usable.size / ROW_BLOCK)))):
        z = _zscored(X[block])
        sx, sxx, sxs = windowed(z), windowed(z * z), windowed(z * total)
        sy = s_total - sx  # the others' sum: the population response times (n - 1)
        syy = ss_total - 2 * sxs + sxx
        sxy = sxs - sxx
        cov = sxy / window - sx * sy / window**2
        var_x = sxx / window - (sx / window) ** 2
        var_y = syy / window - (sy / window) ** 2
        tiny = 1e-10
        with np.errstate(invalid="ignore", divide="ignore"):
            r = cov / np.sqrt(var_x * var_y)
        r[(var_x < tiny) | (var_y < tiny)] = np.nan
        out[block] = np.clip(r, -1.0, 1.0)
    return out, centres


def correlation_matrix(X: Any, order: Any = None) -> np.ndarray:
    """Pearson correlations between ROIs (rows and columns in ``order``); NaN for
    unusable ROIs, 1 on the diagonal of usable ones."""
    X = _as_matrix(X)
    n = X.shape[0]
    order = np.arange(n) if order is None else np.asarray(order, dtype=np.int64)
    usable = _usable(X)
    C = np.full((n, n), np.nan, dtype=np.float32)
    rows = np.flatnonzero(usable)
    if rows.size:
        Z = _zscored(X[rows], np.float32)
        C[np.ix_(rows, rows)] = np.clip((Z @ Z.T) / X.shape[1], -1.0, 1.0)
        C[rows, rows] = 1.0
    return C[np.ix_(order, order)]


def display_matrix(
    M: Any, order: Any = None, max_rows: int = 2000, max_cols: int = 4000
) -> tuple[np.ndarray, int, int]:
    """``M``'s rows in ``order``, averaged over blocks of consecutive rows and columns so
    that at most ``max_rows`` x ``max_cols`` remain (NaN-aware): what a screen can show of
    a large raster, without copying it whole. Returns the matrix and the block sizes."""
    M = np.asarray(M)
    n, t = M.shape
    rows = np.arange(n) if order is None else np.asarray(order, dtype=np.int64)
    row_block = max(1, int(np.ceil(rows.size / max_rows)))
    col_block = max(1, int(np.ceil(t / max_cols)))
    n_cols = int(np.ceil(t / col_block))
    out = np.empty((int(np.ceil(rows.size / row_block)), n_cols), dtype=np.float32)
    padded = np.full((row_block, n_cols * col_block), np.nan, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN block is NaN
        for i, start in enumerate(range(0, rows.size, row_block)):
            chosen = rows[start : start + row_block]
            padded[:] = np.nan
            padded[: chosen.size, :t] = M[chosen]
            blocks = padded.reshape(row_block, n_cols, col_block)
            out[i] = np.nanmean(blocks, axis=(0, 2))
    return out, row_block, col_block


def population_results(detector: Any = None, model: Any = None, facts: Any = None) -> Any:
    """A fitted AssemblyDetector and/or state model as ``PopulationResults``: the form a
    file's population results take (``nwb.read_population``), so the views draw both alike."""
    from ..nwb.population import PopulationResults

    if detector is None and model is None:
        raise CalciumAvaeError("no population results: find assemblies, states or both first")
    n = detector.weights_.shape[1] if detector is not None else model.rates_.shape[1]
    out = PopulationResults(
        roi_rows=np.arange(n), provenance={k: str(v) for k, v in (facts or {}).items()}
    )
    if detector is not None:
        out.n_assemblies = int(detector.n_assemblies_)
        out.weights = np.asarray(detector.weights_)
        out.memberships = np.asarray(detector.memberships_, dtype=bool)
        out.labels = np.asarray(detector.labels_, dtype=np.int64)
        out.activity = np.asarray(detector.activity_)
        out.strength = np.asarray(detector.strength_)
        out.p_values = np.asarray(detector.p_values_)
        out.significant = np.asarray(detector.significant_, dtype=bool)
    if model is not None:
        out.states = np.asarray(model.states_, dtype=np.int64)
        out.state_probabilities = np.asarray(model.state_probabilities_)
        out.rates = np.asarray(model.rates_)
        out.transmat = np.asarray(model.transmat_)
    return out


def membership_text(population: Any, row: int) -> str:
    """One line on a ROI's assemblies: its main one and every one it belongs to."""
    if population is None or population.memberships is None:
        return "no assemblies found yet"
    member = np.flatnonzero(population.memberships[row])
    if not member.size:
        return "in no assembly"
    main = int(population.labels[row])
    others = ", ".join(str(a) for a in member)
    return f"main assembly {main}; member of {others}"
