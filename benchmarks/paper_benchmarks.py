"""The paper's benchmarks with any part of the protocol changed from the command line.

`calcium-avae bench` runs the full protocol or the quick one; this script starts from either
and overrides single settings, e.g. one noise level of the full sweep on a GPU:

    python benchmarks/paper_benchmarks.py -o bench-full --noise-levels 1 --device cuda
    python benchmarks/paper_benchmarks.py -o bench-b --quick --architectures released

Results go where `calcium-avae bench` puts them (runs.csv, bench_*.png, summary.md).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from napari_calcium_avae.bench import BenchSettings, run_bench


def _sizes(text: str) -> tuple[tuple[int, int], ...]:
    """'32x2,128x8' -> ((32, 2), (128, 8))"""
    pairs = [item.split("x") for item in text.split(",")]
    return tuple((int(d1), int(d2)) for d1, d2 in pairs)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-o", "--output", type=Path, default=Path("bench-output"))
    p.add_argument("--quick", action="store_true", help="start from the quick protocol")
    p.add_argument("--device", default="auto")
    p.add_argument("--noise-levels", type=_floats, help="e.g. 0.5,1,2.5")
    p.add_argument("--partitions", type=int)
    p.add_argument("--architectures", type=lambda t: tuple(t.split(",")))
    p.add_argument("--sizes", type=_sizes, help="(D1, D2) pairs, e.g. 32x2,128x8")
    p.add_argument("--betas", type=_floats, help="e.g. 0,0.5,1")
    p.add_argument("--timing-channels", type=int, help="0 (default): the paper's model")
    p.add_argument("--cultures-per-type", type=int)
    p.add_argument("--frame-rate", type=float)
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int)
    args = vars(p.parse_args())
    output, quick, device = args.pop("output"), args.pop("quick"), args.pop("device")
    base = BenchSettings.quick() if quick else BenchSettings()
    settings = replace(base, **{k: v for k, v in args.items() if v is not None})
    run_bench(output, device=device, settings=settings)


if __name__ == "__main__":
    main()
