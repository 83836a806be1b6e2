"""The main job, end to end on simulated cultures: what a newcomer runs first.

Simulate three neuron types, train the default model (the crop-feature VAE), the paper's
AVAE and the PCA baseline on the same training neurons, score them on held-out neurons
against the ground truth (reconstruction MSE against the noise-free traces beside the
best Gaussian filter, ARI of HDBSCAN and of the paper's DBSCAN clusters against the
types), write every session's results (default model) to NWB and save a figure.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import pipeline
from .analysis import (
    HeldOutScores,
    best_gaussian_filter,
    cluster_latents,
    embed_2d,
    reconstruction_mse,
    score_held_out,
)
from .errors import CalciumAvaeError
from .progress import progress_callback, show_epochs
from .simulate import SimulationSettings, simulate_dataset
from .traces import Traces


@dataclass
class DemoSettings:
    cultures_per_type: int = 2
    neurons_per_culture: int = 40
    duration_s: float = 30.0
    frame_rate: float = 50.0
    noise: float = 1.0
    hidden_size: int = 128
    latent_size: int = 8
    beta: float = 0.5
    batch_size: int = 16
    max_epochs: int = 150
    patience: int = 15
    min_samples: int = 5
    test_fraction: float = 0.3
    crop_s: float | str = "auto"
    """The crop-feature VAE's crop length; its other settings are its defaults."""
    seed: int = 0

    def simulation(self) -> SimulationSettings:
        """The three types' cultures this demo simulates."""
        return SimulationSettings(
            cultures_per_type=self.cultures_per_type,
            neurons_per_culture=self.neurons_per_culture,
            duration_s=self.duration_s,
            frame_rate=self.frame_rate,
            noise_levels=(self.noise,),
            seed=self.seed,
        )

    @classmethod
    def quick(cls) -> DemoSettings:
        """Small enough for a test: seconds, not minutes."""
        return cls(
            cultures_per_type=1,
            neurons_per_culture=15,
            duration_s=6.0,
            frame_rate=20.0,
            hidden_size=16,
            latent_size=3,
            max_epochs=8,
            patience=8,
            min_samples=3,
            crop_s=3.0,
        )


def noise_free_series(path: Path) -> str:
    """Path of a simulated session's ground-truth series."""
    from .nwb import list_series
    from .nwb.session import NOISE_FREE

    for info in list_series(path):
        if NOISE_FREE.lower() in info.path.lower():
            return info.path
    raise CalciumAvaeError(f"{path} has no noise-free ground-truth series (not a simulation?)")


def load_sessions(paths: list[Path]) -> tuple[list[Traces], list[Traces]]:
    """Noisy (default series) and noise-free recordings of simulated sessions."""
    from .nwb import read_traces

    noisy = [read_traces(p) for p in paths]
    clean = [read_traces(p, series=noise_free_series(p)) for p in paths]
    return noisy, clean


def print_table(
    scores: dict[str, HeldOutScores], noisy_mse: float, gaussian: tuple[float, float]
) -> None:
    print()
    print(
        f"{'method':<9} {'MSE x1e3':>9} {'ARI (HDBSCAN)':>14} {'clusters':>9} "
        f"{'ARI (auto eps)':>15} {'ARI (best eps)':>15} {'eps auto':>9} {'clusters':>9}",
    )
    for method, s in scores.items():
        print(
            f"{method:<9} {s.mse * 1e3:>9.3f} {s.ari_hdbscan:>14.3f} {s.n_clusters_hdbscan:>9d} "
            f"{s.ari_auto:>15.3f} {s.ari_oracle:>15.3f} {s.eps_auto:>9.3g} {s.n_clusters_auto:>9d}"
        )
    mse, sd = gaussian
    print(
        f"{'(filter)':<9} {mse * 1e3:>9.3f}   <- a Gaussian filter, SD {sd:g} frames chosen on "
        "the truth"
    )
    print(
        f"{'(noisy)':<9} {noisy_mse * 1e3:>9.3f}   <- the noisy input itself against the truth",
    )
    print(
        "MSE: held-out neurons, noise-free truth, in the noisy trace's [-0.5, 0.5] scale.\n"
        "ARI against RS/IB/CH on held-out latents: HDBSCAN is what apply runs by default;\n"
        "DBSCAN is the paper's protocol, 'best eps' tuned against the true types (an\n"
        "oracle), 'auto eps' the label-free k-distance knee.",
    )


def run_demo(
    output_dir: Path, quick: bool = False, settings: DemoSettings | None = None
) -> dict[str, HeldOutScores]:
    """Simulate, fit, score, write NWB results and a figure; returns the scores."""
    from .model import AVAE, CropFeatureVAE, PCABaseline
    from .nwb import result_path, write_results

    s = settings or (DemoSettings.quick() if quick else DemoSettings())
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    simulation = s.simulation()
    print(
        f"1/4 simulating {simulation.n_cultures} cultures ({', '.join(simulation.types)})",
        file=sys.stderr,
    )
    paths = simulate_dataset(
        output_dir / "data",
        simulation,
        progress=progress_callback("simulating", unit="culture"),
        overwrite=True,  # the demo's own folder: a rerun replaces it
    )
    noisy, clean = load_sessions(paths)
    X = np.concatenate([t.data for t in noisy])
    truth = np.concatenate([t.data for t in clean])
    types = np.concatenate([t.roi_table["neuron_type"].to_numpy() for t in noisy])
    rng = np.random.default_rng(s.seed)
    test = np.zeros(len(X), dtype=bool)
    test[rng.choice(len(X), round(s.test_fraction * len(X)), replace=False)] = True

    print(
        f"2/4 training the crop-feature VAE and the paper's AVAE on {int((~test).sum())} neurons",
        file=sys.stderr,
    )
    model = CropFeatureVAE(
        frame_rate=s.frame_rate, crop_s=s.crop_s, max_epochs=s.max_epochs, random_state=s.seed
    )
    show_epochs(model.fit_iter(X[~test]), s.max_epochs)
    avae = AVAE(
        hidden_size=s.hidden_size,
        latent_size=s.latent_size,
        beta=s.beta,
        batch_size=s.batch_size,
        max_epochs=s.max_epochs,
        patience=s.patience,
        random_state=s.seed,
    )
    show_epochs(avae.fit_iter(X[~test]), s.max_epochs)
    pca = PCABaseline(n_components=s.latent_size).fit(X[~test])
    model.save(output_dir / "model.pt", overwrite=True)

    print(f"3/4 scoring on {int(test.sum())} held-out neurons", file=sys.stderr)
    scores = {
        name: score_held_out(m, X[test], truth[test], types[test], s.min_samples)
        for name, m in (("crop-VAE", model), ("AVAE", avae), ("PCA", pca))
    }
    noisy_mse = float(reconstruction_mse(X[test], truth[test], X[test]).mean())
    print_table(scores, noisy_mse, best_gaussian_filter(X[test], truth[test]))

    print("4/4 writing NWB results and the figure", file=sys.stderr)
    results = pipeline.apply(model, noisy, min_samples=s.min_samples, random_state=s.seed)
    result_dir = output_dir / "results"
    result_dir.mkdir(exist_ok=True)
    written = [
        write_results(t, r, result_path(t.source_file, result_dir), overwrite=True)
        for t, r in zip(noisy, results, strict=True)
    ]
    figure = output_dir / "demo.png"
    save_figure(figure, model, X[test], truth[test], types[test], scores["crop-VAE"], s)
    print(
        f"wrote {len(written)} result files to {result_dir}, the model to "
        f"{output_dir / 'model.pt'} and the figure to {figure}"
    )
    return scores


def save_figure(path: Path, model, X, clean, types, score: HeldOutScores, s: DemoSettings) -> None:
    """Latent embedding by type and by cluster, example reconstructions, loss curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z, recon = model.transform_reconstruct(X)
    emb = embed_2d(z, "tsne", s.seed)
    clusters = cluster_latents(z, min_samples=s.min_samples).labels  # as apply runs it
    fig = plt.figure(figsize=(13, 8), layout="constrained")
    grid = fig.add_gridspec(3, 3)
    ax = fig.add_subplot(grid[0:2, 0])
    for name in sorted(set(types)):
        sel = types == name
        ax.scatter(*emb[sel].T, s=14, label=name)
    ax.set_title("t-SNE of the crop-feature VAE's latents, by true type")
    ax.legend(frameon=False)
    ax = fig.add_subplot(grid[0:2, 1])
    for label in sorted(set(clusters.tolist())):
        sel = clusters == label
        ax.scatter(
            *emb[sel].T,
            s=14,
            c="0.7" if label < 0 else None,
            label="noise" if label < 0 else f"cluster {label}",
        )
    ax.set_title(f"HDBSCAN clusters (ARI {score.ari_hdbscan:.2f} against the types)")
    ax.legend(frameon=False, fontsize=8)
    ax = fig.add_subplot(grid[0:2, 2])
    history = model.history_
    ax.plot([h["train_loss"] for h in history], label="train")
    ax.plot([h["val_loss"] for h in history], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if min(min(h["train_loss"], h["val_loss"]) for h in history) > 0:
        ax.set_yscale("log")  # a learned-variance likelihood can go below zero
    ax.set_title("training")
    ax.legend(frameon=False)
    t = np.arange(X.shape[1]) / s.frame_rate
    for k, name in enumerate(sorted(set(types))[:3]):
        i = int(np.flatnonzero(types == name)[0])
        ax = fig.add_subplot(grid[2, k])
        ax.plot(t, X[i], color="0.6", lw=0.6, label="noisy input")
        ax.plot(t, clean[i], color="k", lw=0.8, label="noise-free truth")
        ax.plot(t, recon[i], color="tab:red", lw=0.9, label="denoised (calcium model)")
        ax.set_title(f"a held-out {name} neuron")
        ax.set_xlabel("time (s)")
        if k == 0:
            ax.set_ylabel("fluorescence (a.u.)")
            ax.legend(frameon=False, fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)
