"""The README's main job, end to end on a tiny configuration."""

from napari_calcium_avae.cli import main
from napari_calcium_avae.nwb import read_traces
from napari_calcium_avae.nwb.validate import validation_problems


def test_quick_demo_writes_results_model_figure_and_scores(tmp_path, capsys):
    assert main(["demo", "--quick", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for row in ("AVAE", "PCA", "(noisy)"):
        assert row in out
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "demo.png").stat().st_size > 10_000
    results = sorted((tmp_path / "results").glob("*_avae.nwb"))
    assert len(results) == 3
    traces = read_traces(results[0])
    assert {"latent_0", "cluster", "embedding_0"} <= set(traces.roi_table.columns)
    assert validation_problems(results[0]) == []
