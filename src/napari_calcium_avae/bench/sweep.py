"""The sweep: simulate, fit every model of the grid on every partition, score, report."""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CalciumAvaeWarning
from ..progress import progress_bar, progress_callback
from ..simulate import simulate_dataset
from .claims import CROP_VAE, Claim, check_claims, latent_correlations
from .data import load_dataset, partition
from .figures import (
    ari_figure,
    correlation_figure,
    examples_figure,
    metric_figure,
    tsne_figure,
)
from .report import summary_markdown
from .settings import BenchSettings


@dataclass
class BenchReport:
    runs: pd.DataFrame
    claims: list[Claim]
    correlations: pd.DataFrame
    files: list[Path]


def _grid(s: BenchSettings) -> list[dict[str, Any]]:
    """Every model of one partition: the AVAE grid, the crop-feature VAE and PCA at each
    latent size."""
    avae = [
        {"model": "AVAE", "architecture": arch, "hidden_size": d1, "latent_size": d2, "beta": b}
        for arch in s.architectures
        for d1, d2 in s.sizes
        for b in s.betas
    ]
    crop = [{"model": CROP_VAE, "latent_size": d2} for _, d2 in s.sizes] if s.crop_vae else []
    pca = [{"model": "PCA", "latent_size": d2} for _, d2 in s.sizes]
    return avae + crop + pca


def _build(hyper: dict[str, Any], s: BenchSettings, device: str, seed: int) -> Any:
    from ..model import AVAE, CropFeatureVAE, PCABaseline

    if hyper["model"] == "PCA":
        return PCABaseline(n_components=hyper["latent_size"])
    if hyper["model"] == CROP_VAE:
        return CropFeatureVAE(
            frame_rate=s.frame_rate,
            latent_size=hyper["latent_size"],
            max_epochs=s.max_epochs,
            device=device,
            random_state=seed,
        )
    return AVAE(
        hidden_size=hyper["hidden_size"],
        latent_size=hyper["latent_size"],
        beta=hyper["beta"],
        architecture=hyper["architecture"],
        timing_channels=s.timing_channels,
        learning_rate=s.learning_rate,
        batch_size=s.batch_size,
        max_epochs=s.max_epochs,
        patience=s.patience,
        min_delta=s.min_delta,
        device=device,
        random_state=seed,
    )


def _describe(hyper: dict[str, Any]) -> str:
    if hyper["model"] in ("PCA", CROP_VAE):
        return f"{hyper['model']} D2={hyper['latent_size']}"
    return (
        f"{hyper['architecture']} ({hyper['hidden_size']}, {hyper['latent_size']}) "
        f"β={hyper['beta']:g}"
    )


def _is_showcase(hyper: dict[str, Any], showcase: tuple[str, int, int, float]) -> bool:
    keys = ("architecture", "hidden_size", "latent_size", "beta")
    return hyper["model"] == "AVAE" and tuple(hyper[k] for k in keys) == showcase


def run_bench(
    output: Path,
    quick: bool = False,
    device: str = "auto",
    settings: BenchSettings | None = None,
) -> BenchReport:
    """Simulate, sweep the grid, write runs.csv, the figures and summary.md under ``output``.

    runs.csv is rewritten after every fit, so an interrupted sweep keeps what it measured.
    """
    from ..analysis import reconstruction_mse, score_held_out
    from ..model.device import resolve_device

    s = settings or (BenchSettings.quick() if quick else BenchSettings())
    s.check()
    where = resolve_device(device)  # a bad device fails now, not after the simulation
    if settings is None and not quick and where.type == "cpu":
        warnings.warn(
            "the paper's full protocol is 1,600 fits of 15,000-frame traces: a day or more "
            "on a CPU; use --quick for the reduced protocol or run it on a GPU",
            CalciumAvaeWarning,
            stacklevel=2,
        )
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    paths = simulate_dataset(
        output / "data",
        s.simulation(),
        progress=progress_callback("simulating", unit="culture"),
        overwrite=True,  # the bench's own folder: a rerun replaces it
    )
    data = load_dataset(paths, s.noise_levels)
    types = data.table["neuron_type"].to_numpy()
    showcase, showcase_level = s.showcase_config(), s.showcase_level()
    grid = _grid(s)
    csv_path = output / "runs.csv"
    rows: list[dict[str, Any]] = []
    kept: tuple[Any, np.ndarray] | None = None
    kept_crop: Any = None
    total = len(s.noise_levels) * s.partitions * len(grid)
    with progress_bar(total=total, desc="benchmark", unit="fit") as bar:
        for level in s.noise_levels:
            X = data.noisy[level]
            for part in range(s.partitions):
                seed = s.seed + part
                test = partition(len(X), s.test_fraction, seed)
                noisy_mse = float(reconstruction_mse(X[test], data.clean[test], X[test]).mean())
                for hyper in grid:
                    bar.set_postfix_str(f"σ={level:g} partition {part}: {_describe(hyper)}")
                    model = _build(hyper, s, device, seed)
                    tick = time.perf_counter()
                    model.fit(X[~test])
                    seconds = time.perf_counter() - tick
                    result = score_held_out(
                        model, X[test], data.clean[test], types[test], s.min_samples
                    )
                    avae = hyper["model"] == "AVAE"
                    trained = hyper["model"] != "PCA"
                    rows.append(
                        {
                            "noise_sigma": level,
                            "measured_sigma": data.measured_sigma[level],
                            "partition": part,
                            "seed": seed,
                            "model": hyper["model"],
                            "architecture": hyper.get("architecture", ""),
                            "hidden_size": hyper.get("hidden_size"),
                            "latent_size": hyper["latent_size"],
                            "beta": hyper.get("beta"),
                            "learning_rate": s.learning_rate if avae else None,
                            "batch_size": s.batch_size if avae else None,
                            "max_epochs": s.max_epochs if avae else None,
                            "epochs_run": len(model.history_) if trained else None,
                            "n_train": int((~test).sum()),
                            "n_test": int(test.sum()),
                            "n_frames": X.shape[1],
                            "frame_rate": data.frame_rate,
                            **dataclasses.asdict(result),
                            "noisy_mse": noisy_mse,
                            "fit_seconds": seconds,
                            "device": _device_of(model) if trained else "cpu",
                        }
                    )
                    pd.DataFrame(rows).to_csv(csv_path, index=False)
                    if part == 0 and level == showcase_level:
                        if _is_showcase(hyper, showcase):
                            kept = (model, test)
                        elif hyper == {"model": CROP_VAE, "latent_size": showcase[2]}:
                            kept_crop = model
                    bar.update(1)

    runs = pd.DataFrame(rows)
    assert kept is not None  # showcase_config() always names a model of the grid
    model, test = kept
    X = data.noisy[showcase_level]
    latents = model.transform(X)
    correlations = latent_correlations(latents, data.table)
    claims = check_claims(runs, correlations, "AVAE")
    crop_correlations = None
    if kept_crop is not None:
        crop_correlations = latent_correlations(kept_crop.transform(X), data.table)
        claims += check_claims(runs, crop_correlations, CROP_VAE)
    label = (
        f"AVAE {showcase[0]}, (D1, D2) = ({showcase[1]}, {showcase[2]}), β = {showcase[3]:g}, "
        f"σ = {showcase_level:g}"
    )
    crop_label = f"{CROP_VAE}, D2 = {showcase[2]}, σ = {showcase_level:g}"
    files = [
        csv_path,
        metric_figure(runs, "mse", output / "bench_reconstruction.png"),
        ari_figure(runs, output / "bench_representation.png"),
        examples_figure(
            X[test],
            data.clean[test],
            model.reconstruct(X[test]),
            types[test],
            data.frame_rate,
            label,
            output / "bench_examples.png",
        ),
        correlation_figure(correlations, label, output / "bench_latent_correlation.png"),
        tsne_figure(latents, data.table, s.seed, label, output / "bench_tsne.png"),
    ]
    summary = output / "summary.md"
    summary.write_text(
        summary_markdown(
            s,
            data,
            runs,
            claims,
            {label: correlations}
            | ({} if crop_correlations is None else {crop_label: crop_correlations}),
            time.perf_counter() - started,
        ),
        encoding="utf-8",
    )
    files.append(summary)
    print(f"wrote {len(files)} files to {output}; see {summary}")
    return BenchReport(runs, claims, correlations, files)


def _device_of(model: Any) -> str:
    return str(model.device_)
