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
    # one DBSCAN over all recordings: the same eps is recorded for every file
    assert len({r.provenance["dbscan_eps"] for r in results}) == 1
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


@pytest.mark.parametrize("kind", ["pca", "avae"])
def test_read_results_gives_back_everything_apply_wrote(tiny_sessions, tmp_path, kind):
    recordings = [read_traces(p) for p in tiny_sessions]
    X = pipeline.training_matrix(recordings)
    if kind == "pca":
        model = PCABaseline(n_components=3).fit(X)
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
        for name in ("latents", "labels", "embedding", "reconstruction"):
            np.testing.assert_array_equal(getattr(back, name), getattr(made, name), err_msg=name)
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
