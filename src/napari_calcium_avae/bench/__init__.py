"""The paper's benchmarks (Abante et al. 2025, sections 3.1-3.2, Figs. 3-5), reproduced.

Simulate three neuron types at several noise levels that share spikes, train the AVAE over
the paper's grid and PCA with the same latent size on random train/test partitions, score
held-out neurons (reconstruction MSE against the noise-free truth, ARI of DBSCAN clusters
against the types with the oracle and the label-free eps) and check each of the paper's
claims from the numbers, so that a claim that does not reproduce says so.
"""

from .claims import Claim, check_claims, latent_correlations
from .data import Dataset, load_dataset, partition
from .settings import BenchSettings
from .sweep import BenchReport, run_bench

__all__ = [
    "BenchReport",
    "BenchSettings",
    "Claim",
    "Dataset",
    "check_claims",
    "latent_correlations",
    "load_dataset",
    "partition",
    "run_bench",
]
