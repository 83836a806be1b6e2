"""How many OpenMP threads scikit-learn gets where it runs after torch.

torch and scikit-learn each load their own OpenMP runtime, and both keep their threads
spinning between parallel regions. t-SNE and the neighbour searches run thousands of short
parallel regions; when the cores are shared (with the other runtime's threads or other
processes) every region waits for a descheduled thread: t-SNE + DBSCAN of 90 points took
30 s instead of 0.3 s on two cores. Below 5,000 points the threads gained nothing even on
quiet cores, so those inputs run on one; larger ones keep every thread (1.1-1.3x faster
when quiet; ``benchmarks/bench_threads.py``, docs/benchmarks.md).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from threadpoolctl import threadpool_limits

SINGLE_THREAD_BELOW = 5000
"""Inputs with fewer points than this run scikit-learn's OpenMP code on one thread."""


def openmp_threads_for(n_points: int) -> AbstractContextManager:
    """A context in which scikit-learn's OpenMP code uses the threads that suit n points."""
    if n_points < SINGLE_THREAD_BELOW:
        return threadpool_limits(limits=1, user_api="openmp")
    return nullcontext()
