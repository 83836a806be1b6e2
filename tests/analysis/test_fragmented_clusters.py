"""DBSCAN settings that cut the ROIs into crumbs are said so, with the reason."""

import warnings

import numpy as np
import pytest

from napari_calcium_avae.analysis import cluster_latents
from napari_calcium_avae.errors import CalciumAvaeWarning

POINTS = np.random.default_rng(0).normal(size=(90, 2))


def test_min_samples_one_warns_that_every_roi_is_a_core_point() -> None:
    with pytest.warns(CalciumAvaeWarning, match="min_samples 1 makes every ROI a core point"):
        clustering = cluster_latents(POINTS, eps=1e-6, min_samples=1)
    assert len(np.unique(clustering.labels)) == 90


def test_more_clusters_than_a_third_of_the_rois_warns() -> None:
    blobs = np.repeat(np.arange(40.0), 2)[:, None] * np.array([[10.0, 0.0]])
    with pytest.warns(CalciumAvaeWarning, match="40 clusters for 80 ROIs: most clusters"):
        cluster_latents(blobs, eps=0.5, min_samples=2)


def test_a_sound_clustering_does_not_warn() -> None:
    blobs = np.concatenate([POINTS[:45] * 0.1, POINTS[45:] * 0.1 + 5.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalciumAvaeWarning)
        clustering = cluster_latents(blobs, eps="auto", min_samples=5)
    assert len(np.unique(clustering.labels[clustering.labels >= 0])) == 2
