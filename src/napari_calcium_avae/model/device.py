"""Which torch device a model runs on: the fastest present, unless the user says."""

from __future__ import annotations

import torch

from ..errors import CalciumAvaeError


def _accelerators() -> list[str]:
    """The accelerators present, the one "auto" prefers first."""
    present = []
    if torch.cuda.is_available():
        present.append("cuda")
    if torch.backends.mps.is_available():
        present.append("mps")
    return present


def available_devices() -> dict[str, str]:
    """The devices a user can choose here, each with a short description; "auto" first."""
    present = _accelerators()
    devices = {"auto": "auto (GPU when present)", "cpu": "CPU"}
    if "cuda" in present:
        devices["cuda"] = f"CUDA ({torch.cuda.get_device_name(0)})"
    if "mps" in present:
        devices["mps"] = "Apple MPS"
    return devices


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" -> CUDA if present, else Apple MPS if present, else CPU; or the one named."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device((_accelerators() or ["cpu"])[0])
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise CalciumAvaeError(
            f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise CalciumAvaeError(
                f"device {device!r} asked for but CUDA is not available; use device='cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise CalciumAvaeError(
                f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise CalciumAvaeError(
                "device 'mps' asked for but Apple MPS is not available; use device='cpu'"
            )
    elif dev.type != "cpu":
        raise CalciumAvaeError(
            f"unsupported device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        )
    return dev


def is_out_of_memory(error: BaseException) -> bool:
    """True for an accelerator running out of memory (torch raises several types)."""
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error)
