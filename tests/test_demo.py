"""The README's main job, end to end on a tiny configuration."""

import numpy as np

from napari_calcium_avae.analysis import reconstruction_mse
from napari_calcium_avae.cli import main
from napari_calcium_avae.demo import DemoSettings, load_sessions
from napari_calcium_avae.nwb import read_traces
from napari_calcium_avae.nwb.validate import validation_problems


def score_table(out: str) -> dict[str, list[float]]:
    """The printed scores: method -> MSE x1e3, ARI (HDBSCAN), clusters, ARI (auto eps),
    ARI (best eps), eps, clusters; the (filter) and (noisy) rows have the MSE only."""
    rows = {}
    for line in out.splitlines():
        words = line.split()
        if words and words[0] in ("crop-VAE", "AVAE", "PCA"):
            rows[words[0]] = [float(w) for w in words[1:]]
        elif words and words[0] in ("(noisy)", "(filter)"):
            rows[words[0]] = [float(words[1])]
    return rows


def test_quick_demo_writes_results_model_figure_and_scores(tmp_path, capsys):
    assert main(["demo", "--quick", "-o", str(tmp_path)]) == 0
    scores = score_table(capsys.readouterr().out)
    assert set(scores) == {"crop-VAE", "AVAE", "PCA", "(filter)", "(noisy)"}
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "demo.png").stat().st_size > 10_000

    quick = DemoSettings.quick()
    n_sessions = quick.simulation().n_cultures
    results = sorted((tmp_path / "results").glob("*_avae.nwb"))
    assert len(results) == n_sessions
    for path in results:
        table = read_traces(path).roi_table
        assert len(table) == quick.neurons_per_culture
        assert np.isfinite(table["latent_0"]).all() and (table["cluster"] >= -1).all()
    traces = read_traces(results[0])
    assert {"latent_0", "cluster", "embedding_0"} <= set(traces.roi_table.columns)
    assert validation_problems(results[0]) == []

    # bounds from the simulated data themselves: each trace's own mean as its reconstruction
    noisy, clean = load_sessions(sorted((tmp_path / "data").rglob("*.nwb")))
    assert len(noisy) == n_sessions
    X = np.concatenate([t.data for t in noisy])
    truth = np.concatenate([t.data for t in clean])
    flat_line = reconstruction_mse(np.broadcast_to(X.mean(1, keepdims=True), X.shape), truth, X)
    flat_line_mse = 1e3 * flat_line.mean()  # about 45 over seeds 0-3
    noisy_mse = scores["(noisy)"][0]  # about 5: the noise is small next to the signal
    assert 0 < noisy_mse < flat_line_mse / 4
    # PCA learns the shapes in 8 epochs' time (18-28 over seeds 0-3); eight epochs teach the
    # AVAE little (40-52), so its bound only catches a reconstruction in the wrong scale
    assert scores["PCA"][0] < 0.75 * flat_line_mse
    assert 0 < scores["AVAE"][0] < 1.5 * flat_line_mse
    # the filter is chosen on the truth: better than the noisy input
    assert 0 < scores["(filter)"][0] < noisy_mse
    # the default model denoises with the calcium model: better than the noisy input
    assert 0 < scores["crop-VAE"][0] < noisy_mse
    for method in ("crop-VAE", "AVAE", "PCA"):
        _, ari_hdbscan, n_hdbscan, ari_auto, ari_best, eps_auto, n_clusters = scores[method]
        assert -1 <= ari_auto <= ari_best <= 1 and eps_auto > 0 and n_clusters >= 0
        assert -1 <= ari_hdbscan <= 1 and n_hdbscan >= 0
    # the three types differ enough for PCA's latents to separate them in part (0.24-0.45)
    assert scores["PCA"][4] > 0.1
