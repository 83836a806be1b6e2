#!/usr/bin/env bash
# The prepared GPU check of issue 18: simulate a small dataset (CPU), then fit, apply,
# deconvolve and population on the GPU, each timed, with its peak GPU memory
# (torch.cuda.max_memory_allocated, reset before each step) and the process's peak RSS.
# Results go to gpu_check.json and gpu_check.md in the output folder after every step,
# so a run stopped by the time limit keeps what it measured.
#
# Mixed precision where it is safe: fit and apply run with TF32 matrix products (the
# network's float32 weights and losses are unchanged; only matmul inputs are rounded to
# TF32's 10-bit mantissa); deconvolve and population keep full float32/float64, because
# their likelihoods sum thousands of frames and the HMM's forward pass needs float64.
#
# Usage: benchmarks/gpu_check.sh [--device cuda|cpu] [--out DIR] [--size full|tiny]
#   --device  cuda (default) or cpu, to try the script where there is no GPU
#   --out     output folder (default: $OUT if set, else ./gpu_check_results)
#   --size    full (default: 6 sessions x 300 ROIs x 3,600 frames; population on the first)
#             or tiny (3 x 16 ROIs x 160 frames: minutes on a loaded CPU)
# Finishes in under 8 minutes: the whole check runs under `timeout 470`.
set -euo pipefail

device=cuda
size=full
out="${OUT:-gpu_check_results}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$device" in cuda|cuda:*|cpu) ;; *) echo "gpu_check.sh: --device cuda or cpu" >&2; exit 2 ;; esac
case "$size" in full|tiny) ;; *) echo "gpu_check.sh: --size full or tiny" >&2; exit 2 ;; esac

here="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python}"
[[ -x "$here/.venv/bin/python" && -z "${PYTHON:-}" ]] && python="$here/.venv/bin/python"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "gpu_check: device $device, size $size, results in $out" >&2

timeout --signal=INT 470 "$python" - "$device" "$size" "$out" "$work" <<'PY'
import json
import os
import platform
import resource
import sys
import time
from datetime import datetime, timezone

import torch

from napari_calcium_avae import __version__
from napari_calcium_avae.cli import main

device, size, out, work = sys.argv[1:5]
cuda = device.startswith("cuda")
if cuda and not torch.cuda.is_available():
    sys.exit("gpu_check: --device cuda but torch sees no CUDA device; try --device cpu")

if size == "full":
    sim = ["--cultures-per-type", "2", "--neurons", "300", "--duration", "120",
           "--frame-rate", "30"]
    fit = ["--epochs", "30", "--batch-size", "256"]
    states = "3"
else:
    sim = ["--cultures-per-type", "1", "--neurons", "16", "--duration", "8",
           "--frame-rate", "20", "--dish-size", "1.0"]
    fit = ["--epochs", "2", "--hidden-size", "16", "--latent-size", "2", "--batch-size", "16"]
    states = "2"

data, model = os.path.join(work, "data"), os.path.join(work, "model.pt")
report = {
    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "napari-calcium-avae": __version__,
    "size": size,
    "steps": [],
}


def write() -> None:
    with open(os.path.join(out, "gpu_check.json"), "w") as f:
        json.dump(report, f, indent=1)
    lines = [
        f"gpu_check {report['date']}: {report['device']}, torch {report['torch']} "
        f"(CUDA {report['cuda']}), size {size}",
        "",
        "| step | s | peak GPU MiB | peak RSS MiB | TF32 | exit |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for s in report["steps"]:
        gpu = f"{s['peak_gpu_mib']:.0f}" if s["peak_gpu_mib"] is not None else "-"
        lines.append(
            f"| {s['step']} | {s['seconds']:.1f} | {gpu} | {s['peak_rss_mib']:.0f} | "
            f"{'yes' if s['tf32'] else 'no'} | {s['exit']} |"
        )
    with open(os.path.join(out, "gpu_check.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def step(name: str, argv: list[str], tf32: bool, on_device: bool = True) -> None:
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    print(f"gpu_check: {name}: calcium-avae {' '.join(argv)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    code = main(argv)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda and on_device else None
    report["steps"].append({
        "step": name,
        "argv": argv,
        "seconds": seconds,
        "peak_gpu_mib": peak,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tf32": tf32 and cuda,
        "exit": code,
    })
    write()
    if code != 0:
        sys.exit(f"gpu_check: {name} failed (exit {code})")


step("simulate (CPU)", ["simulate", "-o", data, *sim], tf32=False, on_device=False)
step("fit", ["fit", data, "-o", model, "--device", device, *fit], tf32=True)
step("apply", ["apply", model, data, "-o", os.path.join(work, "applied"), "--device", device],
     tf32=True)
step("deconvolve", ["deconvolve", data, "-o", os.path.join(work, "spikes"), "--device", device],
     tf32=False)
# one session: assemblies and the calcium HMM are per recording, and the slowest step
first = sorted(os.listdir(os.path.join(work, "spikes")))[0]
step("population", ["population", os.path.join(work, "spikes", first),
                    "-o", os.path.join(work, "population.nwb"), "--states", states,
                    "--device", device],
     tf32=False)
report["total_seconds"] = sum(s["seconds"] for s in report["steps"])
write()
print(open(os.path.join(out, "gpu_check.md")).read())
PY
