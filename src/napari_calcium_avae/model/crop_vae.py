"""The crop-feature VAE: neuron latents that carry what a neuron is, not when it fired.

Why (issue 15): the paper's AVAE asks one latent vector to redraw a whole trace, so most
of it goes to *when* the neuron fired, which is not a property of the neuron, and its
latents cluster worse than PCA of the raw traces. Here the encoder sees only
timing-invariant features of one random crop of a trace (``crop_features``) and the
decoder must predict the features of a *different* crop of the same neuron, so only what
the two stretches share pays: kinetics, gain, noise, firing statistics. The observation
variance is learned per feature (as in the MLP VAEs of the paper authors' follow-up,
Ros et al., ICASSP 2026), and the decoder may be told the recording (a one-hot, as in
scVI, Lopez et al. 2018) so that the latent need not carry a session's brightness or
noise. A neuron's latent is the posterior mean averaged over evenly spaced crops.

The denoised traces come from the calcium observation model (seed 002), not from the
VAE: ``SpikeInference`` fits each neuron's kinetics, baseline and spikes, and the trace
they explain is the reconstruction (``SpikeInference.denoise``). On simulated cultures
it has a fraction of the error of the best Gaussian filter (docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ..errors import CalciumAvaeError
from .checkpoint import _load_payload, _save_payload
from .crop_features import features_of_crops
from .device import resolve_device
from .estimator import _check_traces
from .streaming import NWBTraceDataset
from .training import EpochReport

FORMAT = "napari-calcium-avae/CropFeatureVAE"
FORMAT_VERSION = 1
MIN_CROP_FRAMES = 32
"""Shortest crop whose spectrum and decay features mean something."""
VALIDATION_FRACTION = 0.1
"""Neurons held out (at random, by ``random_state``) to pick the best epoch."""
AUTO_CROP_S = 20.0
AUTO_CROP_SHARE = 0.25
"""``crop_s="auto"``: crops of AUTO_CROP_S seconds, or AUTO_CROP_SHARE of the recording
when that is longer. A crop must hold enough events for its features to say what the
neuron is: on the shared zebrafish recording (2.2 Hz, 43 min, sparse events) 20 s crops
left every latent dimension collapsed, a tenth of the recording too, a quarter or half
of it none (docs/benchmarks.md)."""
FRAME_RATE_TOLERANCE = 0.01
"""Relative frame-rate difference between training and a recording that is refused:
the features are in seconds and hertz, so another rate reads as other kinetics."""


class _CropVAE(nn.Module):
    def __init__(self, n_features: int, latent: int, hidden: int, n_sessions: int):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 2 * latent),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent + n_sessions, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, n_features),
        )
        self.obs_logvar = nn.Parameter(torch.zeros(n_features))

    def encode(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(f).chunk(2, dim=-1)
        return mu, logvar.clamp(-10.0, 10.0)

    def losses(self, f_in, f_target, session, sample: bool = True):
        """Per-row negative log-likelihood of the target crop's features and KL to N(0, I)."""
        mu, logvar = self.encode(f_in)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        pred = self.decoder(torch.cat([z, session], dim=1))
        nll = 0.5 * ((f_target - pred) ** 2 * (-self.obs_logvar).exp() + self.obs_logvar).sum(1)
        kl = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(1)
        return nll, kl


class CropFeatureVAE(TransformerMixin, BaseEstimator):
    """Neuron latents from timing-invariant features of random crops; denoising by the
    calcium observation model (scikit-learn conventions).

    Parameters
    ----------
    frame_rate : float or None
        Frames per second of the traces. None: ``pipeline.fit_iter`` sets it from the
        recordings; a bare ``fit`` needs it.
    crop_s : float or "auto"
        Crop length in seconds (shortened to the trace when the trace is shorter);
        "auto": ``AUTO_CROP_S``, or ``AUTO_CROP_SHARE`` of the recording when longer.
    n_crops : int
        Crops per neuron whose features are computed once per fit; each step pairs two.
    latent_size, hidden_size, beta, max_epochs, batch_size, learning_rate : as the AVAE.
    patience : int
        Epochs without a better validation loss before training stops.
    condition_on_session : bool
        Tell the decoder which recording a neuron came from (``fit(..., sessions=)``).
        Off by default: where each recording holds one kind of neuron (one culture type,
        one condition), the recording *is* the kind, and the decoder would take it from
        the one-hot instead of the latent; on our benchmarks it did not mix recordings
        better either (docs/benchmarks.md).
    ar_order : 1 or 2
        The calcium model's AR order for the denoised traces (see ``SpikeInference``).
    device : str
        Where the spike inference behind the denoised traces runs ("auto", "cpu", "cuda",
        "mps"); the VAE itself is a small MLP and trains on the CPU.
    random_state : int or None
    """

    def __init__(
        self,
        frame_rate: float | None = None,
        crop_s: float | str = "auto",
        n_crops: int = 16,
        latent_size: int = 6,
        hidden_size: int = 64,
        beta: float = 1.0,
        max_epochs: int = 150,
        patience: int = 30,
        batch_size: int = 128,
        learning_rate: float = 3e-3,
        condition_on_session: bool = False,
        ar_order: int = 2,
        device: str = "auto",
        random_state: int | None = 0,
    ) -> None:
        self.frame_rate = frame_rate
        self.crop_s = crop_s
        self.n_crops = n_crops
        self.latent_size = latent_size
        self.hidden_size = hidden_size
        self.beta = beta
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.condition_on_session = condition_on_session
        self.ar_order = ar_order
        self.device = device
        self.random_state = random_state

    # -- checks -----------------------------------------------------------------------
    def _check_params(self) -> None:
        from ..spikes.inference import AR_ORDERS

        if self.frame_rate is None or not float(self.frame_rate) > 0:
            raise CalciumAvaeError(
                f"frame_rate must be a positive number of frames per second, not "
                f"{self.frame_rate!r}"
            )
        if self.crop_s != "auto" and not (
            isinstance(self.crop_s, int | float) and float(self.crop_s) > 0
        ):
            raise CalciumAvaeError(
                f"crop_s must be a positive number of seconds or 'auto', not {self.crop_s!r}"
            )
        if self.n_crops < 2:
            raise CalciumAvaeError("n_crops must be at least 2: the target is another crop")
        for name in ("latent_size", "hidden_size", "max_epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise CalciumAvaeError(f"{name} must be at least 1, not {getattr(self, name)!r}")
        if self.ar_order not in AR_ORDERS:
            raise CalciumAvaeError(f"ar_order must be 1 or 2, not {self.ar_order!r}")

    def check_rate(self, rate: float | None) -> None:
        """Refuse a recording at another frame rate than the model was fitted at."""
        check_is_fitted(self, "module_")
        if rate and abs(float(rate) / float(self.frame_rate) - 1) > FRAME_RATE_TOLERANCE:
            raise CalciumAvaeError(
                f"the model was fitted at {float(self.frame_rate):g} Hz and this recording "
                f"is at {float(rate):g} Hz; fit a model at this frame rate"
            )

    # -- training ---------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, sessions: Any = None) -> CropFeatureVAE:
        """Train on pairs of different crops of the same neuron."""
        for _ in self.fit_iter(X, sessions=sessions):
            pass
        return self

    def fit_iter(
        self, X: Any, stop: threading.Event | None = None, sessions: Any = None
    ) -> Iterator[EpochReport]:
        """Train, yielding one report per epoch; ``stop`` ends training after the epoch
        in progress, and the best epoch's weights are kept whenever training ends.

        ``X`` may be a :class:`~.streaming.NWBTraceDataset`: each block of traces is read
        once for its crop features and dropped, so memory holds the features of all
        neurons and one block of traces, whatever the number of files."""
        self._check_params()
        rng = np.random.default_rng(self.random_state)
        torch.manual_seed(0 if self.random_state is None else self.random_state)
        if isinstance(X, NWBTraceDataset):
            n_frames = X.n_frames
            crop_frames = self._crop_frames(n_frames)
            F, sessions = self._streamed_features(X, crop_frames, rng)
        else:
            X = _check_traces(X, per_trace=False)  # the AVAE's check; no float64 copy
            n_frames = X.shape[1]
            crop_frames = self._crop_frames(n_frames)
            F = features_of_crops(X, float(self.frame_rate), crop_frames, self.n_crops, rng)
        n = len(F)
        if n < 4:
            raise CalciumAvaeError(f"only {n} trace(s) to train on; at least 4 are needed")
        flat = F.reshape(-1, F.shape[-1])
        mean, scale = flat.mean(axis=0), flat.std(axis=0) + 1e-6
        # standardised in place, in float32: the features are the fit's one big array
        F -= mean.astype(np.float32)
        F /= scale.astype(np.float32)
        feats = torch.from_numpy(F)
        if self.condition_on_session and sessions is not None:
            if len(sessions) != n:
                raise CalciumAvaeError(f"sessions has {len(sessions)} labels for {n} traces")
            names, codes = np.unique(np.asarray(sessions).astype(str), return_inverse=True)
            onehot = nn.functional.one_hot(torch.from_numpy(codes), len(names)).float()
        else:
            names, onehot = np.array([], dtype=str), torch.zeros(n, 0)
        n_val = max(1, round(VALIDATION_FRACTION * n))
        order = rng.permutation(n)
        val, train = order[:n_val], order[n_val:]
        module = _CropVAE(feats.shape[-1], self.latent_size, self.hidden_size, onehot.shape[1])
        optimiser = torch.optim.Adam(module.parameters(), lr=self.learning_rate)
        # fixed validation pairs: crop k against crop k + 1, so epochs are comparable
        val_a = torch.arange(n_val) % self.n_crops
        val_b = (val_a + 1) % self.n_crops

        self.device_ = str(resolve_device(self.device))  # where the denoising runs
        self.crop_frames_ = crop_frames
        self.feature_mean_, self.feature_scale_ = mean.astype(np.float32), scale.astype(np.float32)
        self.sessions_ = names
        self.module_ = module
        self.n_features_in_ = n_frames
        self.history_: list[dict[str, float]] = []
        self.best_epoch_ = 0
        best_loss, best_state, waited = np.inf, None, 0
        try:
            for epoch in range(1, self.max_epochs + 1):
                start = time.perf_counter()
                module.train()
                total = 0.0
                perm = train[torch.randperm(len(train)).numpy()]
                reason = None
                for s in range(0, len(perm), self.batch_size):
                    if stop is not None and stop.is_set():
                        reason = "stopped"
                        break
                    rows = torch.from_numpy(perm[s : s + self.batch_size])
                    a = torch.randint(0, self.n_crops, (len(rows),))
                    b = (a + torch.randint(1, self.n_crops, (len(rows),))) % self.n_crops
                    nll, kl = module.losses(feats[rows, a], feats[rows, b], onehot[rows])
                    loss = (nll + self.beta * kl).mean()
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    total += float(loss.detach()) * len(rows)
                module.eval()
                vt = torch.from_numpy(val)
                with torch.no_grad():
                    nll, kl = module.losses(feats[vt, val_a], feats[vt, val_b], onehot[vt], False)
                val_loss = float((nll + self.beta * kl).mean())
                train_loss = total / max(len(train), 1)
                # an epoch stopped part-way (reason "stopped") is not a candidate
                if reason is None and not (np.isfinite(train_loss) and np.isfinite(val_loss)):
                    reason = "diverged"
                elif reason is None and val_loss < best_loss:
                    best_loss, waited, self.best_epoch_ = val_loss, 0, epoch
                    best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                elif reason is None:
                    waited += 1
                    reason = "early_stopping" if waited >= self.patience else None
                if reason is None and epoch == self.max_epochs:
                    reason = "max_epochs"
                report = EpochReport(
                    epoch=epoch,
                    n_epochs=self.max_epochs,
                    train_loss=train_loss,
                    val_loss=val_loss,
                    recon=float(nll.mean()),
                    kl=float(kl.mean()),
                    lr=self.learning_rate,
                    best_epoch=self.best_epoch_,
                    stopped_early=reason in ("early_stopping", "diverged", "stopped"),
                    stop_reason=None if reason == "max_epochs" else reason,
                )
                # the AVAE's history entries, and the epoch's time
                seconds = time.perf_counter() - start
                self.history_.append({**dataclasses.asdict(report), "seconds": seconds})
                yield report
                if reason is not None:
                    break
        finally:
            if best_state is not None:
                module.load_state_dict(best_state)
            module.eval()

    def _crop_frames(self, n_frames: int) -> int:
        if self.crop_s == "auto":
            seconds = max(AUTO_CROP_S, AUTO_CROP_SHARE * n_frames / float(self.frame_rate))
        else:
            seconds = float(self.crop_s)
        crop_frames = int(min(n_frames, round(seconds * float(self.frame_rate))))
        if crop_frames < MIN_CROP_FRAMES:
            raise CalciumAvaeError(
                f"crops of {crop_frames} frames are too short (at least {MIN_CROP_FRAMES}); "
                "use longer recordings or a longer crop_s"
            )
        return crop_frames

    def _streamed_features(
        self, dataset: NWBTraceDataset, crop_frames: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Crop features and session index of every usable trace, read one block at a
        time: the traces are never all in memory, only their features (``n_crops`` x
        about 40 numbers per neuron). The same draws as in memory, so a streamed fit
        equals an in-memory one on the same traces."""
        parts, sessions = [], []
        for session, block in dataset.configure(split="all").blocks():
            rate = float(self.frame_rate)
            parts.append(features_of_crops(block, rate, crop_frames, self.n_crops, rng))
            sessions.append(np.full(len(block), session))
        if not parts:
            raise CalciumAvaeError("no usable traces to train on (all NaN or flat)")
        return np.concatenate(parts), np.concatenate(sessions)

    # -- inference --------------------------------------------------------------------
    def crop_posteriors(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means and log-variances of evenly spaced crops, (n, n_crops, latent)."""
        check_is_fitted(self, "module_")
        X = _check_traces(X, per_trace=False)
        if X.shape[1] < self.crop_frames_:
            raise CalciumAvaeError(
                f"traces of {X.shape[1]} frames are shorter than the model's crops "
                f"({self.crop_frames_} frames)"
            )
        F = features_of_crops(X, float(self.frame_rate), self.crop_frames_, self.n_crops)
        feats = torch.from_numpy((F - self.feature_mean_) / self.feature_scale_)
        with torch.inference_mode():
            mu, logvar = self.module_.encode(feats.float())
        return mu.numpy(), logvar.numpy()

    def transform(self, X: Any) -> np.ndarray:
        """One latent per neuron: the posterior means averaged over the crops (float32)."""
        return self.crop_posteriors(X)[0].mean(axis=1).astype(np.float32)

    def posterior(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Per neuron, the mean and log-variance of the crops' posteriors averaged (the
        latent diagnostics count active dimensions from them)."""
        mu, logvar = self.crop_posteriors(X)
        return mu.mean(axis=1).astype(np.float32), logvar.mean(axis=1).astype(np.float32)

    def calcium_fit(self, X: Any) -> Any:
        """The calcium observation model fitted to X (a ``SpikeInference`` at the model's
        AR order and frame rate): its denoised traces are the reconstruction, and
        ``pipeline.apply`` takes the inferred spikes and kinetics from the same fit."""
        from ..spikes import SpikeInference

        check_is_fitted(self, "module_")
        inference = SpikeInference(
            ar_order=self.ar_order, frame_rate=self.frame_rate, device=self.device
        )
        return inference.fit(_check_traces(X, per_trace=False))

    def reconstruct(self, X: Any) -> np.ndarray:
        """Denoised traces from the calcium observation model, in X's units (float32)."""
        return self.calcium_fit(X).denoise(X)

    def transform_reconstruct(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.transform(X), self.reconstruct(X)

    # -- files ------------------------------------------------------------------------
    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """One file: the weights and a JSON config, loaded without pickle (checkpoint.py)."""
        check_is_fitted(self, "module_")
        config = {
            "params": self.get_params(),
            "crop_frames": self.crop_frames_,
            "n_frames": self.n_features_in_,
            "sessions": [str(s) for s in self.sessions_],
            "best_epoch": self.best_epoch_,
            "history": self.history_,
        }
        tensors = {
            "state_dict": {k: v.detach().cpu() for k, v in self.module_.state_dict().items()},
            "feature_mean": torch.from_numpy(self.feature_mean_),
            "feature_scale": torch.from_numpy(self.feature_scale_),
        }
        return _save_payload(Path(path), FORMAT, FORMAT_VERSION, config, tensors, overwrite)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> CropFeatureVAE:
        """A model written by :meth:`save`; ``device`` is where its denoising runs."""
        path = Path(path)
        payload = _load_payload(path, "model checkpoint", FORMAT, FORMAT_VERSION)
        try:
            config = json.loads(payload["config"])
            model = cls(**{**config["params"], "device": device})
            model._check_params()
            mean = payload["feature_mean"].numpy()
            module = _CropVAE(
                len(mean), model.latent_size, model.hidden_size, len(config["sessions"])
            )
            module.load_state_dict(payload["state_dict"])
        except (KeyError, TypeError, ValueError, RuntimeError, CalciumAvaeError):
            raise CalciumAvaeError(f"{path} is a damaged crop-feature VAE checkpoint") from None
        model.module_ = module.eval()
        model.device_ = str(resolve_device(device))
        model.feature_mean_ = mean
        model.feature_scale_ = payload["feature_scale"].numpy()
        model.crop_frames_ = int(config["crop_frames"])
        model.n_features_in_ = int(config["n_frames"])
        model.sessions_ = np.array(config["sessions"], dtype=str)
        model.best_epoch_ = int(config["best_epoch"])
        model.history_ = list(config["history"])
        return model
