"""The training loop: a generator of per-epoch reports that any front end can drive.

The GUI (napari ``thread_worker``) and the CLI (tqdm) iterate it; closing the generator
or setting ``stop`` ends training, and in every case the best weights seen on the
validation split are back in the network when control returns.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import CalciumAvaeWarning


@dataclass(frozen=True)
class EpochReport:
    """What one epoch did; ``stop_reason`` is set on the last report only."""

    epoch: int
    """1-based; 0 is never reported (it names the untrained weights)."""
    n_epochs: int
    train_loss: float
    val_loss: float
    recon: float
    """Mean per-trace sum of squared errors on the validation split."""
    kl: float
    """Mean per-trace KL divergence on the validation split."""
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


def vae_loss(
    recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction, KL), each a mean over the batch of a per-trace sum.

    Sum of squared errors is the Gaussian log-likelihood with fixed variance (seed 000
    eq. 11); the KL term is eq. 12 against N(0, I).
    """
    sse = (recon - x).pow(2).sum(dim=1).mean()
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()
    return sse + beta * kl, sse, kl


def _sample(mu: torch.Tensor, logvar: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    noise = torch.randn(mu.shape, generator=gen, device=mu.device, dtype=mu.dtype)
    return mu + noise * torch.exp(0.5 * logvar)


def adam(
    parameters: Iterable[nn.Parameter], learning_rate: float, device: torch.device
) -> torch.optim.Optimizer:
    """The released scripts' optimiser (Adam, eps 1e-6), fused where torch has the kernel."""
    fused = device.type in ("cpu", "cuda")  # one kernel for all parameters
    return torch.optim.Adam(parameters, lr=learning_rate, eps=1e-6, fused=fused or None)


def training_step(
    net: nn.Module,
    optimiser: torch.optim.Optimizer,
    xb: torch.Tensor,
    beta: float,
    noise: torch.Generator,
) -> float:
    """One optimiser step on a batch, gradient norm clipped at 1; returns the batch loss.

    A NaN/Inf loss is returned without a step, so the weights stay as they were.
    """
    mu, logvar = net.encode(xb)
    recon = net.decode(_sample(mu, logvar, noise), xb.shape[1])
    loss, _, _ = vae_loss(recon, xb, mu, logvar, beta)
    if not torch.isfinite(loss):
        return loss.item()
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    optimiser.step()
    return loss.item()


def _evaluate(
    net: nn.Module, X: torch.Tensor, beta: float, batch_size: int
) -> tuple[float, float, float]:
    """Validation loss with z = mu, so the early-stopping signal carries no sampling noise."""
    loss = sse = kl = 0.0
    net.eval()
    with torch.inference_mode():
        for start in range(0, len(X), batch_size):
            xb = X[start : start + batch_size]
            mu, logvar = net.encode(xb)
            total, s, k = vae_loss(net.decode(mu, xb.shape[1]), xb, mu, logvar, beta)
            n = len(xb)
            loss, sse, kl = loss + total.item() * n, sse + s.item() * n, kl + k.item() * n
    n = max(len(X), 1)
    return loss / n, sse / n, kl / n


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def train_iter(
    net: nn.Module,
    X_train: torch.Tensor,
    X_val: torch.Tensor,
    config: TrainingConfig,
    generator: torch.Generator,
    noise_generator: torch.Generator,
    stop: threading.Event | None = None,
) -> Iterator[EpochReport]:
    """Train ``net`` in place, yielding one report per epoch.

    ``generator`` (CPU) orders the batches, ``noise_generator`` (on the data's device)
    draws the reparameterisation noise. Early stopping counts an epoch as better when the
    validation loss falls by more than ``min_delta`` times the best loss so far: the
    loss is a sum over frames, so an absolute threshold would mean something different
    for every trace length and noise level.
    """
    optimiser = adam(net.parameters(), config.learning_rate, X_train.device)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=config.lr_decay)
    best_state = _snapshot(net)
    best_loss = math.inf
    best_epoch = 0
    since_best = 0
    try:
        for epoch in range(1, config.max_epochs + 1):
            lr = optimiser.param_groups[0]["lr"]
            net.train()
            order = torch.randperm(len(X_train), generator=generator).to(X_train.device)
            seen = 0
            train_sum = 0.0
            reason = None
            for start in range(0, len(X_train), config.batch_size):
                if stop is not None and stop.is_set():
                    reason = "stopped"
                    break
                xb = X_train[order[start : start + config.batch_size]]
                loss = training_step(net, optimiser, xb, config.beta, noise_generator)
                if not math.isfinite(loss):
                    reason = "diverged"
                    break
                train_sum += loss * len(xb)
                seen += len(xb)
            if reason is None:
                val_loss, sse, kl = _evaluate(net, X_val, config.beta, config.batch_size)
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
            yield EpochReport(
                epoch,
                config.max_epochs,
                train_sum / seen,
                val_loss,
                sse,
                kl,
                lr,
                best_epoch,
                done,
                "early_stopping" if done else None,
            )
            if done:
                return
    finally:
        net.load_state_dict(best_state)
        net.eval()
