"""The culture-state benchmark's scoring: truth per frame, matching, balanced accuracy."""

import numpy as np
import pytest
from tests.benchmark_scripts import benchmark_module


@pytest.fixture(scope="module")
def bench():
    yield from benchmark_module("bench_culture_states")


def test_frame_truth_takes_the_majority_of_each_frames_bins(bench) -> None:
    bins = np.zeros(100, dtype=bool)  # 10 ms bins: 1 s
    bins[10:13] = True  # frame 2 (bins 10-14) holds 3 of 5: a burst frame
    bins[20:22] = True  # frame 4 holds 2 of 5: not a burst frame
    truth = bench.frame_truth(bins, frame_rate=20.0, n_frames=20)
    assert truth.tolist() == [0, 0, 1] + [0] * 17


def test_matching_and_balanced_accuracy(bench) -> None:
    truth = np.array([0] * 90 + [1] * 10)
    assert bench.balanced_accuracy(truth, np.zeros(100, dtype=int)) == 0.5  # all quiet
    swapped = 1 - truth  # state labels are arbitrary: matching undoes the swap
    assert bench.balanced_accuracy(truth, bench.match_two(truth, swapped)) == 1.0
    # K = 3: the rare burst state is called burst although most frames overall are quiet
    states = np.array([0] * 60 + [1] * 30 + [2] * 10)
    called = bench.call_by_majority(truth, states)
    assert called.tolist() == truth.tolist()
    assert bench.score(truth, called)["state r"] == pytest.approx(1.0)
