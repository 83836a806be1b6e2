"""benchmarks/experiment_crop_feature_vae.py: its features are timing-invariant and its VAE
learns latents that separate neurons of different kinetics, on small synthetic traces."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark_scripts import benchmark_module
from napari_calcium_avae.errors import CalciumAvaeError


@pytest.fixture(scope="module")
def exp():
    yield from benchmark_module("experiment_crop_feature_vae")


def _calcium(n_frames: int, tau: float, n_events: int, rng) -> np.ndarray:
    s = np.zeros(n_frames)
    s[rng.choice(np.arange(50, n_frames - 50), n_events, replace=False)] = 1.0
    c = np.convolve(s, np.exp(-np.arange(n_frames) / tau))[:n_frames]
    return 100.0 + 15.0 * c + rng.normal(0.0, 1.0, n_frames)


def test_crop_features_do_not_depend_on_when_events_happen(exp):
    rng = np.random.default_rng(0)
    a, b = (_calcium(3000, 60.0, 15, rng) for _ in range(2))
    fast = _calcium(3000, 6.0, 15, rng)
    f = exp.crop_features(np.stack([a, b, fast]), 100.0)
    assert f.shape[0] == 3 and np.isfinite(f).all()
    assert np.linalg.norm(f[0] - f[1]) < 0.5 * np.linalg.norm(f[0] - f[2])


def test_decay_features_follow_the_time_constant_and_ignore_weak_events_bias(exp):
    rng = np.random.default_rng(1)
    slow = np.stack([_calcium(4000, 80.0, 5, rng) for _ in range(4)])
    fast = np.stack([_calcium(4000, 20.0, 5, rng) for _ in range(4)])
    d_slow, d_fast = exp.decay_features(slow, 100.0), exp.decay_features(fast, 100.0)
    assert (d_slow[:, 3] > d_fast[:, 3] + 0.2).all()
    # lag of 24 frames: exp(-24 / 80) = 0.74 for the slow kernel
    assert np.median(d_slow[:, 3]) == pytest.approx(np.exp(-24 / 80), abs=0.08)
    flat = exp.decay_features(rng.normal(0, 1, (2, 2000)), 100.0)
    assert np.isfinite(flat).all()


def test_vae_latents_separate_kinetics_and_ignore_sessions(exp):
    rng = np.random.default_rng(2)
    taus = np.repeat([8.0, 60.0], 20)
    X = np.stack([_calcium(1500, tau, 12, rng) for tau in taus])
    sessions = np.tile([0, 1], 20)
    X[sessions == 1] *= 1.5  # a brighter session
    model = exp.CropFeatureVAE(frame_rate=100.0, crop_s=5.0, n_crops=6, max_epochs=40)
    Z = model.fit(X, sessions=sessions).transform(X)
    assert Z.shape == (40, model.latent_size) and np.isfinite(Z).all()
    assert len(model.history_) == 40 and list(model.sessions_) == [0, 1]
    between = np.linalg.norm(Z[:20].mean(0) - Z[20:].mean(0))
    within = np.sqrt(Z[:20].var(0).sum() + Z[20:].var(0).sum())
    assert between > within
    again = exp.CropFeatureVAE(frame_rate=100.0, crop_s=5.0, n_crops=6, max_epochs=40)
    np.testing.assert_allclose(again.fit(X, sessions=sessions).transform(X), Z, atol=1e-5)
    with pytest.raises(CalciumAvaeError, match="shorter than the model's crops"):
        model.transform(X[:, :100])
    with pytest.raises(CalciumAvaeError, match="n_crops"):
        exp.CropFeatureVAE(n_crops=1).fit(X)
