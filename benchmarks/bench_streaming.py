"""Out-of-core training: peak memory and time per epoch against the number of sessions.

Issue 18's target is a fit on 200 sessions x 500 ROIs x 15,000 frames within 4 GB of
peak memory, whatever the number of sessions, at a cost growing linearly with the data.
This script writes synthetic sessions as NWB files (calcium-like traces, chunked as
neuroconv writes them: 2,000 frames x 64 ROIs), then fits a model on the first N of them
for each N (``--model avae``, the paper's AVAE with the timing path, or ``--model crop``,
the crop-feature VAE, which reads each trace once for its features and then trains on
them; with ``--apply``, runs ``calcium-avae apply`` of a briefly trained one instead),
each in a fresh Python process that reports its own peak RSS
(its own high-water mark, VmHWM, and, with DataLoader workers, its children's) and the wall
and CPU time of each epoch (CPU time, which other processes on a shared machine disturb
less, is what the figure shows). ``--mode stream`` reads through ``NWBTraceDataset``;
``--mode memory`` reads every session into memory first, as ``calcium-avae fit`` does
without ``--stream``; ``--mode both`` runs the two side by side.

    python benchmarks/bench_streaming.py --sessions 5 10 20 40 --memory-max 20 \
        --rois 500 --frames 15000 --json out.json --plot streaming.png

Results go to a JSON file (``--json``) and, with ``--plot``, a PNG of peak RSS and
CPU seconds per epoch against the number of sessions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

CHUNK_FRAMES, CHUNK_ROIS = 2000, 64


def synthetic(n_rois: int, n_frames: int, seed: int = 0):
    """Calcium-like traces (ROIs x frames, float32): Poisson spikes at 0.05-1 Hz (30 Hz
    frames) through an exponential decay of 0.2-1.5 s, plus Gaussian noise."""
    import numpy as np
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    rate = rng.uniform(0.05, 1.0, (n_rois, 1)) / 30
    spikes = rng.poisson(rate, (n_rois, n_frames)).astype(np.float64)
    decay = np.exp(-1 / (30 * rng.uniform(0.2, 1.5, n_rois)))
    calcium = np.stack([lfilter([1.0], [1.0, -d], s) for d, s in zip(decay, spikes, strict=True)])
    noisy = calcium + rng.normal(0, 1, calcium.shape) * rng.uniform(0.1, 0.4, (n_rois, 1))
    return noisy.astype(np.float32)


def write_session(path: Path, traces, rate: float = 30.0) -> Path:
    """One NWB session holding ``traces`` (ROIs x frames) as its RoiResponseSeries, with a
    one-pixel mask per ROI, chunked in CHUNK_FRAMES x CHUNK_ROIS blocks."""
    import numpy as np
    from pynwb import NWBHDF5IO, H5DataIO
    from pynwb.ophys import Fluorescence, RoiResponseSeries

    from synthetic_nwb import ophys_scaffold

    warnings.filterwarnings("ignore", message="The linked table for DynamicTableRegion")
    n_rois, n_frames = traces.shape
    nwbfile, ophys, ps = ophys_scaffold("streaming benchmark session", rate, subject_id="s")
    side = int(np.ceil(np.sqrt(n_rois)))
    for i in range(n_rois):
        ps.add_roi(pixel_mask=[(i % side, i // side, 1.0)])
    region = ps.create_roi_table_region(region=list(range(n_rois)), description="all")
    chunks = (min(n_frames, CHUNK_FRAMES), min(n_rois, CHUNK_ROIS))
    series = RoiResponseSeries(
        name="RoiResponseSeries",
        data=H5DataIO(np.ascontiguousarray(traces.T), chunks=chunks),
        rois=region,
        unit="a.u.",
        rate=rate,
    )
    ophys.add(Fluorescence(name="Fluorescence", roi_response_series=series))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


def write_sessions(folder: Path, n: int, n_rois: int, n_frames: int) -> list[Path]:
    """``n`` sessions in ``folder`` (kept when they exist: reruns reuse them)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"session_{i:03d}.nwb"
        if not path.exists():
            tmp = path.with_name(f".{path.name}")  # hidden until whole
            write_session(tmp, synthetic(n_rois, n_frames, seed=i))
            tmp.replace(path)
        paths.append(path)
    return paths


def _child(args: argparse.Namespace) -> None:
    """One fit in this process; prints a JSON line with peak RSS and epoch times."""
    import torch

    from napari_calcium_avae import pipeline
    from napari_calcium_avae.model import AVAE, CropFeatureVAE

    torch.set_num_threads(1)
    files = [Path(p) for p in args.files]
    if args.apply_model:
        _child_apply(args, files)
        return
    kind = AVAE if args.model == "avae" else CropFeatureVAE
    model = kind(max_epochs=args.epochs, patience=args.epochs, device="cpu", random_state=0)
    start = time.perf_counter()
    if args.mode == "stream":
        from napari_calcium_avae.model.streaming import NWBTraceDataset

        data = NWBTraceDataset(files, num_workers=args.workers)
    else:
        from napari_calcium_avae.nwb import read_traces

        data = [read_traces(f) for f in files]
    loaded = time.perf_counter() - start
    epochs = []
    tick, cpu = time.perf_counter(), time.process_time()
    first_cpu = cpu
    for report in pipeline.fit_iter(model, data):
        now, cpu_now = time.perf_counter(), time.process_time()
        epochs.append({"seconds": now - tick, "cpu": cpu_now - cpu, "val_loss": report.val_loss})
        tick, cpu = now, cpu_now
    me = _own_peak_mib()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    fit_cpu = time.process_time() - first_cpu
    print(
        json.dumps(
            {
                "load_s": loaded,
                "epochs": epochs,
                "fit_cpu": fit_cpu,
                "peak_mib": me,
                "workers_mib": kids,
            }
        )
    )


def _child_apply(args: argparse.Namespace, files: list[Path]) -> None:
    """``calcium-avae apply`` of the files in this process (``--stream`` in stream mode),
    reported in the fit's format: one "epoch", the whole apply."""
    from napari_calcium_avae.cli import main as cli

    stream = ["--stream"] if args.mode == "stream" else []
    with tempfile.TemporaryDirectory() as out:
        tick, cpu = time.perf_counter(), time.process_time()
        command = ["apply", args.apply_model, *map(str, files), "-o", out, *stream]
        code = cli([*command, "--embedding", "pca"])  # t-SNE's cost is not the point here
        seconds, cpu = time.perf_counter() - tick, time.process_time() - cpu
    if code != 0:
        raise SystemExit(f"apply exited with {code}")
    epochs = [{"seconds": seconds, "cpu": cpu, "val_loss": float("nan")}]
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    report = {"load_s": 0.0, "epochs": epochs, "fit_cpu": cpu, "peak_mib": _own_peak_mib()}
    print(json.dumps({**report, "workers_mib": kids}))


def apply_model(folder: Path, kind: str, first: Path) -> Path:
    """A model to apply, trained briefly on the first session (kept for reruns)."""
    from napari_calcium_avae.model import AVAE, CropFeatureVAE
    from napari_calcium_avae.nwb import read_traces

    path = folder / f"apply_model_{kind}.pt"
    if not path.exists():
        traces = read_traces(first)
        if kind == "avae":
            model = AVAE(max_epochs=1, device="cpu", random_state=0)
        else:
            model = CropFeatureVAE(frame_rate=traces.rate, max_epochs=5, device="cpu")
        model.fit(traces.data).save(path)
    return path


def _own_peak_mib() -> float:
    """This process's peak resident memory, MiB. On Linux the high-water mark of its own
    address space (VmHWM): ``getrusage``'s ru_maxrss survives exec, so a fit started by
    a parent that once held more (writing the sessions) would report the parent's peak."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tree_pss_mib(pid: int) -> float:
    """Proportional set size of a process and its descendants (Linux /proc), MiB: pages
    a forked DataLoader worker shares with its parent count once, unlike RSS."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue  # it ended meanwhile
    return total / 1024


def run_fit(
    mode: str, files: list[Path], epochs: int, workers: int, model: str, applied: Path | None
) -> dict:
    """One fit (or, with ``applied``, an apply of that model) in a fresh interpreter (one
    OpenMP thread); its own report, plus the peak PSS of its process tree sampled every
    0.2 s (Linux; None elsewhere)."""
    command = [sys.executable, __file__, "--child", "--mode", mode, "--epochs", str(epochs)]
    command += ["--model", model, *(["--apply-model", str(applied)] if applied else [])]
    command += ["--workers", str(workers), "--files", *map(str, files)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    pss = 0.0
    sampled = Path("/proc/self/smaps_rollup").exists()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        while sampled and child.poll() is None:
            pss = max(pss, _tree_pss_mib(child.pid))
            time.sleep(0.2)
        child.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if child.returncode != 0:
        raise SystemExit(f"{mode} fit of {len(files)} sessions failed:\n{stderr[-3000:]}")
    report = json.loads(stdout.strip().splitlines()[-1])
    report["wall_s"] = time.perf_counter() - start
    report["pss_mib"] = round(pss, 1) if sampled else None
    return report


def plot(results: list[dict], path: Path, title: str) -> None:
    """Peak RSS and CPU seconds per epoch (the AVAE) or per fit (the crop-feature VAE,
    features included) against the number of sessions, per mode."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax_mem, ax_time = fig.subplots(1, 2)
    for mode, style in (("stream", "o-"), ("memory", "s--")):
        rows = sorted((r for r in results if r["mode"] == mode), key=lambda r: r["sessions"])
        if not rows:
            continue
        n = [r["sessions"] for r in rows]
        label = "streamed (NWBTraceDataset)" if mode == "stream" else "in memory"
        ax_mem.plot(n, [r["peak_mib"] for r in rows], style, label=label)
        per_fit = rows[0].get("model") == "crop" or rows[0].get("task") == "apply"
        cost = [r["fit_cpu_s"] if per_fit else r["epoch_cpu_s"] for r in rows]
        ax_time.plot(n, cost, style, label=label)
    ax_mem.set(xlabel="sessions", ylabel="peak RSS (MiB)", title="peak memory")
    ax_mem.set_ylim(bottom=0)
    first = results[0] if results else {}
    what = first.get("task", "fit") if first.get("model") == "crop" else "epoch"
    what = "apply" if first.get("task") == "apply" else what
    ax_time.set(xlabel="sessions", ylabel=f"CPU s per {what}", title=f"cost per {what}")
    ax_time.set_ylim(bottom=0)
    for ax in (ax_mem, ax_time):
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[5, 10, 20, 40])
    parser.add_argument("--rois", type=int, default=100, help="ROIs per session")
    parser.add_argument("--frames", type=int, default=3000, help="frames per session")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (stream)")
    parser.add_argument("--mode", choices=("stream", "memory", "both"), default="both")
    parser.add_argument(
        "--model", choices=("avae", "crop"), default="avae", help="avae, or the crop-feature VAE"
    )
    parser.add_argument(
        "--memory-max", type=int, help="in-memory fits only up to this many sessions"
    )
    parser.add_argument("--data", type=Path, help="folder for the sessions (default: temp)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write the figure here (PNG)")
    parser.add_argument(
        "--replot", type=Path, nargs="+", help="only draw --plot from these --json files"
    )
    parser.add_argument(
        "--apply",
        action="store_true",
        help="measure calcium-avae apply (in memory, and --stream) instead of fit",
    )
    parser.add_argument("--apply-model", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--files", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return 0
    if args.replot:
        runs = [json.loads(p.read_text()) for p in args.replot]
        results = [r for run in runs for r in run["results"]]
        for r in results:  # files of the first version added the helper process's peak
            if "workers_mib" in r:
                r["children_mib"] = r.pop("workers_mib")
                r["peak_mib"] = round(r["peak_mib"] - r["children_mib"], 1)
        plot(results, args.plot, f"{args.rois} ROIs x {args.frames:,} frames per session")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data or Path(tmp) / f"sessions_{args.rois}x{args.frames}"
        files = write_sessions(folder, max(args.sessions), args.rois, args.frames)
        modes = ("stream", "memory") if args.mode == "both" else (args.mode,)
        applied = apply_model(folder, args.model, files[0]) if args.apply else None
        results = []
        print(
            "mode    sessions  ROIs   peak MiB  load s  s/epoch  CPU s/epoch  CPU s/fit  val loss"
        )
        for n in args.sessions:
            for mode in modes:
                if mode == "memory" and args.memory_max is not None and n > args.memory_max:
                    continue
                report = run_fit(mode, files[:n], args.epochs, args.workers, args.model, applied)
                seconds = sorted(e["seconds"] for e in report["epochs"])
                cpu = sorted(e["cpu"] for e in report["epochs"])
                row = {
                    "task": "apply" if args.apply else "fit",
                    "model": args.model,
                    "mode": mode,
                    "sessions": n,
                    "rois": n * args.rois,
                    "frames": args.frames,
                    # a DataLoader worker's peak counts once per worker (an upper bound);
                    # without workers, the children are not the fit's (importing pynwb
                    # starts a helper process), so only the process itself counts
                    "peak_mib": round(report["peak_mib"] + args.workers * report["workers_mib"], 1),
                    "children_mib": round(report["workers_mib"], 1),
                    "tree_pss_mib": report["pss_mib"],
                    "load_s": round(report["load_s"], 2),
                    "epoch_s": round(seconds[len(seconds) // 2], 2),
                    "epoch_cpu_s": round(cpu[len(cpu) // 2], 2),
                    "fit_cpu_s": round(report["fit_cpu"], 2),
                    "val_loss": round(report["epochs"][-1]["val_loss"], 3),
                    "load_average": round(os.getloadavg()[0], 1),
                }
                results.append(row)
                print(
                    f"{mode:7s} {n:8d} {row['rois']:5d} {row['peak_mib']:10.0f} "
                    f"{row['load_s']:7.2f} {row['epoch_s']:8.2f} {row['epoch_cpu_s']:12.2f} "
                    f"{row['fit_cpu_s']:10.2f}  "
                    f"{row['val_loss']:.3f}",
                    flush=True,
                )
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}"
    out = {"command": " ".join(sys.argv), "machine": machine, "results": results}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    if args.plot:
        title = f"{args.rois} ROIs x {args.frames:,} frames per session, {args.epochs} epochs"
        plot(results, args.plot, title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
