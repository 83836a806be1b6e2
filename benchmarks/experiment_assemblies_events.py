"""Experiment (issue 16): assemblies from binarised events, on the zebrafish recording and
the planted simulation of bench_assemblies.py. No setting here is chosen by the zebrafish
labels: each variant's parameters are fixed in advance (from the papers) or chosen by a
label-free criterion, and the labels are only used to score.

Variants
--------
pattern-graph : clustering of significantly co-active frames, after the similarity-graph
    clustering (SGC) of Avitan et al. 2017 (Curr Biol 27: 2407) as described by Molter,
    Avitan & Goodhill 2018 (BMC Biol 16: 143): events = dF/F above mean + 2 SD; frames whose
    count of active ROIs exceeds the 95th percentile of time-shuffled counts; a cosine
    k-nearest-neighbour graph of those frames (smallest k >= ln(frames) that connects it);
    communities of frames (Louvain here, not the paper's Bayesian count + spectral split);
    an assembly = the ROIs active in >= 20 % of one community's frames.
neuron-graph : event vectors' cosine similarity thresholded against circularly shifted
    event vectors, Louvain on the ROIs.
ica-events : the ICA detector on the binarised (or smoothed) events.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/experiment_assemblies_events.py
     [VARIANT ...]     the variants above, zebrafish ARI and planted ARI (seed 0,
                       sigma 0.5 / 1 / 2.5)
     --seeds           zebrafish ARI over Louvain seeds 0-5: cosine event graph, the
                       graph method on binarised events, and method="events" (consensus)
     --split-half      method="events" over binarisation 1.5-3 SD x resolution 0.5-1.5:
                       ARI and the split-half agreement (first vs second half of the
                       frames), a label-free criterion, on the zebrafish and planted data

Results (2026-12-03, 2 shared CPUs) are in docs/population.md, "Which method".
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, "benchmarks")
from bench_assemblies import (
    ZEBRAFISH,
    ZEBRAFISH_CSV,
    planted,
)
from napari_calcium_avae.population import AssemblyDetector


def binarise(X: np.ndarray, k: float = 2.0) -> np.ndarray:
    mean = X.mean(axis=1, keepdims=True)
    sd = X.std(axis=1, keepdims=True)
    return (X > mean + k * sd).astype(np.float64)


def significant_frames(B: np.ndarray, rng, rounds: int = 200, p: float = 0.05) -> np.ndarray:
    counts = B.sum(axis=0)
    t = B.shape[1]
    null = np.empty((rounds, t))
    for r in range(rounds):
        null[r] = rng.permuted(B, axis=1).sum(axis=0)
    threshold = np.quantile(null, 1 - p)
    return np.flatnonzero(counts > threshold)


def knn_graph(P: np.ndarray):
    import networkx as nx

    norms = np.linalg.norm(P, axis=1, keepdims=True)
    U = P / np.maximum(norms, 1e-12)
    S = U @ U.T
    np.fill_diagonal(S, -np.inf)
    m = len(P)
    order = np.argsort(-S, axis=1)
    for k in range(max(1, int(np.ceil(np.log(m)))), m):
        A = np.zeros((m, m), dtype=bool)
        rows = np.repeat(np.arange(m), k)
        A[rows, order[:, :k].ravel()] = True
        A |= A.T
        G = nx.from_numpy_array(A.astype(float))
        if nx.is_connected(G):
            return G
    return G


def pattern_graph(
    X: np.ndarray, seed: int = 0, peaks: bool = False, activity=0.2, enriched: bool = False
):
    import networkx as nx
    from scipy.signal import find_peaks

    rng = np.random.default_rng(seed)
    B = binarise(X)
    frames = significant_frames(B, rng)
    if peaks:
        counts = B.sum(axis=0)
        pk, _ = find_peaks(counts)
        frames = np.intersect1d(frames, pk)
    P = B[:, frames].T  # patterns x ROIs
    n = X.shape[0]
    if len(P) < 5:
        return np.full(n, -1), np.zeros((n, 0), bool)
    G = knn_graph(P)
    comms = nx.community.louvain_communities(G, seed=seed)
    sizes = np.array([len(c) for c in comms])
    min_size = max(5, sizes.mean() - 1.5 * sizes.std(ddof=1) if len(sizes) > 1 else 5)
    cores = []
    for c in comms:
        if len(c) < min_size:
            continue
        frac = P[list(c)].mean(axis=0)
        cores.append(frac)
    if not cores:
        return np.full(n, -1), np.zeros((n, 0), bool)
    F = np.array(cores)  # assemblies x ROIs (fraction active)
    M = F >= activity
    if enriched:
        # members must be over-represented in the community's frames against their own
        # rate over all significant frames (binomial test, Bonferroni over ROIs)
        from scipy.stats import binom

        base = np.clip(P.mean(axis=0), 1e-6, 1 - 1e-6)
        sizes_kept = np.array([len(c) for c in comms if len(c) >= min_size])
        hits = np.rint(F * sizes_kept[:, None])
        pval = binom.sf(hits - 1, sizes_kept[:, None], base[None, :])
        M &= pval < 0.05 / n
    # merge near-duplicates: each covers > 2/3 of the other
    keep = []
    for a in range(len(M)):
        dup = False
        for b in keep:
            inter = (M[a] & M[b]).sum()
            if inter > 2 / 3 * max(M[a].sum(), 1) and inter > 2 / 3 * max(M[b].sum(), 1):
                M[b] |= M[a]
                F[b] = np.maximum(F[b], F[a])
                dup = True
                break
        if not dup:
            keep.append(a)
    M, F = M[keep], F[keep]
    ok = M.sum(axis=1) >= 2
    M, F = M[ok], F[ok]
    scored = np.where(M.T, F.T, -np.inf)
    labels = np.where(M.T.any(axis=1), np.argmax(scored, axis=1), -1) if len(M) else np.full(n, -1)
    return labels, M.T


def circ(B, rng):
    out = np.empty_like(B)
    t = B.shape[1]
    for i, s in enumerate(rng.integers(0, t, len(B))):
        out[i] = np.roll(B[i], s)
    return out


def neuron_graph(X, seed=0, smooth=0, resolution=1.0, n_shuffles=20, alpha=0.05):
    import networkx as nx
    from scipy.ndimage import uniform_filter1d

    rng = np.random.default_rng(seed)
    B = binarise(X)
    if smooth:
        B = uniform_filter1d(B, smooth, axis=1)
    n = len(B)

    def cos(A):
        U = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)
        S = U @ U.T
        np.fill_diagonal(S, 0)
        return S

    S = cos(B)
    null = np.concatenate([cos(circ(B, rng))[np.triu_indices(n, 1)] for _ in range(n_shuffles)])
    thr = np.quantile(null, 1 - alpha / n)
    r, c = np.nonzero(np.triu(S > thr, 1))
    G = nx.Graph()
    G.add_nodes_from(range(n))
    G.add_weighted_edges_from(zip(r.tolist(), c.tolist(), S[r, c].tolist(), strict=True))
    comms = nx.community.louvain_communities(G, weight="weight", resolution=resolution, seed=seed)
    labels = np.full(n, -1)
    a = 0
    for cm in sorted(comms, key=len, reverse=True):
        if len(cm) >= 2:
            labels[list(cm)] = a
            a += 1
    return labels, None


def ica_events(X, smooth=0, **kw):
    from scipy.ndimage import uniform_filter1d

    B = binarise(X)
    if smooth:
        B = uniform_filter1d(B, smooth, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = AssemblyDetector(method="ica", **kw).fit(B)
    return det.labels_, det.memberships_


def seeds(zf: np.ndarray, ref: np.ndarray) -> None:
    cosine = [adjusted_rand_score(ref, neuron_graph(zf, seed=s)[0]) for s in range(6)]
    B = binarise(zf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pearson = [
            adjusted_rand_score(
                ref, AssemblyDetector(method="graph", random_state=s).fit(B).labels_
            )
            for s in range(6)
        ]
        consensus = [
            adjusted_rand_score(
                ref, AssemblyDetector(method="events", random_state=s).fit(zf).labels_
            )
            for s in range(6)
        ]
    for name, values in (
        ("cosine event graph", cosine),
        ("graph on binarised events", pearson),
        ("events (consensus)", consensus),
    ):
        print(f"{name:28s} zebrafish ARI over seeds 0-5: " + " ".join(f"{v:.3f}" for v in values))


def split_half(zf: np.ndarray, ref: np.ndarray) -> None:
    import napari_calcium_avae.population.assemblies as assemblies

    sim, truth, _ = planted(sigma=2.5, seed=0)
    default = assemblies.EVENT_SDS

    def labels(X: np.ndarray, resolution: float) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return AssemblyDetector(method="events", resolution=resolution).fit(X).labels_

    try:
        for name, X, y in (("zebrafish", zf, ref), ("planted sigma 2.5", sim, truth)):
            half = X.shape[1] // 2
            for sds in (1.5, 2.0, 2.5, 3.0):
                assemblies.EVENT_SDS = sds
                for resolution in (0.5, 1.0, 1.5):
                    full = labels(X, resolution)
                    a, b = labels(X[:, :half], resolution), labels(X[:, half:], resolution)
                    print(
                        f"{name}: {sds:g} SD, resolution {resolution:g}: ARI "
                        f"{adjusted_rand_score(y, full):.3f} ({full.max() + 1} found), "
                        f"split-half {adjusted_rand_score(a, b):.3f}",
                        flush=True,
                    )
    finally:
        assemblies.EVENT_SDS = default


def main() -> None:
    from napari_calcium_avae.analysis.label_table import read_label_table
    from napari_calcium_avae.nwb import read_traces

    traces = read_traces(ZEBRAFISH)
    zf = np.asarray(traces.data, dtype=np.float64)
    ref = read_label_table(ZEBRAFISH_CSV, traces.n_rois).labels
    if "--seeds" in sys.argv:
        return seeds(zf, ref)
    if "--split-half" in sys.argv:
        return split_half(zf, ref)
    variants = {
        "pattern-graph": lambda X: pattern_graph(X),
        "pattern-graph peaks": lambda X: pattern_graph(X, peaks=True),
        "pattern-graph peaks enriched": lambda X: pattern_graph(X, peaks=True, enriched=True),
        "pattern-graph enriched": lambda X: pattern_graph(X, enriched=True),
        "neuron-graph": lambda X: neuron_graph(X),
        "neuron-graph smooth3": lambda X: neuron_graph(X, smooth=3),
        "ica-events": lambda X: ica_events(X),
        "ica-events smooth3": lambda X: ica_events(X, smooth=3),
    }
    only = sys.argv[1:]
    for name, fn in variants.items():
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        labels, _ = fn(zf)
        zf_ari = adjusted_rand_score(ref, labels)
        sims = []
        for sigma in (0.5, 1.0, 2.5):
            tr, truth, _ = planted(sigma=sigma, seed=0)
            lab, _ = fn(np.asarray(tr, dtype=np.float64))
            sims.append(adjusted_rand_score(truth, lab))
        print(
            f"{name:24s} zebrafish ARI {zf_ari:.3f} (found {labels.max() + 1}) | planted "
            + " ".join(f"{s:.3f}" for s in sims)
            + f" | {time.perf_counter() - t0:.1f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()
