"""Experiment (issue 15): a VAE on timing-invariant features of random crops, trained to
predict the features of another crop of the same neuron.

The hypothesis: a neuron latent should carry what is constant about the neuron, so the
encoder sees only features that do not change when the neuron's events move in time
(log power spectrum in log-spaced bands over the noise floor, autocorrelation at log-spaced
lags, quantiles of the noise-normalised amplitude and of dF/F, the signal-to-noise ratio
and a conditional decay: how much of a raised signal is left a lag later), computed on one
random crop, and the decoder must predict the same features of a *different* crop of that
neuron, so only what the two crops share pays. The observation variance is learned per
feature (as in the MLP VAEs of the paper authors' follow-up, Ros et al., ICASSP 2026), and
the decoder may be told the session (a one-hot), so that the latent need not encode a
session's brightness, noise or network rhythm (as in scVI, Lopez et al. 2018). The latent of
a neuron is the posterior mean averaged over evenly spaced crops.

It stays an experiment: on our simulated mixed-indicator recordings it clusters no better
than the same crop features averaged and put through PCA (ARI about 0.6 either way; see
docs/benchmarks.md, issue 15). GCaMP6s and OGB-1 neurons form touching clouds in every
representation we tried; even a supervised classifier on the latents misassigns 7-9 %.

Run: OMP_NUM_THREADS=2 .venv/bin/python benchmarks/experiment_crop_feature_vae.py [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

from napari_calcium_avae.errors import CalciumAvaeError

N_BANDS = 16
N_LAGS = 12
N_DECAY_LAGS = 8
DECAY_THRESHOLD = 3.0
"""Noise SDs above baseline that make a frame count as raised, for the conditional decay."""
_CHUNK_ELEMENTS = 2**23


def noise_sd(X: np.ndarray) -> np.ndarray:
    """Per-row noise SD from the MAD of first differences: calcium signals change slowly
    next to white shot noise, so the differences are mostly noise."""
    d = np.diff(X, axis=-1)
    mad = np.median(np.abs(d - np.median(d, axis=-1, keepdims=True)), axis=-1)
    return mad / 0.6745 / np.sqrt(2.0)


def decay_features(X: np.ndarray, frame_rate: float) -> np.ndarray:
    """Signal left a lag later, sum z(t + lag) / sum z(t), over frames t whose neighbours
    t - 1 and t + 1 are raised and falling. Selecting on the neighbours keeps the noise of
    z(t) out of the selection, so weak events are not biased towards fast decay. The
    baseline is the 20th percentile moved up by its expected noise offset."""
    X = np.asarray(X, dtype=np.float64)
    sd = np.maximum(noise_sd(X), 1e-9)[:, None]
    # the 20th percentile of a noisy baseline lies 0.84 noise SD below the baseline itself;
    # an offset in z would bias every ratio towards 1
    z = (X - np.percentile(X, 20, axis=1, keepdims=True)) / sd - 0.8416
    n_frames = X.shape[1]
    lags = np.geomspace(max(2.0, 0.05 * frame_rate), 2.0 * frame_rate, N_DECAY_LAGS)
    lags = np.minimum(np.round(lags).astype(int), max(2, n_frames // 4))
    top = n_frames - int(lags.max()) - 1
    if top < 4:
        raise CalciumAvaeError(f"crops of {n_frames} frames are too short for the decay features")
    prev, cur, nxt = z[:, : top - 2], z[:, 1 : top - 1], z[:, 2:top]
    raised = (prev > DECAY_THRESHOLD) & (nxt > DECAY_THRESHOLD) & (nxt <= prev)
    den = (cur * raised).sum(axis=1)
    out = np.zeros((len(X), len(lags)))
    for j, lag in enumerate(lags):
        later = z[:, 1 + lag : top - 1 + lag]
        out[:, j] = np.where(den > 0, (later * raised).sum(axis=1) / np.maximum(den, 1e-12), 0.0)
    return out


def crop_features(crops: np.ndarray, frame_rate: float) -> np.ndarray:
    """(m, L) crops -> (m, n_features) float32 features, none of which changes when the
    neuron's events move in time within the crop."""
    x = np.asarray(crops, dtype=np.float64)
    n_frames = x.shape[1]
    if n_frames < 16:
        raise CalciumAvaeError(f"crops of {n_frames} frames are too short; use longer crops")
    sd = np.maximum(noise_sd(x), 1e-9)[:, None]
    f0 = np.percentile(x, 20, axis=1, keepdims=True)
    y = x - x.mean(axis=1, keepdims=True)
    # power over the white-noise floor (1 where the crop is only noise), log-spaced bands
    window = np.hanning(n_frames)
    power = np.abs(np.fft.rfft(y * window, axis=1)) ** 2 / (sd**2 * np.sum(window**2))
    freqs = np.fft.rfftfreq(n_frames, 1.0 / frame_rate)
    edges = np.searchsorted(freqs, np.geomspace(2 * frame_rate / n_frames, frame_rate / 2, 17))
    edges = np.minimum(np.maximum.accumulate(np.maximum(edges, np.arange(1, 18))), len(freqs) - 1)
    bands = [power[:, a : max(b, a + 1)].mean(axis=1) for a, b in itertools.pairwise(edges)]
    spectrum = np.log(np.stack(bands, axis=1) + 1e-6)
    spectrum_fft = np.fft.rfft(y, 2 * n_frames, axis=1)
    acov = np.fft.irfft(np.abs(spectrum_fft) ** 2, axis=1)[:, :n_frames]
    lags = np.geomspace(1, min(n_frames // 4, 4 * frame_rate), N_LAGS)
    acorr = acov[:, np.round(lags).astype(int)] / np.maximum(acov[:, :1], 1e-12)
    q = np.quantile((x - f0) / sd, [0.05, 0.5, 0.9, 0.99, 1.0], axis=1).T
    amplitude = np.sign(q) * np.log1p(np.abs(q))
    dff = np.quantile((x - f0) / np.maximum(np.abs(f0), 1e-6), [0.9, 0.99, 1.0], axis=1).T
    snr = np.log(np.maximum(y.var(axis=1), 1e-12) / sd[:, 0] ** 2)
    noise_over_f0 = np.log(sd[:, 0] / np.maximum(np.abs(f0[:, 0]), 1e-6))
    return np.hstack(
        [
            spectrum,
            acorr,
            amplitude,
            np.log(np.maximum(dff, 1e-4)),
            snr[:, None],
            noise_over_f0[:, None],
            decay_features(x, frame_rate),
        ]
    ).astype(np.float32)


def crop_starts(n_frames: int, crop_frames: int, n_crops: int, rng=None, n_rows: int = 1):
    """(n_rows, n_crops) start frames: random with ``rng``, else evenly spaced."""
    if rng is None:
        starts = np.linspace(0, n_frames - crop_frames, n_crops).round().astype(int)
        return np.broadcast_to(starts, (n_rows, n_crops))
    return rng.integers(0, n_frames - crop_frames + 1, (n_rows, n_crops))


def features_of_crops(
    X: np.ndarray, frame_rate: float, crop_frames: int, n_crops: int, rng=None
) -> np.ndarray:
    """(n, n_crops, n_features): features of each neuron's crops, computed in row chunks so
    that the crops never all sit in memory."""
    n, n_frames = X.shape
    step = max(1, _CHUNK_ELEMENTS // (n_crops * crop_frames))
    out = []
    for start in range(0, n, step):
        rows = X[start : start + step]
        starts = crop_starts(n_frames, crop_frames, n_crops, rng, len(rows))
        idx = starts[..., None] + np.arange(crop_frames)
        crops = rows[np.arange(len(rows))[:, None, None], idx]
        f = crop_features(crops.reshape(-1, crop_frames), frame_rate)
        out.append(f.reshape(len(rows), n_crops, -1))
    return np.concatenate(out)


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

    def loss(self, f_in, f_target, session, beta: float) -> torch.Tensor:
        mu, logvar = self.encode(f_in)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        pred = self.decoder(torch.cat([z, session], dim=1))
        nll = 0.5 * ((f_target - pred) ** 2 * (-self.obs_logvar).exp() + self.obs_logvar).sum(1)
        kl = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(1)
        return (nll + beta * kl).mean()


class CropFeatureVAE(TransformerMixin, BaseEstimator):
    """Neuron latents from timing-invariant crop features (scikit-learn conventions).

    ``fit(X, sessions=None)``: X is ROIs x frames at ``frame_rate``; ``sessions`` (one
    label per ROI) conditions the decoder when ``condition_on_session``. ``transform(X)``
    needs no sessions: the encoder never sees them.
    """

    def __init__(
        self,
        frame_rate: float = 100.0,
        crop_s: float = 20.0,
        n_crops: int = 16,
        latent_size: int = 6,
        hidden_size: int = 64,
        beta: float = 1.0,
        max_epochs: int = 150,
        batch_size: int = 128,
        learning_rate: float = 3e-3,
        condition_on_session: bool = True,
        random_state: int | None = 0,
    ) -> None:
        self.frame_rate = frame_rate
        self.crop_s = crop_s
        self.n_crops = n_crops
        self.latent_size = latent_size
        self.hidden_size = hidden_size
        self.beta = beta
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.condition_on_session = condition_on_session
        self.random_state = random_state

    def _check_X(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or not np.isfinite(X).all():
            raise CalciumAvaeError(f"traces must be a finite 2-D array, got shape {X.shape}")
        return X

    def fit(self, X: Any, y: Any = None, sessions: Any = None) -> CropFeatureVAE:
        """Train on pairs of different crops of the same neuron."""
        X = self._check_X(X)
        if self.n_crops < 2:
            raise CalciumAvaeError("n_crops must be at least 2: the target is another crop")
        n, n_frames = X.shape
        self.crop_frames_ = int(min(n_frames, round(self.crop_s * self.frame_rate)))
        rng = np.random.default_rng(self.random_state)
        torch.manual_seed(0 if self.random_state is None else self.random_state)
        F = features_of_crops(X, self.frame_rate, self.crop_frames_, self.n_crops, rng)
        flat = F.reshape(-1, F.shape[-1])
        self.feature_mean_ = flat.mean(axis=0)
        self.feature_scale_ = flat.std(axis=0) + 1e-6
        feats = torch.from_numpy((F - self.feature_mean_) / self.feature_scale_)
        if self.condition_on_session and sessions is not None:
            self.sessions_, codes = np.unique(np.asarray(sessions), return_inverse=True)
            onehot = torch.nn.functional.one_hot(torch.from_numpy(codes), len(self.sessions_))
            onehot = onehot.float()
        else:
            self.sessions_ = np.array([])
            onehot = torch.zeros(n, 0)
        self.module_ = _CropVAE(
            feats.shape[-1], self.latent_size, self.hidden_size, onehot.shape[1]
        )
        optimiser = torch.optim.Adam(self.module_.parameters(), lr=self.learning_rate)
        self.history_: list[dict[str, float]] = []
        self.module_.train()
        for epoch in range(self.max_epochs):
            start, total = time.perf_counter(), 0.0
            order = torch.randperm(n)
            for s in range(0, n, self.batch_size):
                rows = order[s : s + self.batch_size]
                a = torch.randint(0, self.n_crops, (len(rows),))
                b = (a + torch.randint(1, self.n_crops, (len(rows),))) % self.n_crops
                loss = self.module_.loss(feats[rows, a], feats[rows, b], onehot[rows], self.beta)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(rows)
            self.history_.append(
                {"epoch": epoch, "loss": total / n, "seconds": time.perf_counter() - start}
            )
        self.module_.eval()
        self.n_features_in_ = n_frames
        return self

    def crop_latents(self, X: Any) -> np.ndarray:
        """(n, n_crops, latent_size) posterior means of evenly spaced crops."""
        check_is_fitted(self, "module_")
        X = self._check_X(X)
        if X.shape[1] < self.crop_frames_:
            raise CalciumAvaeError(
                f"traces of {X.shape[1]} frames are shorter than the model's crops "
                f"({self.crop_frames_} frames)"
            )
        F = features_of_crops(X, self.frame_rate, self.crop_frames_, self.n_crops)
        feats = torch.from_numpy((F - self.feature_mean_) / self.feature_scale_)
        with torch.inference_mode():
            mu, _ = self.module_.encode(feats)
        return mu.numpy()

    def transform(self, X: Any) -> np.ndarray:
        """Posterior means averaged over the crops: one latent per neuron."""
        return self.crop_latents(X).mean(axis=1)


def averaged_crop_features(X: np.ndarray, frame_rate: float, crop_s: float = 20.0) -> np.ndarray:
    """The VAE's own input averaged over 16 evenly spaced crops: the control that tells
    what the VAE adds to its features."""
    crop_frames = int(min(X.shape[1], round(crop_s * frame_rate)))
    return features_of_crops(np.asarray(X, np.float64), frame_rate, crop_frames, 16).mean(axis=1)


def epoch_seconds(n_rois: int = 750, n_frames: int = 15000, epochs: int = 3) -> dict[str, float]:
    """Time of the feature pass and of one epoch on random-walk traces of issue 15's size."""
    rng = np.random.default_rng(0)
    X = 100.0 + np.cumsum(rng.normal(0, 0.1, (n_rois, n_frames)), axis=1)
    X += rng.normal(0, 1.0, X.shape)
    start = time.perf_counter()
    model = CropFeatureVAE(max_epochs=epochs).fit(X)
    total = time.perf_counter() - start
    per_epoch = float(np.median([h["seconds"] for h in model.history_]))
    return {"fit_s": total, "epoch_s": per_epoch, "features_s": total - epochs * per_epoch}


def supervised_accuracy(Z: np.ndarray, labels: np.ndarray) -> float:
    """5-fold accuracy of a logistic regression on the latents: how much of the label is
    in them at all, whether or not it forms separate clouds a clustering can find."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    return float(cross_val_score(model, Z, labels, cv=5).mean())


def _zebrafish_check() -> dict[str, float] | None:
    """The shared zebrafish recording against its published assemblies (main = first listed;
    neurons in none are their own group). A sanity check only: assemblies are defined by
    co-activity, which timing-invariant features discard by design."""
    import csv

    from bench_clusters import score
    from napari_calcium_avae.model import PCABaseline
    from napari_calcium_avae.nwb.read import read_traces

    folder = Path("/work/shared/data")
    nwb = folder / "zebrafish_tectum_f3.nwb"
    if not nwb.is_file():
        return None
    traces = read_traces(nwb)
    X = np.asarray(traces.data, dtype=np.float64)
    with open(folder / "zebrafish_tectum_f3_assemblies.csv") as table:
        rows = sorted(csv.DictReader(table), key=lambda r: int(r["roi"]))
    labels = np.array([(r["assemblies"].split() or ["none"])[0] for r in rows])
    rate = float(traces.rate) if traces.rate else 2.2
    model = CropFeatureVAE(frame_rate=rate, crop_s=0.25 * X.shape[1] / rate, max_epochs=150)
    Z = model.fit(X).transform(X)
    Zp = PCABaseline(8).fit(X).transform(X)
    return {"crop-vae": score(Z, labels), "pca-raw": score(Zp, labels)}


def main() -> None:
    import bench_clusters as bench

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("experiment_crop_feature_vae_out"))
    parser.add_argument(
        "--duration-s",
        type=float,
        default=None,
        help="record this long instead of bench_clusters' 60 s (is the limit the data?)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="model seeds per conditioning setting")
    parser.add_argument(
        "--skip-checks", action="store_true", help="skip the speed and zebrafish checks"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": f"{platform.machine()} {platform.processor()}"}
    if args.duration_s is None:
        rec = bench.mixed_indicator(args.quick)
    else:
        from napari_calcium_avae.simulate import SimulationSettings

        common = {**bench._common(args.quick), "duration_s": args.duration_s}
        settings = SimulationSettings(**common, indicator_mix=bench.INDICATOR_MIX)
        rec = bench.simulate(f"mixed-indicator, {args.duration_s:g} s", settings, "indicator")
    results["recording"] = f"{rec.name}: {rec.traces.shape[0]} ROIs x {rec.traces.shape[1]} frames"
    X, labels, sessions = rec.traces, rec.labels, rec.sessions
    epochs = 20 if args.quick else 150
    rows = {
        "timing-free (bench)": bench._standardised(bench.timing_free_features(X, bench.FRAME_RATE)),
        "crop features, averaged + PCA": bench._standardised(
            averaged_crop_features(X, bench.FRAME_RATE)
        ),
    }
    for cond in (True, False):
        for seed in range(args.seeds):
            model = CropFeatureVAE(
                bench.FRAME_RATE, max_epochs=epochs, condition_on_session=cond, random_state=seed
            )
            rows[f"crop-VAE, session-conditioned={cond}, seed {seed}"] = model.fit(
                X, sessions=sessions
            ).transform(X)
    table = {}
    for name, Z in rows.items():
        table[name] = {
            **bench.score(Z, labels),
            **bench.session_mixing(Z, sessions, labels),
            "supervised_accuracy": supervised_accuracy(Z, labels),
        }
        print(name, json.dumps(table[name]), flush=True)
    results["mixed-indicator"] = table
    if args.skip_checks:
        (args.out / "results.json").write_text(json.dumps(results, indent=2, default=float))
        return
    results["speed_750x15000"] = epoch_seconds(*((100, 3000) if args.quick else (750, 15000)))
    print("speed", results["speed_750x15000"], flush=True)
    results["zebrafish"] = _zebrafish_check()
    print("zebrafish", results["zebrafish"], flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
