"""The networks behind the AVAE: the released function class, a recurrent model, and
the timing path either of them can carry.

Both architectures map a batch of normalised traces (B, T) to the posterior parameters
(mu, logvar) of the neuron's latent vector, each (B, D2), and decode latents (B, D2)
back to traces (B, T) in the normalised scale. A vector of D2 numbers describes what
kind of neuron this is, not when it fired, so on its own it cannot denoise a trace: the
optional :class:`TimingPath` adds a short sequence of latents that says when.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ARCHITECTURES = ("released", "recurrent")


class TimingPath(nn.Module):
    """Latents every ``STRIDE`` frames that add to the neuron-level reconstruction.

    The encoder sees the trace and the neuron-level reconstruction and gives a Gaussian
    posterior for ``channels`` latents per ``STRIDE`` frames; the decoder turns them into
    a correction added to that reconstruction. The stride caps how fast the correction
    can change and the KL term prices every value it holds, so it keeps what stands out
    of the noise (when the neuron fired) and not the noise itself.

    Every convolution runs at the latents' rate: each block of ``STRIDE`` frames is
    folded into channels on the way in and unfolded on the way out. Convolutions at the
    full frame rate cost four times the memory traffic, and small-channel convolutions
    on a CPU are bound by memory, not arithmetic (10,000 x 30,000 frames: 280 s with
    full-rate layers).
    """

    STRIDE = 4
    WIDTH = 8
    KERNEL = 5
    BLOCK_FRAMES = 2**20
    """Frames per block in :meth:`denoise`: about 1 M keeps a block's activations in a CPU's
    cache, 2.5 times faster than a whole inference chunk at once."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        s, w, k = self.STRIDE, self.WIDTH, self.KERNEL
        self.channels = channels
        self.encoder = nn.Sequential(
            nn.Conv1d(2 * s, w, k, padding=k // 2),
            nn.GELU(),
            nn.Conv1d(w, 2 * channels, k, padding=k // 2),
        )
        self.decoder = nn.Sequential(
            nn.Conv1d(channels, w, k, padding=k // 2),
            nn.GELU(),
            nn.Conv1d(w, s, k, padding=k // 2),
        )

    def latent_shape(self, n_traces: int, n_frames: int) -> tuple[int, int, int]:
        """(traces, channels, steps) of the timing latents of traces of ``n_frames``."""
        return (n_traces, self.channels, -(-n_frames // self.STRIDE))

    def encode(self, x: torch.Tensor, coarse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar), each (B, channels, ceil(T / STRIDE))."""
        s, pad = self.STRIDE, -x.shape[-1] % self.STRIDE
        if pad:
            x, coarse = (F.pad(t, (0, pad), mode="replicate") for t in (x, coarse))
        folded = torch.cat([t.reshape(len(t), -1, s).transpose(1, 2) for t in (x, coarse)], 1)
        return self.encoder(folded).chunk(2, dim=1)

    def decode(self, u: torch.Tensor, n_frames: int) -> torch.Tensor:
        """The correction (B, n_frames) from timing latents (B, channels, steps)."""
        return self.decoder(u).transpose(1, 2).reshape(len(u), -1)[:, :n_frames]

    def denoise(self, x: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """``coarse`` plus the correction at the posterior mean, a few traces at a time."""
        n_frames = x.shape[-1]
        rows = max(1, self.BLOCK_FRAMES // n_frames)
        return torch.cat(
            [
                cb + self.decode(self.encode(xb, cb)[0], n_frames)
                for xb, cb in zip(x.split(rows), coarse.split(rows), strict=True)
            ]
        )


class TraceNet(nn.Module):
    """What the estimator and the training loop need of a network, whichever it is.

    Subclasses give ``encode`` (traces to the neuron's posterior) and ``decode`` (its
    latent to a trace); ``timing`` is a :class:`TimingPath` or None.
    """

    def __init__(self, timing_channels: int) -> None:
        super().__init__()
        self.timing = TimingPath(timing_channels) if timing_channels else None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor, n_frames: int) -> torch.Tensor:
        raise NotImplementedError

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(posterior means, reconstruction): the denoised trace, every latent at its mean."""
        mu, _ = self.encode(x)
        out = self.decode(mu, x.shape[-1])
        if self.timing is not None:
            out = self.timing.denoise(x, out)
        return mu, out

    def generate(
        self, z: torch.Tensor, n_frames: int, detail: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Traces from neuron latents and timing latents (None: their prior mean, 0)."""
        out = self.decode(z, n_frames)
        if self.timing is not None:
            if detail is None:
                detail = z.new_zeros(self.timing.latent_shape(len(z), n_frames))
            out = out + self.timing.decode(detail, n_frames)
        return out

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """The neuron-level model's parameters, then the timing path's (if any): each
        group has its own gradient clipping, so one path's large gradients do not
        shrink the other's steps."""
        timing = list(self.timing.parameters()) if self.timing is not None else []
        owned = {id(p) for p in timing}
        core = [p for p in self.parameters() if id(p) not in owned]
        return [core, timing] if timing else [core]


class OneStepLSTM(nn.Module):
    """An LSTM layer run for a single step from a zero state, without its dead weights.

    From h0 = c0 = 0 the forget gate and the recurrent matrix never contribute, so
    h = sigmoid(o) * tanh(sigmoid(i) * tanh(g)) with i, g, o affine in the input. The
    three gates share one Linear (rows ordered i, g, o) so a step is one matrix product;
    its bias stands for nn.LSTM's b_ih + b_hh, which only ever appear summed.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.gates = nn.Linear(input_size, 3 * hidden_size)
        bound = hidden_size**-0.5  # nn.LSTM's initialisation range
        nn.init.uniform_(self.gates.weight, -bound, bound)
        nn.init.uniform_(self.gates.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i, g, o = self.gates(x).chunk(3, dim=-1)
        return torch.sigmoid(o) * torch.tanh(torch.sigmoid(i) * torch.tanh(g))

    @classmethod
    def from_lstm(cls, lstm: nn.LSTM) -> OneStepLSTM:
        """The live part of a one-layer nn.LSTM (e.g. weights of the released model)."""
        if lstm.num_layers != 1 or lstm.bidirectional or lstm.proj_size:
            raise ValueError("only a one-layer, one-direction LSTM without projection maps")
        h = lstm.hidden_size
        layer = cls(lstm.input_size, h)
        keep = torch.cat([torch.arange(0, h), torch.arange(2 * h, 4 * h)])  # i, g, o
        with torch.no_grad():
            layer.gates.weight.copy_(lstm.weight_ih_l0[keep])
            bias = torch.zeros(4 * h)
            if lstm.bias:
                bias = lstm.bias_ih_l0 + lstm.bias_hh_l0
            layer.gates.bias.copy_(bias[keep])
        return layer


class ReleasedAVAE(TraceNet):
    """The released model's function: one-step LSTM encoder and decoder over whole traces.

    The input size is the trace length, so a model only takes traces of ``n_frames``.
    """

    def __init__(
        self, n_frames: int, hidden_size: int, latent_size: int, timing_channels: int = 0
    ) -> None:
        super().__init__(timing_channels)
        self.n_frames = n_frames
        self.encoder = OneStepLSTM(n_frames, hidden_size)
        self.mu = nn.Linear(hidden_size, latent_size)
        self.logvar = nn.Linear(hidden_size, latent_size)
        self.expand = nn.Linear(latent_size, hidden_size)
        self.decoder = OneStepLSTM(hidden_size, n_frames)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.mu(h), self.logvar(h)

    def decode(self, z: torch.Tensor, n_frames: int) -> torch.Tensor:
        if n_frames != self.n_frames:
            raise ValueError(f"this network makes {self.n_frames} frames, not {n_frames}")
        return self.decoder(self.expand(z))


class RecurrentAVAE(TraceNet):
    """An LSTM that reads the trace as a sequence and one that generates it.

    Strided convolutions shorten time by ``STRIDE`` around the recurrent core, so a
    15,000-frame trace is a 59-step sequence: CPU LSTMs cost per step, and this keeps an
    epoch of the paper's data within seconds. Each LSTM is ``hidden_size // 2`` wide; the
    reader is bidirectional, so its final state has ``hidden_size`` values as D1 says.
    Any length is accepted: traces are padded with their edge value to a multiple of the
    stride and the output is cropped.
    """

    STRIDES = (4, 8, 8)
    CHANNELS = (16, 32, 64)
    STRIDE = 256

    def __init__(self, hidden_size: int, latent_size: int, timing_channels: int = 0) -> None:
        super().__init__(timing_channels)
        width = max(hidden_size // 2, 1)
        down: list[nn.Module] = []
        up: list[nn.Module] = []
        c_in = 1
        for s, c in zip(self.STRIDES, self.CHANNELS, strict=True):
            # kernel = stride: non-overlapping windows, the cheapest convolution on a CPU
            down += [nn.Conv1d(c_in, c, s, stride=s), nn.GELU()]
            up = [nn.ConvTranspose1d(c, c_in, s, stride=s), nn.GELU(), *up]
            c_in = c
        self.down = nn.Sequential(*down)
        self.up = nn.Sequential(*up[:-1])  # no non-linearity on the output
        self.reader = nn.LSTM(c_in, width, batch_first=True, bidirectional=True)
        self.mu = nn.Linear(2 * width, latent_size)
        self.logvar = nn.Linear(2 * width, latent_size)
        self.init_state = nn.Linear(latent_size, 2 * width)
        self.writer = nn.LSTM(latent_size, width, batch_first=True)
        self.to_channels = nn.Linear(width, c_in)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pad = -x.shape[-1] % self.STRIDE
        seq = x.unsqueeze(1)
        if pad:
            seq = F.pad(seq, (0, pad), mode="replicate")
        feats = self.down(seq).transpose(1, 2)  # (B, L, C)
        _, (h, _) = self.reader(feats)
        h = torch.cat(list(h), dim=-1)  # final states of both directions
        return self.mu(h), self.logvar(h)

    def decode(self, z: torch.Tensor, n_frames: int) -> torch.Tensor:
        steps = -(-n_frames // self.STRIDE)
        h0, c0 = torch.tanh(self.init_state(z)).unsqueeze(0).chunk(2, dim=-1)
        seq, _ = self.writer(z.unsqueeze(1).expand(-1, steps, -1), (h0, c0))
        out = self.up(self.to_channels(seq).transpose(1, 2))
        return out[:, 0, :n_frames]


def build(
    architecture: str,
    n_frames: int,
    hidden_size: int,
    latent_size: int,
    timing_channels: int = 0,
) -> TraceNet:
    """The network for an estimator's settings (n_frames matters for "released" only)."""
    if architecture == "released":
        return ReleasedAVAE(n_frames, hidden_size, latent_size, timing_channels)
    if architecture == "recurrent":
        return RecurrentAVAE(hidden_size, latent_size, timing_channels)
    raise ValueError(f"unknown architecture {architecture!r}")
