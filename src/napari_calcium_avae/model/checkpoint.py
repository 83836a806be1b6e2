"""Checkpoints: the weights and a JSON config in one torch file, loaded without pickle;
and training checkpoints, from which an interrupted fit resumes.

``torch.load(weights_only=True)`` only rebuilds tensors, dicts, lists, strings and
numbers, so a crafted file cannot run code; the config travels as one JSON string so it
stays readable by any tool. This module knows the file format only: what a fitted model
is made of, and how to rebuild one, is the estimator's business (``AVAE.save`` /
``AVAE.load``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import CalciumAvaeError
from ..files import atomic_output, check_free_space

FORMAT = "napari-calcium-avae/AVAE"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """What one checkpoint file holds, as plain data."""

    params: dict[str, Any]
    """``get_params()`` of the estimator that was saved."""
    n_frames: int
    """Training trace length (the estimator's ``n_features_in_``)."""
    norm: tuple[float, float] | None
    best_epoch: int
    history: list[dict[str, Any]]
    state_dict: dict[str, torch.Tensor]
    made_by: str | None = field(default=None, compare=False)
    """Version of napari-calcium-avae that wrote the file (None until written)."""


def save_checkpoint(checkpoint: Checkpoint, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write atomically (temporary file, then rename), so a crash leaves no half file; an
    existing file is refused unless ``overwrite``."""
    path = Path(path)
    config = {
        "params": checkpoint.params,
        "n_frames": checkpoint.n_frames,
        "norm": list(checkpoint.norm) if checkpoint.norm is not None else None,
        "best_epoch": checkpoint.best_epoch,
        "history": checkpoint.history,
        "versions": {"napari-calcium-avae": __version__, "torch": torch.__version__},
    }
    state = {k: v.detach().cpu().contiguous() for k, v in checkpoint.state_dict.items()}
    return _save_payload(path, FORMAT, FORMAT_VERSION, config, {"state_dict": state}, overwrite)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """The contents of a file written by :func:`save_checkpoint`, tensors on the CPU."""
    path = Path(path)
    payload = _load_payload(path, "model checkpoint", FORMAT, FORMAT_VERSION)
    try:
        config = json.loads(payload["config"])
        state = payload["state_dict"]
        if not isinstance(config["params"], dict) or not isinstance(state, dict):
            raise TypeError
        if int(config["n_frames"]) < 1:
            raise ValueError
        return Checkpoint(
            params=config["params"],
            n_frames=int(config["n_frames"]),
            norm=tuple(config["norm"]) if config["norm"] is not None else None,
            best_epoch=int(config.get("best_epoch", 0)),
            history=list(config.get("history", [])),
            state_dict=state,
            made_by=config.get("versions", {}).get("napari-calcium-avae"),
        )
    except (KeyError, TypeError, ValueError):
        raise CalciumAvaeError(f"{path} is a damaged napari-calcium-avae checkpoint") from None


RESUME_FORMAT = "napari-calcium-avae/AVAE-training-state"
RESUME_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ResumeCheckpoint:
    """A training run as it stood after an epoch: what the estimator needs to check that
    a resumed run is the same run (``config``, plain JSON data), and the loop's state
    (``state``: nested dicts and lists of tensors and numbers, see
    ``training.TrainingState``)."""

    config: dict[str, Any]
    state: dict[str, Any]


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value


def _tensor_bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def save_resume_checkpoint(checkpoint: ResumeCheckpoint, path: str | Path) -> Path:
    """Write (replacing the previous one) atomically: a run killed while writing keeps
    the previous epoch's file, complete."""
    path = Path(path)
    config = {
        **checkpoint.config,
        "versions": {"napari-calcium-avae": __version__, "torch": torch.__version__},
    }
    state = _to_cpu(checkpoint.state)
    return _save_payload(
        path, RESUME_FORMAT, RESUME_FORMAT_VERSION, config, {"state": state}, overwrite=True
    )


def read_resume_checkpoint(path: str | Path) -> ResumeCheckpoint:
    """A file written by :func:`save_resume_checkpoint`, tensors on the CPU; loaded with
    ``weights_only=True`` like the model files, so it cannot run code."""
    path = Path(path)
    payload = _load_payload(path, "training checkpoint", RESUME_FORMAT, RESUME_FORMAT_VERSION)
    try:
        config = json.loads(payload["config"])
        state = payload["state"]
        if not isinstance(config, dict) or not isinstance(state, dict):
            raise TypeError
    except (KeyError, TypeError, ValueError):
        raise CalciumAvaeError(f"{path} is a damaged training checkpoint") from None
    return ResumeCheckpoint(config=config, state=state)


def file_format(path: str | Path) -> str | None:
    """The format name a checkpoint file declares (None if it declares none), so that
    ``load_model`` can pick the estimator; unreadable files are left to that loader."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # the estimator's loader gives the one-line message
        return None
    return payload.get("format") if isinstance(payload, dict) else None


def _load_payload(path: Path, kind: str, form: str, version: int) -> dict:
    """The dict in ``path`` if it is our ``kind`` of file in format ``form``/``version``;
    loaded with ``weights_only=True``, so a file cannot run code."""
    if not path.is_file():
        raise CalciumAvaeError(f"no {kind} at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for foreign or unsafe files
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CalciumAvaeError(
            f"{path} is not a napari-calcium-avae {kind} (or is unsafe to load): {first[:200]}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != form:
        raise CalciumAvaeError(f"{path} is not a napari-calcium-avae {kind}")
    if payload.get("format_version") != version:
        raise CalciumAvaeError(
            f"{path} has {kind} format {payload.get('format_version')!r}; this version of "
            f"napari-calcium-avae reads format {version}"
        )
    return payload


def _save_payload(
    path: Path, form: str, version: int, config: dict, tensors: dict, overwrite: bool
) -> Path:
    """Write ``config`` (as JSON) and ``tensors`` in format ``form``/``version``
    atomically, after checking the free space: the twin of :func:`_load_payload`."""
    payload = {"format": form, "format_version": version, "config": json.dumps(config), **tensors}
    path.parent.mkdir(parents=True, exist_ok=True)
    check_free_space(path.parent, _tensor_bytes(tensors))
    with atomic_output(path, overwrite=overwrite) as tmp:
        torch.save(payload, tmp)
    return path
