"""The spikefinder score, the spike count error and the first-difference floor, by hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.spikes.peers import positive_first_difference
from napari_calcium_avae.spikes.scoring import (
    bin_frames,
    binned_correlation,
    count_error,
    frames_per_bin,
    imaged_spike_counts,
    spike_counts_per_frame,
)


@pytest.mark.parametrize(
    ("rate", "frames"), [(100.0, 4), (30.0, 1), (60.0, 2), (7.5, 1), (62.5, 3), (1000.0, 40)]
)
def test_bin_is_whole_frames_nearest_40_ms(rate: float, frames: int) -> None:
    assert frames_per_bin(rate) == frames


def test_bad_rate_is_one_line() -> None:
    with pytest.raises(CalciumAvaeError, match="Frame rate must be a positive"):
        frames_per_bin(0.0)


def test_bins_sum_frames_and_drop_the_partial_bin() -> None:
    x = np.arange(10.0)[None]
    np.testing.assert_array_equal(bin_frames(x, 4), [[0 + 1 + 2 + 3, 4 + 5 + 6 + 7]])


def test_spike_times_count_in_the_first_frame_at_or_after_them() -> None:
    # 100 Hz: frames at 0, 10, 20, 30 ms
    times = [np.array([-5.0, 0.0, 0.5, 10.0, 10.2, 29.0, 31.0]), np.array([])]
    counts = spike_counts_per_frame(times, 4, 100.0)
    # -5: discarded stretch; 0 -> frame 0; 0.5 and 10 -> frame 1; 10.2 -> 2; 29 -> 3; 31 after
    np.testing.assert_array_equal(counts, [[1, 2, 1, 1], [0, 0, 0, 0]])


def test_imaged_counts_follow_the_imaged_rows() -> None:
    culture = SimpleNamespace(
        spike_times_ms=[np.array([5.0]), np.array([15.0, 16.0]), np.array([])]
    )
    imaged = SimpleNamespace(culture=culture, imaged=np.array([2, 1]), clean=np.zeros((2, 3)))
    np.testing.assert_array_equal(imaged_spike_counts(imaged, 100.0), [[0, 0, 0], [0, 0, 2]])


def test_correlation_by_hand_at_100_hz() -> None:
    true = np.zeros((1, 12))
    true[0, [1, 2, 9]] = 1  # bins of 4 frames: 2, 0, 1
    inferred = np.zeros((1, 12))
    inferred[0, [0, 5, 10]] = [3.0, 1.0, 2.0]  # bins: 3, 1, 2
    # deviations (1, -1, 0) and (1, -1, 0): r = 1
    assert binned_correlation(inferred, true, 100.0)[0] == pytest.approx(1.0)
    inferred[0, 5] = 2.5  # bins 3, 2.5, 2: deviations (0.5, 0, -0.5) against (1, -1, 0)
    expected = 0.5 / (np.sqrt(0.5) * np.sqrt(2.0))
    assert binned_correlation(inferred, true, 100.0)[0] == pytest.approx(expected)


def test_binning_forgives_a_frame_of_jitter_within_a_bin() -> None:
    true = np.zeros((1, 40))
    true[0, [1, 13, 22, 37]] = 1
    shifted = np.roll(true, 1, axis=1)  # still in the same 4-frame bins
    assert binned_correlation(shifted, true, 100.0)[0] == pytest.approx(1.0)
    # unbinned at 30 Hz the same shift is a miss
    assert binned_correlation(shifted, true, 30.0)[0] < 0


def test_scale_and_offset_do_not_matter() -> None:
    rng = np.random.default_rng(0)
    true = rng.poisson(0.3, size=(3, 400)).astype(float)
    inferred = true + rng.normal(0, 0.5, size=true.shape)
    r = binned_correlation(inferred, true, 100.0)
    np.testing.assert_allclose(binned_correlation(5 * inferred + 7, true, 100.0), r)


def test_constant_inputs() -> None:
    true = np.zeros((2, 8))
    true[0, 0] = 1
    inferred = np.zeros((2, 8))
    # neuron 0: a method that gives nothing predicts no variation (0);
    # neuron 1: no true spike, so nobody can be scored on it (NaN)
    r = binned_correlation(inferred, true, 30.0)
    assert r[0] == 0.0
    assert np.isnan(r[1])
    inferred[1, 3] = 1.0
    assert np.isnan(binned_correlation(inferred, true, 30.0)[1])


def test_nan_frames_drop_their_bins() -> None:
    true = np.zeros((1, 16))
    true[0, [0, 9]] = 1  # bins 1, 0, 1, 0
    inferred = true.copy()
    inferred[0, 13] = np.nan  # bin 3 dropped: (1, 0, 1) against (1, 0, 1)
    assert binned_correlation(inferred, true, 100.0)[0] == pytest.approx(1.0)
    inferred[0, 5] = np.nan  # bins 1 and 3 dropped: two bins left, too few
    assert np.isnan(binned_correlation(inferred, true, 100.0)[0])


def test_shape_mismatch_is_one_line() -> None:
    with pytest.raises(CalciumAvaeError, match="neurons, frames"):
        binned_correlation(np.zeros((2, 8)), np.zeros((2, 9)), 100.0)


def test_count_error_by_hand() -> None:
    true = np.array([[1.0, 0, 1, 2], [0, 0, 0, 0], [1, 1, 0, 0]])
    inferred = np.array([[2.0, 0, 0, 1], [1, 0, 0, 0], [0.5, np.nan, 0, 0]])
    err = count_error(inferred, true)
    assert err[0] == pytest.approx((3 - 4) / 4)
    assert np.isnan(err[1])  # no true spike
    assert err[2] == pytest.approx((0.5 - 1) / 1)  # the NaN frame is left out of both


def test_first_difference_by_hand() -> None:
    x = np.array([[1.0, 3.0, 2.0, 2.5, np.nan, 4.0, 5.0]])
    out = positive_first_difference(x)
    np.testing.assert_array_equal(out[:, :4], [[0.0, 2.0, 0.0, 0.5]])
    assert np.isnan(out[0, 4]) and np.isnan(out[0, 5])
    assert out[0, 6] == 1.0
    assert positive_first_difference(np.array([3.0])).tolist() == [[0.0]]
