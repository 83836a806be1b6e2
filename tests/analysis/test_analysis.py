import numpy as np
import pytest
from sklearn.cluster import DBSCAN
from sklearn.metrics import silhouette_score

from napari_calcium_avae.analysis import (
    adjusted_rand,
    cluster_latents,
    embed_2d,
    k_distances,
    knee_eps,
    oracle_eps_ari,
    reconstruction_mse,
    score_held_out,
)
from napari_calcium_avae.errors import CalciumAvaeError, CalciumAvaeWarning


def three_blobs(rng, n=40, spread=0.1):
    centres = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    truth = np.repeat(np.arange(3), n)
    return centres[truth] + rng.normal(0, spread, (3 * n, 2)), truth


def test_auto_eps_separates_clusters_from_scattered_outliers():
    rng = np.random.default_rng(0)
    blobs, truth = three_blobs(rng)
    outliers = rng.uniform(-10, 15, (12, 2))
    latents = np.vstack([blobs, outliers])
    result = cluster_latents(latents, eps="auto", min_samples=5)
    assert result.eps_was_auto
    assert result.n_clusters == 3
    # the blobs are found whole, and most scattered points are called noise
    assert adjusted_rand(truth, result.labels[: len(truth)]) > 0.95
    assert (result.labels[len(truth) :] == -1).mean() >= 0.75


@pytest.mark.parametrize("min_samples", [2, 4, 7])
def test_k_distance_curve_agrees_with_dbscan_core_points(min_samples):
    rng = np.random.default_rng(1)
    latents = rng.normal(size=(50, 3))
    curve = k_distances(latents, min_samples)
    assert np.all(np.diff(curve) >= 0)
    # each row sorted: column 0 is the point itself, column k its k-th nearest other point
    own = np.sort(np.linalg.norm(latents[:, None] - latents[None], axis=-1), axis=1)
    np.testing.assert_allclose(curve, np.sort(own[:, min_samples - 1]))
    levels = np.unique(curve)
    for q in (0.1, 0.5, 0.9):
        # eps halfway between two distinct curve values, so no distance sits on the boundary
        i = int(q * (len(levels) - 1))
        eps = float((levels[i] + levels[i + 1]) / 2)
        core = DBSCAN(eps=eps, min_samples=min_samples).fit(latents).core_sample_indices_
        # exactly the points whose k-distance is <= eps are core: as many, and the same ones
        assert (curve <= eps).sum() == len(core) > 0
        assert set(np.flatnonzero(own[:, min_samples - 1] <= eps)) == set(core.tolist())
        assert (cluster_latents(latents, eps, min_samples).labels[core] >= 0).all()


def test_knee_of_a_hockey_stick():
    curve = np.concatenate([np.linspace(0.1, 0.2, 90), np.linspace(1, 10, 10)])
    assert knee_eps(curve) == pytest.approx(0.2, abs=0.02)


def test_auto_eps_stays_positive_when_latents_coincide():
    z = np.zeros((20, 2))
    z[:12] = 1.0  # twelve ROIs share one latent vector, as a saturated encoder gives
    z[12:] += np.linspace(0, 1, 8)[:, None]
    result = cluster_latents(z, "auto", min_samples=5)
    assert result.eps > 0
    assert (result.labels[:12] == result.labels[0]).all() and result.labels[0] >= 0
    assert cluster_latents(np.zeros((10, 2)), "auto", min_samples=5).eps > 0


def test_manual_eps_and_bad_eps():
    latents, _ = three_blobs(np.random.default_rng(2))
    assert cluster_latents(latents, eps=0.01, min_samples=5).n_clusters == 0
    with pytest.raises(CalciumAvaeError, match=r"eps must be positive, got -1\.0"):
        cluster_latents(latents, eps=-1.0)
    with pytest.raises(CalciumAvaeError, match="eps must be 'auto' or a positive number"):
        cluster_latents(latents, eps="large")


def test_fewer_rois_than_min_samples_is_all_noise_with_a_warning():
    with pytest.warns(CalciumAvaeWarning, match="min_samples"):
        result = cluster_latents(np.zeros((3, 2)) + np.arange(3)[:, None], min_samples=5)
    assert (result.labels == -1).all()


def test_nan_latents_are_noise_and_stay_nan_in_embedding():
    latents, _ = three_blobs(np.random.default_rng(3), n=10)
    latents[4] = np.nan
    result = cluster_latents(latents, min_samples=3)
    assert result.labels[4] == -1
    emb = embed_2d(latents, "tsne")
    assert np.isnan(emb[4]).all() and np.isfinite(np.delete(emb, 4, 0)).all()


@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_embedding_keeps_blobs_apart(method):
    rng = np.random.default_rng(4)
    centres = rng.normal(0, 10, (3, 8))
    truth = np.repeat(np.arange(3), 20)
    latents = centres[truth] + rng.normal(0, 0.1, (60, 8))
    emb = embed_2d(latents, method)
    assert emb.shape == (60, 2)
    assert silhouette_score(emb, truth) > 0.5
    with pytest.raises(CalciumAvaeError, match=r"embedding must be .*tsne.*pca.*got 'umap'"):
        embed_2d(latents, "umap")


def test_reconstruction_mse_uses_the_noisy_scale():
    clean = np.array([[0.0, 1.0, 2.0, 3.0]])
    noisy = clean * 2  # span 6
    recon = clean + 0.6  # 0.1 in the normalised scale
    assert reconstruction_mse(recon, clean, noisy)[0] == pytest.approx(0.01)


def test_oracle_ari_is_an_upper_bound_of_the_auto_eps():
    latents, truth = three_blobs(np.random.default_rng(5), spread=1.2)
    best, eps = oracle_eps_ari(latents, truth, 5)
    auto = adjusted_rand(truth, cluster_latents(latents, "auto", 5).labels)
    assert best >= auto - 1e-12 and eps > 0


def test_held_out_scores_of_a_model_that_separates_three_shapes():
    from napari_calcium_avae.model import PCABaseline

    rng = np.random.default_rng(6)
    t = np.linspace(0, 1, 64)
    shapes = np.stack([np.sin(2 * np.pi * t), t, np.exp(-5 * t)])
    truth = np.repeat(np.arange(3), 20)
    clean = shapes[truth] * rng.uniform(0.8, 1.2, (60, 1))
    noisy = clean + rng.normal(0, 0.05, clean.shape)
    scores = score_held_out(PCABaseline(n_components=2).fit(noisy), noisy, clean, truth)
    assert scores.mse < reconstruction_mse(noisy, clean, noisy).mean()  # denoises
    assert scores.ari_oracle > 0.9 and scores.ari_oracle >= scores.ari_auto - 1e-12
    assert scores.distinct_latents == 60 and scores.eps_auto > 0


def test_best_gaussian_filter_picks_the_width_that_fits_the_truth() -> None:
    from napari_calcium_avae.analysis import best_gaussian_filter, reconstruction_mse

    rng = np.random.default_rng(0)
    t = np.arange(2000)
    slow = np.sin(2 * np.pi * t / 400)[None].repeat(4, axis=0)
    noisy = slow + 0.3 * rng.standard_normal(slow.shape)
    mse, sd = best_gaussian_filter(noisy, slow)
    assert mse < 0.2 * reconstruction_mse(noisy, slow, noisy).mean()
    assert sd >= 4  # a slow truth under white noise wants a wide filter
    fast = rng.standard_normal((4, 2000))  # noise-free white "truth": no filter helps
    assert best_gaussian_filter(fast, fast)[1] == 0.5
