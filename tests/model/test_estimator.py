import threading

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.model import AVAE, PCABaseline
from napari_calcium_avae.model.device import resolve_device

SMALL = dict(hidden_size=16, latent_size=2, batch_size=8, max_epochs=4, device="cpu")


def test_fit_transform_shapes_and_attributes(traces):
    model = AVAE(**SMALL).fit(traces)
    z = model.transform(traces)
    assert z.shape == (len(traces), 2) and z.dtype == np.float32
    assert model.n_features_in_ == traces.shape[1] and not hasattr(model, "n_frames_")
    assert len(model.history_) == 4 and model.best_epoch_ >= 1
    assert model.inverse_transform(z).shape == traces.shape
    assert model.sample(5, random_state=1).shape == (5, traces.shape[1])
    recon = model.reconstruct(traces)
    assert recon.shape == traces.shape and recon.dtype == np.float32


@pytest.mark.parametrize("timing_channels", [0, 1])
def test_reconstruct_is_in_source_units(traces, timing_channels):
    model = AVAE(timing_channels=timing_channels, **SMALL).fit(traces)
    shifted = traces * 10 + 100
    Xn, (lo, span) = model.normalise(shifted)
    assert Xn.min() == pytest.approx(-0.5) and Xn.max() == pytest.approx(0.5)
    np.testing.assert_allclose(
        model.reconstruct(shifted), model.reconstruct(traces) * 10 + 100, rtol=1e-5
    )
    if timing_channels == 0:  # no per-trace latents: the neuron latent says it all
        expected = (model.inverse_transform(model.transform(shifted)) + 0.5) * span + lo
        np.testing.assert_allclose(model.reconstruct(shifted), expected, rtol=1e-5)


def test_timing_path_adds_per_trace_detail(traces):
    model = AVAE(timing_channels=2, **SMALL).fit(traces)
    assert model.module_.timing.channels == 2
    assert AVAE(timing_channels=0, **SMALL).fit(traces).module_.timing is None
    z = model.transform(traces)
    # inverse_transform puts the timing latents at their prior mean; sample draws them
    assert not np.allclose(
        model.inverse_transform(z), model.normalise(model.reconstruct(traces))[0]
    )
    a, b = model.sample(3, random_state=4), model.sample(3, random_state=4)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, traces.shape[1])
    with pytest.raises(CalciumAvaeError, match="too short for the timing path"):
        AVAE(**SMALL).fit(traces[:, :7])
    with pytest.raises(CalciumAvaeError, match="timing_channels"):
        AVAE(timing_channels=-1, **SMALL).fit(traces)


@pytest.mark.parametrize("make", [lambda: AVAE(**SMALL), lambda: PCABaseline(n_components=2)])
def test_transform_reconstruct_equals_the_two_calls(traces, make):
    model = make().fit(traces)
    z, recon = model.transform_reconstruct(traces)
    np.testing.assert_array_equal(z, model.transform(traces))
    np.testing.assert_array_equal(recon, model.reconstruct(traces))
    assert z.dtype == recon.dtype == np.float32


def test_global_normalisation_uses_training_range(traces):
    model = AVAE(normalisation="global", **SMALL).fit(traces)
    lo, span = model.norm_
    assert lo == pytest.approx(traces.min()) and span == pytest.approx(np.ptp(traces))
    Xn, _ = model.normalise(traces[:2] + 1000)
    assert Xn.min() > 0.5  # outside the training range stays outside


def test_same_seed_same_latents_other_seed_differs(traces):
    z1 = AVAE(**SMALL).fit(traces).transform(traces)
    z2 = AVAE(**SMALL).fit(traces).transform(traces)
    z3 = AVAE(random_state=1, **SMALL).fit(traces).transform(traces)
    np.testing.assert_array_equal(z1, z2)
    assert not np.allclose(z1, z3)


@pytest.mark.parametrize("how", ["close", "event"])
def test_stopping_leaves_a_usable_model(traces, how):
    model = AVAE(**{**SMALL, "max_epochs": 100, "patience": 100})
    stop = threading.Event()
    reports = model.fit_iter(traces, stop=stop)
    for report in reports:
        if report.epoch == 2:
            if how == "close":
                reports.close()
                break
            stop.set()
    assert len(model.history_) == (2 if how == "close" else 3)
    assert np.isfinite(model.transform(traces)).all()


def test_bad_input_raises_clear_errors(traces):
    model = AVAE(**SMALL)
    bad = traces.copy()
    bad[3, 5] = np.nan
    with pytest.raises(CalciumAvaeError, match=r"NaN or Inf.*row 3"):
        model.fit(bad)
    flat = traces.copy()
    flat[2] = 1.0
    with pytest.raises(CalciumAvaeError, match=r"flat trace.*row 2"):
        model.fit(flat)
    with pytest.raises(CalciumAvaeError, match="at least 4"):
        model.fit(traces[:3])
    with pytest.raises(NotFittedError):
        model.transform(traces)
    with pytest.raises(CalciumAvaeError, match="architecture"):
        AVAE(architecture="transformer").fit(traces)
    with pytest.raises(ValueError, match="batch_size"):  # sklearn-style callers catch it
        AVAE(batch_size=0).fit(traces)


def test_verbose_shows_progress_and_is_quiet_otherwise(traces, capsys):
    AVAE(**SMALL).fit(traces)
    assert capsys.readouterr().err == ""
    AVAE(verbose=True, **SMALL).fit(traces)
    assert "training" in capsys.readouterr().err


def test_released_length_mismatch(traces):
    model = AVAE(**SMALL).fit(traces)
    with pytest.raises(CalciumAvaeError, match="trained on traces of 64 frames, these have 50"):
        model.transform(traces[:, :50])


def test_recurrent_takes_two_lengths(traces):
    model = AVAE(architecture="recurrent", **SMALL).fit(traces)
    assert model.transform(traces[:, :40]).shape == (len(traces), 2)
    longer = np.tile(traces, 5)
    assert model.reconstruct(longer).shape == longer.shape


def test_device_selection():
    assert resolve_device("auto").type in {"cuda", "mps", "cpu"}
    assert str(resolve_device("cpu")) == "cpu"
    with pytest.raises(CalciumAvaeError, match="unknown device"):
        resolve_device("gpu0")
    with pytest.raises(CalciumAvaeError, match="unsupported device"):
        resolve_device("meta")


def test_pca_baseline_reconstructs_in_source_units(traces):
    pca = PCABaseline(n_components=3).fit(traces)
    z = pca.transform(traces)
    assert z.shape == (len(traces), 3)
    _, (lo, span) = pca.normalise(traces)
    np.testing.assert_allclose(
        pca.reconstruct(traces), (pca.inverse_transform(z) + 0.5) * span + lo, rtol=1e-4, atol=1e-5
    )
    full = PCABaseline(n_components=len(traces)).fit(traces)
    np.testing.assert_allclose(full.reconstruct(traces), traces, atol=1e-4)
    with pytest.raises(CalciumAvaeError, match="n_components"):
        PCABaseline(n_components=1000).fit(traces)


def test_avae_learns_two_families(make_families):
    noisy, _, _ = make_families(n_per=40, n_frames=128, seed=0)
    model = AVAE(
        hidden_size=32, latent_size=4, batch_size=16, max_epochs=60, patience=10, device="cpu"
    ).fit(noisy)
    test_noisy, test_clean, test_family = make_families(n_per=20, n_frames=128, seed=1)
    span = np.ptp(test_noisy, axis=1, keepdims=True)
    err_model = np.mean(((model.reconstruct(test_noisy) - test_clean) / span) ** 2)
    err_noisy = np.mean(((test_noisy - test_clean) / span) ** 2)
    assert err_model < 0.5 * err_noisy  # 0.24; 0.37-0.39 without the timing path
    z = model.transform(test_noisy)
    accuracy = cross_val_score(LogisticRegression(), z, test_family, cv=5).mean()
    assert accuracy > 0.8  # chance 0.5; 0.85-0.97 over seeds and timing settings


def test_out_of_memory_gives_clear_error_and_model_stays_usable(traces, monkeypatch):
    model = AVAE(**SMALL).fit(traces)
    expected = model.transform(traces)

    def oom(x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(model.module_, "encode", oom)
    with pytest.raises(CalciumAvaeError, match=r"ran out of memory.*device='cpu'"):
        model.transform(traces)
    monkeypatch.undo()
    np.testing.assert_array_equal(model.to("cpu").transform(traces), expected)


def test_to_moves_the_fitted_model_and_keeps_the_parameter(traces):
    model = AVAE(**{**SMALL, "device": "auto"}).fit(traces)
    params = model.get_params()
    assert model.to("cpu").device_ == torch.device("cpu")
    assert model.device == "auto" and model.get_params() == params
    assert next(model.module_.parameters()).device == torch.device("cpu")
    assert clone(model).get_params() == params
