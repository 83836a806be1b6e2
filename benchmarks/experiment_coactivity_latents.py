"""Should a neuron's latent also say whom it fires with? (issue 15, an experiment)

The default model's latents read only what does not depend on when a neuron fired
(``CropFeatureVAE``). Recordings whose subpopulations are defined by co-activity, such as
the published zebrafish assemblies, are then out of their reach (best-eps ARI 0.05, where
PCA of the traces, which reads timing, reaches 0.25). Hypothesis: appending a co-activity
block, computed within each recording and only from assemblies that beat a shuffle null,
finds those groups without costing the intrinsic ones.

The block: ``AssemblyDetector`` (the product's defaults) on each recording; per ROI its
weights in the K strongest significant assemblies, zero outside its memberships, scaled to
unit length (all zero for a ROI in none). Appended to the standardised latents with a
weight ``a * sqrt(latent dimensions)``, so that ``a = 1`` gives both blocks the same
expected squared distance between two neurons of different groups.

Recordings: the zebrafish tectum (published main assemblies); a planted-assembly
simulation (``bench_assemblies.planted``: 6 assemblies of 15 among 150 neurons, the rest
in none); the four recordings of ``bench_clusters`` (cultures, each one recording).

Run: OMP_NUM_THREADS=2 .venv/bin/python benchmarks/experiment_coactivity_latents.py
Prints one line per representation: ARI with HDBSCAN [clusters] and with the best eps.
"""

from __future__ import annotations

import warnings

import numpy as np

import bench_assemblies
import bench_clusters
from napari_calcium_avae.analysis.clustering import cluster_latents
from napari_calcium_avae.analysis.metrics import adjusted_rand, oracle_eps_ari
from napari_calcium_avae.model import CropFeatureVAE
from napari_calcium_avae.population.assemblies import AssemblyDetector

K = 4
WEIGHTS = (1.0, 2.0, 4.0)


def coactivity_block(X: np.ndarray) -> tuple[np.ndarray, int]:
    """(ROIs x K) unit membership weights in the strongest significant assemblies."""
    detector = AssemblyDetector().fit(X)
    keep = detector.significant_
    W = (detector.weights_[keep] * detector.memberships_[:, keep].T)[:K].T
    block = np.zeros((X.shape[0], K))
    block[:, : W.shape[1]] = W
    norm = np.linalg.norm(block, axis=1, keepdims=True)
    return np.where(norm > 0, block / np.maximum(norm, 1e-12), 0.0), int(keep.sum())


def report(name: str, Z: np.ndarray, labels: np.ndarray) -> None:
    found = cluster_latents(Z).labels
    best, _ = oracle_eps_ari(Z, labels)
    n = len(set(found.tolist()) - {-1})
    print(f"  {name:28s} auto {adjusted_rand(labels, found):6.3f} [{n}]  best eps {best:.3f}")


def compare(title: str, X: np.ndarray, labels: np.ndarray, sessions: np.ndarray, rate: float):
    latents = CropFeatureVAE(rate, random_state=0).fit(X).transform(X)
    block = np.zeros((X.shape[0], K))
    counts = []
    for s in np.unique(sessions):
        rows = sessions == s
        block[rows], count = coactivity_block(X[rows])
        counts.append(count)
    print(f"{title} (significant assemblies per recording: {counts})")
    report("latents (default)", latents, labels)
    report("co-activity block alone", block, labels)
    standard = (latents - latents.mean(0)) / latents.std(0)
    for a in WEIGHTS:
        scale = a * np.sqrt(standard.shape[1])
        report(f"latents + block, a={a:g}", np.hstack([standard, scale * block]), labels)


def main() -> None:
    warnings.simplefilter("ignore")
    from napari_calcium_avae.analysis.label_table import read_label_table
    from napari_calcium_avae.nwb import read_traces

    if bench_assemblies.ZEBRAFISH.exists():
        traces = read_traces(bench_assemblies.ZEBRAFISH)
        labels = read_label_table(bench_assemblies.ZEBRAFISH_CSV, traces.n_rois).labels
        X = np.asarray(traces.data, dtype=np.float64)
        compare("zebrafish tectum", X, labels, np.zeros(len(X)), float(traces.rate))
    F, labels, _ = bench_assemblies.planted(seed=0)
    rate = bench_assemblies.FRAME_RATE
    compare("planted assemblies", F.astype(np.float64), labels, np.zeros(len(F)), rate)
    for rec in bench_clusters.recordings(quick=False):
        compare(rec.name, rec.traces, rec.labels, rec.sessions, bench_clusters.FRAME_RATE)


if __name__ == "__main__":
    main()
