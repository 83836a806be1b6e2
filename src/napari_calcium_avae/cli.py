"""The ``calcium-avae`` command: a thin layer over the library.

Every sub-command parses its options, calls library functions and prints. Problems the user
can fix end with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .citation import PAPER
from .errors import CalciumAvaeError, CalciumAvaeWarning
from .progress import progress_callback, show_epochs

EXIT_USAGE = 2


def _nwb_inputs(inputs: Sequence[str]) -> list[Path]:
    """NWB files named directly or found (recursively) in the named folders."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(path.rglob("*.nwb"))
            if not found:
                raise CalciumAvaeError(f"no .nwb files in folder {path}")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise CalciumAvaeError(f"no such file or folder: {path}")
    return files


def _read_all(files: Sequence[Path], series: str | None) -> list:
    from .nwb import read_traces

    return [read_traces(f, series=series) for f in files]


# --- sub-commands ---------------------------------------------------------------------


def cmd_inspect(args: argparse.Namespace) -> None:
    from .nwb.read import list_series, no_series_message

    infos = list_series(args.file)
    if not infos:
        raise CalciumAvaeError(no_series_message(args.file))
    print(f"{args.file}: {len(infos)} RoiResponseSeries")
    for info in infos:
        rate = f"{info.rate:g} Hz" if info.rate else "irregular timestamps"
        mark = "*" if info.is_default else " "
        print(
            f" {mark} {info.path}  {info.n_rois} ROIs x {info.n_frames} frames, "
            f"{rate}, unit {info.unit}"
        )
    print("(* = default series; choose another with --series PATH)")


def cmd_simulate(args: argparse.Namespace) -> None:
    from dataclasses import fields

    from .simulate import SimulationSettings, simulate_dataset

    values = {f.name: getattr(args, f.name) for f in fields(SimulationSettings)}
    for f in fields(SimulationSettings):
        if "none_as" in f.metadata and values[f.name] == f.metadata["none_as"]:
            values[f.name] = None
    paths = simulate_dataset(
        args.output, SimulationSettings(**values), progress=progress_callback("simulating")
    )
    print(f"wrote {len(paths)} NWB session(s) under {args.output}")


def _model_from_args(args: argparse.Namespace):
    from .model import AVAE

    return AVAE(
        hidden_size=args.hidden_size,
        latent_size=args.latent_size,
        beta=args.beta,
        architecture=args.architecture,
        timing_channels=args.timing_channels,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        patience=args.patience,
        normalisation=args.normalisation,
        device=args.device,
        random_state=args.seed,
    )


def cmd_fit(args: argparse.Namespace) -> None:
    from . import pipeline

    files = _nwb_inputs(args.inputs)
    recordings = _read_all(files, args.series)
    model = _model_from_args(args)
    n_rois = sum(t.n_rois for t in recordings)
    print(f"training on {n_rois} ROIs from {len(files)} file(s)", file=sys.stderr)
    epochs = pipeline.fit_iter(model, recordings)
    interrupted = False
    try:
        show_epochs(epochs, args.epochs)
    except KeyboardInterrupt:
        # closing the generator puts the best weights back: keep what was learned
        epochs.close()
        interrupted = True
    if not getattr(model, "history_", None):
        raise KeyboardInterrupt  # stopped before one epoch was done: nothing to keep
    model.save(args.output)
    how = "interrupted; " if interrupted else ""
    print(f"saved model to {args.output} ({how}best epoch {model.best_epoch_})")


def _output_paths(files: Sequence[Path], output: Path) -> list[Path]:
    """One result file per input: OUTPUT itself for one input named *.nwb, else a folder."""
    from .nwb import result_path

    if len(files) == 1 and output.suffix == ".nwb":
        return [output]
    outs = [result_path(f, output) for f in files]
    if len(set(outs)) != len(outs):
        raise CalciumAvaeError("several inputs share a file name; give inputs with distinct names")
    return outs


def cmd_apply(args: argparse.Namespace) -> None:
    from . import pipeline
    from .model import load_model
    from .nwb import write_results

    files = _nwb_inputs(args.inputs)
    outputs = _output_paths(files, Path(args.output)) if not args.in_place else files
    model = load_model(args.model, device=args.device)
    recordings = _read_all(files, args.series)
    eps = args.eps if args.eps == "auto" else _positive_float(args.eps, "--eps")
    embedding = None if args.embedding == "none" else args.embedding
    results = pipeline.apply(
        model, recordings, eps=eps, min_samples=args.min_samples, embedding=embedding
    )
    for traces, result, out in zip(recordings, results, outputs, strict=True):
        if not args.in_place:
            out.parent.mkdir(parents=True, exist_ok=True)
        written = write_results(traces, result, out, in_place=args.in_place)
        n_clusters = len(set(result.labels[result.labels >= 0].tolist()))
        noise = int((result.labels < 0).sum())
        print(f"{written}: {traces.n_rois} ROIs, {n_clusters} cluster(s), {noise} noise")


def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(Path(args.output), quick=args.quick)


def cmd_bench(args: argparse.Namespace) -> None:
    from .bench import run_bench

    run_bench(Path(args.output), quick=args.quick, device=args.device)


def _positive_float(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CalciumAvaeError(f"{name} must be 'auto' or a number, got {text!r}") from None
    if not value > 0:
        raise CalciumAvaeError(f"{name} must be positive, got {text}")
    return value


# --- the parser -----------------------------------------------------------------------


def _add_model_options(p: argparse.ArgumentParser) -> None:
    """The AVAE's options; defaults and choices come from the estimator itself."""
    from .model import AVAE
    from .model.architectures import ARCHITECTURES, TimingPath
    from .model.estimator import NORMALISATIONS

    defaults = AVAE().get_params()
    g = p.add_argument_group("model")
    g.add_argument("--device", default=defaults["device"], help="auto, cpu, cuda, cuda:N or mps")
    g.add_argument("--architecture", choices=ARCHITECTURES, default=defaults["architecture"])
    g.add_argument(
        "--hidden-size", type=int, default=defaults["hidden_size"], help="D1 (default %(default)s)"
    )
    g.add_argument(
        "--latent-size", type=int, default=defaults["latent_size"], help="D2 (default %(default)s)"
    )
    g.add_argument(
        "--beta", type=float, default=defaults["beta"], help="KL weight (default %(default)s)"
    )
    g.add_argument(
        "--timing-channels",
        type=int,
        default=defaults["timing_channels"],
        help=f"timing latents per {TimingPath.STRIDE} frames, which let reconstructions "
        "denoise; 0 is the paper's model (default %(default)s)",
    )
    g.add_argument("--learning-rate", type=float, default=defaults["learning_rate"])
    g.add_argument("--batch-size", type=int, default=defaults["batch_size"])
    g.add_argument(
        "--epochs",
        type=int,
        default=defaults["max_epochs"],
        help="maximum epochs (default %(default)s)",
    )
    g.add_argument(
        "--patience", type=int, default=defaults["patience"], help="early-stopping patience"
    )
    g.add_argument("--normalisation", choices=NORMALISATIONS, default=defaults["normalisation"])
    g.add_argument("--seed", type=int, default=defaults["random_state"])


def _add_simulation_options(p: argparse.ArgumentParser) -> None:
    """One option per field of SimulationSettings, with its flag, help, unit and default."""
    from dataclasses import fields

    from .simulate import SimulationSettings

    g = p.add_argument_group("simulation")
    for f in fields(SimulationSettings):
        meta, default = f.metadata, f.default
        unit = f" {meta['unit']}" if meta["unit"] else ""
        if isinstance(default, bool):
            g.add_argument(meta["flag"], dest=f.name, action="store_true", help=meta["help"])
        elif isinstance(default, tuple):
            g.add_argument(
                meta["flag"],
                dest=f.name,
                nargs="+",
                type=type(default[0]),
                choices=meta.get("choices"),
                default=list(default),
                help=f"{meta['help']} (default {' '.join(map(str, default))}{unit})",
            )
        else:
            g.add_argument(
                meta["flag"],
                dest=f.name,
                type=type(default),
                default=default,
                help=f"{meta['help']} (default %(default)s{unit})",
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="calcium-avae",
        description="Learn single-neuron representations from calcium imaging (NWB in, NWB out).",
        epilog=f"Method: {PAPER}.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("inspect", help="list the RoiResponseSeries of an NWB file")
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("simulate", help="simulate Izhikevich cultures into NWB sessions")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder (DANDI layout)")
    _add_simulation_options(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("fit", help="train a model on NWB files or folders")
    p.add_argument("inputs", nargs="+", help="NWB files or folders")
    p.add_argument("-o", "--output", type=Path, required=True, help="model checkpoint file")
    p.add_argument("--series", help="RoiResponseSeries path (default: see inspect)")
    _add_model_options(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("apply", help="encode, denoise and cluster; write results to NWB")
    p.add_argument("model", type=Path, help="checkpoint written by fit")
    p.add_argument("inputs", nargs="+", help="NWB files or folders")
    p.add_argument("-o", "--output", type=Path, help="result file (one input) or folder (several)")
    p.add_argument("--in-place", action="store_true", help="append results to the inputs")
    p.add_argument("--series", help="RoiResponseSeries path (default: see inspect)")
    p.add_argument("--eps", default="auto", help="DBSCAN eps: 'auto' (k-distance knee) or a value")
    p.add_argument("--min-samples", type=int, default=5)
    p.add_argument("--embedding", choices=["tsne", "pca", "none"], default="tsne")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("demo", help="simulate, fit, apply and score against PCA (minutes)")
    p.add_argument("-o", "--output", type=Path, default=Path("demo-output"))
    p.add_argument("--quick", action="store_true", help="a smaller run, for tests")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="the paper's benchmarks: MSE and ARI against PCA")
    p.add_argument("-o", "--output", type=Path, default=Path("bench-output"))
    p.add_argument("--quick", action="store_true", help="reduced protocol (<= 30 min on CPU)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_bench)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "apply" and not args.in_place and args.output is None:
        parser.error("apply needs -o OUTPUT (or --in-place)")
    warnings.showwarning = _one_line_warning
    warnings.simplefilter("always", CalciumAvaeWarning)
    try:
        args.func(args)
    except CalciumAvaeError as exc:
        print(f"calcium-avae: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("calcium-avae: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
