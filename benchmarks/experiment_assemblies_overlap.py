"""Experiment (issue 16, second round): overlapping assemblies on the zebrafish recording
and the planted simulation of bench_assemblies.py. As in experiment_assemblies_events.py,
no setting is chosen by the zebrafish labels: each variant is fixed in advance (from the
papers or a stated principle), and the labels only score it.

Variants (zebrafish ARI and best Jaccard per published assembly; planted ARI, seed 0,
sigma 0.5 / 2.5 / 5)
---------------------------------------------------------------------------------------
nmf : SVD/factor ensembles of the event raster (after Carrillo-Reid et al. 2015,
    J Neurosci 35: 8813): events = mean + 2 SD; frames whose active count passes the
    95th percentile of time-permuted counts; NMF (scikit-learn) of those frames x ROIs
    with as many factors as the eigenvalue test counts on the events; an assembly = the
    ROIs active in >= 20 % of the frames a factor dominates (SGC's rule).
peaks-jaccard : similarity of ROIs over population events: the Jaccard index of their
    participation in the peak frames of significant activity; edges beyond the (1 -
    alpha/N) quantile of the same with each ROI's participation permuted over those
    frames; consensus Louvain (as method="events").
events : AssemblyDetector(method="events"), the product's method (cores from the event
    graph, extended to every core a ROI follows beyond every circular lag).

Also
----
--seeds      method="events" over random_state 0-5 (zebrafish).
--main-rules how the one-label score depends on the rule that picks a main assembly: the
             published memberships, and ours, read with each rule (first listed /
             strongest, largest, most correlated with the other members, last listed,
             smallest).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/experiment_assemblies_overlap.py
     [VARIANT ...] [--seeds] [--main-rules]
Results (2026-12-03, 2 shared CPUs) are in docs/population.md, "Which method".
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, "benchmarks")
from bench_assemblies import ZEBRAFISH, ZEBRAFISH_CSV, best_jaccard, planted, published_memberships
from experiment_assemblies_events import binarise, significant_frames
from napari_calcium_avae.population import AssemblyDetector


def _detector(X: np.ndarray, **params) -> AssemblyDetector:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AssemblyDetector(**params).fit(X)


def _main(members: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Each ROI's main assembly: of its memberships, the one with the highest score."""
    scored = np.where(members, score, -np.inf)
    return np.where(members.any(axis=1), np.argmax(scored, axis=1), -1)


def nmf(X: np.ndarray, seed: int = 0, share: float = 0.2) -> np.ndarray:
    from sklearn.decomposition import NMF

    rng = np.random.default_rng(seed)
    B = binarise(X)
    frames = significant_frames(B, rng)
    P = B[:, frames].T  # frames x ROIs
    det = _detector(B, method="ica")
    k = max(1, int((det.eigenvalues_ > det.noise_bound_).sum()))
    model = NMF(k, init="nndsvda", max_iter=1000, random_state=seed)
    dominant = np.argmax(model.fit_transform(P), axis=1)
    F = np.array(
        [P[dominant == j].mean(axis=0) if (dominant == j).any() else 0 * P[0] for j in range(k)]
    )
    members = (F >= share).T
    return _main(members, F.T), members


def _similarity_jaccard(P: np.ndarray) -> np.ndarray:
    inter = P @ P.T
    union = P.sum(1)[:, None] + P.sum(1)[None, :] - inter
    S = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    np.fill_diagonal(S, 0.0)
    return S


def peaks_jaccard(X: np.ndarray, seed: int = 0, alpha: float = 0.05, shuffles: int = 100):
    import networkx as nx
    from scipy.signal import find_peaks

    rng = np.random.default_rng(seed)
    B = binarise(X)
    n = len(B)
    peaks, _ = find_peaks(B.sum(axis=0))
    P = B[:, np.intersect1d(significant_frames(B, rng), peaks)]
    S = _similarity_jaccard(P)
    upper = np.triu_indices(n, 1)
    null = np.concatenate(
        [_similarity_jaccard(rng.permuted(P, axis=1))[upper] for _ in range(shuffles)]
    )
    rows, cols = np.nonzero(np.triu(S > np.quantile(null, 1 - alpha / n), 1))
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_weighted_edges_from(
        zip(rows.tolist(), cols.tolist(), S[rows, cols].tolist(), strict=True)
    )
    # the product's consensus Louvain on this graph
    communities = AssemblyDetector(method="events", random_state=seed)._consensus(graph)
    members = np.zeros((n, len(communities)), dtype=bool)
    for a, community in enumerate(sorted(communities, key=len, reverse=True)):
        members[list(community), a] = True
    return _main(members, np.ones_like(members, dtype=float)), members


def events(X: np.ndarray, seed: int = 0):
    det = _detector(X, method="events", random_state=seed)
    return det.labels_, det.memberships_


VARIANTS = {"nmf": nmf, "peaks-jaccard": peaks_jaccard, "events": events}


def main_rules(zf: np.ndarray, ref: np.ndarray, member: np.ndarray) -> None:
    C = np.corrcoef(zf)
    np.fill_diagonal(C, np.nan)

    def rules(members: np.ndarray, order_score: np.ndarray) -> dict[str, np.ndarray]:
        size = members.sum(axis=0).astype(float)
        mean_r = np.array(
            [
                [
                    np.nanmean(C[i, members[:, a]]) if members[:, a].any() else -np.inf
                    for a in range(members.shape[1])
                ]
                for i in range(len(members))
            ]
        )
        ones = np.ones_like(members, dtype=float)
        return {
            "first listed / strongest": _main(members, ones * order_score[None, :]),
            "largest": _main(members, ones * size[None, :]),
            "most correlated with the other members": _main(members, mean_r),
            "last listed / weakest": _main(members, -ones * order_score[None, :]),
            "smallest": _main(members, -ones * size[None, :]),
        }

    published = rules(member, -np.arange(member.shape[1], dtype=float))
    det = _detector(zf, method="events")
    ours = rules(det.memberships_, -np.arange(det.n_assemblies_, dtype=float))
    print("main-assembly rule | published memberships | events memberships")
    for name in published:
        print(
            f"{name} | {adjusted_rand_score(ref, published[name]):.3f} | "
            f"{adjusted_rand_score(ref, ours[name]):.3f}"
        )


def main() -> None:
    from napari_calcium_avae.analysis.label_table import read_label_table
    from napari_calcium_avae.nwb import read_traces

    traces = read_traces(ZEBRAFISH)
    zf = np.asarray(traces.data, dtype=np.float64)
    ref = read_label_table(ZEBRAFISH_CSV, traces.n_rois).labels
    member = published_memberships(traces.n_rois)
    args = sys.argv[1:]
    if "--seeds" in args:
        for seed in range(6):
            labels, found = events(zf, seed)
            jaccard = " ".join(f"{j:.2f}" for j in best_jaccard(member, found))
            print(
                f"events random_state={seed}: ARI {adjusted_rand_score(ref, labels):.3f}, "
                f"{found.shape[1]} assemblies, best Jaccard {jaccard}"
            )
    if "--main-rules" in args:
        main_rules(zf, ref, member)
    for name in [a for a in args if not a.startswith("--")] or (
        [] if any(a.startswith("--") for a in args) else list(VARIANTS)
    ):
        labels, found = VARIANTS[name](zf)
        jaccard = " ".join(f"{j:.2f}" for j in best_jaccard(member, found))
        line = (
            f"{name}: zebrafish ARI {adjusted_rand_score(ref, labels):.3f} "
            f"({found.shape[1]} assemblies; best Jaccard {jaccard}); planted"
        )
        for sigma in (0.5, 2.5, 5.0):
            traces_p, truth, _ = planted(sigma=sigma, seed=0)
            labels_p, _ = VARIANTS[name](traces_p.astype(np.float64))
            line += f" sigma {sigma:g}: {adjusted_rand_score(truth, labels_p):.3f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
