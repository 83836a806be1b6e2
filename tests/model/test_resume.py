"""fit --resume: a training run stopped after k epochs and resumed from its checkpoint
ends with the weights and history of a run that was never stopped."""

import threading

import numpy as np
import pytest
import torch
from tests.model.conftest import two_families

from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.model import AVAE
from napari_calcium_avae.model.checkpoint import read_resume_checkpoint

SMALL = dict(hidden_size=8, latent_size=2, batch_size=8, device="cpu", random_state=3)


def _model(**changes):
    return AVAE(**{**SMALL, "max_epochs": 6, "patience": 50, **changes})


def _same(a: AVAE, b: AVAE) -> None:
    sa, sb = a.module_.state_dict(), b.module_.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    # n_epochs is the maximum each run was started with; all else must be the same
    strip = [{k: v for k, v in h.items() if k != "n_epochs"} for h in a.history_]
    assert strip == [{k: v for k, v in h.items() if k != "n_epochs"} for h in b.history_]
    assert a.best_epoch_ == b.best_epoch_


@pytest.fixture(scope="module")
def straight(request):

    X = two_families(n_per=12, n_frames=64)[0]
    return X, _model().fit(X)


def test_resumed_after_max_epochs_equals_a_straight_run(tmp_path, straight):
    X, reference = straight
    path = tmp_path / "m.pt.resume"
    first = _model(max_epochs=3).set_checkpoint(path).fit(X)
    assert len(first.history_) == 3
    saved = read_resume_checkpoint(path)
    assert saved.state["epoch"] == 3 and len(saved.config["history"]) == 3
    resumed = _model().set_checkpoint(path, resume=True)
    reports = list(resumed.fit_iter(X))
    assert [r.epoch for r in reports] == [4, 5, 6]  # epochs 1-3 were not trained again
    _same(resumed, reference)


def test_resumed_after_a_stop_mid_epoch_equals_a_straight_run(tmp_path, straight):
    X, reference = straight
    path = tmp_path / "ckpt"
    stop = threading.Event()
    stopped = _model().set_checkpoint(path, every=2)
    for report in stopped.fit_iter(X, stop=stop):
        if report.epoch == 5:
            stop.set()  # epoch 6 stops at its first batch
    assert stopped.history_[-1]["stop_reason"] == "stopped"
    assert read_resume_checkpoint(path).state["epoch"] == 4  # every 2: after 2 and 4
    resumed = _model().set_checkpoint(path, resume=True).fit(X)
    _same(resumed, reference)


def test_a_run_that_stopped_early_resumes_to_the_same_model(tmp_path):

    X = two_families(n_per=8, n_frames=64, seed=1)[0]
    early = dict(max_epochs=60, patience=1, min_delta=0.5)
    path = tmp_path / "ckpt"
    done = _model(**early).set_checkpoint(path).fit(X)
    assert done.history_[-1]["stop_reason"] == "early_stopping"
    again = _model(**early).set_checkpoint(path, resume=True)
    assert list(again.fit_iter(X)) == []  # nothing left to train
    _same(again, done)
    np.testing.assert_array_equal(again.transform(X), done.transform(X))


def test_resume_without_a_checkpoint_starts_afresh(tmp_path, straight):
    X, reference = straight
    path = tmp_path / "none-yet"
    model = _model().set_checkpoint(path, resume=True).fit(X)
    _same(model, reference)
    assert read_resume_checkpoint(path).state["epoch"] == 6


def test_another_runs_checkpoint_is_refused_in_one_line(tmp_path, straight):
    X, _ = straight
    path = tmp_path / "ckpt"
    _model(max_epochs=2).set_checkpoint(path).fit(X)
    cases = [
        (_model(), X[:-1], "training traces"),
        (_model(beta=0.25), X, "parameters (beta)"),
    ]
    for model, data, words in cases:
        with pytest.raises(CalciumAvaeError, match=r"another training run") as info:
            model.set_checkpoint(path, resume=True).fit(data)
        assert words in str(info.value) and "\n" not in str(info.value)


def test_a_kill_while_writing_keeps_the_previous_checkpoint(tmp_path, straight, monkeypatch):
    X, _ = straight
    path = tmp_path / "ckpt"
    _model(max_epochs=2).set_checkpoint(path).fit(X)
    before = path.read_bytes()

    def killed(obj, f, *args, **kwargs):
        with open(f, "wb") as out:
            out.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        _model(max_epochs=4).set_checkpoint(path, resume=True).fit(X)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary left


def test_set_checkpoint_is_not_a_parameter_and_checks_every(tmp_path):
    model = _model().set_checkpoint(tmp_path / "c", every=3)
    assert "checkpoint" not in str(model.get_params())
    with pytest.raises(CalciumAvaeError, match="positive integer"):
        model.set_checkpoint(tmp_path / "c", every=0)


def test_checkpoint_is_loaded_without_pickle(tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('code ran')",))

    path = tmp_path / "evil"
    with open(path, "wb") as f:
        pickle.dump({"format": "napari-calcium-avae/AVAE-training-state", "x": Boom()}, f)
    with pytest.raises(CalciumAvaeError, match="unsafe to load"):
        read_resume_checkpoint(path)


def test_cli_fit_resume_equals_a_straight_fit(tmp_path, tiny_sessions, capsys):
    from tests.cli_output import one_line_error

    from napari_calcium_avae.cli import main

    data = str(tiny_sessions[0])
    small = ["--model", "avae", "--hidden-size", "8", "--latent-size", "2", "--batch-size", "8"]
    small += ["--device", "cpu"]
    straight, resumed = tmp_path / "straight.pt", tmp_path / "resumed.pt"
    assert main(["fit", data, "-o", str(straight), "--epochs", "4", *small]) == 0
    assert main(["fit", data, "-o", str(resumed), "--epochs", "2", *small]) == 0
    capsys.readouterr()
    # a new run over the earlier one's checkpoint is refused: it would lose it
    assert main(["fit", data, "-o", str(tmp_path / "resumed.pt"), "--epochs", "4", *small]) == 2
    assert "holds the training state of an earlier run" in one_line_error(capsys)
    assert main(["fit", data, "-o", str(resumed), "--epochs", "4", "--resume", *small]) == 0
    assert "continuing the training run in" in capsys.readouterr().err
    _same(AVAE.load(resumed, device="cpu"), AVAE.load(straight, device="cpu"))
    assert (tmp_path / "resumed.pt.resume").is_file()
    (tmp_path / "straight.pt.resume").unlink()
    assert main(["fit", data, "-o", str(straight), "--resume", *small]) == 0
    assert "nothing to resume" in capsys.readouterr().out
