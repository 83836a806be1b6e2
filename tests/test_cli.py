"""The calcium-avae command: help everywhere, one-line errors with status 2."""

import h5py
import numpy as np
import pytest

from cli_output import one_line_error
from napari_calcium_avae.cli import build_parser, main
from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.model import load_model

COMMANDS = ["inspect", "simulate", "fit", "apply", "deconvolve", "demo", "bench"]


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    assert "usage: calcium-avae" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("calcium-avae ")


MINIMAL_ARGS = {
    "inspect": ["inspect", "x.nwb"],
    "simulate": ["simulate", "-o", "out"],
    "fit": ["fit", "x.nwb", "-o", "m.pt"],
    "apply": ["apply", "m.pt", "x.nwb", "-o", "out"],
    "deconvolve": ["deconvolve", "x.nwb", "-o", "out"],
    "demo": ["demo"],
    "bench": ["bench"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_wired(command):
    assert build_parser().parse_args(MINIMAL_ARGS[command]).func.__name__ == f"cmd_{command}"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text("not an nwb file"), "not HDF5"),
        (lambda p: h5py.File(p, "w").close(), "not an NWB file"),
    ],
    ids=["missing", "text", "plain-hdf5"],
)
def test_bad_files_give_one_line_and_status_2(tmp_path, capsys, make, expected):
    path = tmp_path / "input.nwb"
    make(path)
    assert main(["inspect", str(path)]) == 2
    assert expected in one_line_error(capsys)


def test_truncated_file(tmp_path, capsys):
    path = tmp_path / "input.nwb"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=list(range(100000)))
        f.attrs["neurodata_type"] = "NWBFile"
    path.write_bytes(path.read_bytes()[:3000])
    assert main(["inspect", str(path)]) == 2
    assert "truncated" in one_line_error(capsys)


def test_file_without_series_inspect_says_what_fit_says(tmp_path, capsys):
    path = tmp_path / "input.nwb"
    with h5py.File(path, "w") as f:
        f.attrs["neurodata_type"] = "NWBFile"
        f.create_group("acquisition/running").attrs["neurodata_type"] = "TimeSeries"
    assert main(["inspect", str(path)]) == 2
    from_inspect = one_line_error(capsys)
    assert "contains TimeSeries 'running' but no RoiResponseSeries" in from_inspect
    assert main(["fit", str(path), "-o", str(tmp_path / "m.pt")]) == 2
    assert one_line_error(capsys) == from_inspect


def test_apply_needs_an_output(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["apply", "m.pt", "x.nwb"])
    assert exc.value.code == 2


def test_folder_without_nwb_files(tmp_path, capsys):
    assert main(["apply", "missing.pt", str(tmp_path), "-o", str(tmp_path / "o")]) == 2
    assert "no .nwb recordings in folder" in one_line_error(capsys)


def test_simulate_inspect_fit_apply_end_to_end(tmp_path, capsys):
    data, model, out = tmp_path / "data", tmp_path / "model.pt", tmp_path / "results"
    args = ["--cultures-per-type", "1", "--neurons", "8", "--duration", "4"]
    assert (
        main(
            [
                "simulate",
                "-o",
                str(data),
                "--types",
                "RS",
                "CH",
                *args,
                "--frame-rate",
                "20",
                "--dish-size",
                "1",
            ]
        )
        == 0
    )
    sessions = sorted(data.rglob("*.nwb"))
    assert len(sessions) == 2
    assert main(["inspect", str(sessions[0])]) == 0
    listing = capsys.readouterr().out
    assert "* processing/ophys/Fluorescence/RoiResponseSeries" in listing
    assert (
        main(
            [
                "fit",
                str(data),
                "-o",
                str(model),
                "--epochs",
                "3",
                "--hidden-size",
                "8",
                "--latent-size",
                "2",
                "--batch-size",
                "4",
                "--timing-channels",
                "2",
                "--model",
                "avae",
            ]
        )
        == 0
    )
    assert load_model(model, device="cpu").module_.timing.channels == 2
    assert (
        main(
            [
                "apply",
                str(model),
                str(data),
                "-o",
                str(out),
                "--min-samples",
                "3",
                "--embedding",
                "pca",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.glob("*.nwb")) == [f"{s.stem}_avae.nwb" for s in sessions]
    # applying to the input file itself without --in-place is refused, and nothing is lost
    before = sessions[0].read_bytes()
    assert main(["apply", str(model), str(sessions[0]), "-o", str(sessions[0])]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert sessions[0].read_bytes() == before


def test_model_of_another_length_is_a_one_line_error(tmp_path, capsys):
    data = tmp_path / "data"
    common = [
        "--types",
        "RS",
        "--cultures-per-type",
        "1",
        "--neurons",
        "6",
        "--frame-rate",
        "20",
        "--dish-size",
        "1",
    ]
    assert main(["simulate", "-o", str(data / "a"), "--duration", "4", *common]) == 0
    assert main(["simulate", "-o", str(data / "b"), "--duration", "5", *common]) == 0
    model = tmp_path / "m.pt"
    assert (
        main(
            [
                "fit",
                str(data / "a"),
                "-o",
                str(model),
                "--epochs",
                "1",
                "--hidden-size",
                "8",
                "--latent-size",
                "2",
                "--model",
                "avae",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["apply", str(model), str(data / "b"), "-o", str(tmp_path / "o")]) == 2
    assert "frames" in one_line_error(capsys)


def test_not_a_checkpoint_is_a_one_line_error(tmp_path, capsys, tiny_sessions):
    bogus = tmp_path / "model.pt"
    bogus.write_text("hello")
    assert main(["apply", str(bogus), str(tiny_sessions[0]), "-o", str(tmp_path / "o")]) == 2
    assert "checkpoint" in one_line_error(capsys)


def test_ctrl_c_during_fit_saves_the_best_model_so_far(
    tmp_path, capsys, monkeypatch, tiny_sessions
):
    from napari_calcium_avae.model import AVAE

    original = AVAE.fit_iter

    def interrupted_after_two_epochs(self, X, stop=None):
        epochs = original(self, X, stop)
        for i, report in enumerate(epochs):
            yield report
            if i == 1:
                epochs.close()
                raise KeyboardInterrupt

    monkeypatch.setattr(AVAE, "fit_iter", interrupted_after_two_epochs)
    model = tmp_path / "m.pt"
    args = ["--model", "avae", "--epochs", "50", "--hidden-size", "8", "--latent-size", "2"]
    assert main(["fit", str(tiny_sessions[0]), "-o", str(model), *args]) == 0
    assert "interrupted" in capsys.readouterr().out
    from napari_calcium_avae.model import load_model

    assert len(load_model(model).history_) == 2


def test_fit_defaults_are_the_estimators():
    from napari_calcium_avae.cli import _model_from_args
    from napari_calcium_avae.model import AVAE, CropFeatureVAE

    args = build_parser().parse_args(["fit", "in.nwb", "-o", "m.pt"])
    assert _model_from_args(args).get_params() == CropFeatureVAE().get_params()
    args = build_parser().parse_args(["fit", "in.nwb", "-o", "m.pt", "--model", "avae"])
    assert _model_from_args(args).get_params() == AVAE().get_params()
    args = build_parser().parse_args(["fit", "in.nwb", "-o", "m.pt", "--latent-size", "3"])
    assert _model_from_args(args).latent_size == 3


def test_fit_default_model_end_to_end(tmp_path, capsys):
    """The crop-feature VAE through the command line: fit, apply, results read back, and
    the options of the other model refused in one line."""
    from napari_calcium_avae import pipeline
    from napari_calcium_avae.model import CropFeatureVAE, load_model
    from napari_calcium_avae.nwb import read_results, read_traces

    data = tmp_path / "data"
    common = ["--types", "RS", "IB", "--cultures-per-type", "1", "--neurons", "8"]
    common += ["--frame-rate", "20", "--dish-size", "1"]
    assert main(["simulate", "-o", str(data), "--duration", "20", *common]) == 0
    model = tmp_path / "m.pt"
    assert main(["fit", str(data), "-o", str(model), "--epochs", "5", "--crop-s", "5"]) == 0
    fitted = load_model(model)
    assert isinstance(fitted, CropFeatureVAE) and fitted.frame_rate == 20.0
    out = tmp_path / "results"
    assert main(["apply", str(model), str(data), "-o", str(out), "--embedding", "pca"]) == 0
    result = read_results(sorted(out.glob("*.nwb"))[0])
    assert result.latents.shape[1] == fitted.latent_size
    assert result.reconstruction is not None and result.provenance["model"] == "CropFeatureVAE"
    capsys.readouterr()
    bad = ["fit", str(data), "-o", str(tmp_path / "x.pt"), "--timing-channels", "2"]
    assert main(bad) == 2
    assert "--timing-channels is an option of --model avae" in capsys.readouterr().err
    assert main(["fit", str(data), "-o", str(tmp_path / "y.pt"), "--resume"]) == 2
    assert "--resume is for --model avae" in capsys.readouterr().err
    streamed = tmp_path / "streamed.pt"
    args = ["fit", str(data), "-o", str(streamed), "--epochs", "5", "--crop-s", "5", "--stream"]
    assert main(args) == 0
    assert "streamed" in capsys.readouterr().err
    X = pipeline.training_matrix([read_traces(p) for p in sorted(data.rglob("*.nwb"))])
    # the same crops of the same traces: the same model
    assert np.allclose(load_model(streamed).transform(X), fitted.transform(X), atol=1e-5)
    assert main([*args[:3], str(tmp_path / "z.pt"), *args[4:], "--workers", "2"]) == 2
    assert "--workers and --shuffle-buffer are for --model avae" in capsys.readouterr().err


def test_apply_of_a_collapsed_model_says_so_one_line_each(tmp_path, capsys, tiny_sessions):
    import torch

    from napari_calcium_avae import pipeline
    from napari_calcium_avae.model import AVAE
    from napari_calcium_avae.nwb import read_results, read_traces

    recordings = [read_traces(p) for p in tiny_sessions]
    model = AVAE(hidden_size=8, latent_size=3, max_epochs=2, batch_size=8, device="cpu")
    model.fit(pipeline.training_matrix(recordings))
    for head in (model.module_.mu, model.module_.logvar):  # the posterior is the prior
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
    path = model.save(tmp_path / "collapsed.pt")
    out = tmp_path / "out.nwb"
    assert main(["apply", str(path), str(tiny_sessions[0]), "-o", str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    collapse = [line for line in err if "same for every ROI" in line]
    assert collapse == [
        f"warning: {tiny_sessions[0].name}: all 3 latent dimensions are the same for every "
        "ROI (largest spread 0): the model has collapsed, its latents and clusters say "
        "nothing about the neurons, and no embedding is drawn"
    ]
    saved = read_results(out)
    assert saved.embedding is None
    assert saved.provenance["latent_warnings"].startswith("all 3 latent dimensions")


def test_deconvolve_writes_rates_that_read_back(tmp_path, capsys, tiny_sessions):
    from napari_calcium_avae.nwb import read_results, read_traces

    out = tmp_path / "spikes"
    assert main(["deconvolve", *map(str, tiny_sessions[:2]), "-o", str(out)]) == 0
    written = sorted(out.glob("*_avae.nwb"))
    assert [p.name for p in written] == sorted(f"{s.stem}_avae.nwb" for s in tiny_sessions[:2])
    assert "inferred spikes" in capsys.readouterr().out
    traces, back = read_traces(written[0]), read_results(written[0])
    assert back.spike_rates.shape == traces.data.shape
    assert np.nanmin(back.spike_rates) >= 0 and np.isfinite(back.decay_s).all()
    assert back.provenance["model"] == "SpikeInference"
    assert back.provenance["frame_rate"] == 20
    assert back.provenance["detrend_s"] == 10.0
    # the running baseline can be turned off, and the file says so
    again = ["deconvolve", str(tiny_sessions[0]), "-o", str(out), "--overwrite"]
    assert main([*again, "--detrend-s", "none"]) == 0
    first = out / f"{tiny_sessions[0].stem}_avae.nwb"
    assert read_results(first).provenance["detrend_s"] == "None"
    with pytest.raises(SystemExit):
        main([*again, "--detrend-s", "0"])
    assert "expected seconds > 0 or 'none'" in capsys.readouterr().err
    # the same protections as apply
    assert main(["deconvolve", str(tiny_sessions[0]), "-o", str(out)]) == 2
    assert "exists" in one_line_error(capsys)
    with pytest.raises(SystemExit) as exc:  # no -o, no --in-place
        main(["deconvolve", str(tiny_sessions[0])])
    assert exc.value.code == 2


def test_frame_rate_comes_from_timestamps_when_there_is_no_rate():
    from napari_calcium_avae.pipeline import frame_rate
    from napari_calcium_avae.traces import Traces

    data = np.zeros((2, 5), dtype=np.float32)
    assert frame_rate(Traces(data=data, rate=30.0)) == 30.0
    stamped = Traces(data=data, rate=None, timestamps=np.array([0, 0.1, 0.2, 0.31, 0.4]))
    assert frame_rate(stamped) == pytest.approx(10.0)
    with pytest.raises(CalciumAvaeError, match="neither a frame rate nor increasing"):
        frame_rate(Traces(data=data, rate=None, timestamps=np.zeros(5)))


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--eps", "0.5"], "--eps is DBSCAN's radius and HDBSCAN needs none"),
        (["--cluster-method", "dbscan", "--min-cluster-size", "4"], "is HDBSCAN's"),
        (["--min-cluster-size", "1"], "--min-cluster-size must be at least 2"),
        (["--cluster-method", "dbscan", "--eps", "-1"], "--eps must be positive"),
    ],
)
def test_clustering_options_of_the_other_method_are_refused_first(options, expected, capsys):
    """Checked before the inputs and the model are read: the files here do not exist."""
    assert main(["apply", "no_model.pt", "no_data.nwb", "-o", "x.nwb", *options]) == 2
    assert expected in one_line_error(capsys)


def test_apply_cluster_methods_are_the_library_s_and_reach_the_file(
    tmp_path, capsys, tiny_sessions
):
    from napari_calcium_avae import pipeline
    from napari_calcium_avae.analysis.clustering import DEFAULT_METHOD, METHODS
    from napari_calcium_avae.model import AVAE
    from napari_calcium_avae.nwb import read_results, read_traces

    base = ["apply", "m.pt", "in.nwb", "-o", "out.nwb"]
    assert build_parser().parse_args(base).cluster_method == DEFAULT_METHOD
    for method in METHODS:
        assert (
            build_parser().parse_args([*base, "--cluster-method", method]).cluster_method == method
        )
    recordings = [read_traces(p) for p in tiny_sessions]
    model = AVAE(hidden_size=8, latent_size=2, max_epochs=2, batch_size=8, device="cpu")
    path = model.fit(pipeline.training_matrix(recordings)).save(tmp_path / "m.pt")
    common = [str(path), str(tiny_sessions[0]), "--min-samples", "3", "--embedding", "none"]
    assert main(["apply", *common, "-o", str(tmp_path / "h.nwb")]) == 0
    hdbscan = read_results(tmp_path / "h.nwb")
    assert hdbscan.provenance["cluster_method"] == "hdbscan"
    assert np.isfinite(hdbscan.outlier_scores).all()
    assert ((hdbscan.probabilities >= 0) & (hdbscan.probabilities <= 1)).all()
    dbscan_args = ["--cluster-method", "dbscan", "--eps", "0.25"]
    assert main(["apply", *common, *dbscan_args, "-o", str(tmp_path / "d.nwb")]) == 0
    dbscan = read_results(tmp_path / "d.nwb")
    assert dbscan.provenance["cluster_method"] == "dbscan"
    assert dbscan.provenance["dbscan_eps"] == 0.25
    assert dbscan.provenance["dbscan_eps_choice"] == "manual"
    assert "clustering the latents (DBSCAN)" in capsys.readouterr().err
