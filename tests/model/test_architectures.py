import pytest
import torch

from napari_calcium_avae.model.architectures import (
    OneStepLSTM,
    RecurrentAVAE,
    ReleasedAVAE,
    TimingPath,
    build,
)


def _lstm_one_step(lstm: torch.nn.LSTM, x: torch.Tensor) -> torch.Tensor:
    out, _ = lstm(x.unsqueeze(0))  # (seq=1, batch, features), zero initial state
    return out[0]


def test_one_step_lstm_equals_torch_lstm_encoder_and_decoder():
    torch.manual_seed(0)
    T, d1, d2 = 50, 16, 3
    enc_lstm, dec_lstm = torch.nn.LSTM(T, d1), torch.nn.LSTM(d1, T)
    mu, logvar, expand = torch.nn.Linear(d1, d2), torch.nn.Linear(d1, d2), torch.nn.Linear(d2, d1)
    net = ReleasedAVAE(T, d1, d2)
    net.encoder = OneStepLSTM.from_lstm(enc_lstm)
    net.decoder = OneStepLSTM.from_lstm(dec_lstm)
    net.mu, net.logvar, net.expand = mu, logvar, expand
    x = torch.rand(7, T) - 0.5
    with torch.no_grad():
        h = _lstm_one_step(enc_lstm, x)
        m, lv = net.encode(x)
        torch.testing.assert_close(m, mu(h), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(lv, logvar(h), rtol=1e-5, atol=1e-6)
        z = torch.randn(7, d2)
        expected = _lstm_one_step(dec_lstm, expand(z))
        torch.testing.assert_close(net.decode(z, T), expected, rtol=1e-5, atol=1e-6)


def test_released_parameter_count_matches_the_live_weights():
    T, d1, d2 = 1000, 128, 8
    net = ReleasedAVAE(T, d1, d2)
    live = (3 * d1 * T + 3 * d1) + 2 * (d1 * d2 + d2) + (d2 * d1 + d1) + (3 * T * d1 + 3 * T)
    assert sum(p.numel() for p in net.parameters()) == live


def test_released_rejects_other_length():
    net = ReleasedAVAE(32, 4, 2)
    with pytest.raises(ValueError, match="32 frames"):
        net.decode(torch.zeros(1, 2), 40)


@pytest.mark.parametrize("n_frames", [300, 1000, 1024])
def test_recurrent_accepts_any_length(n_frames):
    net = build("recurrent", 0, 16, 3)
    x = torch.rand(3, n_frames) - 0.5
    mu, logvar = net.encode(x)
    assert mu.shape == logvar.shape == (3, 3)
    assert net.decode(mu, n_frames).shape == (3, n_frames)
    assert isinstance(net, RecurrentAVAE)


def test_from_lstm_refuses_bidirectional():
    with pytest.raises(ValueError, match="one-direction"):
        OneStepLSTM.from_lstm(torch.nn.LSTM(4, 3, bidirectional=True))


def test_timing_path_is_local_in_time():
    """Frame j lands in latent step j // 4 (the fold), and each latent shapes only the
    frames its convolutions reach: 2 layers of kernel 5, +-4 steps."""
    torch.manual_seed(0)
    path = TimingPath(2)
    x, coarse = torch.randn(1, 101), torch.randn(1, 101)
    with torch.no_grad():
        mu, _ = path.encode(x, coarse)
        assert mu.shape == path.latent_shape(1, 101) == (1, 2, 26)
        nudged = x.clone()
        nudged[0, 41] += 1.0  # step 10
        changed = (path.encode(nudged, coarse)[0] != mu).any(dim=1)[0]
        assert changed.nonzero().flatten().tolist() == list(range(6, 15))
        u = torch.zeros(1, 2, 26)
        base = path.decode(u, 101)
        u[0, 0, 10] = 1.0
        changed = (path.decode(u, 101) != base)[0]
        assert base.shape == (1, 101)
        assert changed.nonzero().flatten().tolist() == list(range(24, 60))


def test_timing_path_denoises_in_blocks_as_in_one_go(monkeypatch):
    torch.manual_seed(0)
    net = build("released", 40, 8, 2, timing_channels=2)
    x = torch.rand(7, 40) - 0.5
    with torch.no_grad():
        _, whole = net.reconstruct(x)
        monkeypatch.setattr(TimingPath, "BLOCK_FRAMES", 100)  # 2 traces per block
        _, blocked = net.reconstruct(x)
        coarse = net.decode(net.encode(x)[0], 40)
        detail, _ = net.timing.encode(x, coarse)
    torch.testing.assert_close(blocked, whole)
    torch.testing.assert_close(whole, coarse + net.timing.decode(detail, 40))
