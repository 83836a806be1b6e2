"""The population views' science: row sorts keep planted groups together, the sliding
correlation is Pearson's r with the mean of the other neurons, the matrix follows the order."""

import numpy as np
import pytest

from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.population.views import (
    correlation_matrix,
    display_matrix,
    group_order,
    row_order,
    similarity_order,
    sliding_correlation,
)


def planted(seed: int = 0, n_groups: int = 3, size: int = 8, loners: int = 6, t: int = 600):
    """Groups driven by a shared signal plus neurons on their own, rows shuffled."""
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for g in range(n_groups):
        shared = rng.standard_normal(t)
        for _ in range(size):
            rows.append(shared + 0.5 * rng.standard_normal(t))
            truth.append(g)
    for _ in range(loners):
        rows.append(rng.standard_normal(t))
        truth.append(-1)
    shuffle = rng.permutation(len(rows))
    return np.asarray(rows)[shuffle], np.asarray(truth)[shuffle]


def contiguous(positions: np.ndarray) -> bool:
    positions = np.sort(positions)
    return bool(positions[-1] - positions[0] == positions.size - 1)


def assert_groups_together(X: np.ndarray, truth: np.ndarray) -> None:
    """The similarity order is a permutation that keeps each planted group contiguous."""
    order = similarity_order(X)
    assert sorted(order) == list(range(len(X)))
    where = np.empty(len(X), dtype=int)
    where[order] = np.arange(len(X))
    for g in range(3):
        assert contiguous(where[truth == g]), g


def test_similarity_sort_puts_planted_groups_together() -> None:
    X, truth = planted()
    assert_groups_together(X, truth)
    # the unsorted rows are not (the test can fail)
    assert not all(contiguous(np.flatnonzero(truth == g)) for g in range(3))


def test_many_rois_are_grouped_first_and_groups_stay_together(monkeypatch) -> None:
    from napari_calcium_avae.population import views

    monkeypatch.setattr(views, "MAX_TREE_ROIS", 20)  # as if 30 ROIs were many thousands
    monkeypatch.setattr(views, "ROIS_PER_GROUP", 5)
    X, truth = planted(seed=4)
    assert_groups_together(X, truth)


def test_group_sort_is_by_label_with_none_last_and_unusable_rows_last() -> None:
    X, truth = planted(seed=1)
    X[2] = np.nan  # an unusable ROI: last in the similarity order
    assert similarity_order(X)[-1] == 2
    order = row_order(X, "assembly", truth)
    sorted_labels = truth[order]
    assert list(sorted_labels) == sorted(truth, key=lambda g: (g < 0, g))
    assert (group_order(truth, X) == order).all()
    with pytest.raises(CalciumAvaeError, match="no cluster labels"):
        row_order(X, "cluster", None)
    with pytest.raises(CalciumAvaeError, match="unknown sort"):
        row_order(X, "alphabetical")


def direct_sliding(X: np.ndarray, window: int, step: int) -> np.ndarray:
    Z = (X - X.mean(1, keepdims=True)) / X.std(1, keepdims=True)
    starts = range(0, X.shape[1] - window + 1, step)
    out = np.empty((len(X), len(starts)))
    for j, s in enumerate(starts):
        for i in range(len(X)):
            others = np.delete(Z, i, axis=0)[:, s : s + window].mean(0)
            out[i, j] = np.corrcoef(Z[i, s : s + window], others)[0, 1]
    return out


def test_sliding_correlation_matches_a_direct_computation() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((5, 40)) + np.linspace(0, 3, 40) * rng.uniform(0, 2, (5, 1))
    r, centres = sliding_correlation(X, frame_rate=2.0, window_s=5.0, step_s=2.5)
    np.testing.assert_allclose(r, direct_sliding(X, 10, 5), atol=1e-5)
    np.testing.assert_allclose(centres, (np.arange(0, 31, 5) + 4.5) / 2.0)

    # an unusable ROI is NaN and leaves the others' population response alone
    with_nan = np.vstack([X, np.full(40, np.nan)])
    r_nan, _ = sliding_correlation(with_nan, frame_rate=2.0, window_s=5.0, step_s=2.5)
    assert np.isnan(r_nan[-1]).all()
    np.testing.assert_allclose(r_nan[:-1], r, atol=1e-6)

    with pytest.raises(CalciumAvaeError, match="longer than the recording"):
        sliding_correlation(X, frame_rate=2.0, window_s=60.0)


def test_correlation_matrix_follows_the_order() -> None:
    X, _ = planted(seed=2, n_groups=2, size=3, loners=2, t=200)
    X[0] = 1.0  # flat: NaN row and column
    order = similarity_order(X)
    C = correlation_matrix(X, order)
    expected = np.corrcoef(X[1:])
    full = np.full((len(X), len(X)), np.nan)
    full[1:, 1:] = expected
    np.testing.assert_allclose(C, full[np.ix_(order, order)], atol=1e-5)
    assert order[-1] == 0 and np.isnan(C[-1]).all()


def test_display_matrix_averages_blocks_of_the_sorted_rows() -> None:
    M = np.arange(5 * 7, dtype=np.float32).reshape(5, 7)
    M[1, 0] = np.nan
    order = np.array([4, 3, 2, 1, 0])
    shown, row_block, col_block = display_matrix(M, order, max_rows=3, max_cols=3)
    assert (row_block, col_block) == (2, 3) and shown.shape == (3, 3)
    np.testing.assert_allclose(shown[0, 0], M[[4, 3]][:, :3].mean())
    np.testing.assert_allclose(shown[1, 0], np.nanmean(M[[2, 1]][:, :3]))  # NaN left out
    np.testing.assert_allclose(shown[2, 2], M[0, 6])  # the partial blocks at the ends
    small, *_ = display_matrix(M, order)
    np.testing.assert_array_equal(small, M[order])  # small enough: as it is
