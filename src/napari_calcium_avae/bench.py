"""The paper's benchmarks (Abante et al. 2025, sections 3.1-3.2, Figs. 3-5), reproduced.

Simulate three neuron types at several noise levels that share spikes, train the AVAE over
the paper's grid and PCA with the same latent size on random train/test partitions, score
held-out neurons (reconstruction MSE against the noise-free truth, ARI of DBSCAN clusters
against the types with the oracle and the label-free eps) and check each of the paper's
claims from the numbers, so that a claim that does not reproduce says so.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .citation import PAPER
from .errors import CalciumAvaeError, CalciumAvaeWarning
from .progress import progress_bar, progress_callback

PARAMETERS = ("a", "b", "v0", "du")
"""Izhikevich parameters per ROI; v0 and du tell the types apart, a and b do not."""
STRONG_CORRELATION = 0.5
WEAK_CORRELATION = 0.3
STABLE_DROP = 0.05
"""An ARI that falls by no more than this from the smallest to the largest D2 is stable."""
ARI_MARGIN = 0.2


@dataclass(frozen=True)
class BenchSettings:
    """One benchmark protocol; the defaults are the paper's (sections 2.1, 2.5-2.7)."""

    types: tuple[str, ...] = ("RS", "IB", "CH")
    cultures_per_type: int = 5
    neurons_per_culture: int = 50
    duration_s: float = 30.0
    frame_rate: float = 500.0
    noise_levels: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 2.5)
    partitions: int = 10
    test_fraction: float = 0.2
    architectures: tuple[str, ...] = ("released", "recurrent")
    sizes: tuple[tuple[int, int], ...] = ((32, 2), (64, 4), (128, 8), (256, 16))
    betas: tuple[float, ...] = (0.0, 0.5, 1.0)
    timing_channels: int = 0
    """0 scores the paper's model; > 0 adds the timing path to every AVAE (docs/model.md)."""
    learning_rate: float = 5e-3
    batch_size: int = 256
    max_epochs: int = 200
    patience: int = 5
    min_delta: float = 0.005
    min_samples: int = 5
    seed: int = 0
    showcase: tuple[str, int, int, float] = ("released", 128, 8, 0.5)
    """(architecture, D1, D2, beta) of the model shown in Figs. 3A, 4 and 5B."""
    showcase_noise: float = 1.0

    @classmethod
    def quick(cls) -> BenchSettings:
        """A reduced protocol that keeps every step and the trends, <= 30 min on 2 CPU cores."""
        return cls(
            frame_rate=50.0,
            noise_levels=(0.5, 1.5, 2.5),
            partitions=2,
            betas=(0.0, 1.0),
            batch_size=32,
            max_epochs=60,
            showcase=("released", 128, 8, 1.0),
            showcase_noise=1.5,
        )

    def check(self) -> None:
        """Refuse settings that cannot give a score, before minutes of simulation."""
        if not self.noise_levels or min(self.noise_levels) <= 0:
            raise CalciumAvaeError("noise levels must be positive and at least one is needed")
        if len(set(self.noise_levels)) != len(self.noise_levels):
            raise CalciumAvaeError("noise levels must be distinct")
        if self.partitions < 1:
            raise CalciumAvaeError("at least one train/test partition is needed")
        if not 0 < self.test_fraction < 1:
            raise CalciumAvaeError(f"test fraction must be in (0, 1), got {self.test_fraction}")
        if not self.sizes or not self.betas or not self.architectures:
            raise CalciumAvaeError("the model grid is empty: give sizes, betas, architectures")
        n = len(self.types) * self.cultures_per_type * self.neurons_per_culture
        n_test = round(self.test_fraction * n)
        if n_test < self.min_samples or n - n_test < 4:
            raise CalciumAvaeError(
                f"{n} neurons give {n_test} test neurons: too few for min_samples = "
                f"{self.min_samples} or for training; simulate more neurons"
            )

    def showcase_config(self) -> tuple[str, int, int, float]:
        """The showcase model if the grid holds it, else the grid's first AVAE."""
        arch, d1, d2, beta = self.showcase
        if arch in self.architectures and (d1, d2) in self.sizes and beta in self.betas:
            return self.showcase
        return (self.architectures[0], *self.sizes[0], self.betas[0])

    def showcase_level(self) -> float:
        return min(self.noise_levels, key=lambda s: abs(s - self.showcase_noise))


@dataclass
class Dataset:
    """Every simulated neuron at every noise level; rows are the same neurons throughout."""

    noisy: dict[float, np.ndarray]
    """noise sigma -> (neurons, frames) noisy fluorescence."""
    clean: np.ndarray
    table: pd.DataFrame
    """Per-neuron ground truth: neuron_type, excitatory, a, b, v0, du, culture."""
    measured_sigma: dict[float, float]
    """noise sigma -> standard deviation of noisy - clean actually found in the files."""
    frame_rate: float


@dataclass
class Claim:
    statement: str
    holds: bool | None
    """None when the protocol cannot test it (e.g. a single latent size)."""
    evidence: str

    @property
    def verdict(self) -> str:
        return {True: "holds", False: "does not hold", None: "not tested"}[self.holds]


@dataclass
class BenchReport:
    runs: pd.DataFrame
    claims: list[Claim]
    correlations: pd.DataFrame
    files: list[Path]


def load_dataset(paths: Sequence[Path], noise_levels: Sequence[float]) -> Dataset:
    """Read simulated sessions and tell their noisy series apart by their measured noise.

    Matching sorted measured sigmas to sorted levels needs no naming convention and checks
    that each series really holds the noise we asked for.
    """
    from .demo import noise_free_series
    from .nwb import list_series, read_traces

    levels = sorted(noise_levels)
    noisy: dict[float, list[np.ndarray]] = {s: [] for s in levels}
    clean, tables = [], []
    measured: dict[float, list[float]] = {s: [] for s in levels}
    rate = None
    for path in paths:
        truth_path = noise_free_series(path)
        truth = read_traces(path, series=truth_path)
        series = [info.path for info in list_series(path) if info.path != truth_path]
        if len(series) != len(levels):
            raise CalciumAvaeError(
                f"{path} holds {len(series)} noisy series but {len(levels)} noise levels "
                "were simulated; simulate the dataset again"
            )
        found = [read_traces(path, series=p) for p in series]
        sigmas = [float(np.std(t.data.astype(np.float64) - truth.data)) for t in found]
        for level, k in zip(levels, np.argsort(sigmas), strict=True):
            noisy[level].append(found[k].data)
            measured[level].append(sigmas[k])
        clean.append(truth.data)
        tables.append(truth.roi_table.reset_index(drop=True))
        rate = truth.rate
    sigma = {s: float(np.mean(v)) for s, v in measured.items()}
    ratios = np.array([sigma[s] / s for s in levels])
    if ratios.max() > 1.2 * ratios.min():
        raise CalciumAvaeError(
            "the noisy series do not scale with the requested noise levels "
            f"(measured {', '.join(f'{sigma[s]:.3g}' for s in levels)}); simulate again"
        )
    return Dataset(
        noisy={s: np.concatenate(v) for s, v in noisy.items()},
        clean=np.concatenate(clean),
        table=pd.concat(tables, ignore_index=True),
        measured_sigma=sigma,
        frame_rate=float(rate) if rate else float("nan"),
    )


def partition(n: int, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean test mask of one random train/test partition (the paper's section 2.6)."""
    test = np.zeros(n, dtype=bool)
    rng = np.random.default_rng(seed)
    test[rng.choice(n, round(test_fraction * n), replace=False)] = True
    return test


def latent_correlations(latents: np.ndarray, table: pd.DataFrame) -> pd.DataFrame:
    """Pearson r of each latent coordinate with a, b, v0, du (Fig. 5B): parameters x z_k."""
    z = np.asarray(latents, dtype=np.float64)
    out = np.full((len(PARAMETERS), z.shape[1]), np.nan)
    for i, name in enumerate(PARAMETERS):
        p = table[name].to_numpy(dtype=np.float64)
        for k in range(z.shape[1]):
            if np.std(p) > 0 and np.std(z[:, k]) > 0:
                out[i, k] = np.corrcoef(p, z[:, k])[0, 1]
    return pd.DataFrame(
        out, index=list(PARAMETERS), columns=[f"z{k + 1}" for k in range(z.shape[1])]
    )


def _family(row: pd.Series) -> str:
    if row["model"] == "PCA":
        return "PCA"
    return f"AVAE {row['architecture']} β={row['beta']:g}"


def _medians(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Median over partitions, indexed by (family, latent_size), one column per noise level."""
    runs = runs.assign(family=runs.apply(_family, axis=1))
    return runs.pivot_table(
        index=["family", "latent_size"], columns="noise_sigma", values=metric, aggfunc="median"
    )


def check_claims(runs: pd.DataFrame, correlations: pd.DataFrame) -> list[Claim]:
    """The paper's four claims, each decided from the benchmark's own numbers."""
    claims = []
    mse = _medians(runs, "mse")
    avae = mse.drop(index="PCA", level="family")
    pca = mse.xs("PCA", level="family")
    best_avae, best_pca = avae.min(), pca.min()
    lines = [
        f"σ={s:g}: best AVAE {best_avae[s] * 1e3:.3f} vs best PCA {best_pca[s] * 1e3:.3f}"
        for s in mse.columns
    ]
    claims.append(
        Claim(
            "The best AVAE reconstructs held-out traces with a lower MSE than PCA at every "
            "noise level (median over partitions, x1e3).",
            bool((best_avae < best_pca).all()),
            "; ".join(lines),
        )
    )
    for metric, label in (("ari_oracle", "oracle eps"), ("ari_auto", "label-free eps")):
        ari = _medians(runs, metric)
        gap = ari.drop(index="PCA", level="family").groupby(level="latent_size").max() - ari.xs(
            "PCA", level="family"
        )
        where = gap.stack().idxmax()
        claims.append(
            Claim(
                f"The best AVAE's ARI ({label}) exceeds PCA's by more than {ARI_MARGIN} in some "
                "setting (same D2 and noise level).",
                bool(gap.to_numpy().max() > ARI_MARGIN),
                f"largest gap {gap.to_numpy().max():+.3f} at D2={where[0]}, σ={where[1]:g}",
            )
        )
    claims.append(_stability_claim(runs))
    claims.append(_correlation_claim(correlations))
    return claims


def _stability_claim(runs: pd.DataFrame) -> Claim:
    statement = (
        "AVAE ARI (oracle eps) does not drop as D2 grows, while PCA's does (change = median "
        "ARI at the largest D2 minus at the smallest, mean over noise levels; stable if >= "
        f"-{STABLE_DROP}, a drop if below)."
    )
    ari = _medians(runs, "ari_oracle")
    sizes = sorted(ari.index.get_level_values("latent_size").unique())
    if len(sizes) < 2:
        return Claim(statement, None, "only one latent size in this protocol")

    def change(family: str) -> float:
        by_size = ari.xs(family, level="family")
        return float((by_size.loc[sizes[-1]] - by_size.loc[sizes[0]]).mean())

    families = [f for f in ari.index.get_level_values("family").unique() if f != "PCA"]
    best = max(families, key=lambda f: float(ari.xs(f, level="family").to_numpy().mean()))
    others = ", ".join(f"{f} {change(f):+.3f}" for f in families if f != best)
    return Claim(
        statement,
        change(best) >= -STABLE_DROP > change("PCA"),
        f"D2 {sizes[0]} -> {sizes[-1]}: {best} (best mean ARI) {change(best):+.3f}, PCA "
        f"{change('PCA'):+.3f}" + (f"; other AVAE families: {others}" if others else ""),
    )


def _correlation_claim(correlations: pd.DataFrame) -> Claim:
    peak = correlations.abs().max(axis=1)
    holds = bool(
        min(peak["v0"], peak["du"]) >= STRONG_CORRELATION
        and max(peak["a"], peak["b"]) < WEAK_CORRELATION
    )
    return Claim(
        f"Latent coordinates correlate with v0 and du (max |r| >= {STRONG_CORRELATION}) and "
        f"not with a and b (max |r| < {WEAK_CORRELATION}).",
        holds,
        ", ".join(f"{name} {peak[name]:.2f}" for name in PARAMETERS),
    )


def _grid(s: BenchSettings) -> list[dict[str, Any]]:
    """Every model of one partition: the AVAE grid, then PCA at each latent size."""
    avae = [
        {"model": "AVAE", "architecture": arch, "hidden_size": d1, "latent_size": d2, "beta": b}
        for arch in s.architectures
        for d1, d2 in s.sizes
        for b in s.betas
    ]
    pca = [{"model": "PCA", "latent_size": d2} for _, d2 in s.sizes]
    return avae + pca


def _build(hyper: dict[str, Any], s: BenchSettings, device: str, seed: int) -> Any:
    from .model import AVAE, PCABaseline

    if hyper["model"] == "PCA":
        return PCABaseline(n_components=hyper["latent_size"])
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
    if hyper["model"] == "PCA":
        return f"PCA D2={hyper['latent_size']}"
    return (
        f"{hyper['architecture']} ({hyper['hidden_size']}, {hyper['latent_size']}) "
        f"β={hyper['beta']:g}"
    )


def _is_showcase(hyper: dict[str, Any], showcase: tuple[str, int, int, float]) -> bool:
    keys = ("architecture", "hidden_size", "latent_size", "beta")
    return hyper["model"] == "AVAE" and tuple(hyper[k] for k in keys) == showcase


def _simulate(output: Path, s: BenchSettings) -> list[Path]:
    from .simulate import simulate_dataset

    return simulate_dataset(
        output,
        types=s.types,
        cultures_per_type=s.cultures_per_type,
        neurons_per_culture=s.neurons_per_culture,
        duration_s=s.duration_s,
        frame_rate=s.frame_rate,
        noise_levels=s.noise_levels,
        seed=s.seed,
        progress=progress_callback("simulating", unit="culture"),
    )


def run_bench(
    output: Path,
    quick: bool = False,
    device: str = "auto",
    settings: BenchSettings | None = None,
) -> BenchReport:
    """Simulate, sweep the grid, write runs.csv, the figures and summary.md under ``output``.

    runs.csv is rewritten after every fit, so an interrupted sweep keeps what it measured.
    """
    from .analysis import reconstruction_mse, score_held_out
    from .model.device import resolve_device

    s = settings or (BenchSettings.quick() if quick else BenchSettings())
    s.check()
    where = resolve_device(device)  # a bad device fails now, not after the simulation
    if settings is None and not quick and where.type == "cpu":
        warnings.warn(
            "the paper's full protocol is 1,400 fits of 15,000-frame traces: a day or more "
            "on a CPU; use --quick for the reduced protocol or run it on a GPU",
            CalciumAvaeWarning,
            stacklevel=2,
        )
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = load_dataset(_simulate(output / "data", s), s.noise_levels)
    types = data.table["neuron_type"].to_numpy()
    showcase, showcase_level = s.showcase_config(), s.showcase_level()
    grid = _grid(s)
    csv_path = output / "runs.csv"
    rows: list[dict[str, Any]] = []
    kept: tuple[Any, np.ndarray] | None = None
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
                            "epochs_run": len(model.history_) if avae else None,
                            "n_train": int((~test).sum()),
                            "n_test": int(test.sum()),
                            "n_frames": X.shape[1],
                            "frame_rate": data.frame_rate,
                            **dataclasses.asdict(result),
                            "noisy_mse": noisy_mse,
                            "fit_seconds": seconds,
                            "device": _device_of(model) if avae else "cpu",
                        }
                    )
                    pd.DataFrame(rows).to_csv(csv_path, index=False)
                    if part == 0 and level == showcase_level and _is_showcase(hyper, showcase):
                        kept = (model, test)
                    bar.update(1)

    runs = pd.DataFrame(rows)
    assert kept is not None  # showcase_config() always names a model of the grid
    model, test = kept
    X = data.noisy[showcase_level]
    latents = model.transform(X)
    correlations = latent_correlations(latents, data.table)
    claims = check_claims(runs, correlations)
    label = (
        f"AVAE {showcase[0]}, (D1, D2) = ({showcase[1]}, {showcase[2]}), β = {showcase[3]:g}, "
        f"σ = {showcase_level:g}"
    )
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
        summary_markdown(s, data, runs, claims, correlations, label, time.perf_counter() - started),
        encoding="utf-8",
    )
    files.append(summary)
    print(f"wrote {len(files)} files to {output}; see {summary}")
    return BenchReport(runs, claims, correlations, files)


def _device_of(model: Any) -> str:
    return str(model.device_)


# --- figures (matplotlib's object API: no pyplot state, no GUI backend) ---------------------


def _families(runs: pd.DataFrame) -> list[str]:
    """Model families in display order: each architecture's betas, then PCA."""
    avae = runs[runs["model"] == "AVAE"]
    names = [
        f"AVAE {a} β={b:g}"
        for a in dict.fromkeys(avae["architecture"])
        for b in sorted(avae["beta"].unique())
    ]
    return [*names, "PCA"]


def _architectures(runs: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(runs.loc[runs["model"] == "AVAE", "architecture"]))


def _box_panels(rows: list[tuple[str, pd.DataFrame]], metric: str, ylabel: str) -> Any:
    """Boxes of a metric over partitions: a row per frame, a column per noise level, D2 on
    x and one colour per model family, as in the paper's Figs. 3B and 5A."""
    from matplotlib.figure import Figure

    levels = sorted(rows[0][1]["noise_sigma"].unique())
    sizes = sorted(rows[0][1]["latent_size"].unique())
    fig = Figure(figsize=(3.0 * len(levels) + 1.0, 2.6 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), len(levels), squeeze=False, sharey="row")
    for r, (title, frame) in enumerate(rows):
        frame = frame.assign(family=frame.apply(_family, axis=1))
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
    rows = [
        (f"AVAE {a} vs PCA", frame[(frame["architecture"] == a) | (frame["model"] == "PCA")])
        for a in _architectures(runs)
    ]
    label = "MSE x 1e3 (test)" if metric == "mse" else metric
    fig = _box_panels(rows, metric, label)
    fig.savefig(path, dpi=110)
    return path


def ari_figure(runs: pd.DataFrame, path: Path) -> Path:
    """Fig. 5A, with the label-free eps under the paper's oracle eps."""
    rows = [
        (
            f"{a}, {mode}",
            runs[(runs["architecture"] == a) | (runs["model"] == "PCA")].assign(ari=runs[col]),
        )
        for col, mode in (("ari_oracle", "oracle eps"), ("ari_auto", "label-free eps"))
        for a in _architectures(runs)
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

    from .analysis import embed_2d

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


# --- summary ------------------------------------------------------------------------------


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


def summary_markdown(
    s: BenchSettings,
    data: Dataset,
    runs: pd.DataFrame,
    claims: list[Claim],
    correlations: pd.DataFrame,
    label: str,
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
        _markdown_table(_medians(runs, "mse"), scale=1e3),
        "",
        "## Representation: median test ARI, oracle eps (the paper's protocol)",
        "",
        _markdown_table(_medians(runs, "ari_oracle")),
        "",
        "## Representation: median test ARI, label-free eps (k-distance knee)",
        "",
        _markdown_table(_medians(runs, "ari_auto")),
        "",
        f"## Latent-parameter correlations (Pearson r, all neurons; {label})",
        "",
        "| parameter | " + " | ".join(correlations.columns) + " |",
        "|" + "---|" * (correlations.shape[1] + 1),
        *(
            f"| {p} | " + " | ".join(f"{r:+.2f}" for r in correlations.loc[p]) + " |"
            for p in correlations.index
        ),
        "",
        "Figures: bench_reconstruction.png (Fig. 3B), bench_examples.png (Fig. 3A), "
        "bench_representation.png (Fig. 5A), bench_latent_correlation.png (Fig. 5B), "
        "bench_tsne.png (Fig. 4). Every fit is a row of runs.csv.",
        "",
    ]
    return "\n".join(parts)
