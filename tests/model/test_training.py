import math
import threading

import numpy as np
import pytest
import torch

from napari_calcium_avae.errors import CalciumAvaeWarning
from napari_calcium_avae.model.architectures import ReleasedAVAE, build
from napari_calcium_avae.model.training import (
    NOISE_FLOOR,
    TrainingConfig,
    batch_loss,
    noise_sd,
    timing_loss,
    train_iter,
    vae_loss,
)


def test_loss_is_sse_plus_beta_kl_per_trace():
    x = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    recon = torch.tensor([[1.0, 1.0], [1.0, -1.0]])  # SSE 1 and 4 -> mean 2.5
    mu = torch.tensor([[1.0], [0.0]])
    logvar = torch.tensor([[0.0], [math.log(2.0)]])
    # KL per trace: 0.5 * (mu^2 + var - 1 - log var)
    kl = (0.5 * 1.0 + 0.5 * (2.0 - 1.0 - math.log(2.0))) / 2
    loss, sse, k = vae_loss(recon, x, mu, logvar, beta=0.5)
    assert sse.item() == pytest.approx(2.5)
    assert k.item() == pytest.approx(kl)
    assert loss.item() == pytest.approx(2.5 + 0.5 * kl)


def test_noise_sd_reads_white_noise_and_ignores_transients():
    gen = torch.Generator().manual_seed(0)
    x = 0.05 * torch.randn(4, 4000, generator=gen)
    x[:, 1000:1100] += torch.linspace(0, 0.4, 100)  # a rise: a few large differences
    torch.testing.assert_close(noise_sd(x), torch.full((4,), 0.05), rtol=0.05, atol=0)
    assert noise_sd(torch.zeros(1, 50)).item() == pytest.approx(NOISE_FLOOR)


def test_timing_loss_weighs_errors_by_each_traces_noise():
    gen = torch.Generator().manual_seed(1)
    x = torch.cat(
        [0.02 * torch.randn(1, 2000, generator=gen), 0.2 * torch.randn(1, 2000, generator=gen)]
    )
    recon = x + 0.1  # the same error on both traces
    mu, logvar = torch.zeros(2, 1, 500), torch.zeros(2, 1, 500)  # the prior: KL 0
    loss, sse, kl = timing_loss(recon, x, mu, logvar)
    sd = noise_sd(x)
    expected = (2000 * 0.01 / (2 * sd**2)).mean()
    assert kl.item() == pytest.approx(0.0)
    assert sse.item() == pytest.approx(2000 * 0.01, rel=1e-4)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    # the quiet trace's error costs (0.2 / 0.02)^2 = 100 times more: it has to be explained
    assert (sd[1] / sd[0]).item() == pytest.approx(10, rel=0.1)


@pytest.mark.parametrize("architecture", ["released", "recurrent"])
def test_timing_path_gradients_never_reach_the_neuron_model(architecture):
    torch.manual_seed(0)
    net = build(architecture, 64, 16, 2, timing_channels=1)
    x = torch.rand(6, 64) - 0.5
    batch_loss(net, x, 0.5, None)[0].backward()
    core, timing = net.parameter_groups()
    with_timing = [p.grad.clone() for p in core]
    assert any(p.grad.abs().sum() > 0 for p in timing)
    net.zero_grad()
    mu, logvar = net.encode(x)
    vae_loss(net.decode(mu, 64), x, mu, logvar, 0.5)[0].backward()
    for a, p in zip(with_timing, core, strict=True):
        torch.testing.assert_close(a, p.grad)


def _setup(max_epochs=30, patience=3, min_delta=0.0, lr=5e-3, T=32):
    torch.manual_seed(0)
    net = ReleasedAVAE(T, 8, 2)
    X = torch.rand(24, T) - 0.5
    config = TrainingConfig(0.5, lr, 0.99, 8, max_epochs, patience, min_delta)
    gens = (torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))
    return net, X[:16], X[16:], config, gens


def _weights(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_early_stopping_restores_best_weights():
    # random targets: validation stops improving quickly, so patience decides
    net, Xt, Xv, config, gens = _setup(max_epochs=200, patience=2, lr=5e-2)
    snapshots = {}
    reports = []
    for report in train_iter(net, Xt, Xv, config, *gens):
        reports.append(report)
        snapshots[report.epoch] = _weights(net)
    last = reports[-1]
    assert last.stopped_early and last.stop_reason == "early_stopping"
    assert last.epoch < 200
    assert last.epoch - last.best_epoch == config.patience
    best = min(reports, key=lambda r: r.val_loss)
    assert best.epoch == last.best_epoch
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, snapshots[last.best_epoch][k])


def test_relative_min_delta_counts_small_gains_as_no_gain():
    net, Xt, Xv, config, gens = _setup(max_epochs=40, patience=2, min_delta=0.5)
    reports = list(train_iter(net, Xt, Xv, config, *gens))
    assert reports[-1].stop_reason == "early_stopping"
    assert reports[-1].best_epoch == 1  # nothing halves the first epoch's loss here


class _Diverging(ReleasedAVAE):
    """Returns NaN once told to, as a diverged network would."""

    broken = False

    def decode(self, z, n_frames):
        out = super().decode(z, n_frames)
        return out * float("nan") if self.broken else out


def test_nan_loss_stops_with_warning_and_keeps_best_weights():
    torch.manual_seed(0)
    net = _Diverging(32, 8, 2)
    X = torch.rand(24, 32) - 0.5
    config = TrainingConfig(0.5, 5e-3, 0.99, 8, 50, 50, 0.0)
    gens = (torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))
    reports, snapshots = [], {}
    with pytest.warns(CalciumAvaeWarning, match="diverged"):
        for report in train_iter(net, X[:16], X[16:], config, *gens):
            reports.append(report)
            snapshots[report.epoch] = _weights(net)
            if report.epoch == 3:
                net.broken = True
    assert reports[-1].stop_reason == "diverged" and reports[-1].epoch == 4
    assert reports[-1].best_epoch == reports[2].best_epoch <= 3
    net.broken = False
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, snapshots[reports[-1].best_epoch][k])
    for v in net.state_dict().values():
        assert torch.isfinite(v).all()


def test_stop_event_ends_between_batches():
    net, Xt, Xv, config, gens = _setup(max_epochs=50, patience=50)
    stop = threading.Event()
    reports = []
    for report in train_iter(net, Xt, Xv, config, *gens, stop=stop):
        reports.append(report)
        if report.epoch == 2:
            stop.set()
    assert reports[-1].stop_reason == "stopped" and reports[-1].epoch == 3
    assert np.isnan(reports[-1].val_loss)
