"""Spike inference on simulated recordings with ground truth: ours, OASIS and the floor.

Run: .venv/bin/python benchmarks/bench_spikes.py [--quick] [-o bench-output/spikes]
     [--images docs/images]
Needs the ``bench`` extra for OASIS (``pip install -e .[bench]``; oasis-deconv is GPL-3,
so only this script imports it); without it the OASIS rows are left out and said so.

Data: every indicator the simulator knows (GCaMP6s only where SimulationSettings has no
``indicator`` field yet) x 3 noise levels x 30 and 100 Hz, the same cultures and spikes
throughout (one seed). Noise SD is a fraction of one isolated spike's peak
(F0 x amplitude): easy 0.1, medium 0.3, hard 1.0. Every method runs on the same traces in
the same process. Score: the spikefinder protocol (``spikes.scoring``): Pearson r per
neuron in the whole-frame bin nearest 40 ms, and the relative error in the number of
spikes for methods whose output is in spikes. Throughput: neurons x frames per second of
each method on one block (1,000 neurons x 30,000 frames at 100 Hz; --quick: 50 x 2,000),
timed in the same run, as a ratio to the faster OASIS variant.
Writes scores.csv, throughput.csv and summary.md to the output folder, and
spikes_r.png and spikes_example.png to --images (default: the output folder).
"""

from __future__ import annotations

import argparse
import ast
import csv
import datetime
import os
import platform
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from napari_calcium_avae.simulate import SimulationSettings, simulate_imaged_cultures
from napari_calcium_avae.spikes.peers import positive_first_difference
from napari_calcium_avae.spikes.scoring import (
    binned_correlation,
    count_error,
    frames_per_bin,
    imaged_spike_counts,
)

#: noise SD as a fraction of one isolated spike's peak in fluorescence units
NOISE = {"easy": 0.1, "medium": 0.3, "hard": 1.0}
RATES = (30.0, 100.0)
#: per-neuron spread of single-spike amplitude and decay time (coefficients of variation),
#: as real cells differ; used where the simulator has these options
VARIABILITY = {"amplitude_cv": 0.2, "decay_cv": 0.2}
SEED = 7


@dataclass(frozen=True)
class Protocol:
    """Sizes of one benchmark run."""

    duration_s: float
    types: tuple[str, ...]
    cultures_per_type: int
    neurons_per_culture: int
    dish_size_mm: float
    throughput_neurons: int
    throughput_frames: int


FULL = Protocol(120.0, ("RS", "IB", "CH"), 2, 25, 3.0, 1000, 30000)
QUICK = Protocol(20.0, ("RS", "IB", "CH"), 1, 10, 1.5, 50, 2000)


@dataclass(frozen=True)
class Method:
    """A spike inference method: traces (neurons x frames) and frame rate -> activity."""

    name: str
    infer: Callable[[np.ndarray, float], np.ndarray]
    in_spikes: bool
    """True when the output is in spikes per frame, so that counts can be compared."""


# -- peers ------------------------------------------------------------------------------


def _first_difference(x: np.ndarray, rate: float) -> np.ndarray:
    return positive_first_difference(x)


def _oasis(ar_order: int) -> Callable[[np.ndarray, float], np.ndarray]:
    """OASIS with its own estimation of g, noise and baseline (L1 penalty, its default).

    AR(1): g refined on 5 large isolated events (``optimize_g=5``), as its examples do.
    AR(2): both time constants estimated from the autocovariance; its own code calls
    refining them experimental, so it is not done.
    """
    from oasis.functions import deconvolve

    def infer(x: np.ndarray, rate: float) -> np.ndarray:
        out = np.empty(x.shape, dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for row, y in enumerate(np.asarray(x, dtype=np.float64)):
                if ar_order == 1:
                    result = deconvolve(y, penalty=1, optimize_g=5)
                else:
                    result = deconvolve(y, tau_d=None, tau_r=None, penalty=1)
                out[row] = result[1]
        return out

    return infer


def _ours(ar_order: int, **params: Any) -> Callable[[np.ndarray, float], np.ndarray]:
    """Our SpikeInference with its defaults, unless ``params`` (--ours) says otherwise."""
    from napari_calcium_avae.spikes import SpikeInference

    def infer(x: np.ndarray, rate: float) -> np.ndarray:
        model = SpikeInference(ar_order=ar_order, frame_rate=rate, device="cpu", **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(model.fit(x).transform(x), dtype=np.float64)

    return infer


def available_methods(
    quick: bool = False, ours: dict[str, Any] | None = None
) -> tuple[list[Method], list[str]]:
    """Every method that can run here, and a line for each that cannot.

    Ours runs as AR(1) and AR(2) (its default), as OASIS does: AR(1) suits an indicator
    without a rise time (GCaMP6s), AR(2) the others. ``quick`` is kept for the API.
    """
    methods = [Method("first difference", _first_difference, False)]
    missing = []
    try:
        import oasis.functions  # noqa: F401

        methods += [
            Method("OASIS AR(1)", _oasis(1), False),
            Method("OASIS AR(2)", _oasis(2), False),
        ]
    except ImportError:
        missing.append("OASIS: not installed (pip install -e .[bench])")
    try:
        from napari_calcium_avae.spikes import SpikeInference  # noqa: F401

        methods.append(Method("ours AR(1)", _ours(1, **(ours or {})), True))
        methods.append(Method("ours AR(2)", _ours(2, **(ours or {})), True))
    except ImportError:
        missing.append("ours: napari_calcium_avae.spikes.SpikeInference not importable yet")
    return methods, missing


# -- data -------------------------------------------------------------------------------


def indicators() -> tuple[list[str], str]:
    """Indicators to simulate, and a note when the simulator has only GCaMP6s."""
    if "indicator" not in {f.name for f in fields(SimulationSettings)}:
        return ["GCaMP6s"], "the simulator has no indicator option yet: GCaMP6s only"
    from napari_calcium_avae.simulate.indicators import INDICATORS

    return list(INDICATORS), ""


def spike_peak(indicator: str) -> float:
    """One isolated spike's peak above baseline, in fluorescence units."""
    try:
        from napari_calcium_avae.simulate.indicators import get_indicator
    except ImportError:
        from napari_calcium_avae.simulate.fluorescence import AMPLITUDE, F0

        return F0 * AMPLITUDE
    ind = get_indicator(indicator)
    return ind.f0 * ind.amplitude


def simulate(
    protocol: Protocol, indicator: str, rate: float, sigmas: tuple[float, ...], **extra: Any
) -> tuple[list[np.ndarray], np.ndarray]:
    """Noisy traces (one array per sigma) and true spikes per frame, all cultures stacked."""
    options: dict[str, Any] = {
        "types": protocol.types,
        "cultures_per_type": protocol.cultures_per_type,
        "neurons_per_culture": protocol.neurons_per_culture,
        "duration_s": protocol.duration_s,
        "dish_size_mm": protocol.dish_size_mm,
        "frame_rate": rate,
        "noise_levels": sigmas,
        "seed": SEED,
        **extra,
    }
    known = {f.name for f in fields(SimulationSettings)}
    if "indicator" in known:
        options["indicator"] = indicator
    options.update({k: v for k, v in VARIABILITY.items() if k in known and k not in extra})
    noisy: list[list[np.ndarray]] = [[] for _ in sigmas]
    true = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "only n neurons spiked" on small dishes
        for culture in simulate_imaged_cultures(SimulationSettings(**options)):
            for k, x in enumerate(culture.noisy):
                noisy[k].append(x)
            true.append(imaged_spike_counts(culture, rate))
    return [np.vstack(x) for x in noisy], np.vstack(true)


# -- scoring ----------------------------------------------------------------------------


def score(
    methods: list[Method], x: np.ndarray, true: np.ndarray, rate: float
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Each method on the same traces: its scores, and its output (for the figures)."""
    rows, outputs = [], {}
    for method in methods:
        start = time.perf_counter()
        inferred = method.infer(x, rate)
        seconds = time.perf_counter() - start
        r = binned_correlation(inferred, true, rate)
        err = count_error(inferred, true) if method.in_spikes else np.full(len(x), np.nan)
        scored = np.isfinite(r)
        rows.append(
            {
                "method": method.name,
                "neurons": len(x),
                "frames": x.shape[1],
                "scored": int(scored.sum()),
                "mean_r": float(r[scored].mean()) if scored.any() else float("nan"),
                "median_r": float(np.median(r[scored])) if scored.any() else float("nan"),
                "mean_abs_count_error": float(np.nanmean(np.abs(err)))
                if np.isfinite(err).any()
                else float("nan"),
                "seconds": seconds,
            }
        )
        outputs[method.name] = inferred
    return rows, outputs


def accuracy(
    protocol: Protocol,
    methods: list[Method],
    names: list[str],
    progress: bool = True,
    drift: float = 0.0,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Scores for every indicator x rate x noise level; an example for the figure.
    ``drift``: the simulator's slow multiplicative baseline drift (SD), 0 for none."""
    rows: list[dict[str, Any]] = []
    example: dict[str, Any] = {}
    for indicator in names:
        peak = spike_peak(indicator)
        sigmas = tuple(f * peak for f in NOISE.values())
        for rate in RATES:
            noisy, true = simulate(protocol, indicator, rate, sigmas, drift=drift)
            for (label, fraction), sigma, x in zip(NOISE.items(), sigmas, noisy, strict=True):
                scores, outputs = score(methods, x, true, rate)
                for s in scores:
                    s.update(
                        indicator=indicator,
                        rate_hz=rate,
                        noise=label,
                        noise_per_spike=fraction,
                        sigma=sigma,
                        bin_frames=frames_per_bin(rate),
                    )
                    if progress:
                        print(
                            f"{indicator} {rate:g} Hz {label}: {s['method']}: r = "
                            f"{s['mean_r']:.3f} ({s['seconds']:.1f} s)",
                            flush=True,
                        )
                rows += scores
                if not example and rate == 100.0 and label == "medium":
                    row = int(np.argmax(true.sum(1) > 0))
                    example = {
                        "indicator": indicator,
                        "rate": rate,
                        "trace": x[row],
                        "true": true[row],
                        "outputs": {k: v[row] for k, v in outputs.items()},
                    }
    return rows, example


def throughput(protocol: Protocol, methods: list[Method], indicator: str) -> list[dict[str, Any]]:
    """Neurons x frames per second of each method on one block at 100 Hz, medium noise."""
    rate = 100.0
    block = Protocol(
        protocol.throughput_frames / rate,
        ("RS",),
        1,
        protocol.throughput_neurons,
        protocol.dish_size_mm,
        protocol.throughput_neurons,
        protocol.throughput_frames,
    )
    (x,), _ = simulate(block, indicator, rate, (NOISE["medium"] * spike_peak(indicator),))
    x = np.resize(x, (protocol.throughput_neurons, x.shape[1]))  # repeats rows if too few
    rows = []
    for method in methods:
        start = time.perf_counter()
        method.infer(x, rate)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "method": method.name,
                "neurons": x.shape[0],
                "frames": x.shape[1],
                "seconds": seconds,
                "neuron_frames_per_s": x.size / seconds,
            }
        )
        print(f"throughput {method.name}: {x.size / seconds:,.0f} neuron-frames/s", flush=True)
    oasis = [r["neuron_frames_per_s"] for r in rows if r["method"].startswith("OASIS")]
    for r in rows:  # against the faster OASIS variant of this run
        r["ratio_to_oasis"] = r["neuron_frames_per_s"] / max(oasis) if oasis else np.nan
    return rows


def memory(n_neurons: int, n_frames: int, max_iter: int = 200) -> str:
    """Peak resident memory of this process around our default fit + transform of a
    synthetic float32 block (AR(1) decay 0.98, 0.02 spikes per frame, noise SD 0.3),
    built 1,000 rows at a time so that its own temporaries stay small. ``max_iter``
    changes the time, not the memory (the tensors are the same at every iteration)."""
    import resource

    from scipy.signal import lfilter

    from napari_calcium_avae.spikes import SpikeInference

    rng = np.random.default_rng(0)
    x = np.empty((n_neurons, n_frames), np.float32)
    for s0 in range(0, n_neurons, 1000):
        rows = slice(s0, min(n_neurons, s0 + 1000))
        block = lfilter([1.0], [1.0, -0.98], rng.poisson(0.02, x[rows].shape), axis=1)
        x[rows] = block + 0.3 * rng.standard_normal(block.shape)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = SpikeInference(device="cpu", max_iter=max_iter).fit(x).transform(x)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GB on Linux
    return (
        f"memory: {n_neurons:,} x {n_frames:,}: peak RSS {peak:.2f} GB (before the fit "
        f"{before:.2f} GB; input {x.nbytes / 2**30:.2f} GB, output {out.nbytes / 2**30:.2f} "
        f"GB), max_iter {max_iter}, {time.perf_counter() - start:.0f} s"
    )


# -- report -----------------------------------------------------------------------------


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _mean_by(rows: list[dict[str, Any]], key: str, value: str) -> dict[tuple, float]:
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r[key], r["method"]), []).append(r[value])
    return {k: float(np.nanmean(v)) for k, v in groups.items()}


def summary(
    rows: list[dict[str, Any]],
    speed: list[dict[str, Any]],
    methods: list[str],
    notes: list[str],
    command: str,
) -> str:
    """The report: where it ran, the tables, and which targets hold."""
    cpu = platform.processor() or platform.machine()
    lines = [
        "# Spike inference benchmark",
        "",
        f"Command: `{command}`  ",
        f"Ran {datetime.date.today().isoformat()} on {os.cpu_count()} cores ({cpu}, "
        f"{platform.system()}), no GPU.  ",
        "Score: spikefinder protocol (Pearson r per neuron, whole-frame bins nearest 40 ms: "
        "4 frames at 100 Hz, 1 frame at 30 Hz); count error |inferred - true| / true per "
        "neuron, only for methods that give spikes.",
        "",
        *[f"- {n}" for n in notes],
    ]
    if rows:
        lines += [
            "",
            "## Mean r",
            "",
            "| indicator | rate (Hz) | noise (SD / spike) | neurons | "
            + " | ".join(methods)
            + " |",
            "|---|---|---|---|" + "---|" * len(methods),
        ]
    keys = list(dict.fromkeys((r["indicator"], r["rate_hz"], r["noise"]) for r in rows))
    table = {(r["indicator"], r["rate_hz"], r["noise"], r["method"]): r for r in rows}
    for ind, rate, noise in keys:
        first = table[(ind, rate, noise, methods[0])]
        cells = " | ".join(f"{table[(ind, rate, noise, m)]['mean_r']:.3f}" for m in methods)
        lines.append(
            f"| {ind} | {rate:g} | {noise} ({NOISE[noise]:g}) | {first['scored']} | {cells} |"
        )
    spike_methods = [
        m
        for m in methods
        if any(
            r["method"] == m and r["mean_abs_count_error"] == r["mean_abs_count_error"]
            for r in rows
        )
    ]
    if spike_methods:
        lines += [
            "",
            "## Mean |count error| (methods in spikes)",
            "",
            "| indicator | rate (Hz) | noise | " + " | ".join(spike_methods) + " |",
            "|---|---|---|" + "---|" * len(spike_methods),
        ]
        for ind, rate, noise in keys:
            cells = " | ".join(
                f"{table[(ind, rate, noise, m)]['mean_abs_count_error']:.2f}" for m in spike_methods
            )
            lines.append(f"| {ind} | {rate:g} | {noise} | {cells} |")
    per_indicator = _mean_by(rows, "indicator", "mean_r")
    if rows:
        lines += [
            "",
            "## Mean r per indicator (over rates and noise levels)",
            "",
            "| indicator | " + " | ".join(methods) + " |",
            "|---|" + "---|" * len(methods),
        ]
    for ind in dict.fromkeys(r["indicator"] for r in rows):
        cells = " | ".join(f"{per_indicator[(ind, m)]:.3f}" for m in methods)
        lines.append(f"| {ind} | {cells} |")
    if speed:
        n, t = speed[0]["neurons"], speed[0]["frames"]
        lines += [
            "",
            f"## Throughput ({n:,} neurons x {t:,} frames, 100 Hz, same run)",
            "",
            "| method | seconds | neuron-frames / s | ratio to the faster OASIS |",
            "|---|---|---|---|",
        ]
        for s in speed:
            lines.append(
                f"| {s['method']} | {s['seconds']:.1f} | {s['neuron_frames_per_s']:,.0f} | "
                f"{s['ratio_to_oasis']:.3g} |"
            )
    lines += ["", "## Targets (issue 14)", ""]
    lines += targets(per_indicator, speed, methods)
    return "\n".join(lines) + "\n"


def targets(
    per_indicator: dict[tuple, float], speed: list[dict[str, Any]], methods: list[str]
) -> list[str]:
    """Each target with the numbers that decide it (against the better OASIS variant)."""
    ours = [m for m in methods if m.startswith("ours")]
    oasis = [m for m in methods if m.startswith("OASIS")]
    if not ours or not oasis:
        return ["- not decided: needs both our method and OASIS in the run"]
    out = []
    for ind in dict.fromkeys(k[0] for k in per_indicator):
        best_ours = max(ours, key=lambda m: per_indicator[(ind, m)])
        best_oasis = max(oasis, key=lambda m: per_indicator[(ind, m)])
        a, b = per_indicator[(ind, best_ours)], per_indicator[(ind, best_oasis)]
        verdict = "holds" if a >= b + 0.05 else "does not hold"
        out.append(
            f"- {ind}: r >= OASIS + 0.05 {verdict}: {best_ours} {a:.3f}, {best_oasis} {b:.3f} "
            f"(difference {a - b:+.3f})"
        )
    ratio = {s["method"]: s["ratio_to_oasis"] for s in speed}
    for m in ours:
        if m in ratio:
            verdict = "holds" if ratio[m] >= 10 else "does not hold"
            out.append(f"- throughput >= 10x OASIS {verdict} for {m}: {ratio[m]:.3g}x")
    return out


def figures(rows: list[dict[str, Any]], example: dict[str, Any], folder: Path) -> None:
    """spikes_r.png (mean r by noise, a panel per indicator and rate) and spikes_example.png."""
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(r["indicator"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig = Figure(figsize=(3.2 * len(RATES) + 1.5, 2.4 * len(names)), layout="constrained")
    axes = fig.subplots(len(names), len(RATES), squeeze=False, sharey=True)
    for i, ind in enumerate(names):
        for j, rate in enumerate(RATES):
            ax = axes[i, j]
            for m in methods:
                ys = [
                    next(
                        r["mean_r"]
                        for r in rows
                        if (r["indicator"], r["rate_hz"], r["noise"], r["method"])
                        == (ind, rate, label, m)
                    )
                    for label in NOISE
                ]
                ax.plot(list(NOISE.values()), ys, marker="o", label=m)
            ax.set_xscale("log")
            ax.set_title(f"{ind}, {rate:g} Hz", fontsize=9)
            ax.set_xlabel("noise SD / one spike's peak")
            if j == 0:
                ax.set_ylabel("mean r (40 ms bins)")
    axes[0, -1].legend(fontsize=7)
    fig.savefig(folder / "spikes_r.png", dpi=110)

    if not example:
        return
    t = np.arange(len(example["trace"])) / example["rate"]
    show = t < 20
    fig = Figure(figsize=(9, 1.3 * (2 + len(example["outputs"]))), layout="constrained")
    axes = fig.subplots(2 + len(example["outputs"]), 1, sharex=True)
    axes[0].plot(t[show], example["trace"][show], lw=0.6, color="0.3")
    axes[0].set_ylabel("F (a.u.)", fontsize=8)
    axes[0].set_title(
        f"{example['indicator']}, {example['rate']:g} Hz, medium noise: one neuron", fontsize=9
    )
    axes[1].vlines(t[show], 0, example["true"][show], color="k")
    axes[1].set_ylabel("true", fontsize=8)
    for ax, (name, y) in zip(axes[2:], example["outputs"].items(), strict=True):
        ax.plot(t[show], y[show], lw=0.7)
        ax.set_ylabel(name, fontsize=8)
    axes[-1].set_xlabel("time (s)")
    fig.savefig(folder / "spikes_example.png", dpi=110)


def _code_version() -> str:
    """The commit the run used, and whether the package's code differed from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src/napari_calcium_avae"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "code: unknown (no git)"
    return f"code: git {sha or 'unknown'}" + (" with uncommitted changes in src/" if dirty else "")


def _value(text: str) -> Any:
    """A setting's value from the command line: a Python literal, else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about 3 minutes)")
    parser.add_argument("-o", "--output", type=Path, default=Path("bench-output/spikes"))
    parser.add_argument("--images", type=Path, help="folder for the figures (default: output)")
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument("--indicators", nargs="+", help="a subset of the indicators")
    parser.add_argument(
        "--throughput-only", action="store_true", help="only the throughput block, no scores"
    )
    parser.add_argument(
        "--ours",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="SpikeInference settings other than its defaults, e.g. sparsity=1.5 or "
        "decay_estimate=autocovariance (the kinetics without refinement: the decisive "
        "experiment of docs/spikes.md)",
    )
    parser.add_argument(
        "--drift",
        type=float,
        default=0.0,
        metavar="SD",
        help="add the simulator's slow baseline drift (SD of a multiplicative drift on a "
        "10 s time scale; e.g. 0.1), to score robustness to drift",
    )
    parser.add_argument(
        "--memory",
        nargs=2,
        type=int,
        metavar=("NEURONS", "FRAMES"),
        help="only the peak memory of our fit + transform on a synthetic block",
    )
    parser.add_argument(
        "--memory-iter", type=int, default=200, help="max_iter for --memory (time only)"
    )
    args = parser.parse_args()
    if args.memory:
        print(memory(*args.memory, max_iter=args.memory_iter))
        return
    protocol = QUICK if args.quick else FULL
    args.output.mkdir(parents=True, exist_ok=True)
    images = args.images or args.output
    images.mkdir(parents=True, exist_ok=True)

    import torch

    ours = {k: _value(v) for k, v in (item.split("=", 1) for item in args.ours)}
    methods, notes = available_methods(args.quick, ours)
    if ours:
        notes.append("SpikeInference settings: " + ", ".join(args.ours))
    names, note = indicators()
    if args.indicators:
        unknown = sorted(set(args.indicators) - set(names))
        if unknown:
            parser.error(f"unknown indicator(s) {', '.join(unknown)}; choose among {names}")
        names = [n for n in names if n in args.indicators]
    known = {f.name for f in fields(SimulationSettings)}
    applied = ", ".join(f"{k} = {v:g}" for k, v in VARIABILITY.items() if k in known)
    notes.append(f"simulation: per-neuron variability {applied or 'none (no such option)'}")
    if args.drift:
        notes.append(f"simulation: slow baseline drift of SD {args.drift:g}")
    notes = [*notes, note] if note else notes
    notes.append(_code_version())
    notes.append(
        f"torch {torch.__version__} on {torch.get_num_threads()} threads; OASIS runs on one"
    )
    for n in notes:
        print(n)
    start = time.perf_counter()
    rows, example = (
        ([], {}) if args.throughput_only else accuracy(protocol, methods, names, drift=args.drift)
    )
    speed = [] if args.no_throughput else throughput(protocol, methods, names[0])
    notes.append(f"whole run: {time.perf_counter() - start:.0f} s")
    if rows:
        _write_csv(args.output / "scores.csv", rows)
    if speed:
        _write_csv(args.output / "throughput.csv", speed)
    command = "python benchmarks/bench_spikes.py" + (" --quick" if args.quick else "")
    command += " --throughput-only" if args.throughput_only else ""
    command += (" --indicators " + " ".join(names)) if args.indicators else ""
    command += f" --drift {args.drift:g}" if args.drift else ""
    command += (" --ours " + " ".join(args.ours)) if args.ours else ""
    text = summary(rows, speed, [m.name for m in methods], notes, command)
    (args.output / "summary.md").write_text(text)
    if rows:
        figures(rows, example, images)
    print(text)


if __name__ == "__main__":
    main()
