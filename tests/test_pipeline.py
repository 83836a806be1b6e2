"""The chain every front end runs: read -> fit -> apply (joint clustering) -> write -> read."""

import threading
import warnings

import numpy as np
import pytest
import torch

from napari_calcium_avae import CalciumAvaeError, Traces, pipeline
from napari_calcium_avae.errors import CalciumAvaeWarning
from napari_calcium_avae.model import AVAE, PCABaseline
from napari_calcium_avae.nwb import read_results, read_traces, write_results


def test_pca_apply_clusters_jointly_and_round_trips_through_nwb(tiny_sessions, tmp_path):
    recordings = [read_traces(p) for p in tiny_sessions]
    model = PCABaseline(n_components=3).fit(pipeline.training_matrix(recordings))
    results = pipeline.apply(model, recordings, min_samples=3, embedding="pca")
    assert [r.n_rois for r in results] == [t.n_rois for t in recordings]
    # one HDBSCAN (the default) over all recordings: the same facts for every file
    assert {r.provenance["cluster_method"] for r in results} == {"hdbscan"}
    assert len({r.provenance["hdbscan_cluster_stability"] for r in results}) == 1
    assert all(r.provenance["hdbscan_min_cluster_size"] == 5 for r in results)
    for r in results:
        member = r.labels >= 0
        assert ((r.probabilities >= 0) & (r.probabilities <= 1)).all()
        assert (r.probabilities[~member] == 0).all() and (r.probabilities[member] > 0).all()
        assert ((r.outlier_scores >= 0) & (r.outlier_scores <= 1)).all()
    assert all(
        r.provenance["source_series"] == t.series_path
        for r, t in zip(results, recordings, strict=True)
    )
    out = write_results(recordings[0], results[0], tmp_path / "out.nwb")
    back = read_traces(out)
    np.testing.assert_array_equal(back.roi_table["cluster"].to_numpy(), results[0].labels)
    np.testing.assert_allclose(
        back.roi_table[["latent_0", "latent_1", "latent_2"]].to_numpy(),
        results[0].latents,
        rtol=1e-6,
    )


def test_dbscan_and_a_re_clustering_replace_the_previous_method_s_facts(tiny_sessions):
    recordings = [read_traces(p) for p in tiny_sessions]
    model = PCABaseline(n_components=3).fit(pipeline.training_matrix(recordings))
    results = pipeline.apply(model, recordings, min_samples=3, embedding=None)
    assert "hdbscan_min_cluster_size" in results[0].provenance
    pipeline.cluster(results, method="dbscan", min_samples=3)
    for r in results:
        assert r.provenance["cluster_method"] == "dbscan"
        assert r.provenance["dbscan_eps_choice"] == "auto (k-distance knee)"
        assert r.provenance["dbscan_eps"] > 0
        assert not any(key.startswith("hdbscan_") for key in r.provenance)
        # DBSCAN: members 1, noise 0; it defines no outlier score
        np.testing.assert_array_equal(r.probabilities, (r.labels >= 0).astype(np.float32))
        assert np.isnan(r.outlier_scores).all()
    with pytest.raises(CalciumAvaeError, match=r"eps 0\.5 is DBSCAN's radius"):
        pipeline.cluster(results, method="hdbscan", eps=0.5)
    with pytest.raises(CalciumAvaeError, match="unknown clustering method 'kmeans'"):
        pipeline.cluster(results, method="kmeans")


def test_avae_fit_iter_over_several_recordings_and_stop(tiny_sessions):
    recordings = [read_traces(p) for p in tiny_sessions]
    model = AVAE(hidden_size=16, latent_size=2, max_epochs=50, batch_size=8, random_state=0)
    stop = threading.Event()
    reports = []
    for report in pipeline.fit_iter(model, recordings, stop=stop):
        reports.append(report)
        if len(reports) == 2:
            stop.set()
    assert len(reports) <= 3
    assert model.transform(recordings[0].data).shape == (recordings[0].n_rois, 2)


def test_unusable_rois_get_nan_and_noise(tiny_sessions):
    traces = read_traces(tiny_sessions[0])
    traces.data[2, 5] = np.nan
    traces.data[4] = 1.0
    model = PCABaseline(n_components=2).fit(read_traces(tiny_sessions[1]).data)
    with pytest.warns(CalciumAvaeWarning):
        [result] = pipeline.apply(model, [traces], min_samples=3, embedding=None)
    assert np.isnan(result.latents[[2, 4]]).all() and (result.labels[[2, 4]] == -1).all()
    assert np.isnan(result.reconstruction[2]).all()
    assert np.isfinite(np.delete(result.latents, [2, 4], axis=0)).all()
    assert result.embedding is None


def test_recordings_of_different_lengths_cannot_be_trained_together():
    a = Traces(np.random.default_rng(0).random((5, 40)))
    b = Traces(np.random.default_rng(1).random((5, 50)))
    with pytest.raises(CalciumAvaeError, match="different numbers of frames"):
        pipeline.training_matrix([a, b])


def test_too_few_rois_or_frames_to_train():
    with pytest.raises(CalciumAvaeError, match="at least 4"):
        pipeline.training_matrix([Traces(np.random.default_rng(0).random((3, 40)))])
    with pytest.raises(CalciumAvaeError, match="5 frames"):
        pipeline.training_matrix([Traces(np.random.default_rng(0).random((10, 5)))])


@pytest.mark.parametrize("kind", ["pca", "avae", "crop-vae"])
def test_read_results_gives_back_everything_apply_wrote(tiny_sessions, tmp_path, kind):
    from napari_calcium_avae.model import CropFeatureVAE

    recordings = [read_traces(p) for p in tiny_sessions]
    X = pipeline.training_matrix(recordings)
    if kind == "pca":
        model = PCABaseline(n_components=3).fit(X)
    elif kind == "crop-vae":
        model = CropFeatureVAE(crop_s=3.0, n_crops=4, max_epochs=3, device="cpu")
        for _ in pipeline.fit_iter(model, recordings):
            pass
        assert model.frame_rate == 20.0  # from the recordings
    else:
        model = AVAE(hidden_size=16, latent_size=2, max_epochs=3, batch_size=8, device="cpu")
        model.fit(X)
    recordings[1].data[2, 5] = np.nan  # an unusable ROI comes back as one too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalciumAvaeWarning)
        results = pipeline.apply(model, recordings, min_samples=3, embedding="pca")
    for i, (traces, made) in enumerate(zip(recordings, results, strict=True)):
        back = read_results(write_results(traces, made, tmp_path / f"{kind}_{i}.nwb"))
        assert back is not None
        for name in (
            "latents",
            "labels",
            "probabilities",
            "outlier_scores",
            "embedding",
            "reconstruction",
            *(("spike_rates",) if kind == "crop-vae" else ()),
        ):
            np.testing.assert_array_equal(getattr(back, name), getattr(made, name), err_msg=name)
        # the default model's apply also infers spikes, from the fit that denoised; its
        # kinetics are stored as float32
        assert (made.spike_rates is not None) == (kind == "crop-vae")
        for name in ("decay_s", "spike_gain", "noise_sd") if kind == "crop-vae" else ():
            np.testing.assert_allclose(getattr(back, name), getattr(made, name), rtol=1e-6)
        assert back.provenance == made.provenance
        assert "latent_spread" in back.provenance  # the diagnostics are in the file too
    assert read_results(tiny_sessions[0]) is None


def test_collapsed_latents_are_reported_and_not_embedded(tiny_sessions):
    recordings = [read_traces(p) for p in tiny_sessions]
    model = AVAE(hidden_size=16, latent_size=3, max_epochs=2, batch_size=8, device="cpu")
    model.fit(pipeline.training_matrix(recordings))
    for head in (model.module_.mu, model.module_.logvar):  # the posterior is the prior
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
    with pytest.warns(CalciumAvaeWarning) as caught:
        results = pipeline.apply(model, recordings, min_samples=3, embedding="tsne")
    collapsed = [str(w.message) for w in caught if "same for every ROI" in str(w.message)]
    assert [line.split(":")[0] for line in collapsed] == [p.name for p in tiny_sessions]
    for result in results:
        assert result.diagnostics.identical and result.diagnostics.active_units == 0
        assert result.embedding is None
        assert result.provenance["embedding"] == "none (the latents are identical across ROIs)"
        assert "same for every ROI" in result.provenance["latent_warnings"]
        assert result.provenance["latent_active_units"] == "0 of 3"


def test_a_healthy_model_raises_no_diagnostic_warning(tiny_sessions):
    recordings = [read_traces(p) for p in tiny_sessions]
    model = PCABaseline(n_components=3).fit(pipeline.training_matrix(recordings))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalciumAvaeWarning)
        results = pipeline.apply(model, recordings, min_samples=3, embedding="tsne")
    for result in results:
        assert result.diagnostics.warnings == []
        assert result.diagnostics.r2 > 0.5
        assert result.embedding.shape == (result.n_rois, 2)
        assert result.provenance["latent_warnings"] == "none"


def test_deconvolve_in_blocks_reports_progress_and_stops_keeping_finished_rois():
    from napari_calcium_avae.spikes import SpikeInference

    rng = np.random.default_rng(1)
    spikes = rng.poisson(0.05, (6, 300)).astype(float)
    calcium = np.zeros_like(spikes)
    for t in range(spikes.shape[1]):
        calcium[:, t] = (0.9 * calcium[:, t - 1] if t else 0.0) + spikes[:, t]
    data = (calcium + 0.2 * rng.standard_normal(spikes.shape)).astype(np.float32)
    recordings = [Traces(data=data, rate=30.0), Traces(data=data[:4], rate=30.0)]
    # the estimator's own chunks of 2 match the blocks: the same fits, in the same groups
    estimator = SpikeInference(device="cpu", max_iter=60, chunk_size=2)
    whole = pipeline.deconvolve(estimator, recordings)
    calls = []
    blocked = pipeline.deconvolve(
        estimator, recordings, chunk_rois=2, progress=lambda *a: calls.append(a)
    )
    assert calls == [(2, 10), (4, 10), (6, 10), (8, 10), (10, 10)]
    for a, b in zip(whole, blocked, strict=True):
        np.testing.assert_allclose(b.spike_rates, a.spike_rates, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(b.decay_s, a.decay_s, rtol=1e-6)
    assert blocked[0].provenance["roi_block_size"] == 2
    assert "roi_block_size" not in whole[0].provenance

    stop = threading.Event()
    calls.clear()
    stopped = pipeline.deconvolve(
        estimator,
        recordings,
        chunk_rois=2,
        progress=lambda *a: (calls.append(a), stop.set()),
        stop=stop,
    )
    assert calls == [(2, 10)] and len(stopped) == 1  # the second recording was not begun
    result = stopped[0]
    assert np.isfinite(result.spike_rates[:2]).all() and np.isnan(result.spike_rates[2:]).all()
    np.testing.assert_allclose(result.spike_rates[:2], blocked[0].spike_rates[:2], rtol=1e-6)
    for kinetics in (result.decay_s, result.spike_gain, result.noise_sd):
        assert np.isfinite(kinetics[:2]).all() and np.isnan(kinetics[2:]).all()
    assert result.provenance["stopped_after_rois"] == 2
    with pytest.raises(CalciumAvaeError, match="chunk_rois"):
        pipeline.deconvolve(estimator, recordings, chunk_rois=0)
