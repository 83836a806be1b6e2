"""The training loop: a generator of per-epoch reports that any front end can drive.

The GUI (napari ``thread_worker``) and the CLI (tqdm) iterate it; closing the generator
or setting ``stop`` ends training, and in every case the best weights seen on the
validation split are back in the network when control returns.

The loop can hand out its whole state after an epoch (:class:`TrainingState`: weights,
optimiser, schedule, early stopping, random generators) and continue from one, to the
same weights as a run that was never stopped; and it trains on several processes at
once (DDP) when given a :class:`~.distributed.Group` (docs/scaling.md).
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from ..errors import CalciumAvaeWarning
from ..files import interrupts_held
from .architectures import TraceNet
from .distributed import Group


@dataclass(frozen=True)
class EpochReport:
    """What one epoch did; ``stop_reason`` is set on the last report only."""

    epoch: int
    """1-based; 0 is never reported (it names the untrained weights)."""
    n_epochs: int
    train_loss: float
    val_loss: float
    recon: float
    """Mean per-trace sum of squared errors of the reconstruction on the validation split."""
    kl: float
    """Mean per-trace KL divergence of all latents on the validation split."""
    lr: float
    best_epoch: int
    stopped_early: bool = False
    stop_reason: str | None = None
    """None, "early_stopping", "diverged" (NaN/Inf loss) or "stopped" (by the user)."""


@dataclass(frozen=True)
class TrainingConfig:
    beta: float
    learning_rate: float
    lr_decay: float
    batch_size: int
    max_epochs: int
    patience: int
    min_delta: float


@dataclass(frozen=True)
class TrainingState:
    """Everything :func:`train_iter` needs to go on after ``epoch`` as if it had never
    stopped; plain tensors, numbers and dicts of them (a checkpoint holds it without
    pickle)."""

    epoch: int
    """Epochs done (1-based count); training continues with ``epoch + 1``."""
    weights: dict[str, torch.Tensor]
    """The network as it is after ``epoch`` (not the best one)."""
    best_weights: dict[str, torch.Tensor]
    best_loss: float
    best_epoch: int
    since_best: int
    optimiser: dict[str, Any]
    scheduler: dict[str, Any]
    order_rng: torch.Tensor
    """State of the generator that orders the batches (the same on every rank)."""
    noise_rng: torch.Tensor
    """State of the reparameterisation-noise generator (the same on every rank)."""
    finished: str | None = None
    """"early_stopping" once training has ended by itself: nothing is left to do."""


def vae_loss(
    recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction, KL), each a mean over the batch of a per-trace sum.

    Sum of squared errors is the Gaussian log-likelihood with fixed variance (Abante et
    al. 2025, eq. 11); the KL term is eq. 12 against N(0, I).
    """
    sse = (recon - x).pow(2).sum(dim=1).mean()
    kl = gaussian_kl(mu, logvar)
    return sse + beta * kl, sse, kl


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL of N(mu, exp(logvar)) to N(0, I), summed over each trace's latents, batch mean."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).flatten(1).sum(dim=1)).mean()


NOISE_FLOOR = 0.01
"""Smallest noise SD the timing path assumes, in the [-0.5, 0.5] scale: 1% of the range."""


def noise_sd(x: torch.Tensor) -> torch.Tensor:
    """Each trace's noise SD from its frame-to-frame differences (B,), at least NOISE_FLOOR.

    The median absolute difference ignores the few frames where a transient rises; for
    white noise it is 0.6745 * sqrt(2) SD.
    """
    steps = x.diff(dim=1).abs().median(dim=1).values
    return (steps / (0.6745 * math.sqrt(2))).clamp_min(NOISE_FLOOR)


def timing_loss(
    recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction, KL) of the timing path, each a mean over the batch.

    The likelihood is Gaussian with each trace's own noise variance (:func:`noise_sd`),
    not the paper's fixed variance of 1/2 in the [-0.5, 0.5] scale: against that, a
    transient of a tenth of the range is not worth a latent, and the path would learn
    nothing. With the trace's noise, a latent is worth its KL cost when it explains
    more than the noise; the reconstruction term returned is the plain sum of squares.
    """
    sq = (recon - x).pow(2)
    fit = (sq.sum(dim=1) / (2 * noise_sd(x).pow(2))).mean()
    kl = gaussian_kl(mu, logvar)
    return fit + kl, sq.sum(dim=1).mean(), kl


@dataclass(frozen=True)
class RankNoise:
    """The reparameterisation noise of one rank's share of a batch: drawn for the whole
    batch from a generator every rank holds in the same state, this rank's rows kept. The
    ranks together then use exactly the noise one process would, so a distributed run
    follows the single-process one up to rounding."""

    generator: torch.Generator
    batch_rows: int
    """Rows of the whole batch (all ranks)."""
    rank: int
    world_size: int
    rows: slice | None = None
    """This rank's rows of the draw; None: every world_size-th row from ``rank`` on."""


class BatchStream(Protocol):
    """Batches read while training runs instead of tensors in memory (out-of-core
    training: ``streaming.StreamBatches``); ``batch_size`` is each rank's."""

    batch_size: int

    def train_batches(self, epoch: int) -> Iterator[torch.Tensor]: ...
    def validation_batches(self) -> Iterator[torch.Tensor]: ...


def _sample(
    mu: torch.Tensor, logvar: torch.Tensor, gen: torch.Generator | RankNoise
) -> torch.Tensor:
    if isinstance(gen, RankNoise):
        shape = (gen.batch_rows, *mu.shape[1:])
        whole = torch.randn(shape, generator=gen.generator, device=mu.device, dtype=mu.dtype)
        noise = whole[gen.rows] if gen.rows is not None else whole[gen.rank :: gen.world_size]
    else:
        noise = torch.randn(mu.shape, generator=gen, device=mu.device, dtype=mu.dtype)
    return mu + noise * torch.exp(0.5 * logvar)


def batch_loss(
    net: TraceNet, xb: torch.Tensor, beta: float, noise: torch.Generator | RankNoise | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction SSE, KL) of a batch; latents sampled, or at their means
    when ``noise`` is None.

    The neuron-level terms are the paper's loss. The timing path learns what that
    reconstruction misses, which it sees detached: its gradients never reach the
    neuron-level model, which learns from the paper's loss alone.
    """
    mu, logvar = net.encode(xb)
    z = mu if noise is None else _sample(mu, logvar, noise)
    coarse = net.decode(z, xb.shape[1])
    loss, sse, kl = vae_loss(coarse, xb, mu, logvar, beta)
    if net.timing is None:
        return loss, sse, kl
    coarse = coarse.detach()
    d_mu, d_logvar = net.timing.encode(xb, coarse)
    detail = d_mu if noise is None else _sample(d_mu, d_logvar, noise)
    recon = coarse + net.timing.decode(detail, xb.shape[1])
    t_loss, t_sse, t_kl = timing_loss(recon, xb, d_mu, d_logvar)
    return loss + t_loss, t_sse, kl + t_kl


def adam(
    parameters: Iterable[nn.Parameter], learning_rate: float, device: torch.device
) -> torch.optim.Optimizer:
    """The released scripts' optimiser (Adam, eps 1e-6), fused where torch has the kernel."""
    fused = device.type in ("cpu", "cuda")  # one kernel for all parameters
    return torch.optim.Adam(parameters, lr=learning_rate, eps=1e-6, fused=fused or None)


def training_step(
    net: TraceNet,
    optimiser: torch.optim.Optimizer,
    xb: torch.Tensor,
    beta: float,
    noise: torch.Generator,
) -> float:
    """One optimiser step on a batch, gradient norm clipped at 1 (per parameter group of
    the network); returns the batch loss.

    A NaN/Inf loss is returned without a step, so the weights stay as they were.
    """
    loss, _, _ = batch_loss(net, xb, beta, noise)
    if not torch.isfinite(loss):
        return loss.item()
    _step(net, optimiser, loss)
    return loss.item()


class _BatchLoss(nn.Module):
    """:func:`batch_loss` as a module's forward, which DDP needs to synchronise the
    gradients of a backward pass (the network's own methods bypass its hooks)."""

    def __init__(self, net: TraceNet) -> None:
        super().__init__()
        self.net = net

    def forward(
        self, xb: torch.Tensor, beta: float, noise: torch.Generator | RankNoise | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return batch_loss(self.net, xb, beta, noise)


def _evaluate(
    net: TraceNet,
    X: torch.Tensor | BatchStream,
    beta: float,
    batch_size: int,
    group: Group | None = None,
) -> tuple[float, float, float]:
    """Validation loss with latents at their means: no sampling noise in early stopping.

    With a group each rank scores its share of ``X`` (of a stream: its files'
    validation ROIs) and the sums are added up, so every rank gets the same numbers and
    makes the same early-stopping decision.
    """
    if isinstance(X, torch.Tensor):
        if group is not None:
            X = X[group.rank :: group.world_size]
        batches: Iterable[torch.Tensor] = (
            X[start : start + batch_size] for start in range(0, len(X), batch_size)
        )
    else:
        batches = X.validation_batches()
    loss = sse = kl = count = 0.0
    net.eval()
    with torch.inference_mode():
        for xb in batches:
            total, s, k = batch_loss(net, xb, beta, None)
            n = len(xb)
            loss, sse, kl = loss + total.item() * n, sse + s.item() * n, kl + k.item() * n
            count += n
    if group is not None:
        loss, sse, kl, count = group.sum([loss, sse, kl, count])
    n = max(count, 1.0)
    return loss / n, sse / n, kl / n


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _batches(n_train: int, batch_size: int, group: Group | None) -> Iterator[tuple[int, int, bool]]:
    """(start, stop, used) of each batch of an epoch in the shuffled order. With a group,
    every rank takes every world_size-th trace of each batch, so the ranks together
    take the steps one process would; a last batch too small to give every rank a trace
    is left out of that epoch (``used`` False): the order changes every epoch."""
    world = group.world_size if group is not None else 1
    for start in range(0, n_train, batch_size):
        stop = min(start + batch_size, n_train)
        yield start, stop, stop - start >= world


Batch = tuple[torch.Tensor | None, int, "torch.Generator | RankNoise"]
"""(this rank's traces, or None for a batch left out; rows of the whole batch; noise)."""


def _memory_batches(
    X: torch.Tensor,
    order: torch.Tensor,
    batch_size: int,
    group: Group | None,
    noise: torch.Generator,
) -> Iterator[Batch]:
    for start, end, used in _batches(len(X), batch_size, group):
        if not used:
            yield None, 0, noise
            continue
        rows = order[start:end]
        if group is None:
            yield X[rows], end - start, noise
        else:
            rows = rows[group.rank :: group.world_size]
            yield X[rows], end - start, RankNoise(noise, end - start, group.rank, group.world_size)


def _stream_batches(
    stream: BatchStream, epoch: int, group: Group | None, noise: torch.Generator
) -> Iterator[Batch]:
    """A stream's batches. With a group each rank reads its own files; the epoch ends for
    all ranks when the first one has no batch left (the others' last traces wait for
    another epoch's order), and each rank keeps its block of one shared noise draw."""
    batches = stream.train_batches(epoch)
    if group is None:
        for xb in batches:
            yield xb, len(xb), noise
        return
    local = stream.batch_size
    while True:
        xb = next(batches, None)
        n = 0 if xb is None else len(xb)
        have, whole = group.sum([float(n > 0), float(n)])
        if have < group.world_size:
            return
        rows = slice(group.rank * local, group.rank * local + n)
        shared = RankNoise(noise, local * group.world_size, group.rank, group.world_size, rows)
        yield xb, int(whole), shared


def train_iter(
    net: TraceNet,
    X_train: torch.Tensor | BatchStream,
    X_val: torch.Tensor | None,
    config: TrainingConfig,
    generator: torch.Generator,
    noise_generator: torch.Generator,
    stop: threading.Event | None = None,
    *,
    resume: TrainingState | None = None,
    on_state: Callable[[TrainingState, EpochReport], None] | None = None,
    state_every: int = 1,
    group: Group | None = None,
) -> Iterator[EpochReport]:
    """Train ``net`` in place, yielding one report per epoch.

    ``generator`` (CPU) orders the batches, ``noise_generator`` (on the data's device)
    draws the reparameterisation noise. Early stopping counts an epoch as better when the
    validation loss falls by more than ``min_delta`` times the best loss so far: the
    loss is a sum over frames, so an absolute threshold would mean something different
    for every trace length and noise level.

    ``resume`` continues from a state handed out earlier; ``on_state`` receives the state
    every ``state_every`` epochs and after the last epoch (not after a stopped or
    diverged one: the previous state is then the one to go on from; its tensors are the
    live ones, to be written or copied during the call). With a ``group`` (every rank
    calls this with the same data and generators in the same state), each rank takes its
    rows of every batch and of their noise, DDP averages the gradients, the stop and
    divergence decisions are taken together, and ``on_state`` is called on rank 0 only.

    ``X_train`` may be a :class:`BatchStream` instead (``X_val`` None): batches are then
    read as they are needed, in an order fixed by the epoch (out-of-core training).
    """
    in_memory = isinstance(X_train, torch.Tensor)
    validation = X_val if in_memory else X_train
    assert validation is not None
    device = next(net.parameters()).device
    optimiser = adam(net.parameters(), config.learning_rate, device)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=config.lr_decay)
    best_state = _snapshot(net)
    best_loss = math.inf
    best_epoch = 0
    since_best = 0
    first = 1
    if resume is not None:
        net.load_state_dict(resume.weights)
        best_state = {k: v.to(device) for k, v in resume.best_weights.items()}
        best_loss, best_epoch, since_best = resume.best_loss, resume.best_epoch, resume.since_best
        optimiser.load_state_dict(resume.optimiser)
        schedule.load_state_dict(resume.scheduler)
        generator.set_state(resume.order_rng)
        noise_generator.set_state(resume.noise_rng)
        first = resume.epoch + 1
        if resume.finished is not None:
            first = config.max_epochs + 1  # it ended by itself: nothing left to train
    loss_of = _BatchLoss(net)
    if group is not None:
        loss_of = group.wrap(loss_of)
    try:
        for epoch in range(first, config.max_epochs + 1):
            lr = optimiser.param_groups[0]["lr"]
            net.train()
            if isinstance(X_train, torch.Tensor):
                order = torch.randperm(len(X_train), generator=generator).to(device)
                batches = _memory_batches(X_train, order, config.batch_size, group, noise_generator)
            else:
                batches = _stream_batches(X_train, epoch, group, noise_generator)
            seen = 0
            train_sum = 0.0
            reason = None
            for xb, whole, noise in batches:
                stopping = stop is not None and stop.is_set()
                if group is None and stopping:
                    reason = "stopped"
                    break
                if xb is None:
                    continue
                loss = loss_of(xb, config.beta, noise)[0]
                n = float(len(xb))
                batch_sum = loss.item() * n
                if group is not None:  # one decision for all ranks: stop, diverged, or step
                    batch_sum, n, stops = group.sum([batch_sum, n, float(stopping)])
                    if stops:
                        reason = "stopped"
                        break
                if not math.isfinite(batch_sum):
                    reason = "diverged"
                    break
                if group is not None:
                    # DDP averages the ranks' gradients; weighing each by its share of the
                    # batch makes that the whole batch's mean, as in one process
                    loss = loss * (len(xb) * group.world_size / whole)
                _step(net, optimiser, loss)
                train_sum += batch_sum
                seen += n
            if reason is None:
                val_loss, sse, kl = _evaluate(
                    net, validation, config.beta, config.batch_size, group
                )
                if not math.isfinite(val_loss):
                    reason = "diverged"
            if reason is not None:
                if reason == "diverged":
                    warnings.warn(
                        f"training diverged (NaN/Inf loss) in epoch {epoch}; keeping the "
                        f"weights of epoch {best_epoch}. Try a smaller learning_rate.",
                        CalciumAvaeWarning,
                        stacklevel=2,
                    )
                nan = float("nan")
                train_loss = train_sum / seen if seen else nan
                yield EpochReport(
                    epoch, config.max_epochs, train_loss, nan, nan, nan, lr, best_epoch,
                    True, reason,
                )  # fmt: skip
                return
            if val_loss < best_loss * (1 - config.min_delta):
                best_loss, best_epoch, since_best = val_loss, epoch, 0
                best_state = _snapshot(net)
            else:
                since_best += 1
            schedule.step()
            done = since_best >= config.patience
            report = EpochReport(
                epoch,
                config.max_epochs,
                train_sum / seen if seen else float("nan"),
                val_loss,
                sse,
                kl,
                lr,
                best_epoch,
                done,
                "early_stopping" if done else None,
            )
            last = done or epoch == config.max_epochs
            held: list[int] = []
            if on_state is not None and (last or epoch % state_every == 0):
                if group is None or group.rank == 0:
                    state = TrainingState(
                        epoch=epoch,
                        weights=net.state_dict(),
                        best_weights=best_state,
                        best_loss=best_loss,
                        best_epoch=best_epoch,
                        since_best=since_best,
                        optimiser=optimiser.state_dict(),
                        scheduler=schedule.state_dict(),
                        order_rng=generator.get_state(),
                        noise_rng=noise_generator.get_state(),
                        finished=report.stop_reason,
                    )
                    with interrupts_held() as held:
                        on_state(state, report)
                if group is not None:
                    group.barrier()  # the file is whole before any rank goes on
            yield report
            if held:  # Ctrl-C while the state was written: now that the epoch is reported
                raise KeyboardInterrupt
            if done:
                return
    finally:
        net.load_state_dict(best_state)
        net.eval()


def _step(net: TraceNet, optimiser: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """Backward pass and optimiser step, gradient norm clipped at 1 per parameter group
    (the gradients are already averaged over the ranks when DDP runs the backward)."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    for group in net.parameter_groups():
        nn.utils.clip_grad_norm_(group, 1.0)
    optimiser.step()
