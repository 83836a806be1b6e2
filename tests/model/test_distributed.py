"""Training on two ranks (gloo, CPU): both ranks end with the same weights, close to one
process's, and a resumed two-rank run equals a straight one."""

import os
import socket
import subprocess
import sys

import pytest
import torch
from tests.model.conftest import two_families

from napari_calcium_avae.model import AVAE, distributed

SMALL = dict(hidden_size=8, latent_size=2, batch_size=8, device="cpu", random_state=2, patience=50)
EPOCHS = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data():
    return two_families(n_per=12, n_frames=64)[0]


def _worker(rank: int, world: int, port: int, folder: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    X = _data()
    with distributed.process_group(torch.device("cpu")) as group:
        assert group is not None and group.rank == rank and group.world_size == world
        straight = AVAE(**SMALL, max_epochs=EPOCHS).fit(X)
        ckpt = os.path.join(folder, "ckpt")
        AVAE(**SMALL, max_epochs=3).set_checkpoint(ckpt).fit(X)
        resumed = AVAE(**SMALL, max_epochs=EPOCHS).set_checkpoint(ckpt, resume=True).fit(X)
    assert not torch.distributed.is_initialized()
    torch.save(
        {
            "straight": straight.module_.state_dict(),
            "resumed": resumed.module_.state_dict(),
            "val": [h["val_loss"] for h in straight.history_],
            "resumed_val": [h["val_loss"] for h in resumed.history_],
        },
        os.path.join(folder, f"rank{rank}.pt"),
    )


def _equal(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_ranks_agree_and_resume_exactly(tmp_path):
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert _equal(r0["straight"], r1["straight"])  # DDP kept the ranks in step
    assert r0["val"] == r1["val"]  # the validation loss is shared: one early-stopping decision
    assert _equal(r0["straight"], r0["resumed"])  # resumed after 3 epochs == never stopped
    assert r0["resumed_val"] == r0["val"]
    # every step used the whole batch, split over the ranks: the loss follows one process's
    alone = AVAE(**SMALL, max_epochs=EPOCHS).fit(_data())
    single = [h["val_loss"] for h in alone.history_]
    assert r0["val"] == pytest.approx(single, rel=1e-3)
    assert r0["val"][-1] < 0.8 * r0["val"][0]  # and it learned
    # the two ranks' checkpoint (after epoch 6) goes on in one process, as one process would
    more = AVAE(**SMALL, max_epochs=EPOCHS + 2)
    alone_more = [h["val_loss"] for h in more.fit(_data()).history_]
    more.set_checkpoint(tmp_path / "ckpt", resume=True).fit(_data())
    assert [h["val_loss"] for h in more.history_] == pytest.approx(alone_more, rel=1e-3)


def test_without_torchrun_nothing_is_set_up(monkeypatch):
    for name in distributed.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    with distributed.process_group(torch.device("cpu")) as group:
        assert group is None and not torch.distributed.is_initialized()
    assert distributed.current() is None and distributed.is_main()


def test_a_partial_torchrun_environment_is_one_line(monkeypatch):
    from napari_calcium_avae.errors import CalciumAvaeError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(CalciumAvaeError, match="start distributed training with torchrun"):
        with distributed.process_group(torch.device("cpu")):
            pass


def test_torchrun_fit_writes_one_model_from_rank_0(tmp_path, tiny_sessions):
    """The command as users run it: torchrun -m napari_calcium_avae fit."""
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    model = tmp_path / "out" / "m.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        torchrun, "--nproc-per-node", "2", "--master-port", str(_free_port()),
        "-m", "napari_calcium_avae", "fit", str(tiny_sessions[0]), "-o", str(model),
        "--model", "avae", "--epochs", "3", "--hidden-size", "8", "--latent-size", "2",
        "--batch-size", "8", "--device", "cpu",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "on 2 ranks" in done.stderr
    assert done.stdout.count("saved model") == 1  # rank 0 alone writes and reports
    loaded = AVAE.load(model, device="cpu")
    assert len(loaded.history_) == 3
    names = sorted(p.name for p in model.parent.iterdir())
    assert names == ["m.pt", "m.pt.resume"]


def _dying_worker(rank: int, port: int, data: str, folder: str) -> None:
    """Both ranks run the fit command; rank 1 dies (os._exit) after its second epoch."""
    import contextlib
    import io
    import json

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE="2",
        LOCAL_RANK=str(rank),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    from napari_calcium_avae.cli import main

    if rank == 1:
        original = AVAE.fit_iter

        def dies(self, X, stop=None):
            for i, report in enumerate(original(self, X, stop)):
                yield report
                if i == 1:
                    os._exit(3)  # as a killed process: no clean-up, no goodbye

        AVAE.fit_iter = dies
    err = io.StringIO()
    args = ["fit", data, "-o", os.path.join(folder, "m.pt"), "--epochs", "500"]
    small = ["--model", "avae", "--hidden-size", "8", "--latent-size", "2", "--batch-size", "8"]
    small += ["--device", "cpu"]
    with contextlib.redirect_stderr(err):
        code = main([*args, "--patience", "500", *small])
    with open(os.path.join(folder, "rank0.json"), "w") as f:
        json.dump({"code": code, "stderr": err.getvalue()}, f)


def test_a_rank_that_dies_is_one_line_and_the_checkpoint_resumes(tmp_path, tiny_sessions):
    import json

    from napari_calcium_avae.model.checkpoint import read_resume_checkpoint

    args = (_free_port(), str(tiny_sessions[0]), str(tmp_path))
    context = torch.multiprocessing.start_processes(
        _dying_worker, args=args, nprocs=2, join=False, start_method="spawn"
    )
    # a grace period, as a launcher gives, lets rank 0 finish its error and its record;
    # without one its SIGTERM could land after the error, before the record was written
    with pytest.raises(torch.multiprocessing.ProcessExitedException):
        while not context.join(grace_period=60):
            pass
    done = json.loads((tmp_path / "rank0.json").read_text())
    assert done["code"] == 2
    last = done["stderr"].strip().splitlines()[-1]
    # spawn, like torchrun, stops the survivors with SIGTERM; if rank 0 notices the lost
    # peer first, it says that instead: one line either way, naming the checkpoint
    assert last.startswith(
        (
            "calcium-avae: error: rank 0: another rank of the run stopped (",
            "calcium-avae: error: rank 0 was stopped by the launcher (SIGTERM)",
        )
    )
    assert last.endswith("m.pt.resume resumes the run (--resume)")
    assert not (tmp_path / "m.pt").exists()  # no model from a broken run
    state = read_resume_checkpoint(tmp_path / "m.pt.resume").state
    assert state["epoch"] >= 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt.resume", "rank0.json"]
    resumed = AVAE(hidden_size=8, latent_size=2, batch_size=8, device="cpu", patience=500)
    resumed.set_checkpoint(tmp_path / "m.pt.resume", resume=True)
    resumed.set_params(max_epochs=state["epoch"] + 1)
    from napari_calcium_avae.nwb.read import read_traces
    from napari_calcium_avae.pipeline import fit_iter

    assert [r.epoch for r in fit_iter(resumed, [read_traces(tiny_sessions[0])])] == [
        state["epoch"] + 1
    ]
