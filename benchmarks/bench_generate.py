"""Generated populations scored with the realism report (issue 17, seed 003), and speed.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_generate.py [--quick]
     [-o bench-output/generate] [--states 4] [--device cpu] [--load-zebrafish GEN.npz]
     [--noise white|split] [--segment-s 2] [--seed 1] [--repeats 3]

For each real recording a PopulationGenerator (calcium-HMM states) is fitted and generates
as many neurons, for as long, at the same frame rate. ``analysis.realism`` then infers
spikes from both and gives each statistic's distance to the real recording over the
split-half yardstick (ratio; issue 17's target: <= 1.5 for firing rate, pairwise
correlation and event amplitude). Beside it, in the same table:

- Poisson spikes: the same fits with ``spike_model="poisson", kinetics="states"``
  (Poisson counts from each neuron's rate per state, with the calcium HMM's kinetics: the
  defaults before segments);
- independent neurons: the same generator with ``independent=True`` (the same per-neuron
  fits and rates per state, each neuron with its own state sequence: no coupling), which
  must lose on correlations;
- the culture simulator with default settings: for the zebrafish recording, the first
  default RS culture (50 imaged neurons, 30 s at 500 Hz); for the simulated culture,
  another culture of the same settings (seed + 1), which is what simulating instead of
  generating gives.

Recordings: the shared zebrafish recording (/work/shared/data/zebrafish_tectum_f3.nwb, 75
neurons x 5,660 frames of dF/F at 2.2 Hz) and a simulated RS culture (50 imaged neurons,
120 s at 30 Hz, noise 1, the other simulator settings at their defaults).

Speed: ``generate`` for 1,000 neurons x 10 minutes at 30 Hz from the zebrafish generator
(so with the frame-rate conversion; the culture's when the zebrafish is skipped), best of
3, and writing that recording as NWB once.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from napari_calcium_avae.analysis import realism
from napari_calcium_avae.generate import PopulationGenerator, write_generated
from napari_calcium_avae.nwb import read_traces
from napari_calcium_avae.simulate import simulate_dataset
from napari_calcium_avae.spikes import SpikeInference

ZEBRAFISH = Path("/work/shared/data/zebrafish_tectum_f3.nwb")
TARGET_STATISTICS = ("firing_rate", "pairwise_correlation", "event_amplitude")
TARGET_RATIO = 1.5
CULTURE = {"types": ("RS",), "cultures_per_type": 1, "duration_s": 120.0, "frame_rate": 30.0}
SPEED = {"n_neurons": 1000, "duration_s": 600.0, "frame_rate": 30.0}


def simulate_culture(folder: Path, label: str, seed: int, **options) -> Path:
    """One simulated culture as an NWB session (in folder/label); its path."""
    return simulate_dataset(folder / label, seed=seed, **options)[0]


def score(real, other, estimator, n_splits: int) -> dict[str, dict[str, float]]:
    """Each statistic's distance, yardstick and ratio of ``other`` against ``real``."""
    report = realism.compare_recordings(real, other, estimator=estimator, n_splits=n_splits)
    return {
        row.statistic: {"distance": row.distance, "yardstick": row.yardstick, "ratio": row.ratio}
        for row in report.rows
    }


def fit_generator(traces, args, load: str | None) -> tuple[PopulationGenerator, float]:
    if load:
        gen = PopulationGenerator.load(load)
        return gen.set_params(noise=args.noise, segment_s=args.segment_s), float("nan")
    start = time.perf_counter()
    gen = PopulationGenerator(
        n_states=args.states,
        noise=args.noise,
        segment_s=args.segment_s,
        device=args.device,
        verbose=True,
    )
    if args.quick:
        gen.set_params(spike_iter=100, hmm_iter=20)
    gen.fit(traces)
    return gen, time.perf_counter() - start


def run_recording(
    name: str, real, baseline, args, load: str | None
) -> tuple[dict, PopulationGenerator]:
    """Fit, generate, score the generated, independent and simulator recordings."""
    estimator = SpikeInference(device=args.device)
    gen, fit_s = fit_generator(real, args, load)
    if args.save_generators:
        gen.save(Path(args.output) / f"generator_{name}.npz", overwrite=True)
    print(f"{name}: fitted in {fit_s:.0f} s; K = {gen.transmat_.shape[0]}", flush=True)
    out = {"fit_s": fit_s, "n_states": int(gen.transmat_.shape[0]), "scores": {}}
    # the model before segments: Poisson counts with the calcium HMM's own kinetics
    poisson = clone_generator(gen, np.asarray(real.data), spike_model="poisson", kinetics="states")
    repeats = {}
    for seed in range(args.seed + 1, args.seed + args.repeats):
        traces = gen.generate(seed=seed).to_traces()
        repeats[seed] = score(real, traces, estimator, args.splits)
    out["repeats"] = repeats
    sides = {
        "generated": gen.generate(seed=args.seed).to_traces(),
        "poisson": poisson.generate(seed=args.seed).to_traces(),
        "independent": gen.generate(seed=args.seed, independent=True).to_traces(),
        "simulator": baseline,
    }
    for side, traces in sides.items():
        start = time.perf_counter()
        out["scores"][side] = score(real, traces, estimator, args.splits)
        print(f"{name} vs {side}: scored in {time.perf_counter() - start:.0f} s", flush=True)
    return out, gen


def clone_generator(gen: PopulationGenerator, data, **params) -> PopulationGenerator:
    """The fitted generator with other generation parameters (no refit; the neurons are
    assembled again from the two stored fits and the recording ``data``)."""
    other = PopulationGenerator(**{**gen.get_params(), **params})
    for key, value in vars(gen).items():
        if key.endswith("_"):
            setattr(other, key, value)
    other._assemble(data[gen.rows_used_])
    return other


def speed(gen: PopulationGenerator, folder: Path) -> dict[str, float]:
    times = []
    for seed in range(3):
        start = time.perf_counter()
        rec = gen.generate(
            SPEED["n_neurons"], SPEED["duration_s"], frame_rate=SPEED["frame_rate"], seed=seed
        )
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    write_generated(folder / "speed.nwb", rec, overwrite=True)
    write_s = time.perf_counter() - start
    return {
        "generate_s": min(times),
        "generate_all_s": times,
        "write_nwb_s": write_s,
        "spikes": int(rec.spikes.sum()),
        "file_mb": (folder / "speed.nwb").stat().st_size / 1e6,
    }


def table(name: str, result: dict) -> str:
    rows = [
        f"**{name}** (K = {result['n_states']} states)",
        "",
        "| statistic | split-half yardstick | generated | other seeds | Poisson spikes "
        "| independent neurons | simulator |",
        "|---|---|---|---|---|---|---|",
    ]
    scores = result["scores"]
    for stat in scores["generated"]:
        cells = []
        for side in ("generated", "seeds", "poisson", "independent", "simulator"):
            if side == "seeds":
                others = [r[stat]["ratio"] for r in result.get("repeats", {}).values()]
                cells.append(", ".join(f"{r:.2f}" for r in others) or "-")
                continue
            if side not in scores:  # a results file from before the column
                cells.append("-")
                continue
            ratio = scores[side][stat]["ratio"]
            ok = ""
            if stat in TARGET_STATISTICS and side == "generated":
                ok = " ✓" if ratio <= TARGET_RATIO else " ✗"
            cells.append(f"{ratio:.2f}{ok}")
        yard = scores["generated"][stat]["yardstick"]
        mark = "**" if stat in TARGET_STATISTICS else ""
        rows.append(f"| {mark}{stat}{mark} | {yard:.3g} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _partial(out: Path, results: dict, name: str) -> None:
    """Keep what is done so far (a later failure loses nothing) and show its table."""
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(table(name, results["recordings"][name]), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="bench-output/generate")
    parser.add_argument("--quick", action="store_true", help="fewer fit steps, 3 splits")
    parser.add_argument("--states", type=int, default=PopulationGenerator().n_states)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated recordings")
    parser.add_argument(
        "--noise", default=PopulationGenerator().noise, help="the generators' noise model"
    )
    parser.add_argument(
        "--segment-s",
        type=float,
        default=PopulationGenerator().segment_s,
        help="shortest copied block (s); 0.01: one block per state dwell (what lost on the "
        "culture's correlations)",
    )
    parser.add_argument("--splits", type=int, default=realism.DEFAULT_SPLITS)
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="generated recordings scored (seeds --seed, --seed + 1, ...): the spread",
    )
    parser.add_argument("--load-zebrafish", help="a fitted zebrafish generator (.npz)")
    parser.add_argument("--load-culture", help="a fitted culture generator (.npz)")
    parser.add_argument("--save-generators", action="store_true")
    parser.add_argument("--skip", nargs="*", default=[], choices=("zebrafish", "culture"))
    args = parser.parse_args()
    if args.quick:
        args.splits = min(args.splits, 3)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore")
    results: dict = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/bench_generate.py "
        + " ".join(os.sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "omp_threads": os.environ.get("OMP_NUM_THREADS"),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "recordings": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        default_sim = read_traces(
            simulate_culture(folder, "default", 0, types=("RS",), cultures_per_type=1)
        )
        zf_gen = None
        if "zebrafish" not in args.skip:
            real = read_traces(ZEBRAFISH)
            results["recordings"]["zebrafish"], zf_gen = run_recording(
                "zebrafish", real, default_sim, args, args.load_zebrafish
            )
            _partial(out, results, "zebrafish")
        if "culture" not in args.skip:
            real = read_traces(simulate_culture(folder, "culture", 0, **CULTURE))
            other = read_traces(simulate_culture(folder, "culture_other", 1, **CULTURE))
            results["recordings"]["culture"], culture_gen = run_recording(
                "culture", real, other, args, args.load_culture
            )
            _partial(out, results, "culture")
            zf_gen = zf_gen or culture_gen
        if zf_gen is not None:
            results["speed"] = speed(zf_gen, folder)
            print(f"speed: {results['speed']}", flush=True)
    lines = [f"Command: `{results['command']}`", f"Machine: {results['machine']}", ""]
    for name, result in results["recordings"].items():
        lines += [table(name, result), ""]
    if "speed" in results:
        sp = results["speed"]
        lines.append(
            f"Speed: {SPEED['n_neurons']:,} neurons x {SPEED['duration_s']:g} s at "
            f"{SPEED['frame_rate']:g} Hz: generate {sp['generate_s']:.1f} s (best of 3), "
            f"write NWB {sp['write_nwb_s']:.1f} s ({sp['file_mb']:.0f} MB)"
        )
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
