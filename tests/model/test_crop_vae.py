"""The crop-feature VAE (the default model): timing-invariant features, latents that
separate kinetics and not sessions, denoising by the calcium model, files, the fit loop."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sklearn.base import clone

from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.model import AVAE, CropFeatureVAE, load_model
from napari_calcium_avae.model.crop_features import crop_features, decay_features


def _calcium(n_frames: int, tau: float, n_events: int, rng, noise: float = 1.0) -> np.ndarray:
    s = np.zeros(n_frames)
    s[rng.choice(np.arange(50, n_frames - 50), n_events, replace=False)] = 1.0
    c = np.convolve(s, np.exp(-np.arange(n_frames) / tau))[:n_frames]
    return 100.0 + 15.0 * c + rng.normal(0.0, noise, n_frames)


@pytest.fixture(scope="module")
def two_kinds():
    rng = np.random.default_rng(2)
    taus = np.repeat([8.0, 60.0], 20)
    X = np.stack([_calcium(1500, tau, 12, rng) for tau in taus])
    sessions = np.tile([0, 1], 20)
    X[sessions == 1] *= 1.5  # a brighter session
    model = CropFeatureVAE(
        frame_rate=100.0, crop_s=5.0, n_crops=6, max_epochs=40, patience=40,
        condition_on_session=True,
    )  # fmt: skip
    model.fit(X, sessions=sessions)
    return X, sessions, model


def test_crop_features_do_not_depend_on_when_events_happen():
    rng = np.random.default_rng(0)
    a, b = (_calcium(3000, 60.0, 15, rng) for _ in range(2))
    fast = _calcium(3000, 6.0, 15, rng)
    f = crop_features(np.stack([a, b, fast]), 100.0)
    assert f.shape[0] == 3 and np.isfinite(f).all()
    assert np.linalg.norm(f[0] - f[1]) < 0.5 * np.linalg.norm(f[0] - f[2])


def test_decay_features_follow_the_time_constant():
    rng = np.random.default_rng(1)
    slow = np.stack([_calcium(4000, 80.0, 5, rng) for _ in range(4)])
    fast = np.stack([_calcium(4000, 20.0, 5, rng) for _ in range(4)])
    d_slow, d_fast = decay_features(slow, 100.0), decay_features(fast, 100.0)
    assert (d_slow[:, 3] > d_fast[:, 3] + 0.2).all()
    # lag of 24 frames: exp(-24 / 80) = 0.74 for the slow kernel
    assert np.median(d_slow[:, 3]) == pytest.approx(np.exp(-24 / 80), abs=0.08)
    assert np.isfinite(decay_features(rng.normal(0, 1, (2, 2000)), 100.0)).all()


def test_latents_separate_kinetics_and_are_reproducible(two_kinds):
    X, sessions, model = two_kinds
    Z = model.transform(X)
    assert Z.shape == (40, model.latent_size) and Z.dtype == np.float32
    assert list(model.sessions_) == ["0", "1"] and 1 <= model.best_epoch_ <= 40
    between = np.linalg.norm(Z[:20].mean(0) - Z[20:].mean(0))
    within = np.sqrt(Z[:20].var(0).sum() + Z[20:].var(0).sum())
    assert between > within
    again = clone(model).fit(X, sessions=sessions)
    np.testing.assert_allclose(again.transform(X), Z, atol=1e-5)
    mean, logvar = model.posterior(X)
    np.testing.assert_allclose(mean, Z, atol=1e-6)
    assert logvar.shape == Z.shape


def test_reconstruction_is_the_calcium_model_and_beats_a_gaussian_filter(two_kinds):
    from napari_calcium_avae.analysis import best_gaussian_filter, reconstruction_mse

    rng = np.random.default_rng(5)
    clean = np.stack([_calcium(1500, 30.0, 12, rng, noise=0.0) for _ in range(6)])
    noisy = clean + rng.normal(0, 2.0, clean.shape)
    _, _, model = two_kinds
    recon = model.reconstruct(noisy)
    assert recon.shape == noisy.shape and recon.dtype == np.float32
    ours = reconstruction_mse(recon, clean, noisy).mean()
    assert ours < 0.7 * best_gaussian_filter(noisy, clean)[0]


def test_save_load_round_trip_and_load_model_picks_the_estimator(two_kinds, tmp_path):
    X, _, model = two_kinds
    path = model.save(tmp_path / "m.pt")
    with pytest.raises(CalciumAvaeError):
        model.save(path)  # no silent overwrite
    back = load_model(path, device="cpu")
    assert isinstance(back, CropFeatureVAE) and back.device == "cpu"
    np.testing.assert_allclose(back.transform(X), model.transform(X), atol=1e-6)
    assert back.history_ == model.history_ and back.crop_frames_ == model.crop_frames_
    avae = AVAE(max_epochs=1, hidden_size=4, latent_size=2, device="cpu").fit(X[:, :64])
    assert isinstance(load_model(avae.save(tmp_path / "a.pt"), device="cpu"), AVAE)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CalciumAvaeError):
        load_model(tmp_path / "junk.pt")


def test_fit_iter_reports_epochs_and_stops_when_asked():
    rng = np.random.default_rng(3)
    X = np.stack([_calcium(800, 20.0, 8, rng) for _ in range(12)])
    stop = threading.Event()
    model = CropFeatureVAE(frame_rate=50.0, crop_s=6.0, n_crops=4, max_epochs=50)
    reports = []
    for report in model.fit_iter(X, stop=stop):
        reports.append(report)
        if report.epoch == 3:
            stop.set()
    # the epoch in progress when stop is set ends at once and is reported as stopped
    assert [r.epoch for r in reports] == [1, 2, 3, 4]
    assert reports[-1].stop_reason == "stopped" and reports[-1].n_epochs == 50
    assert model.best_epoch_ <= 3
    assert np.isfinite(model.transform(X)).all()  # the best epoch's weights are kept
    assert len(model.sessions_) == 0  # not conditioned on sessions by default


def test_user_errors_are_one_line(two_kinds):
    X, _, model = two_kinds
    with pytest.raises(CalciumAvaeError, match="shorter than the model's crops"):
        model.transform(X[:, :100])
    with pytest.raises(CalciumAvaeError, match="n_crops"):
        CropFeatureVAE(frame_rate=100.0, n_crops=1).fit(X)
    with pytest.raises(CalciumAvaeError, match="frame_rate"):
        CropFeatureVAE().fit(X)
    bad = X.copy()
    bad[3, 10] = np.nan
    with pytest.raises(CalciumAvaeError, match="NaN"):
        model.transform(bad)
    with pytest.raises(CalciumAvaeError, match="too short"):
        CropFeatureVAE(frame_rate=1.0, crop_s=5.0).fit(X)
    with pytest.raises(CalciumAvaeError, match="crop_s"):
        CropFeatureVAE(frame_rate=100.0, crop_s=-1.0).fit(X)
    with pytest.raises(CalciumAvaeError, match="fitted at 100 Hz"):
        model.check_rate(30.0)
    model.check_rate(100.4)


def test_auto_crops_are_a_quarter_of_a_long_recording():
    rng = np.random.default_rng(4)
    X = np.stack([_calcium(4000, 20.0, 10, rng) for _ in range(6)])
    short = CropFeatureVAE(frame_rate=100.0, max_epochs=1).fit(X)  # 40 s: 20 s crops
    assert short.crop_s == "auto" and short.crop_frames_ == 2000
    long = CropFeatureVAE(frame_rate=20.0, max_epochs=1).fit(X)  # 200 s: a quarter
    assert long.crop_frames_ == 1000
