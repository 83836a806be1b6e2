"""Checkpoints: the weights and a JSON config in one torch file, loaded without pickle.

``torch.load(weights_only=True)`` only rebuilds tensors, dicts, lists, strings and
numbers, so a crafted file cannot run code; the config travels as one JSON string so it
stays readable by any tool.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .. import __version__
from ..errors import CalciumAvaeError
from ..files import atomic_output
from .architectures import build
from .device import resolve_device

if TYPE_CHECKING:
    from .estimator import AVAE

FORMAT = "napari-calcium-avae/AVAE"
FORMAT_VERSION = 1


def save_checkpoint(model: AVAE, path: str | Path) -> Path:
    """Write atomically (temporary file, then rename), so a crash leaves no half file."""
    path = Path(path)
    config = {
        "params": model.get_params(),
        "n_frames": model.n_frames_,
        "norm": list(model.norm_) if model.norm_ is not None else None,
        "best_epoch": model.best_epoch_,
        "history": model.history_,
        "versions": {"napari-calcium-avae": __version__, "torch": torch.__version__},
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.module_.state_dict().items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(config),
        "state_dict": state,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, overwrite=True) as tmp:
        torch.save(payload, tmp)
    return path


def _read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    if not path.is_file():
        raise CalciumAvaeError(f"no model checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for foreign or unsafe files
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CalciumAvaeError(
            f"{path} is not a napari-calcium-avae checkpoint (or is unsafe to load): {first[:200]}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CalciumAvaeError(f"{path} is not a napari-calcium-avae checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CalciumAvaeError(
            f"{path} has checkpoint format {payload.get('format_version')!r}; this version of "
            f"napari-calcium-avae reads format {FORMAT_VERSION}"
        )
    try:
        config = json.loads(payload["config"])
        state = payload["state_dict"]
        if not isinstance(config["params"], dict) or not isinstance(state, dict):
            raise TypeError
        int(config["n_frames"])
    except (KeyError, TypeError, ValueError):
        raise CalciumAvaeError(f"{path} is a damaged napari-calcium-avae checkpoint") from None
    return config, state


def load_checkpoint(path: str | Path, device: str = "auto") -> AVAE:
    """Rebuild a fitted AVAE on ``device`` from a file written by :func:`save_checkpoint`."""
    from .estimator import AVAE

    path = Path(path)
    config, state = _read(path)
    # checkpoints from before the timing path have no timing_channels: they had none
    params = {"timing_channels": 0, **config["params"], "device": device}
    try:
        model = AVAE(**params)
    except TypeError:
        made_by = config.get("versions", {}).get("napari-calcium-avae")
        raise CalciumAvaeError(
            f"{path} was written with settings this version does not know "
            f"(napari-calcium-avae {made_by}); update napari-calcium-avae"
        ) from None
    model._check_params()
    net = build(
        model.architecture,
        config["n_frames"],
        model.hidden_size,
        model.latent_size,
        model.timing_channels,
    )
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError) as error:
        reason = str(error).splitlines()[0][:200]
        raise CalciumAvaeError(
            f"{path}: weights do not match the saved settings ({reason})"
        ) from None
    model.device_ = resolve_device(device)
    model.module_ = net.to(model.device_).eval()
    model.n_frames_ = model.n_features_in_ = int(config["n_frames"])
    model.norm_ = tuple(config["norm"]) if config["norm"] is not None else None
    model.best_epoch_ = int(config.get("best_epoch", 0))
    model.history_ = list(config.get("history", []))
    return model
