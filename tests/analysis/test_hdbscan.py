"""HDBSCAN, the default clustering: groups of unequal density without a radius to choose."""

import warnings

import numpy as np
import pytest
from sklearn.cluster import HDBSCAN

from napari_calcium_avae.analysis import adjusted_rand, cluster_latents
from napari_calcium_avae.analysis.clustering import (
    DEFAULT_METHOD,
    METHODS,
    condense_tree,
    glosh_scores,
)
from napari_calcium_avae.errors import CalciumAvaeError, CalciumAvaeWarning


def unequal_blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two tight blobs 1 apart (20 SDs) and a sparse one 10 away: every gap is wide."""
    rng = np.random.default_rng(seed)
    centres, sds, sizes = np.array([[0, 0], [1, 0], [10, 0]]), (0.05, 0.05, 2.0), (40, 40, 80)
    points = [
        c + s * rng.standard_normal((m, 2)) for c, s, m in zip(centres, sds, sizes, strict=True)
    ]
    return np.concatenate(points), np.repeat([0, 1, 2], sizes)


def test_hdbscan_is_the_default_and_finds_blobs_the_knee_eps_merges() -> None:
    latents, truth = unequal_blobs()
    assert DEFAULT_METHOD == "hdbscan" == next(iter(METHODS))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalciumAvaeWarning)
        found = cluster_latents(latents, min_samples=5)
    assert found.method == "hdbscan" and np.isnan(found.eps)
    assert found.n_clusters == 3 and adjusted_rand(truth, found.labels) > 0.9
    # the sparse blob's k-distances put the knee above the tight pair's 1.0 gap: merged
    knee = cluster_latents(latents, "auto", 5)
    assert knee.method == "dbscan" and knee.eps > 1.0
    assert knee.n_clusters < 3
    tight = knee.labels[truth < 2]
    assert np.unique(tight[tight >= 0]).size == 1


def test_probabilities_outlier_scores_and_stability() -> None:
    latents, _ = unequal_blobs()
    latents = np.concatenate([latents, [[30.0, 30.0]]])  # one ROI far from everything
    result = cluster_latents(latents)
    member = result.labels >= 0
    assert ((result.probabilities >= 0) & (result.probabilities <= 1)).all()
    assert (result.probabilities[~member] == 0).all() and (result.probabilities[member] > 0).all()
    assert ((result.outlier_scores >= 0) & (result.outlier_scores <= 1)).all()
    # the lone ROI is noise and the most outlying; the tight blobs' ROIs are typical
    assert result.labels[-1] == -1 and result.outlier_scores[-1] == result.outlier_scores.max()
    assert result.outlier_scores[-1] > 0.9
    assert np.median(result.outlier_scores[:80]) < 0.5
    assert result.stability.shape == (result.n_clusters,)
    assert np.isfinite(result.stability).all() and (result.stability > 0).all()


def test_condensed_tree_matches_scikit_learn_s() -> None:
    """Our condensed tree (from which the outlier scores and stabilities come) against the
    one scikit-learn labels with; its private function, so skipped if it moves."""
    try:
        from sklearn.cluster._hdbscan._tree import _condense_tree
    except ImportError:
        pytest.skip("scikit-learn's private _condense_tree is gone")
    latents, _ = unequal_blobs(1)
    fitted = HDBSCAN(min_cluster_size=5, min_samples=5, copy=True).fit(latents)
    ours = condense_tree(fitted._single_linkage_tree_, 5)
    theirs = _condense_tree(fitted._single_linkage_tree_, 5)
    n = len(latents)
    assert len(ours) == len(theirs)

    def rows(tree: np.ndarray, value: str, size: str) -> tuple[np.ndarray, list]:
        """Each ROI's fall-out lambda, by ROI; the splits' (lambda, size), sorted: what
        does not depend on how the clusters are numbered."""
        points, splits = tree[tree["child"] < n], tree[tree["child"] >= n]
        by_roi = points[value][np.argsort(points["child"])]
        return by_roi, sorted(zip(splits[value], splits[size], strict=True))

    ours_points, ours_splits = rows(ours, "lambda_val", "child_size")
    their_points, their_splits = rows(theirs, "value", "cluster_size")
    np.testing.assert_allclose(ours_points, their_points)
    assert ours_splits == their_splits and len(ours_splits) >= 4
    scores = glosh_scores(ours, n)
    assert scores.shape == (n,) and np.isfinite(scores).all()


def test_nan_rows_stay_noise_with_no_probability() -> None:
    latents, _ = unequal_blobs()
    latents[[3, 100]] = np.nan
    for method in METHODS:
        result = cluster_latents(latents, method=method)
        assert (result.labels[[3, 100]] == -1).all(), method
        assert np.isnan(result.probabilities[[3, 100]]).all(), method
        assert np.isnan(result.outlier_scores[[3, 100]]).all(), method
        valid = np.delete(result.probabilities, [3, 100])
        assert ((valid >= 0) & (valid <= 1)).all(), method


def test_dbscan_membership_is_one_or_zero_and_has_no_outlier_score() -> None:
    latents, _ = unequal_blobs()
    result = cluster_latents(latents, method="dbscan", eps=0.3)
    assert result.eps == 0.3 and not result.eps_was_auto
    np.testing.assert_array_equal(result.probabilities, (result.labels >= 0).astype(float))
    assert np.isnan(result.outlier_scores).all() and result.stability.size == 0


def test_settings_of_the_other_method_are_refused() -> None:
    latents, _ = unequal_blobs()
    with pytest.raises(CalciumAvaeError, match="DBSCAN's radius"):
        cluster_latents(latents, 0.5, method="hdbscan")
    with pytest.raises(CalciumAvaeError, match="min_cluster_size is HDBSCAN's"):
        cluster_latents(latents, method="dbscan", min_cluster_size=10)
    with pytest.raises(CalciumAvaeError, match="min_cluster_size must be at least 2"):
        cluster_latents(latents, min_cluster_size=1)
    with pytest.raises(CalciumAvaeError, match="unknown clustering method"):
        cluster_latents(latents, method="kmeans")


def test_too_few_rois_and_identical_latents_warn() -> None:
    with pytest.warns(CalciumAvaeWarning, match="min_cluster_size is 10"):
        result = cluster_latents(np.arange(16.0).reshape(8, 2), min_cluster_size=10)
    assert (result.labels == -1).all() and (result.probabilities == 0).all()
    # identical latents (a collapsed encoder) are one cluster, as DBSCAN's knee makes them
    identical = cluster_latents(np.zeros((20, 3)))
    assert (identical.labels == 0).all() and (identical.probabilities == 1).all()
    assert (identical.outlier_scores == 0).all()
    # a uniform cloud has no group denser than its surroundings
    cloud = np.random.default_rng(0).uniform(size=(20, 2))
    with pytest.warns(CalciumAvaeWarning, match="HDBSCAN found no cluster among 20 ROIs"):
        result = cluster_latents(cloud, min_cluster_size=12)
    assert (result.labels == -1).all() and np.isfinite(result.outlier_scores).all()
