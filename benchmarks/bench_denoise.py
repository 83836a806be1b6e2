"""Denoising against the noise-free truth (issue 15's target: <= 0.7x the best Gaussian
filter, the filter's SD chosen on the truth so that the comparison favours it).

For each indicator of the simulator and each noise level, on one simulated culture, it
scores:

- ``filter``: the best Gaussian filter (SD chosen on the truth);
- ``calcium model``: ``SpikeInference.denoise`` (AR(2), the default, and AR(1)), which
  is the default model's reconstruction: its L1 weight chosen per neuron from
  ``DENOISE_SPARSITIES`` by SURE (the default), and fixed at 0.5 and at the spike
  default 2 (``denoise(X, sparsity=)``), the choices this benchmark decided between;
- ``AVAE``: the paper's AVAE (``timing_channels=0``) and the AVAE with its timing path,
  trained on the same culture (``--no-avae`` skips them: they take most of the time).

MSE is the paper's: the noisy trace's [-0.5, 0.5] scale, held-out traces for the AVAE.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_denoise.py [--quick] [--no-avae]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from napari_calcium_avae.analysis import best_gaussian_filter, reconstruction_mse
from napari_calcium_avae.model import AVAE
from napari_calcium_avae.simulate import SimulationSettings, simulate_imaged_cultures
from napari_calcium_avae.spikes import SpikeInference
from napari_calcium_avae.spikes.inference import DENOISE_SPARSITIES

INDICATORS = ("GCaMP6s", "GCaMP6f", "GCaMP5k", "OGB-1")
NOISE_LEVELS = (1.0, 2.5)


def culture(indicator: str, quick: bool, frame_rate: float) -> tuple[np.ndarray, list]:
    """(noise-free, [noisy per level]) traces of one RS culture with this indicator."""
    settings = SimulationSettings(
        types=("RS",),
        cultures_per_type=1,
        neurons_per_culture=20 if quick else 60,
        duration_s=20.0 if quick else 60.0,
        frame_rate=frame_rate,
        noise_levels=NOISE_LEVELS,
        indicator=indicator,
        seed=2,
    )
    (imaged,) = list(simulate_imaged_cultures(settings))
    return imaged.clean.astype(np.float64), [n.astype(np.float64) for n in imaged.noisy]


def score(recon: np.ndarray, clean: np.ndarray, noisy: np.ndarray) -> float:
    return float(reconstruction_mse(recon, clean, noisy).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-avae", action="store_true", help="skip the AVAE columns")
    parser.add_argument("--frame-rate", type=float, default=30.0)
    parser.add_argument("-o", "--out", type=Path, default=Path("bench-output/denoise"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for indicator in INDICATORS:
        clean, noisy_levels = culture(indicator, args.quick, args.frame_rate)
        for level, noisy in zip(NOISE_LEVELS, noisy_levels, strict=True):
            row = {"indicator": indicator, "noise": level, "n_rois": len(clean)}
            row["filter"], row["filter_sd"] = best_gaussian_filter(noisy, clean)
            start = time.perf_counter()
            for order in (2, 1):
                est = SpikeInference(ar_order=order, frame_rate=args.frame_rate, device="cpu")
                est.fit(noisy)
                row[f"calcium AR({order})"] = score(est.denoise(noisy), clean, noisy)
                for fixed in (0.5, est.sparsity):  # one weight for all, the rejected choice
                    row[f"calcium AR({order}), {fixed:g} fixed"] = score(
                        est.denoise(noisy, sparsity=fixed), clean, noisy
                    )
            row["calcium_seconds"] = time.perf_counter() - start
            if not args.no_avae:
                half = len(noisy) // 2  # train on one half, score the other
                for name, timing in (("AVAE (paper)", 0), ("AVAE + timing", None)):
                    params = {"max_epochs": 20 if args.quick else 150, "device": "cpu"}
                    if timing is not None:
                        params["timing_channels"] = timing
                    model = AVAE(random_state=0, **params).fit(noisy[:half])
                    row[name] = score(model.reconstruct(noisy[half:]), clean[half:], noisy[half:])
                    row[f"{name} filter (same half)"] = best_gaussian_filter(
                        noisy[half:], clean[half:]
                    )[0]
            rows.append(row)
            ratios = {k: v / row["filter"] for k, v in row.items() if k.startswith("calcium A")}
            print(indicator, level, {k: round(v, 3) for k, v in ratios.items()}, flush=True)
    result = {
        "machine": f"{platform.machine()} {platform.processor()}, {platform.python_version()}",
        "frame_rate": args.frame_rate,
        "denoise_sparsities": DENOISE_SPARSITIES,
        "rows": rows,
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    print(markdown(rows))


def markdown(rows: list[dict]) -> str:
    """The table for docs/benchmarks.md: each MSE over the best filter's (x1e3 for it)."""
    keys = [k for k in rows[0] if k.startswith(("calcium", "AVAE")) and "seconds" not in k]
    keys = [k for k in keys if "filter" not in k]
    head = "| indicator | noise | filter MSE x1e3 (SD) | " + " | ".join(keys) + " |"
    lines = [head, "|" + "---|" * (3 + len(keys))]
    for r in rows:
        cells = []
        for k in keys:
            base = r.get(f"{k} filter (same half)", r["filter"])
            cells.append(f"{r[k] / base:.2f}")
        lines.append(
            f"| {r['indicator']} | {r['noise']} | {r['filter'] * 1e3:.3f} ({r['filter_sd']:g}) | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
