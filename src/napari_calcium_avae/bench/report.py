"""summary.md: the claims with their verdicts, then the medians they were decided from."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..citation import PAPER
from .claims import Claim, medians
from .data import Dataset
from .settings import BenchSettings


def _markdown_table(frame: pd.DataFrame, digits: int = 3, scale: float = 1.0) -> str:
    """Plain markdown (pandas' to_markdown needs tabulate, which we do not depend on)."""
    names = [str(n) for n in frame.index.names]
    head = [*names, *(f"σ={c:g}" for c in frame.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, values in frame.iterrows():
        key = key if isinstance(key, tuple) else (key,)
        cells = [f"{v * scale:.{digits}f}" if np.isfinite(v) else "" for v in values]
        lines.append("| " + " | ".join([*map(str, key), *cells]) + " |")
    return "\n".join(lines)


def _collapsed_fits(runs: pd.DataFrame) -> str:
    """Summary line: AVAE fits whose encoder saturated (many test neurons share a latent)."""
    avae = runs[runs["model"] == "AVAE"]
    collapsed = avae[avae["distinct_latents"] < avae["n_test"] / 2]
    line = (
        "- AVAE fits whose test neurons share latent vectors (fewer distinct latents than "
        f"half the test neurons, a saturated encoder): {len(collapsed)} of {len(avae)}"
    )
    if len(collapsed) == 0:
        return line
    counts = collapsed.groupby(["architecture", "latent_size", "beta"]).size()
    return (
        line
        + " ("
        + ", ".join(f"{arch} D2={d2} β={beta:g}: {n}" for (arch, d2, beta), n in counts.items())
        + ")"
    )


def _correlations(label: str, table: pd.DataFrame) -> list[str]:
    return [
        f"## Latent-parameter correlations (Pearson r, all neurons; {label})",
        "",
        "| parameter | " + " | ".join(table.columns) + " |",
        "|" + "---|" * (table.shape[1] + 1),
        *(f"| {p} | " + " | ".join(f"{r:+.2f}" for r in table.loc[p]) + " |" for p in table.index),
        "",
    ]


def summary_markdown(
    s: BenchSettings,
    data: Dataset,
    runs: pd.DataFrame,
    claims: list[Claim],
    correlations: dict[str, pd.DataFrame],
    seconds: float,
) -> str:
    """The claims with their verdicts, then the medians they were decided from."""
    n, frames = data.clean.shape
    devices = ", ".join(sorted(set(runs["device"])))
    sigma = ", ".join(f"{k:g} -> {v:.3f}" for k, v in data.measured_sigma.items())
    noisy = runs.groupby("noise_sigma")["noisy_mse"].median()
    parts = [
        "# calcium-avae bench: the paper's benchmarks (sections 3.1-3.2)",
        "",
        f"{PAPER}.",
        "",
        f"- {n} neurons ({len(s.types)} types x {s.cultures_per_type} cultures x "
        f"{s.neurons_per_culture}), {frames} frames ({s.duration_s:g} s at {data.frame_rate:g} Hz)",
        f"- noise sigma requested -> measured in the files: {sigma}",
        f"- {s.partitions} random train/test partition(s), test fraction {s.test_fraction:g}; "
        f"architectures {', '.join(s.architectures)}; (D1, D2) {list(s.sizes)}; "
        f"beta {list(s.betas)}; timing channels {s.timing_channels}; "
        f"{'the crop-feature VAE (its defaults but D2) at each D2; ' if s.crop_vae else ''}"
        f"learning rate {s.learning_rate:g}, batch {s.batch_size}, "
        f"at most {s.max_epochs} epochs, patience {s.patience}, min delta {s.min_delta:g}",
        f"- DBSCAN min_samples {s.min_samples}; {len(runs)} fits on {devices}, "
        f"{seconds / 60:.1f} min in all",
        _collapsed_fits(runs),
        "",
        "## The paper's claims",
        "",
        "| claim | verdict | evidence |",
        "|---|---|---|",
        *(f"| {c.statement} | **{c.verdict}** | {c.evidence} |" for c in claims),
        "",
        "## Reconstruction: median test MSE x 1e3 over partitions",
        "",
        "The noisy input itself scores "
        + ", ".join(f"{noisy[k] * 1e3:.3f} (σ={k:g})" for k in noisy.index)
        + ".",
        "",
        _markdown_table(medians(runs, "mse"), scale=1e3),
        "",
        "## Representation: median test ARI, oracle eps (the paper's protocol)",
        "",
        _markdown_table(medians(runs, "ari_oracle")),
        "",
        "## Representation: median test ARI, label-free eps (k-distance knee)",
        "",
        _markdown_table(medians(runs, "ari_auto")),
        "",
        *(line for label, table in correlations.items() for line in _correlations(label, table)),
        "Figures: bench_reconstruction.png (Fig. 3B), bench_examples.png (Fig. 3A), "
        "bench_representation.png (Fig. 5A), bench_latent_correlation.png (Fig. 5B), "
        "bench_tsne.png (Fig. 4). Every fit is a row of runs.csv.",
        "",
    ]
    return "\n".join(parts)
