"""Out-of-core training: NWBTraceDataset streams every ROI once per epoch, shuffled
across files, split by ROI hash, through DataLoader workers; a streamed fit learns as
the in-memory one does and resumes to the same weights."""

import itertools
import json
import warnings

import numpy as np
import pytest
import torch
from tests.benchmark_scripts import benchmark_module
from tests.model.conftest import two_families
from torch.utils.data import DataLoader

from napari_calcium_avae.errors import CalciumAvaeError, CalciumAvaeWarning
from napari_calcium_avae.model import AVAE
from napari_calcium_avae.model.streaming import NWBTraceDataset, in_validation

N_FILES, N_ROIS, N_FRAMES = 4, 12, 64
SMALL = dict(hidden_size=16, latent_size=2, batch_size=8, device="cpu", random_state=1)


@pytest.fixture(scope="module")
def bench():
    yield from benchmark_module("bench_streaming")


def _tagged(file: int, n_rois: int = N_ROIS, n_frames: int = N_FRAMES) -> np.ndarray:
    """Two-family traces whose first frame names them: 1000 * (file + 1) + row."""
    X = two_families(n_per=n_rois // 2, n_frames=n_frames, seed=file)[0]
    X[:, 0] = 1000 * (file + 1) + np.arange(n_rois)
    return X


@pytest.fixture(scope="module")
def files(bench, tmp_path_factory):
    folder = tmp_path_factory.mktemp("streaming")
    return [bench.write_session(folder / f"s{i}.nwb", _tagged(i)) for i in range(N_FILES)]


def _ids(traces) -> list[int]:
    return [int(t[0]) for t in traces]


def _everything() -> set[int]:
    return {1000 * (f + 1) + r for f in range(N_FILES) for r in range(N_ROIS)}


def test_every_roi_once_per_epoch_split_by_hash(files):
    data = NWBTraceDataset(files, chunk_rois=4, shuffle_buffer=8)
    train = data.configure(split="train", validation_fraction=0.25, seed=5, shuffle=True)
    val = data.configure(split="validation", validation_fraction=0.25, seed=5)
    seen_val = _ids(val)
    assert len(seen_val) == len(set(seen_val)) == data.count("validation", 0.25, 5) > 0
    orders = []
    for epoch in (1, 2):
        train.set_epoch(epoch)
        seen = _ids(train)
        assert len(seen) == len(set(seen))  # once each
        assert set(seen) | set(seen_val) == _everything()
        assert not set(seen) & set(seen_val)
        orders.append(seen)
    assert orders[0] != orders[1]  # another order every epoch...
    train.set_epoch(1)
    assert _ids(train) == orders[0]  # ...and the same one for the same epoch (resume)
    assert _ids(val) == seen_val  # the validation split never changes
    # the split of a ROI does not depend on the other files streamed with it
    alone = NWBTraceDataset(files[2:3]).configure(
        split="validation", validation_fraction=0.25, seed=5
    )
    assert set(_ids(alone)) == {i for i in seen_val if i // 1000 == 3}
    rows = np.arange(100_000)
    share = in_validation(data.sessions[0], rows, 0.25, 5).mean()
    assert 0.24 < share < 0.26


def test_shuffling_spans_files(files):
    data = NWBTraceDataset(files, chunk_rois=4, shuffle_buffer=16, files_open=4)
    train = data.configure(split="all", seed=0, shuffle=True)
    train.set_epoch(1)
    source = [i // 1000 for i in _ids(train)]
    assert len(set(source[:16])) >= 3  # the first batches draw on several files
    switches = sum(a != b for a, b in itertools.pairwise(source))
    assert switches >= 15  # file by file would switch 3 times in 48 traces
    in_order = _ids(data.configure(split="all"))
    assert in_order == sorted(in_order)  # unshuffled: file by file, row by row


def test_dataloader_workers_share_the_files(files):
    data = NWBTraceDataset(files, chunk_rois=4, shuffle_buffer=8, num_workers=2)
    train = data.configure(split="all", seed=0, shuffle=True)
    train.set_epoch(3)
    loader = DataLoader(train, batch_size=5, num_workers=2)
    seen = [int(v) for batch in loader for v in batch[:, 0]]
    assert sorted(seen) == sorted(_everything())  # each worker its files, none twice


def test_unusable_traces_are_left_out(bench, tmp_path):
    X = _tagged(0)
    X[3] = 7.0  # flat
    X[5, 10] = np.nan
    path = bench.write_session(tmp_path / "bad.nwb", X)
    seen = _ids(NWBTraceDataset([path]))
    assert 1003 not in seen and 1005 not in seen and len(seen) == N_ROIS - 2


def test_a_session_of_another_length_is_an_error_or_skipped(bench, files, tmp_path):
    odd = bench.write_session(tmp_path / "odd.nwb", _tagged(9, n_frames=80))
    with pytest.raises(CalciumAvaeError, match=r"1 session\(s\).*odd\.nwb \(80\)"):
        NWBTraceDataset([*files, odd])
    with pytest.warns(CalciumAvaeWarning, match=r"skipping 1 session\(s\).*odd\.nwb"):
        data = NWBTraceDataset([*files, odd], mismatched="skip")
    assert [s.name for s in data.sessions] == [f.name for f in files]
    assert data.n_frames == N_FRAMES


def test_streamed_fit_learns_like_the_in_memory_fit(files):
    streamed = AVAE(**SMALL, max_epochs=8, patience=50)
    data = NWBTraceDataset(files, chunk_rois=4, shuffle_buffer=16)
    history = [r.val_loss for r in streamed.fit_iter(data)]
    assert history[-1] < 0.7 * history[0]  # it learns
    X = np.concatenate([_tagged(i) for i in range(N_FILES)])
    in_memory = AVAE(**SMALL, max_epochs=8, patience=50).fit(X)

    # the two hold out other ROIs (hash vs permutation), so compare loosely; both on
    # all traces, in the same scale, with latents at their means
    def loss(model):
        return float(
            ((model.reconstruct(X) - X) ** 2 / np.ptp(X, axis=1, keepdims=True) ** 2).sum(1).mean()
        )

    assert loss(streamed) == pytest.approx(loss(in_memory), rel=0.3)
    assert streamed.n_features_in_ == N_FRAMES and streamed.transform(X).shape == (len(X), 2)


def test_crop_feature_vae_streams_to_the_in_memory_model(files):
    """Block by block, the crop features are the in-memory ones (the same draws), so
    the fitted models agree; the session of each trace is its file."""
    from napari_calcium_avae import pipeline
    from napari_calcium_avae.model import CropFeatureVAE

    settings = dict(crop_s=1.5, n_crops=4, max_epochs=3, hidden_size=8, latent_size=2)
    streamed = CropFeatureVAE(condition_on_session=True, **settings)
    list(pipeline.fit_iter(streamed, NWBTraceDataset(files, chunk_rois=4)))
    X = np.concatenate([_tagged(i) for i in range(N_FILES)])
    sessions = np.repeat(np.arange(N_FILES), N_ROIS)
    in_memory = CropFeatureVAE(frame_rate=30.0, condition_on_session=True, **settings)
    in_memory.fit(X, sessions=sessions)
    assert streamed.frame_rate == 30.0 and len(streamed.sessions_) == N_FILES
    assert np.allclose(streamed.transform(X), in_memory.transform(X), atol=1e-5)


def test_streamed_fit_resumes_to_the_same_weights(files, tmp_path):
    def run(epochs, **checkpoint):
        model = AVAE(**SMALL, max_epochs=epochs, patience=50)
        if checkpoint:
            model.set_checkpoint(tmp_path / "m.pt.resume", **checkpoint)
        return model.fit(NWBTraceDataset(files, chunk_rois=4, shuffle_buffer=8))

    straight = run(4)
    run(2, every=1)
    resumed = run(4, every=1, resume=True)
    assert [h["epoch"] for h in resumed.history_] == [1, 2, 3, 4]
    for key, value in straight.module_.state_dict().items():
        assert torch.equal(value, resumed.module_.state_dict()[key]), key
    # other files are another run: refused in one line
    with pytest.raises(CalciumAvaeError, match="training traces differ"):
        AVAE(**SMALL, max_epochs=5, patience=50).set_checkpoint(
            tmp_path / "m.pt.resume", resume=True
        ).fit(NWBTraceDataset(files[:3]))


def test_global_normalisation_and_workers_in_a_fit(files):
    model = AVAE(**SMALL, max_epochs=2, normalisation="global")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no worker or DataLoader warnings
        model.fit(NWBTraceDataset(files, num_workers=2))
    X = np.concatenate([_tagged(i) for i in range(N_FILES)])
    assert X.min() <= model.norm_[0] and model.norm_[0] + model.norm_[1] <= X.max()
    assert model.norm_[1] > 1000  # the tags (first frames) are in the range
    assert len(model.history_) == 2 and np.isfinite(model.history_[-1]["val_loss"])


def test_too_few_rois_to_split_is_one_line(bench, tmp_path):
    path = bench.write_session(tmp_path / "two.nwb", _tagged(0, n_rois=2))
    with pytest.raises(CalciumAvaeError, match=r"training and \d+ validation ROI"):
        AVAE(**SMALL).fit(NWBTraceDataset([path]))


def test_cli_fit_stream_and_resume(files, tmp_path, capsys):
    from napari_calcium_avae.cli import main

    out = tmp_path / "m.pt"
    small = ["--model", "avae", "--hidden-size", "16", "--latent-size", "2", "--batch-size", "8"]
    small += ["--device", "cpu"]
    folder = str(files[0].parent)
    assert main(["fit", folder, "-o", str(out), "--stream", "--epochs", "2", *small]) == 0
    assert "from 4 file(s), streamed" in capsys.readouterr().err
    first = AVAE.load(out)
    assert len(first.history_) == 2 and first.n_features_in_ == N_FRAMES
    # two more epochs after the finished run, from its checkpoint
    args = ["fit", folder, "-o", str(out), "--stream", "--epochs", "4", "--resume", *small]
    assert main(args) == 0
    assert "after epoch 2" in capsys.readouterr().err
    assert [h["epoch"] for h in AVAE.load(out).history_] == [1, 2, 3, 4]
    # streaming options without --stream are one line
    args = ["fit", folder, "-o", str(tmp_path / "x.pt"), "--workers", "2", *small]
    assert main(args) == 2
    assert "options of --stream" in capsys.readouterr().err


def test_ranks_stream_disjoint_shares_of_the_files(files):
    data = NWBTraceDataset(files, chunk_rois=4)
    shares = []
    for rank in (0, 1):
        view = data.configure(split="all", shuffle=True, seed=0, rank=rank, world_size=2)
        view.set_epoch(1)
        shares.append(_ids(view))
    assert {i // 1000 for i in shares[0]}.isdisjoint({i // 1000 for i in shares[1]})
    assert sorted(shares[0] + shares[1]) == sorted(_everything())


def _ddp_worker(rank: int, port: int, paths: list[str], folder: str) -> None:
    import os

    from napari_calcium_avae.model import distributed

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE="2",
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    with distributed.process_group(torch.device("cpu")):
        model = AVAE(**SMALL, max_epochs=4, patience=50)
        model.fit(NWBTraceDataset(paths, chunk_rois=4, shuffle_buffer=8))
    torch.save(
        {"weights": model.module_.state_dict(), "val": [h["val_loss"] for h in model.history_]},
        os.path.join(folder, f"rank{rank}.pt"),
    )


def test_two_ranks_stream_their_files_and_stay_in_step(files, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    paths = [str(f) for f in files]
    # forked: the ranks start with this process's imports (spawning re-imports torch twice)
    torch.multiprocessing.start_processes(
        _ddp_worker, args=(port, paths, str(tmp_path)), nprocs=2, start_method="fork"
    )
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["val"] == r1["val"]  # one validation loss over both ranks' files
    for key, value in r0["weights"].items():
        assert torch.equal(value, r1["weights"][key]), key  # DDP kept the ranks in step
    assert r0["val"][-1] < r0["val"][0]  # and it learned


@pytest.mark.parametrize("workers", [0, 1])
def test_a_file_gone_during_training_is_one_line(files, tmp_path, workers):
    import shutil

    copies = [shutil.copy(f, tmp_path / f.name) for f in files[:2]]
    data = NWBTraceDataset(copies, num_workers=workers)
    (tmp_path / files[1].name).unlink()
    with pytest.raises(CalciumAvaeError) as caught:
        AVAE(**SMALL, max_epochs=2).fit(data)
    assert str(caught.value) == f"no such file: {tmp_path / files[1].name}"


def test_benchmark_measures_a_streamed_crop_feature_fit(bench, tmp_path):
    out = tmp_path / "run.json"
    args = ["--model", "crop", "--sessions", "2", "--rois", "8", "--frames", "1200"]
    args += ["--epochs", "1", "--mode", "stream", "--data", str(tmp_path), "--json", str(out)]
    assert bench.main(args) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["model"] == "crop" and row["rois"] == 16 and row["peak_mib"] > 0
    assert row["fit_cpu_s"] >= row["epoch_cpu_s"] > 0
