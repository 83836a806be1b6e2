"""Training on several processes (DDP), as ``torchrun`` launches them.

``torchrun --nproc-per-node N -m napari_calcium_avae fit ...`` starts N copies of the
command with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and a rendezvous address in their
environment. :func:`process_group` turns that environment into one process group (gloo
on the CPU, NCCL on CUDA) for the time of a fit; without it nothing is set up and
training runs in one process, as always. The training loop takes a :class:`Group`: it
wraps the loss in ``DistributedDataParallel`` (gradients averaged over the ranks), adds
up per-rank numbers so that every rank takes the same decisions, and lets the others
wait while rank 0 alone writes (docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

import torch
from torch import nn

from ..errors import CalciumAvaeError

ENVIRONMENT = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""What torchrun (or any env:// launcher) sets in each process it starts."""

TIMEOUT = timedelta(minutes=10)
"""How long a rank waits for the others in one collective before it gives up."""


@dataclass(frozen=True)
class Group:
    """This process's place among the ranks of one training run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    """Where the tensors of collectives live: NCCL only moves CUDA tensors."""

    def sum(self, values: Sequence[float]) -> list[float]:
        """The element-wise sum of ``values`` over all ranks, on every rank (float64)."""
        import torch.distributed as dist

        summed = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(summed)
        return summed.tolist()

    def barrier(self) -> None:
        """Wait until every rank is here (e.g. until rank 0 has written a file)."""
        import torch.distributed as dist

        dist.barrier()

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in DistributedDataParallel: its parameters start as rank 0's and
        every backward pass through its forward averages the gradients over the ranks."""
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, gradient_as_bucket_view=True)


def launched() -> bool:
    """True in a process started by torchrun (or another env:// launcher) for more than
    one rank."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def current() -> Group | None:
    """The group of the process group in use, or None when training runs alone."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    return Group(dist.get_rank(), dist.get_world_size(), local_rank, device)


def rank_device(device: torch.device, group: Group | None) -> torch.device:
    """The device a rank trains on: a CUDA device without an index means each rank's own
    GPU (``cuda:LOCAL_RANK``), as torchrun's one process per GPU expects."""
    if group is not None and device.type == "cuda" and device.index is None:
        return torch.device("cuda", group.local_rank)
    return device


def _environment() -> tuple[int, int, int]:
    missing = [name for name in ENVIRONMENT if name not in os.environ]
    if missing:
        raise CalciumAvaeError(
            f"WORLD_SIZE is set but {', '.join(missing)} is not; start distributed "
            "training with torchrun (torchrun --nproc-per-node N -m napari_calcium_avae fit ...)"
        )
    try:
        rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except ValueError:
        raise CalciumAvaeError(
            "RANK, WORLD_SIZE and LOCAL_RANK must be integers; start distributed training "
            "with torchrun"
        ) from None
    if not 0 <= rank < world or local < 0:
        raise CalciumAvaeError(f"rank {rank} does not fit a world of {world} processes")
    return rank, world, local


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[Group | None]:
    """Join the other ranks for the duration of the block when torchrun started this
    process (gloo for CPU training, NCCL for CUDA), and leave them at its end; yields
    None, and sets up nothing, otherwise."""
    if not launched():
        yield None
        return
    import torch.distributed as dist

    if not dist.is_available():
        raise CalciumAvaeError("this torch build has no torch.distributed; train in one process")
    rank, world, local = _environment()
    backend = "gloo"
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise CalciumAvaeError(
                f"rank {rank} needs GPU {local} but this node has {torch.cuda.device_count()}; "
                "start at most one process per GPU (--nproc-per-node)"
            )
        torch.cuda.set_device(local)
        backend = "nccl"
    elif device.type != "cpu":
        raise CalciumAvaeError(
            f"distributed training runs on CPUs (gloo) or CUDA GPUs (NCCL), not {device.type}"
        )
    dist.init_process_group(backend, timeout=TIMEOUT)
    try:
        group = current()
        assert group is not None and (group.rank, group.world_size) == (rank, world)
        with _terminate_as_error(rank):
            yield group
    finally:
        dist.destroy_process_group()


class Terminated(CalciumAvaeError):
    """The launcher stopped this rank (SIGTERM), as torchrun does to the other ranks
    when one fails: a one-line error instead of a silent death."""


@contextlib.contextmanager
def _terminate_as_error(rank: int) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise Terminated(
            f"rank {rank} was stopped by the launcher (SIGTERM): another rank failed or the "
            "job was cancelled"
        )

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def is_main() -> bool:
    """True where output is written and progress shown: rank 0, or a lone process."""
    group = current()
    return group is None or group.rank == 0
