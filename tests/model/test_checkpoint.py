import json
import pickle

import numpy as np
import pytest
import torch

from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.model import AVAE, load_model

SMALL = dict(hidden_size=16, latent_size=2, batch_size=8, max_epochs=3, device="cpu")


@pytest.mark.parametrize("architecture", ["released", "recurrent"])
def test_round_trip_gives_same_outputs(tmp_path, traces, architecture):
    model = AVAE(architecture=architecture, normalisation="global", **SMALL).fit(traces)
    path = model.save(tmp_path / "m.pt")
    loaded = AVAE.load(path, device="cpu")
    np.testing.assert_array_equal(loaded.transform(traces), model.transform(traces))
    np.testing.assert_array_equal(loaded.reconstruct(traces), model.reconstruct(traces))
    assert loaded.get_params() == model.get_params()
    assert loaded.history_ == model.history_ and loaded.norm_ == model.norm_
    assert load_model(path, device="cpu").best_epoch_ == model.best_epoch_


class _Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickle_is_refused_and_not_run(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "napari-calcium-avae/AVAE", "x": _Payload(target)}, path)
    with pytest.raises(CalciumAvaeError, match="not a napari-calcium-avae model checkpoint"):
        AVAE.load(path, device="cpu")
    assert not target.exists()
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Payload(target)))
    with pytest.raises(
        CalciumAvaeError, match=r"is not a napari-calcium-avae model checkpoint \(or is unsafe"
    ):
        AVAE.load(raw, device="cpu")
    assert not target.exists()


def test_foreign_files_are_refused(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CalciumAvaeError, match="not a napari-calcium-avae model checkpoint"):
        AVAE.load(text)
    weights = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(3)}, weights)
    with pytest.raises(CalciumAvaeError, match="not a napari-calcium-avae model checkpoint"):
        AVAE.load(weights)
    with pytest.raises(CalciumAvaeError, match="no model checkpoint"):
        AVAE.load(tmp_path / "missing.pt")


def test_checkpoint_with_unknown_settings_is_refused(tmp_path, traces):
    path = AVAE(**SMALL).fit(traces).save(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    config = json.loads(payload["config"])
    config["params"]["future_option"] = 1
    payload["config"] = json.dumps(config)
    torch.save(payload, path)
    with pytest.raises(CalciumAvaeError, match="settings this version does not know"):
        AVAE.load(path, device="cpu")


def test_checkpoint_from_before_the_timing_path_loads_without_one(tmp_path, traces):
    model = AVAE(timing_channels=0, **SMALL).fit(traces)
    path = model.save(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    config = json.loads(payload["config"])
    del config["params"]["timing_channels"]  # as in checkpoints from before it
    payload["config"] = json.dumps(config)
    torch.save(payload, path)
    loaded = AVAE.load(path, device="cpu")
    assert loaded.timing_channels == 0 and loaded.module_.timing is None
    np.testing.assert_array_equal(loaded.reconstruct(traces), model.reconstruct(traces))
