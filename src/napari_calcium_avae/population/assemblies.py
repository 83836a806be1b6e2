"""Co-active assemblies: groups of ROIs whose activity rises and falls together.

Three detectors share one estimator, :class:`AssemblyDetector`:

``"ica"`` (the default, chosen by ``benchmarks/bench_assemblies.py``; docs/population.md)
    Lopes-dos-Santos, Ribeiro & Tort (2013), J Neurosci Methods 220: 149-166. The ROIs'
    z-scored activity gives a correlation matrix; its eigenvalues above a noise bound count
    the assemblies; ICA inside the subspace of those eigenvectors gives one weight vector per
    assembly; ROIs with a large weight are its members (a ROI may be in several).
``"graph"``
    A graph whose edges are the ROI pairs correlated beyond what circularly shifted data
    give, split into communities by modularity (Louvain, Blondel et al. 2008; for a number
    asked for, the resolution that gives that many communities). One community
    per ROI.
``"events"``
    The same graph built on binarised events instead of the activity itself: a ROI is
    active in the frames where it exceeds its mean by EVENT_SDS (2) SDs, the binarisation
    of the similarity-graph clustering (SGC) that found the published zebrafish tectum
    assemblies (Avitan et al. 2017, Curr Biol 27: 2407; Molter, Avitan & Goodhill 2018,
    BMC Biol 16: 143). Louvain is run CONSENSUS_RUNS times with different seeds and the
    runs are merged by consensus clustering (Lancichinetti & Fortunato 2012, Sci Rep 2:
    336), because single Louvain runs on a small noisy graph disagree. Each community is
    a core; a ROI also joins every other core whose activity it follows beyond chance
    (against every circular lag), so a ROI may be in several, as in the published
    assemblies. Its main assembly is the strongest one it is in. Everything downstream
    (shuffles, p-values, activity) sees the binarised events.

Assemblies are numbered by strength (the variance of the data along their weights),
strongest first.

The noise bound is the larger of the Marchenko-Pastur edge (1 + sqrt(N/T))^2, which holds
for independent frames, and a quantile of the largest eigenvalue of the same data with each
ROI circularly shifted by its own random lag. Calcium traces are smooth, so their frames are
not independent and the Marchenko-Pastur edge alone calls noise an assembly; the shifts keep
each ROI's own autocorrelation and destroy only the co-activity. Each assembly's
significance is measured the same way: the variance of the data along its weight vector
against the shuffles' largest eigenvalue (the best any direction reaches without
co-activity), so a p-value holds for all assemblies at once.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from ..checks import usable_rows
from ..errors import CalciumAvaeError, CalciumAvaeWarning

METHODS = {
    "auto": "events up to EVENTS_MAX_ROIS ROIs (best on the zebrafish recording, planted "
    "ARI >= 0.92), ica above (events' consensus graph grows as ROIs squared)",
    "ica": "PCA/ICA assemblies (Lopes-dos-Santos et al. 2013); a ROI may be in several",
    "graph": "correlation graph + community detection (Louvain); one assembly per ROI",
    "events": "the graph on binarised events (mean + 2 SD), consensus Louvain cores, "
    "extended to every core a ROI follows; a ROI may be in several",
}
DEFAULT_METHOD = "auto"
EVENTS_MAX_ROIS = 2000
"""``method="auto"``: the most usable ROIs for which it runs ``events``."""
MIN_FRAMES = 20
"""Fewer frames than this give correlations too noisy to call anything an assembly."""
MIN_ROIS = 2
EVENT_SDS = 2.0
"""method="events": a ROI is active where it exceeds its mean by this many SDs (SGC's rule)."""
CONSENSUS_RUNS = 20
"""method="events": Louvain runs merged per consensus round."""
CONSENSUS_ROUNDS = 5
"""method="events": at most this many rounds of consensus clustering."""
AUTO_FLOOR_SDS = 2.0
"""member_threshold="auto": members lie this many SDs above the weights of the rest."""
NULL_MAX_ROIS = 500
"""The graph's edge threshold comes from shuffled pairs among at most this many ROIs."""
NULL_MAX_ELEMENTS = 12_000_000
"""Shuffles of larger inputs use a block of this many ROI-frames (see _null_block)."""
EXACT_MAX_ROIS = 1000
"""Up to this many ROIs the correlation matrix is diagonalised exactly; above it, the
leading eigenvalues come from a randomized decomposition of the data."""


def _zscore(X: np.ndarray) -> np.ndarray:
    """Each row to mean 0 and SD 1 (rows are usable, so never flat)."""
    Z = X - X.mean(axis=1, keepdims=True)
    Z /= Z.std(axis=1, keepdims=True)
    return Z


def _leading_eigen(
    Z: np.ndarray, bound: float | None, k: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and eigenvectors (columns) of Z Z^T / T: all of them for
    small inputs, else enough of the largest to pass ``bound`` (or ``k`` of them)."""
    n, t = Z.shape
    if n <= EXACT_MAX_ROIS:
        C = (Z @ Z.T) / t
        values, vectors = np.linalg.eigh(C)
        return values[::-1], vectors[:, ::-1]
    from sklearn.utils.extmath import randomized_svd

    want = max(k or 0, 16)
    while True:
        want = min(want, n)
        U, S, _ = randomized_svd(Z, want, n_iter=4, random_state=seed)
        values = S**2 / t
        enough = k is not None or bound is None or values[-1] < bound
        if enough or want == n:
            return values, U
        want *= 2


def _largest_eigenvalue(Z: np.ndarray, seed: int) -> float:
    """The largest eigenvalue of Z Z^T / T by Lanczos iterations (only that one is needed):
    on the matrix for up to EXACT_MAX_ROIS ROIs, where one matrix product is cheaper than
    the iterations; above, on products with Z, never forming the matrix."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    n, t = Z.shape
    if n <= 2:
        return float(np.linalg.eigvalsh((Z @ Z.T) / t)[-1])
    start = np.random.default_rng(seed).standard_normal(n).astype(Z.dtype)
    if n <= EXACT_MAX_ROIS:
        operator = (Z @ Z.T) / t
    else:
        operator = LinearOperator(
            (n, n), matvec=lambda v: Z @ (Z.T @ np.ravel(v)) / t, dtype=Z.dtype
        )
    value = eigsh(operator, k=1, which="LA", v0=start, tol=1e-3, return_eigenvectors=False)
    return float(value[0])


def _null_block(Z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The data a shuffle is drawn from: all of it, or for large inputs random ROIs over a
    random stretch of frames, in the same ROIs-to-frames ratio.

    Without co-activity the largest eigenvalue depends on that ratio (the Marchenko-Pastur
    edge (1 + sqrt(N/T))^2) and on each ROI's autocorrelation, which a contiguous stretch
    keeps; a smaller block only widens the spread of the null a little.
    """
    n, t = Z.shape
    if n * t <= NULL_MAX_ELEMENTS:
        return Z
    scale = np.sqrt(NULL_MAX_ELEMENTS / (n * t))
    m, frames = max(2, int(n * scale)), max(MIN_FRAMES, int(t * scale))
    rows = np.sort(rng.choice(n, size=m, replace=False))
    start = int(rng.integers(0, t - frames + 1))
    return np.ascontiguousarray(Z[rows, start : start + frames])


def _circular_shuffle(Z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row rotated by its own random lag: its autocorrelation kept, co-activity lost."""
    n, t = Z.shape
    out = np.empty_like(Z)
    for i, shift in enumerate(rng.integers(0, t, size=n)):
        out[i, shift:] = Z[i, : t - shift]
        out[i, :shift] = Z[i, t - shift :]
    return out


def _otsu(values: np.ndarray) -> float:
    """Otsu's split of one assembly's weights: the cut that best separates the large
    (member) weights from the rest, by the between-class variance."""
    v = np.sort(values)
    n = v.size
    if n < 2:
        return float(v[-1]) if n else 0.0
    left = np.arange(1, n)
    csum = np.cumsum(v)[:-1]
    mean_left = csum / left
    mean_right = (v.sum() - csum) / (n - left)
    between = left * (n - left) * (mean_left - mean_right) ** 2
    i = int(np.argmax(between))
    return float((v[i] + v[i + 1]) / 2)


def _member_cut(weights: np.ndarray) -> float:
    """Otsu's cut, raised where needed to AUTO_FLOOR_SDS SDs above the weights below it:
    members must stand out from the rest, however large a share of the ROIs they are."""
    cut = _otsu(weights)
    rest = weights[weights <= cut]
    if rest.size < 2:
        return cut
    return max(cut, float(rest.mean() + AUTO_FLOOR_SDS * rest.std()))


def _projection_activity(W: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """Lopes-dos-Santos' activity R_a(t) = z(t)^T P_a z(t), P_a = w_a w_a^T without its
    diagonal: large when the members are active together, not when one fires alone."""
    return (W @ Z) ** 2 - (W**2) @ (Z**2)


class AssemblyDetector(BaseEstimator):
    """Find co-active assemblies in ROIs x frames activity (inferred rates or traces).

    Parameters
    ----------
    n_assemblies : "auto" or int
        "auto" counts the correlation eigenvalues above the noise bound (see the module
        docstring); an int overrides it.
    method : "ica", "graph" or "events"
        See :data:`METHODS`.
    member_threshold : "auto" or float
        ICA: a float makes a ROI a member when its weight exceeds the median weight by
        this many robust SDs (1.4826 x the median absolute deviation, so that the members
        do not widen the spread they are measured against). "auto" cuts each assembly's
        weights where Otsu's criterion separates them best, but never less than 2 SDs
        above the mean of the weights below the cut (chosen by
        benchmarks/bench_assemblies.py).
    n_shuffles : int
        Circularly shifted copies of the data for the noise bound and the p-values
        (0: Marchenko-Pastur bound only, p-values NaN).
    alpha : float
        Significance level: the noise bound is the (1 - alpha) quantile of the shuffles'
        largest eigenvalue; assemblies with p < alpha are ``significant_``.
    min_size : int
        Fewest members an assembly keeps (smaller ones are dropped).
    resolution : float
        Graph: Louvain's resolution (above 1: smaller communities).
    random_state : int or None
        Seeds the shuffles, ICA and Louvain.

    Fitted attributes (ROIs left out as unusable get weight 0, label -1, no membership)
    ----------------------------------------------------------------------------------
    n_assemblies_ : int (assemblies are numbered by strength_, strongest first)
    weights_ : (n_assemblies, n_rois) unit-norm weight vectors, largest weight positive
    memberships_ : (n_rois, n_assemblies) bool
    labels_ : (n_rois,) each ROI's main assembly, -1 when it is in none: of its
        memberships, the one where its weight is largest (ICA; graph: its only one) or
        the strongest one (events, whose members have equal weights)
    activity_ : (n_assemblies, n_frames) assembly activity over time
    strength_ : (n_assemblies,) variance of the z-scored data along each weight vector
    p_values_ : (n_assemblies,) against the shuffles' largest eigenvalue
    significant_ : (n_assemblies,) bool
    eigenvalues_ : leading eigenvalues of the correlation matrix (descending)
    noise_bound_ : float, marchenko_pastur_ : float, null_eigenvalues_ : (n_shuffles,)
    method_ : the detector that ran
    usable_ : (n_rois,) bool (method="events": False also for ROIs without events)
    event_threshold_ : (n_rois,) the level above which a ROI is active (method="events";
        NaN where unusable), or None
    """

    def __init__(
        self,
        n_assemblies: int | str = "auto",
        method: str = DEFAULT_METHOD,
        member_threshold: float | str = "auto",
        n_shuffles: int = 20,
        alpha: float = 0.05,
        min_size: int = 2,
        resolution: float = 1.0,
        random_state: int | None = 0,
    ) -> None:
        self.n_assemblies = n_assemblies
        self.method = method
        self.member_threshold = member_threshold
        self.n_shuffles = n_shuffles
        self.alpha = alpha
        self.min_size = min_size
        self.resolution = resolution
        self.random_state = random_state

    def _check_params(self) -> None:
        n = self.n_assemblies
        if not (n == "auto" or (isinstance(n, int | np.integer) and not isinstance(n, bool))):
            raise CalciumAvaeError(f"n_assemblies must be 'auto' or an integer, got {n!r}")
        if n != "auto" and n < 1:
            raise CalciumAvaeError(f"n_assemblies must be at least 1, got {n}")
        if self.method not in METHODS:
            raise CalciumAvaeError(
                f"unknown assembly method {self.method!r}; choose one of {', '.join(METHODS)}"
            )
        if not (isinstance(self.n_shuffles, int | np.integer) and self.n_shuffles >= 0):
            raise CalciumAvaeError(f"n_shuffles must be 0 or more, got {self.n_shuffles!r}")
        if not 0 < self.alpha < 1:
            raise CalciumAvaeError(f"alpha must be between 0 and 1, got {self.alpha}")
        t = self.member_threshold
        if not (t == "auto" or (isinstance(t, int | float) and np.isfinite(t))):
            raise CalciumAvaeError(f"member_threshold must be 'auto' or a number, got {t!r}")
        if not self.min_size >= 1:
            raise CalciumAvaeError(f"min_size must be at least 1, got {self.min_size}")

    def fit(self, X: Any, y: Any = None) -> AssemblyDetector:
        """Detect assemblies in ``X`` (ROIs x frames); NaN/flat ROIs are left out."""
        self._check_params()
        X = np.asarray(X)
        if X.ndim != 2:
            raise CalciumAvaeError(f"activity must be ROIs x frames (2-D), got shape {X.shape}")
        if X.shape[0] < MIN_ROIS:
            raise CalciumAvaeError(
                f"assemblies need at least {MIN_ROIS} ROIs, got {X.shape[0]}: give a population"
            )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
            usable = usable_rows(X, min_frames=MIN_FRAMES, min_rois=MIN_ROIS)
        method = self.method
        if method == "auto":
            method = "events" if int(usable.sum()) <= EVENTS_MAX_ROIS else "ica"
        self.method_ = method
        dtype = np.float64 if X.shape[0] <= EXACT_MAX_ROIS else np.float32
        data = np.asarray(X[usable], dtype=dtype)
        self.event_threshold_ = None
        if method == "events":
            threshold = data.mean(axis=1) + EVENT_SDS * data.std(axis=1)
            data = (data > threshold[:, None]).astype(dtype)
            active = data.any(axis=1) & ~data.all(axis=1)
            if not active.all():
                warnings.warn(
                    f"{int((~active).sum())} ROIs never exceed their mean by {EVENT_SDS:g} SDs "
                    "(no events): they are in no assembly",
                    CalciumAvaeWarning,
                    stacklevel=2,
                )
                rows = np.flatnonzero(usable)
                usable = usable.copy()
                usable[rows[~active]] = False
                data, threshold = data[active], threshold[active]
                if usable.sum() < MIN_ROIS:
                    raise CalciumAvaeError(
                        f"fewer than {MIN_ROIS} ROIs have events: no assemblies to find"
                    )
            self.event_threshold_ = np.full(X.shape[0], np.nan)
            self.event_threshold_[usable] = threshold
        Z = _zscore(data)
        n, t = Z.shape
        if self.n_assemblies != "auto" and self.n_assemblies > n:
            raise CalciumAvaeError(
                f"{self.n_assemblies} assemblies asked for but only {n} usable ROIs: ask for fewer"
            )
        rng = np.random.default_rng(self.random_state)
        seed = int(rng.integers(2**31 - 1))

        self.marchenko_pastur_ = float((1 + np.sqrt(n / t)) ** 2)
        null = np.array(
            [
                _largest_eigenvalue(_circular_shuffle(_null_block(Z, rng), rng), seed)
                for _ in range(self.n_shuffles)
            ]
        )
        self.null_eigenvalues_ = null
        bound = self.marchenko_pastur_
        if null.size:
            bound = max(bound, float(np.quantile(null, 1 - self.alpha)))
        self.noise_bound_ = bound
        k = None if self.n_assemblies == "auto" else int(self.n_assemblies)
        values, vectors = _leading_eigen(Z, bound, k, seed)
        self.eigenvalues_ = values
        n_auto = int((values > bound).sum())

        if method == "ica":
            W = self._ica(Z, values, vectors, n_auto if k is None else k, seed)
        else:
            W = self._graph(Z, rng, k=k)
            if method == "events":
                W = self._extend(W, Z)
        W, members = self._members(W, Z)
        self._finish(W, members, Z, usable, X.shape[0])
        return self

    # -- the two detectors -----------------------------------------------------------

    def _ica(
        self, Z: np.ndarray, values: np.ndarray, vectors: np.ndarray, k: int, seed: int
    ) -> np.ndarray:
        if k == 0:
            return np.zeros((0, Z.shape[0]))
        from sklearn.decomposition import FastICA

        P = vectors[:, :k]
        scores = P.T @ Z  # the data in the significant subspace (k x frames)
        if k == 1:
            W = P.T
        else:
            ica = FastICA(
                n_components=k, whiten="unit-variance", max_iter=1000, tol=1e-5, random_state=seed
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence notes: the result is still used
                ica.fit(scores.T)
            W = ica.components_ @ P.T  # unmixing vectors back in ROI space
        W = W / np.linalg.norm(W, axis=1, keepdims=True)
        flip = np.sign(W[np.arange(len(W)), np.argmax(np.abs(W), axis=1)])
        return W * flip[:, None]

    def _graph(self, Z: np.ndarray, rng: np.random.Generator, k: int | None) -> np.ndarray:
        import networkx as nx

        n, t = Z.shape
        C = (Z @ Z.T) / t
        np.fill_diagonal(C, 0.0)
        # an edge is a correlation beyond the (1 - alpha/n) quantile of shuffled pairs
        # (pairs among at most NULL_MAX_ROIS ROIs: their distribution, not every pair, is needed)
        sample = np.sort(rng.permutation(n)[:NULL_MAX_ROIS])
        shuffled = []
        for _ in range(max(self.n_shuffles, 1)):
            S = _circular_shuffle(Z[sample], rng)
            Cs = (S @ S.T) / t
            shuffled.append(Cs[np.triu_indices(len(sample), 1)])
        null_r = np.concatenate(shuffled)
        threshold = float(np.quantile(null_r, 1 - min(self.alpha, 0.5) / max(n, 2)))
        rows, cols = np.nonzero(np.triu(C > threshold, 1))
        graph = nx.Graph()
        graph.add_nodes_from(range(n))
        graph.add_weighted_edges_from(
            zip(rows.tolist(), cols.tolist(), C[rows, cols].tolist(), strict=True)
        )
        if self.method_ == "events" and k is None:
            communities = self._consensus(graph)
        else:
            communities = self._communities(graph, k)
        W = []
        for community in sorted(communities, key=len, reverse=True):
            if len(community) < max(self.min_size, 2):
                continue
            w = np.zeros(n)
            w[list(community)] = 1.0
            W.append(w / np.linalg.norm(w))
        # a number asked for that no resolution reaches (a graph in more pieces than
        # that): the largest communities
        W = W[:k] if k is not None else W
        return np.array(W).reshape(len(W), n)

    def _communities(self, graph, k: int | None) -> list:
        """Louvain communities of at least min_size ROIs; for a number asked for, the
        resolution is searched (on a log scale) until Louvain gives that many."""
        import networkx as nx

        def louvain(resolution: float) -> list:
            found = nx.community.louvain_communities(
                graph, weight="weight", resolution=resolution, seed=self.random_state
            )
            return [c for c in found if len(c) >= max(self.min_size, 2)]

        if k is None:
            return louvain(self.resolution)
        low, high = np.log(0.01), np.log(100.0)
        best = louvain(self.resolution)
        for _ in range(25):
            if len(best) == k:
                break
            middle = (low + high) / 2
            found = louvain(float(np.exp(middle)))
            if abs(len(found) - k) < abs(len(best) - k):
                best = found
            if len(found) < k:
                low = middle
            else:
                high = middle
        return best

    def _consensus(self, graph) -> list:
        """Consensus clustering of Louvain runs: pairs put together in at least half of
        the runs form the next round's graph (weighted by how often), until the runs
        agree or CONSENSUS_ROUNDS pass; then one run on the last graph."""
        import networkx as nx

        n = graph.number_of_nodes()
        base = 0 if self.random_state is None else int(self.random_state)
        current = graph
        for _ in range(CONSENSUS_ROUNDS):
            together = np.zeros((n, n))
            for run in range(CONSENSUS_RUNS):
                found = nx.community.louvain_communities(
                    current, weight="weight", resolution=self.resolution, seed=base + run
                )
                label = np.empty(n, dtype=np.int64)
                for i, community in enumerate(found):
                    label[list(community)] = i
                together += label[:, None] == label[None, :]
            together /= CONSENSUS_RUNS
            np.fill_diagonal(together, 0.0)
            if np.all((together == 0) | (together == 1)):
                break
            rows, cols = np.nonzero(np.triu(together >= 0.5, 1))
            current = nx.Graph()
            current.add_nodes_from(range(n))
            current.add_weighted_edges_from(
                zip(rows.tolist(), cols.tolist(), together[rows, cols].tolist(), strict=True)
            )
        found = nx.community.louvain_communities(
            current, weight="weight", resolution=self.resolution, seed=base
        )
        return [c for c in found if len(c) >= max(self.min_size, 2)]

    def _extend(self, W: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """method="events": each community is a core; a ROI is also a member of every
        core whose activity it follows beyond chance, so a ROI can be in several.

        A core's activity is the mean of its members' z-scored events (without the ROI
        itself when it is a member). A ROI joins when its correlation with that activity
        exceeds the (1 - alpha/N) quantile of the correlations of every ROI with the
        activity at every circular lag: the limit of infinitely many circular shifts,
        computed exactly by FFT, so the level does not depend on a random draw (the far
        tail of a few dozen shuffles of sparse events moved it by 30 %).
        """
        n, t = Z.shape
        if not len(W):
            return W
        cores = W > 0
        total = cores.astype(Z.dtype) @ Z  # assemblies x frames: the members' summed events
        var_total = total.var(axis=1)
        dot = (Z @ total.T) / t  # ROIs x assemblies: cov(z_i, total), z_i has SD 1
        # corr(z_i, total) for ROIs outside a core; corr(z_i, total - z_i) for its members
        outside = dot / np.sqrt(var_total)
        inside = (dot - 1.0) / np.sqrt(np.maximum(var_total - 2.0 * dot + 1.0, 1e-12))
        corr = np.where(cores.T, inside, outside)
        activity = (total - total.mean(axis=1, keepdims=True)) / np.sqrt(var_total)[:, None]
        spectra = np.fft.rfft(Z, axis=1)
        members = cores.copy()
        for a in range(len(W)):
            # every ROI's correlation with the activity at every lag (circular)
            lagged = np.fft.irfft(spectra * np.conj(np.fft.rfft(activity[a])), n=t, axis=1) / t
            level = np.quantile(lagged, 1 - self.alpha / max(n, 2))
            members[a] |= corr[:, a] > level
        return members / np.linalg.norm(members, axis=1, keepdims=True)

    def _members(self, W: np.ndarray, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Member mask per assembly; assemblies with fewer than min_size members dropped."""
        if self.method_ in ("graph", "events"):
            members = W > 0
        else:
            if self.member_threshold == "auto":
                threshold = np.array([_member_cut(w) for w in W]).reshape(len(W), 1)
            else:
                # robust centre and spread: the members must not widen what they are measured by
                centre = np.median(W, axis=1, keepdims=True)
                spread = 1.4826 * np.median(np.abs(W - centre), axis=1, keepdims=True)
                threshold = centre + float(self.member_threshold) * spread
            members = W > threshold
        keep = members.sum(axis=1) >= self.min_size
        if self.n_assemblies != "auto" and not keep.all():
            warnings.warn(
                f"{int((~keep).sum())} of the {len(keep)} assemblies asked for had fewer than "
                f"{self.min_size} members and were dropped",
                CalciumAvaeWarning,
                stacklevel=3,
            )
        return W[keep], members[keep]

    def _finish(
        self, W: np.ndarray, members: np.ndarray, Z: np.ndarray, usable: np.ndarray, n_rois: int
    ) -> None:
        t = Z.shape[1]
        projection = W @ Z
        strength = np.einsum("at,at->a", projection, projection) / t
        null = self.null_eigenvalues_
        if null.size:
            exceed = (null[None, :] >= strength[:, None]).sum(axis=1)
            p_values = (1 + exceed) / (1 + null.size)
        else:
            p_values = np.full(len(W), np.nan)
        significant = p_values < self.alpha
        if self.n_assemblies == "auto" and null.size:
            # counted from the data: what the shuffles reach too is not an assembly
            W, members, strength = W[significant], members[significant], strength[significant]
            p_values, significant = p_values[significant], significant[significant]
        elif len(W) and null.size and not significant.all():
            warnings.warn(
                f"{int((~significant).sum())} of {len(W)} assemblies are not significant "
                f"against shuffled data (p >= {self.alpha:g}); they may be noise",
                CalciumAvaeWarning,
                stacklevel=3,
            )
        # numbered by strength, strongest first (as principal components are)
        order = np.argsort(-strength, kind="stable")
        W, members, strength = W[order], members[order], strength[order]
        p_values, significant = p_values[order], significant[order]
        k = len(W)
        self.usable_ = usable
        self.n_assemblies_ = k
        self.weights_ = np.zeros((k, n_rois))
        self.weights_[:, usable] = W
        self.memberships_ = np.zeros((n_rois, k), dtype=bool)
        self.memberships_[usable] = members.T
        self.activity_ = _projection_activity(W, Z).astype(np.float32)
        self.strength_ = strength
        self.p_values_ = p_values
        self.significant_ = significant
        if self.method_ == "events":
            # equal weights: the main assembly is the strongest one the ROI is in
            scored = np.where(self.memberships_, -np.arange(k)[None, :], -np.inf)
        else:
            scored = np.where(self.memberships_, self.weights_.T, -np.inf)
        main = np.argmax(scored, axis=1) if k else np.zeros(n_rois, dtype=np.int64)
        self.labels_ = np.where(self.memberships_.any(axis=1), main, -1).astype(np.int64)

    def transform(self, X: Any) -> np.ndarray:
        """Assembly activity (n_assemblies x frames) of new data of the same ROIs."""
        if not hasattr(self, "weights_"):
            raise CalciumAvaeError("fit the AssemblyDetector before transform")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] != len(self.usable_):
            raise CalciumAvaeError(
                f"transform needs {len(self.usable_)} ROIs x frames, got shape {X.shape}"
            )
        data = np.asarray(X[self.usable_], dtype=np.float64)
        if self.event_threshold_ is not None:
            # binarised with the fitted levels; a ROI without events in the new frames is 0
            data = (data > self.event_threshold_[self.usable_, None]).astype(np.float64)
            Z = data - data.mean(axis=1, keepdims=True)
            spread = data.std(axis=1, keepdims=True)
            Z = np.divide(Z, spread, out=np.zeros_like(Z), where=spread > 0)
        else:
            Z = _zscore(data)
        return _projection_activity(self.weights_[:, self.usable_], Z).astype(np.float32)
