"""The paper's figures (Figs. 3-5) from the runs; matplotlib's object API, no pyplot state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .claims import CROP_VAE, family_of


def _families(runs: pd.DataFrame) -> list[str]:
    """Model families in display order: each architecture's betas, then PCA."""
    avae = runs[runs["model"] == "AVAE"]
    names = [
        f"AVAE {a} β={b:g}"
        for a in dict.fromkeys(avae["architecture"])
        for b in sorted(avae["beta"].unique())
    ]
    return [*names, CROP_VAE, "PCA"]


def _panel_rows(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """A row of panels per AVAE architecture, and one for the crop-feature VAE, each
    with PCA beside it."""
    pca = runs["model"] == "PCA"
    avae = runs["model"] == "AVAE"
    rows = [
        (f"AVAE {a}", runs[(avae & (runs["architecture"] == a)) | pca])
        for a in dict.fromkeys(runs.loc[avae, "architecture"])
    ]
    if (runs["model"] == CROP_VAE).any():
        rows.append((CROP_VAE, runs[(runs["model"] == CROP_VAE) | pca]))
    return rows


def _box_panels(rows: list[tuple[str, pd.DataFrame]], metric: str, ylabel: str) -> Any:
    """Boxes of a metric over partitions: a row per frame, a column per noise level, D2 on
    x and one colour per model family, as in the paper's Figs. 3B and 5A."""
    from matplotlib.figure import Figure

    levels = sorted(rows[0][1]["noise_sigma"].unique())
    sizes = sorted(rows[0][1]["latent_size"].unique())
    fig = Figure(figsize=(3.0 * len(levels) + 1.0, 2.6 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), len(levels), squeeze=False, sharey="row")
    for r, (title, frame) in enumerate(rows):
        frame = frame.assign(family=frame.apply(family_of, axis=1))
        families = [f for f in _families(frame) if f in set(frame["family"])]
        width = 0.8 / len(families)
        for c, level in enumerate(levels):
            ax = axes[r, c]
            at_level = frame[frame["noise_sigma"] == level]
            for k, family in enumerate(families):
                sel = at_level[at_level["family"] == family]
                values = [sel.loc[sel["latent_size"] == d, metric].to_numpy() for d in sizes]
                colour = "0.5" if family == "PCA" else f"C{k}"
                ax.boxplot(
                    values,
                    positions=np.arange(len(sizes)) - 0.4 + width * (k + 0.5),
                    widths=width * 0.85,
                    patch_artist=True,
                    boxprops={"facecolor": colour, "alpha": 0.8},
                    medianprops={"color": "k"},
                    flierprops={"markersize": 2},
                    manage_ticks=False,
                )
                if c == 0:
                    ax.plot([], [], "s", color=colour, label=family.removeprefix("AVAE "))
            ax.set_xticks(np.arange(len(sizes)), [str(d) for d in sizes])
            ax.set_xlim(-0.5, len(sizes) - 0.5)
            ax.set_title(f"{title}, σ = {level:g}", fontsize=8)
            if r == len(rows) - 1:
                ax.set_xlabel("latent size D2")
            if c == 0:
                ax.set_ylabel(ylabel)
                ax.legend(frameon=False, fontsize=7)
    return fig


def metric_figure(runs: pd.DataFrame, metric: str, path: Path) -> Path:
    """Fig. 3B: a held-out metric by noise level, D2 and model, one row per architecture."""
    scale = 1e3 if metric == "mse" else 1.0
    frame = runs.assign(**{metric: runs[metric] * scale})
    rows = [(f"{name} vs PCA", part) for name, part in _panel_rows(frame)]
    label = "MSE x 1e3 (test)" if metric == "mse" else metric
    fig = _box_panels(rows, metric, label)
    fig.savefig(path, dpi=110)
    return path


def ari_figure(runs: pd.DataFrame, path: Path) -> Path:
    """Fig. 5A, with the label-free eps under the paper's oracle eps."""
    rows = [
        (f"{name}, {mode}", part.assign(ari=part[col]))
        for col, mode in (("ari_oracle", "oracle eps"), ("ari_auto", "label-free eps"))
        for name, part in _panel_rows(runs)
    ]
    fig = _box_panels(rows, "ari", "ARI (test)")
    for ax in fig.axes:
        ax.axhline(0.0, color="0.8", lw=0.6, zorder=0)
        ax.set_ylim(-0.1, 1.02)
    fig.savefig(path, dpi=110)
    return path


def examples_figure(
    noisy: np.ndarray,
    clean: np.ndarray,
    reconstruction: np.ndarray,
    types: np.ndarray,
    frame_rate: float,
    label: str,
    path: Path,
) -> Path:
    """Fig. 3A: a held-out neuron of each type, noisy input vs reconstruction vs truth."""
    from matplotlib.figure import Figure

    names = sorted(set(types.tolist()))
    fig = Figure(figsize=(11, 2.2 * len(names)), layout="constrained")
    axes = fig.subplots(len(names), 1, squeeze=False, sharex=True)[:, 0]
    t = np.arange(noisy.shape[1]) / frame_rate
    for ax, name in zip(axes, names, strict=True):
        i = int(np.flatnonzero(types == name)[0])
        ax.plot(t, noisy[i], color="tab:blue", lw=0.5, label="noisy input x")
        ax.plot(t, clean[i], color="k", lw=0.8, label="noise-free truth f")
        ax.plot(t, reconstruction[i], color="tab:red", lw=0.9, label="reconstruction")
        ax.set_ylabel(f"{name}\nfluorescence")
    axes[0].set_title(f"held-out neurons, {label}", fontsize=9)
    axes[0].legend(frameon=False, fontsize=7, ncols=3)
    axes[-1].set_xlabel("time (s)")
    fig.savefig(path, dpi=110)
    return path


def correlation_figure(correlations: pd.DataFrame, label: str, path: Path) -> Path:
    """Fig. 5B: Pearson r of each latent coordinate with the Izhikevich parameters."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.2 + 0.6 * correlations.shape[1], 2.8), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(correlations.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for (i, k), r in np.ndenumerate(correlations.to_numpy()):
        colour = "w" if abs(r) > 0.6 else "k"
        ax.text(k, i, f"{r:.2f}", ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(correlations.shape[1]), correlations.columns)
    ax.set_yticks(range(correlations.shape[0]), ["a", "b", "v0", "Δu"])
    ax.set_title(f"Pearson r, all neurons\n{label}", fontsize=8)
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.savefig(path, dpi=110)
    return path


def tsne_figure(
    latents: np.ndarray, table: pd.DataFrame, seed: int, label: str, path: Path
) -> Path:
    """Fig. 4: t-SNE of the latents coloured by type, E/I, v0 and du."""
    from matplotlib.figure import Figure

    from ..analysis import embed_2d

    emb = embed_2d(latents, "tsne", seed)
    fig = Figure(figsize=(14, 3.6), layout="constrained")
    axes = fig.subplots(1, 4)
    types = table["neuron_type"].to_numpy()
    for name in sorted(set(types.tolist())):
        axes[0].scatter(*emb[types == name].T, s=6, label=name)
    axes[0].set_title("firing type")
    excitatory = table["excitatory"].to_numpy(dtype=bool)
    axes[1].scatter(*emb[excitatory].T, s=6, color="tab:red", label="excitatory")
    axes[1].scatter(*emb[~excitatory].T, s=6, color="tab:blue", label="inhibitory")
    axes[1].set_title("connectivity")
    for ax in axes[:2]:
        ax.legend(frameon=False, fontsize=7, markerscale=2)
    for ax, name, title in ((axes[2], "v0", "v0 (mV)"), (axes[3], "du", "Δu")):
        points = ax.scatter(*emb.T, s=6, c=table[name].to_numpy(), cmap="viridis")
        fig.colorbar(points, ax=ax, shrink=0.8)
        ax.set_title(title)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"t-SNE of the latents of all neurons, {label}", fontsize=9)
    fig.savefig(path, dpi=110)
    return path
