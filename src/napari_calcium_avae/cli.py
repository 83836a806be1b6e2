"""The ``calcium-avae`` command: a thin layer over the library.

Every sub-command parses its options, calls library functions and prints. Problems the user
can fix end with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from .citation import PAPER
from .errors import CalciumAvaeError, CalciumAvaeWarning
from .files import check_free_space, check_modifiable, interrupts_held
from .progress import progress_callback, show_epochs

if TYPE_CHECKING:
    from .spikes import SpikeInference

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _nwb_inputs(inputs: Sequence[str], *, include_results: bool = False) -> list[Path | str]:
    """NWB files named directly or found (recursively) in the named folders, and URLs.

    Folder searches skip hidden files and folders (where interrupted runs leave their
    temporary files) and, unless ``include_results``, result files (``*_avae.nwb``),
    which hold the recording they were made from. A file given twice is an error. A URL
    (http(s), s3, DANDI; see nwb.remote) stays a str, read lazily; a DANDI folder or
    dandiset URL gives each of its .nwb assets.
    """
    from .nwb.remote import is_url, resolve
    from .nwb.write import RESULT_SUFFIX, is_result_file

    files: list[Path | str] = []
    skipped = 0
    for item in inputs:
        if is_url(item):
            files.extend(resolve(item))
            continue
        path = Path(item)
        if path.is_dir():
            found = [
                f
                for f in sorted(path.rglob("*.nwb"))
                if not any(part.startswith(".") for part in f.relative_to(path).parts)
            ]
            kept = [f for f in found if include_results or not is_result_file(f)]
            skipped += len(found) - len(kept)
            if not kept:
                why = " (only result files: add --include-results)" if found else ""
                raise CalciumAvaeError(f"no .nwb recordings in folder {path}{why}")
            files.extend(kept)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise CalciumAvaeError(f"{path} is neither a file nor a folder")
        else:
            raise CalciumAvaeError(f"no such file or folder: {path}")
    if skipped:
        print(
            f"skipped {skipped} result file(s) (*{RESULT_SUFFIX}) found in folders; "
            "--include-results takes them as recordings",
            file=sys.stderr,
        )
    first: dict[Path | str, Path | str] = {}
    for f in files:
        key = str(f) if isinstance(f, str) else f.resolve()
        if key in first:
            raise CalciumAvaeError(f"{f} is given twice (also as {first[key]})")
        first[key] = f
    return files


def _read_all(files: Sequence[Path | str], series: str | None) -> list:
    """The recordings; two files holding the same recording are an error, since training
    and joint clustering would count its ROIs twice."""
    from .nwb import read_traces

    recordings = [read_traces(f, series=series) for f in files]
    seen: dict[str, Path | str] = {}
    for f, traces in zip(files, recordings, strict=True):
        other = seen.setdefault(traces.fingerprint(), f)
        if other != f:
            raise CalciumAvaeError(
                f"{other} and {f} hold the same recording (one may be a result file of the "
                "other); give each recording once"
            )
    return recordings


def _check_writable(folder: Path) -> None:
    """The folder (or, if it does not exist yet, its nearest existing parent) is writable."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        where = "" if existing == folder else f", so the folder {folder} cannot be made"
        raise CalciumAvaeError(f"{existing} is a file{where}; give a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CalciumAvaeError(f"cannot write to the folder {existing}")
    check_free_space(existing, 0)  # a nearly full disk: say so before any work


def _check_local(path: Path) -> None:
    """Outputs are local files: -o with a URL (which argparse made a Path) is refused."""
    import re

    if re.match(r"(https?|s3|dandi):/", str(path), flags=re.IGNORECASE):
        raise CalciumAvaeError(f"-o {path} looks like a URL; outputs are local: give a local path")


def _check_new_file(
    path: Path, inputs: Sequence[Path | str], *, overwrite: bool, what: str
) -> None:
    """Refuse, before any work, an output that is a folder, an input or (without
    --overwrite) an existing file, or that sits in a folder we cannot write."""
    _check_local(path)
    if path.is_dir():
        raise CalciumAvaeError(f"{path} is a folder; give a file name for the {what}")
    if any(not isinstance(f, str) and path.resolve() == f.resolve() for f in inputs):
        raise CalciumAvaeError(f"{path} is one of the inputs; write the {what} to another file")
    if path.exists() and not overwrite:
        raise CalciumAvaeError(f"{path} exists; choose another name or overwrite (--overwrite)")
    _check_writable(path.parent)


def _clean_folders(folders: Iterable[Path]) -> None:
    """Remove what interrupted runs left in the folders we are about to write to."""
    from .files import remove_stale_temporaries

    removed = [p for folder in set(folders) for p in remove_stale_temporaries(folder)]
    if removed:
        print(f"removed {len(removed)} temporary file(s) of interrupted runs", file=sys.stderr)


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
    from .simulate.settings import check_resources

    values = {f.name: getattr(args, f.name) for f in fields(SimulationSettings)}
    for f in fields(SimulationSettings):
        if "none_as" in f.metadata and values[f.name] == f.metadata["none_as"]:
            values[f.name] = None
    settings = SimulationSettings(**values)
    check_resources(settings)
    _check_writable(args.output)
    _clean_folders(p for p in (args.output, *args.output.glob("sub-*")) if p.is_dir())
    print(
        f"simulating {settings.n_cultures} culture(s) of {settings.neurons_per_dish:,} neurons "
        f"for {settings.duration_s:g} s: about {_duration(settings.estimated_seconds())}, "
        f"{settings.peak_memory_bytes() / 1e6:,.0f} MB of memory",
        file=sys.stderr,
    )
    paths = simulate_dataset(
        args.output,
        settings,
        progress=progress_callback("simulating", unit="culture"),
        overwrite=args.overwrite,
    )
    print(f"wrote {len(paths)} NWB session(s) under {args.output}")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:,.1f} h"


def _model_from_args(args: argparse.Namespace):
    """The chosen model with the options given; an option of the other model is an error."""
    from .model import MODELS

    cls = MODELS[args.model]
    known = cls().get_params()
    params = {}
    for dest, param in MODEL_OPTIONS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if param not in known:
            other = next(name for name, c in MODELS.items() if param in c().get_params())
            raise CalciumAvaeError(
                f"--{dest.replace('_', '-')} is an option of --model {other}, "
                f"not of --model {args.model}"
            )
        params[param] = value
    return cls(**params)


def resume_path(output: Path) -> Path:
    """The training checkpoint that fit keeps beside its model file, for --resume."""
    return output.with_name(output.name + ".resume")


def cmd_fit(args: argparse.Namespace) -> None:
    from . import pipeline
    from .model import distributed
    from .model.device import resolve_device

    files = _nwb_inputs(args.inputs, include_results=args.include_results)
    if not args.stream and (args.workers is not None or args.shuffle_buffer is not None):
        raise CalciumAvaeError("--workers and --shuffle-buffer are options of --stream")
    if not args.stream and args.mismatched == "skip":
        raise CalciumAvaeError("--mismatched skip needs --stream (in memory they are an error)")
    state = resume_path(args.output)
    if args.resume and args.checkpoint_every == 0:
        raise CalciumAvaeError("--resume needs training checkpoints; drop --checkpoint-every 0")
    if args.resume and args.output.is_file() and not state.exists():
        print(f"{args.output} is complete (no {state.name} beside it); nothing to resume")
        return
    if not args.resume and not args.overwrite and state.exists():
        raise CalciumAvaeError(
            f"{state} holds the training state of an earlier run; continue it with --resume "
            "(to more --epochs after an interruption), or start afresh with --overwrite"
        )
    _check_new_file(args.output, files, overwrite=args.overwrite or args.resume, what="model")
    model = _model_from_args(args)
    resumable = hasattr(model, "set_checkpoint")  # the AVAE's training loop
    if not resumable:
        if args.resume:
            raise CalciumAvaeError(
                "--resume is for --model avae; the crop-feature VAE reads each trace once "
                "for its features and trains in seconds to minutes"
            )
        if args.workers is not None or args.shuffle_buffer is not None:
            raise CalciumAvaeError(
                "--workers and --shuffle-buffer are for --model avae; the crop-feature VAE "
                "streams each file once, in order, for its features"
            )
    elif args.checkpoint_every:
        model.set_checkpoint(state, every=args.checkpoint_every, resume=args.resume)
    with distributed.process_group(resolve_device(model.device)) as group:
        if group is not None and not resumable:
            raise CalciumAvaeError("distributed training (torchrun) is for --model avae")
        main = group is None or group.rank == 0
        if args.stream:
            from .model.streaming import NWBTraceDataset

            recordings = NWBTraceDataset(
                files,
                args.series,
                shuffle_buffer=args.shuffle_buffer or 2048,
                num_workers=args.workers or 0,
                mismatched=args.mismatched,
            )
            n_rois, n_files = recordings.n_rois, len(recordings.sessions)
        else:
            recordings = _read_all(files, args.series)
            n_rois, n_files = sum(t.n_rois for t in recordings), len(files)
        if main:
            ranks = f" on {group.world_size} ranks" if group is not None else ""
            how = ", streamed" if args.stream else ""
            print(f"training on {n_rois} ROIs from {n_files} file(s){ranks}{how}", file=sys.stderr)
        done = 0
        if main and args.resume and state.exists():
            from .model.checkpoint import read_resume_checkpoint

            done = int(read_resume_checkpoint(state).state.get("epoch", 0))
            print(f"continuing the training run in {state} after epoch {done}", file=sys.stderr)
        epochs = pipeline.fit_iter(model, recordings)
        interrupted = False
        try:
            if main:
                show_epochs(epochs, model.max_epochs)
            else:
                for _ in epochs:
                    pass
        except KeyboardInterrupt:
            # closing the generator puts the best weights back: keep what was learned
            epochs.close()
            interrupted = True
        except distributed.Terminated as error:
            raise CalciumAvaeError(f"{error}{_resumable(state)}") from None
        except RuntimeError as error:
            if group is None or not _lost_a_rank(error):
                raise
            raise CalciumAvaeError(
                f"rank {group.rank}: another rank of the run stopped ({_first_line(error)})"
                f"{_resumable(state)}"
            ) from None
        if not main:
            return
        if not getattr(model, "history_", None):
            raise KeyboardInterrupt  # stopped before one epoch was done: nothing to keep
        _clean_folders([args.output.parent] if args.output.parent.is_dir() else [])
        with interrupts_held() as received:
            model.save(args.output, overwrite=args.overwrite or args.resume)
        how = "interrupted; " if interrupted or received else ""
        print(f"saved model to {args.output} ({how}best epoch {model.best_epoch_})")


def _resumable(state: Path) -> str:
    return f"; {state} resumes the run (--resume)" if state.exists() else ""


def _lost_a_rank(error: RuntimeError) -> bool:
    """A collective that failed because another rank is gone (gloo and NCCL say so in
    their messages; torch raises DistError subclasses or plain RuntimeErrors)."""
    import torch.distributed as dist

    text = str(error).lower()
    return isinstance(error, dist.DistError) or any(
        word in text for word in ("connection closed", "connection reset", "gloo", "nccl")
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    if text.startswith("[") and "] " in text:  # gloo's source location: not for users
        text = text.split("] ", 1)[1]
    return text.splitlines()[0].split(". ")[0][:200] if text else type(error).__name__


def _output_paths(files: Sequence[Path | str], output: Path | None, in_place: bool) -> list[Path]:
    """One result file per input: the inputs themselves in place, OUTPUT itself for one
    input and a name ending in .nwb, else files named after the inputs in folder OUTPUT
    (a URL input is named after its file name; outputs are always local)."""
    from .nwb import result_path
    from .nwb.remote import file_name

    if in_place:
        if output is not None:
            raise CalciumAvaeError(
                "--in-place writes into the inputs: drop -o, or drop --in-place to write new files"
            )
        remote = [f for f in files if isinstance(f, str)]
        if remote:
            raise CalciumAvaeError(
                f"{remote[0]} is remote: --in-place cannot write into it; give -o a local folder"
            )
        return [Path(f) for f in files]
    assert output is not None  # main() asks for one
    _check_local(output)
    if output.suffix == ".nwb" and not output.is_dir():
        if len(files) > 1:
            raise CalciumAvaeError(
                f"-o {output} names one file for {len(files)} inputs; give a folder, which "
                "gets one result file per input"
            )
        return [output]
    if output.exists() and not output.is_dir():
        raise CalciumAvaeError(f"{output} is a file; give a folder for the result files")
    outs = [result_path(file_name(f) if isinstance(f, str) else f, output) for f in files]
    if len(set(outs)) != len(outs):
        raise CalciumAvaeError("several inputs share a file name; give inputs with distinct names")
    return outs


def _result_outputs(args: argparse.Namespace, files: Sequence[Path | str]) -> list[Path]:
    """apply's and deconvolve's result files, each checked before any work starts; with
    --resume an existing one is checked later, against the results it should hold."""
    outputs = _output_paths(files, args.output, args.in_place)
    for out in outputs:
        if args.in_place:
            check_modifiable(out)
        else:
            exists_ok = args.overwrite or args.resume
            _check_new_file(out, files, overwrite=exists_ok, what="results")
    return outputs


class _Batch:
    """What became of each input of apply / deconvolve: done, skipped (why) or failed (the
    one-line reason). A failed input does not stop the others unless --stop-on-error; the
    run prints one table of every input (when there are several) and ends with status 2
    if any failed."""

    def __init__(
        self, files: Sequence[Path | str], outputs: Sequence[Path], stop_on_error: bool
    ) -> None:
        self.files, self.outputs, self.stop_on_error = list(files), list(outputs), stop_on_error
        self.status = ["not run"] * len(self.files)
        self.detail = [""] * len(self.files)

    def done(self, i: int, detail: str) -> None:
        self.status[i], self.detail[i] = "done", detail
        print(detail)

    def skipped(self, i: int, why: str) -> None:
        self.status[i], self.detail[i] = "skipped", f"{self.outputs[i]}: {why}"
        print(f"skipped {self.files[i]}: {self.detail[i]}", file=sys.stderr)

    def failed(self, i: int, reason: str) -> None:
        self.status[i], self.detail[i] = "failed", reason
        print(f"failed {self.files[i]}: {reason}", file=sys.stderr)
        if self.stop_on_error:
            self._raise()

    def count(self, status: str) -> int:
        return self.status.count(status)

    def table(self) -> None:
        if len(self.files) < 2:
            return
        width = min(60, max(len(str(f)) for f in self.files))
        print(f"{'status':<8} {'input':<{width}} result")
        for f, status, detail in zip(self.files, self.status, self.detail, strict=True):
            print(f"{status:<8} {f!s:<{width}} {detail}")
        counts = ", ".join(
            f"{self.count(s)} {s}"
            for s in ("done", "skipped", "failed", "not run")
            if self.count(s)
        )
        print(f"{len(self.files)} inputs: {counts}")

    def _raise(self) -> None:
        self.table()
        first = self.detail[self.status.index("failed")]
        if len(self.files) == 1:
            raise CalciumAvaeError(first)
        how = " (--stop-on-error)" if self.stop_on_error else ""
        raise CalciumAvaeError(
            f"{self.count('failed')} of {len(self.files)} inputs failed{how}; first: {first}"
        )

    def finish(self) -> None:
        if self.count("failed"):
            self._raise()
        self.table()

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """Ctrl-C stops the run: the table says what was done before it."""
        try:
            yield
        except KeyboardInterrupt:
            self.table()
            raise


def _write_one(args: argparse.Namespace, traces, result, out: Path, batch: _Batch, i: int) -> None:
    """Write one recording's results; Ctrl-C lets the file finish, then stops the batch."""
    from .nwb import write_results

    if not args.in_place:
        out.parent.mkdir(parents=True, exist_ok=True)
    with interrupts_held() as received:
        written = write_results(
            traces, result, out, in_place=args.in_place, overwrite=args.overwrite or args.resume
        )
    batch.done(i, f"{written}: {_summary(result)}")
    left = batch.count("not run")
    if received and left:
        n = len(batch.files)
        raise KeyboardInterrupt(f"{n - left} of {n} result files were written")


def _same_values(stored, result) -> bool:
    """The per-ROI fields (and spike rates) of ``result`` equal those stored, NaN included."""
    from .results import PER_ROI

    names = [*PER_ROI, "spike_rates"]
    for name in names:
        new = getattr(result, name, None)
        if new is None:
            continue
        old = getattr(stored, name, None)
        if old is None or np.shape(old) != np.shape(new):
            return False
        if not np.array_equal(np.asarray(old), np.asarray(new), equal_nan=True):
            return False
    return True


def _same_facts(stored: dict, expected: dict) -> str | None:
    """None when the stored provenance agrees with ``expected``, else the first difference."""
    for key, value in expected.items():
        old = stored.get(key)
        try:
            same = float(old) == float(value)
        except (TypeError, ValueError):
            same = str(old) == str(value)
        if not same:
            return f"{key}={old} where this run has {value}"
    return None


def _why_not_complete(out: Path, traces, *, facts: dict | None = None, result=None) -> str | None:
    """None when ``out`` already holds this run's complete results for ``traces``, else
    why not. Result files are written atomically, so one that exists is whole; it counts
    as this run's when it holds the same recording (the fingerprint of its traces) and
    results made with the same settings (``facts``) or equal to ``result``."""
    from .nwb import read_results, read_traces

    try:
        held = read_traces(out, series=traces.series_path)
        stored = read_results(out, series=traces.series_path)
    except CalciumAvaeError as err:
        return f"cannot be read ({err})"
    if held.fingerprint() != traces.fingerprint():
        return "holds another recording"
    if stored is None:
        return "holds no results"
    if "stopped_after_rois" in stored.provenance:
        return "holds results of a run that was stopped"
    if facts is not None:
        if stored.spike_rates is None:
            return "holds no inferred spikes"
        different = _same_facts(stored.provenance, facts)
        if different is not None:
            return f"holds other results ({different})"
    if result is not None and not _same_values(stored, result):
        return "holds other results"
    return None


def _check_existing(args: argparse.Namespace, out: Path, traces, **expected) -> str | None:
    """With --resume: "skip" reason when ``out`` already holds this run's results; an
    existing output that does not is replaced (--overwrite), appended to (--in-place),
    or refused."""
    if not args.resume or not out.exists():
        return None
    why_not = _why_not_complete(out, traces, **expected)
    if why_not is None:
        return "already holds these results (--resume)"
    if not (args.overwrite or args.in_place):
        raise CalciumAvaeError(
            f"{out} exists and {why_not}; choose another name or overwrite (--overwrite)"
        )
    return None


def _read_each(files: Sequence[Path | str], args: argparse.Namespace, batch: _Batch):
    """(index, traces) of each input that reads; the others fail in the batch. The same
    recording given twice fails the second time, as _read_all refuses it."""
    from .nwb import read_traces

    seen: dict[str, Path | str] = {}
    for i, source in enumerate(files):
        try:
            traces = read_traces(source, series=args.series)
            other = seen.setdefault(traces.fingerprint(), source)
            if other is not source:
                raise CalciumAvaeError(
                    f"{other} and {source} hold the same recording (one may be a result file "
                    "of the other); give each recording once"
                )
        except CalciumAvaeError as err:
            batch.failed(i, str(err))
            continue
        yield i, traces


def _summary(result) -> str:
    parts = [f"{result.n_rois} ROIs"]
    if result.labels is not None:
        labels = result.labels
        parts.append(f"{len(set(labels[labels >= 0].tolist()))} cluster(s)")
        parts.append(f"{int((labels < 0).sum())} noise")
    if result.spike_rates is not None:
        parts.append(f"{float(np.nansum(result.spike_rates)):,.0f} inferred spikes")
    return ", ".join(parts)


def cmd_apply(args: argparse.Namespace) -> None:
    """Clustering and the embedding are joint over the inputs, so every input that reads
    is encoded, even one whose output --resume will skip: the skipped files then hold what
    this run computes, and the written ones match an uninterrupted run."""
    from .model import load_model

    eps, min_cluster_size = _cluster_settings(args)
    files = _nwb_inputs(args.inputs, include_results=args.include_results)
    outputs = _result_outputs(args, files)
    model = load_model(args.model, device=args.device)
    batch = _Batch(files, outputs, args.stop_on_error)
    with batch.interruptible():
        if args.stream:
            _apply_streamed(args, model, files, batch, outputs, eps, min_cluster_size)
        else:
            read = list(_read_each(files, args, batch))
            if read:
                _apply_read(args, model, read, batch, outputs, eps, min_cluster_size)
    batch.finish()


def _apply_streamed(args, model, files, batch, outputs, eps, min_cluster_size) -> None:
    """Two passes holding one recording at a time: the latents of every input, clustered
    and embedded jointly; then each input read again, denoised, and written with its
    share of the joint clustering (an output --resume finds complete is not recomputed)."""
    from . import pipeline
    from .nwb import read_traces

    _step(f"encoding the latents of {len(files)} input(s), one at a time")
    joint: dict[int, Any] = {}
    for i, traces in _read_each(files, args, batch):
        try:
            joint[i] = pipeline.encode_latents(model, traces)
        except CalciumAvaeError as err:
            batch.failed(i, str(err))
    if not joint:
        return
    _step(f"clustering the latents of {len(joint)} recording(s) ({args.cluster_method.upper()})")
    pipeline.cluster(
        list(joint.values()),
        method=args.cluster_method,
        eps=eps,
        min_samples=args.min_samples,
        min_cluster_size=min_cluster_size,
    )
    embedding = None if args.embedding == "none" else args.embedding
    pipeline.embed(list(joint.values()), embedding)
    _clean_folders({outputs[i].parent for i in joint if outputs[i].parent.is_dir()})
    for i, latents in joint.items():
        try:
            traces = read_traces(files[i], series=args.series)
            why = _check_existing(args, outputs[i], traces, result=latents)
            if why is not None:
                batch.skipped(i, why)
                continue
            _step(f"denoising {files[i]} ({traces.n_rois:,} ROIs)")
            (result,) = pipeline.encode(model, [traces])
            pipeline.adopt_joint(result, latents)
            _write_one(args, traces, result, outputs[i], batch, i)
        except CalciumAvaeError as err:
            batch.failed(i, str(err))


def _apply_read(args, model, read, batch, outputs, eps, min_cluster_size) -> None:
    from . import pipeline

    recordings = [traces for _, traces in read]
    embedding = None if args.embedding == "none" else args.embedding
    results = pipeline.apply(
        model,
        recordings,
        method=args.cluster_method,
        eps=eps,
        min_samples=args.min_samples,
        min_cluster_size=min_cluster_size,
        embedding=embedding,
        report=_step,
    )
    _clean_folders(outputs[i].parent for i, _ in read if outputs[i].parent.is_dir())
    for (i, traces), result in zip(read, results, strict=True):
        try:
            why = _check_existing(args, outputs[i], traces, result=result)
            if why is not None:
                batch.skipped(i, why)
                continue
            _write_one(args, traces, result, outputs[i], batch, i)
        except CalciumAvaeError as err:
            batch.failed(i, str(err))


#: provenance facts that do not change inferred spikes (where they ran, how verbosely)
_SPIKE_FACTS_IGNORED = ("device", "verbose", "source_file", "software", "version")


def _spike_facts(estimator, traces) -> dict:
    """The provenance deconvolve writes for ``traces`` that decides its results."""
    from sklearn.base import clone

    from . import pipeline

    model = clone(estimator).set_params(frame_rate=pipeline.frame_rate(traces))
    facts = pipeline.provenance(model, traces)
    if facts.get("input_kind") == "auto":  # stored as what "auto" found in these traces
        del facts["input_kind"]
    return {k: v for k, v in facts.items() if k not in _SPIKE_FACTS_IGNORED}


def cmd_deconvolve(args: argparse.Namespace) -> None:
    """One input at a time (read, infer, write), so memory holds one recording and a
    rerun with --resume skips the work of outputs that are already complete."""
    from . import pipeline

    files = _nwb_inputs(args.inputs, include_results=args.include_results)
    outputs = _result_outputs(args, files)
    estimator = _spike_estimator(args)
    if args.jobs < 1:
        raise CalciumAvaeError(f"--jobs must be at least 1, got {args.jobs}")
    batch = _Batch(files, outputs, args.stop_on_error)
    _clean_folders({out.parent for out in outputs if out.parent.is_dir()})
    with batch.interruptible():
        if args.jobs > 1 and len(files) > 1:
            _deconvolve_parallel(args, files, outputs, batch)
            batch.finish()
            return
        for i, traces in _read_each(files, args, batch):
            try:
                why = _check_existing(
                    args, outputs[i], traces, facts=_spike_facts(estimator, traces)
                )
                if why is not None:
                    batch.skipped(i, why)
                    continue
                (result,) = pipeline.deconvolve(estimator, [traces], report=_step)
                _write_one(args, traces, result, outputs[i], batch, i)
            except CalciumAvaeError as err:
                batch.failed(i, str(err))
    batch.finish()


def _spike_estimator(args: argparse.Namespace) -> SpikeInference:
    """The SpikeInference that ``deconvolve`` runs, from its options."""
    from .spikes import SpikeInference

    return SpikeInference(
        ar_order=args.ar_order, detrend_s=args.detrend_s, device=args.device, verbose=True
    )


def _deconvolve_worker(args: argparse.Namespace, source: Path | str, out: Path) -> tuple[str, str]:
    """One input of ``deconvolve --jobs N`` in a worker process: read, infer, write.
    Returns ("done" | "skipped" | "failed", the detail or one-line reason)."""
    from . import pipeline
    from .nwb import read_traces, write_results

    estimator = _spike_estimator(args)
    try:
        traces = read_traces(source, series=args.series)
        why = _check_existing(args, out, traces, facts=_spike_facts(estimator, traces))
        if why is not None:
            return "skipped", why
        (result,) = pipeline.deconvolve(estimator, [traces], report=_step)
        if not args.in_place:
            out.parent.mkdir(parents=True, exist_ok=True)
        with interrupts_held():
            written = write_results(
                traces,
                result,
                out,
                in_place=args.in_place,
                overwrite=args.overwrite or args.resume,
            )
        return "done", f"{written}: {_summary(result)}"
    except CalciumAvaeError as err:
        return "failed", str(err)


def _worker_start(threads: int) -> None:
    """Each worker's share of the cores, and the CLI's one-line warnings."""
    import torch

    torch.set_num_threads(threads)
    warnings.showwarning = _one_line_warning
    warnings.simplefilter("always", CalciumAvaeWarning)


def _deconvolve_parallel(
    args: argparse.Namespace, files: Sequence[Path | str], outputs: Sequence[Path], batch: _Batch
) -> None:
    """The inputs spread over worker processes, each input's outcome in the batch as it
    comes. Two files holding the same recording are not detected here (each worker sees
    one file); a worker that dies fails its input, and a rerun with --resume goes on."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    jobs = min(args.jobs, len(files))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # spawn, not fork: a forked copy of torch's and fsspec's threads can deadlock
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_worker_start, initargs=(threads,)
    ) as pool:
        futures = {
            pool.submit(_deconvolve_worker, args, source, out): i
            for i, (source, out) in enumerate(zip(files, outputs, strict=True))
        }
        try:
            for future in as_completed(futures):
                i = futures[future]
                try:
                    status, detail = future.result()
                except BrokenProcessPool:
                    status, detail = "failed", "its worker process died (out of memory?)"
                if status == "done":
                    batch.done(i, detail)
                elif status == "skipped":
                    batch.skipped(i, detail)
                else:
                    batch.failed(i, detail)
        except BaseException:
            for future in futures:
                future.cancel()  # inputs not begun; those running finish their file
            raise


REPORT_FILES = ("report.md", "report.png", "report.json")


def cmd_compare(args: argparse.Namespace) -> None:
    from .analysis import realism
    from .files import atomic_output
    from .nwb import read_traces
    from .spikes import SpikeInference

    for path in (args.real, args.generated):
        if path.is_dir():
            raise CalciumAvaeError(f"{path} is a folder; give one NWB recording")
        if not path.is_file():
            raise CalciumAvaeError(f"no such file: {path}")
    if args.output.exists() and not args.output.is_dir():
        raise CalciumAvaeError(f"{args.output} is a file; give a folder for the report")
    targets = [args.output / name for name in REPORT_FILES]
    existing = [t for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise CalciumAvaeError(
            f"{existing[0]} exists; choose another folder or overwrite (--overwrite)"
        )
    if args.splits < 1:
        raise CalciumAvaeError(f"--splits must be at least 1, got {args.splits}")
    _check_writable(args.output)
    real = read_traces(args.real, series=args.series)
    generated = read_traces(args.generated, series=args.generated_series)
    _step(f"inferring spikes and comparing {args.real.name} with {args.generated.name}")
    report = realism.compare_recordings(
        real,
        generated,
        estimator=SpikeInference(device=args.device),
        n_splits=args.splits,
        random_state=args.seed,
    )
    report.facts.update(real_file=str(args.real), generated_file=str(args.generated))
    names = {"real_name": args.real.name, "generated_name": args.generated.name}
    args.output.mkdir(parents=True, exist_ok=True)
    md, png, js = targets
    with interrupts_held() as interrupted:
        with atomic_output(js, overwrite=args.overwrite) as tmp:
            tmp.write_text(report.to_json() + "\n")
        with atomic_output(md, overwrite=args.overwrite) as tmp:
            tmp.write_text(realism.report_markdown(report, **names))
        with atomic_output(png, overwrite=args.overwrite) as tmp:
            realism.report_figure(report, **names).savefig(tmp, dpi=110, format="png")
    for row in report.rows:
        print(
            f"{row.statistic:>22}: distance {row.distance:.3g}, split-half "
            f"{row.yardstick:.3g}, ratio {row.ratio:.3g}"
        )
    print(f"wrote {', '.join(str(t) for t in targets)}")
    if interrupted:
        raise KeyboardInterrupt("after the report was written")


def cmd_generate(args: argparse.Namespace) -> None:
    from .generate import PopulationGenerator, write_generated

    if args.fit is not None:
        _fit_generator(args, PopulationGenerator)
        return
    if args.model is None:
        raise CalciumAvaeError(
            "give a generator file (MODEL), or fit one first: calcium-avae generate --fit "
            "RECORDING -o MODEL.npz"
        )
    inputs = [args.model] + ([args.like] if args.like else [])
    _check_new_file(args.output, inputs, overwrite=args.overwrite, what="generated recording")
    if args.output.suffix != ".nwb":
        raise CalciumAvaeError(f"the generated recording is an NWB file: end {args.output} in .nwb")
    gen = PopulationGenerator.load(args.model)
    neurons, duration, rate = args.neurons, args.duration, args.frame_rate
    if args.like is not None:
        from .nwb.read import list_series

        infos = [i for i in list_series(args.like) if i.is_default] or list_series(args.like)
        if not infos or not infos[0].rate:
            raise CalciumAvaeError(f"{args.like} has no regular RoiResponseSeries to imitate")
        like = infos[0]
        neurons = like.n_rois if neurons is None else neurons
        rate = like.rate if rate is None else rate
        duration = like.n_frames / like.rate if duration is None else duration
    _step(f"generating with {args.model.name}")
    recording = gen.generate(
        neurons,
        duration,
        frame_rate=rate,
        seed=args.seed,
        independent=args.independent,
        progress=progress_callback("generating", unit="block"),
    )
    _step(f"writing {recording.n_neurons} neurons x {recording.n_frames} frames")
    write_generated(args.output, recording, overwrite=args.overwrite, spike_seed=args.seed)
    print(
        f"wrote {args.output}: {recording.n_neurons} neurons, {recording.n_frames} frames at "
        f"{recording.frame_rate:g} Hz, {int(recording.spikes.sum()):,} spikes"
    )


def _fit_generator(args: argparse.Namespace, generator_class) -> None:
    from .nwb import read_traces

    if args.model is not None:
        raise CalciumAvaeError("give either a generator file (MODEL) or --fit RECORDING, not both")
    _check_new_file(args.output, [args.fit], overwrite=args.overwrite, what="generator")
    if args.output.suffix != ".npz":
        raise CalciumAvaeError(f"the fitted generator is a .npz file: end {args.output} in .npz")
    states = str(args.states).strip().lower()
    if states == "none":
        population, n_states = "none", generator_class().n_states
    elif states == "auto":
        population, n_states = "states", "auto"
    else:
        try:
            population, n_states = "states", int(states)
        except ValueError:
            raise CalciumAvaeError(
                f"--states must be a number, 'auto' or 'none', not {args.states!r}"
            ) from None
    traces = read_traces(args.fit, series=args.series)
    gen = generator_class(
        population=population,
        n_states=n_states,
        jitter=args.jitter,
        device=args.device,
        verbose=True,
    ).fit(traces)
    gen.save(args.output, overwrite=args.overwrite)
    kind = f"{gen.transmat_.shape[0]} population states" if gen.has_population_ else "no states"
    print(
        f"wrote {args.output}: {gen.n_neurons_} neurons at {gen.frame_rate_:g} Hz, {kind}; "
        f"draws up to {gen.max_neurons()} neurons"
    )


def cmd_population(args: argparse.Namespace) -> None:
    """One input at a time (read, analyse, write), as a batch: a failed input is reported
    and the rest go on; --resume skips outputs that already hold population results."""
    from .nwb import read_results
    from .nwb.population import read_population, write_population
    from .population import analyse, parse_count

    assemblies = parse_count(args.assemblies, "--assemblies", allow_none=True)
    states = parse_count(args.states, "--states", allow_none=True)
    if assemblies is None and states is None:
        raise CalciumAvaeError("--assemblies none and no --states: nothing to do")
    files = _nwb_inputs(args.inputs, include_results=args.include_results)
    outputs = _result_outputs(args, files)
    batch = _Batch(files, outputs, args.stop_on_error)
    _clean_folders({out.parent for out in outputs if out.parent.is_dir()})
    with batch.interruptible():
        for i, traces in _read_each(files, args, batch):
            out = outputs[i]
            try:
                if args.resume and out.exists():
                    held = read_population(out)
                    if (
                        held is not None
                        and (assemblies is None or held.n_assemblies is not None)
                        and (states is None or held.states is not None)
                    ):
                        batch.skipped(i, "already holds population results (--resume)")
                        continue
                stored = read_results(files[i], args.series) if assemblies is not None else None
                rates = None if stored is None else stored.spike_rates
                _step(f"{traces.n_rois} ROIs x {traces.n_frames} frames: population analysis")
                detector, model, facts = analyse(
                    traces,
                    assemblies=assemblies,
                    states=states,
                    rates=rates,
                    device=args.device,
                    assembly_method=args.assembly_method,
                )
                if not args.in_place:
                    out.parent.mkdir(parents=True, exist_ok=True)
                with interrupts_held() as received:
                    written = write_population(
                        traces,
                        None if args.in_place else out,
                        assemblies=detector,
                        states=model,
                        facts=facts,
                        in_place=args.in_place,
                        overwrite=args.overwrite or args.resume,
                    )
                batch.done(i, f"{written}: {_population_summary(traces, detector, model, facts)}")
            except CalciumAvaeError as err:
                batch.failed(i, str(err))
                continue
            left = batch.count("not run")
            if received and left:
                n = len(batch.files)
                raise KeyboardInterrupt(f"{n - left} of {n} result files were written")
    batch.finish()


def _population_summary(traces, detector, model, facts: dict) -> str:
    parts = [f"{traces.n_rois} ROIs"]
    if detector is not None:
        k = detector.n_assemblies_
        parts.append(
            f"{k} assembl{'y' if k == 1 else 'ies'} ({int(detector.significant_.sum())} "
            f"significant, from {facts['assemblies_input']}), "
            f"{int((detector.labels_ < 0).sum())} ROIs in none"
        )
    if model is not None:
        parts.append(f"{model.n_states_} states")
    return ", ".join(parts)


def _step(message: str) -> None:
    print(f"{message}…", file=sys.stderr)


def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(Path(args.output), quick=args.quick)


def cmd_bench(args: argparse.Namespace) -> None:
    from .bench import run_bench

    run_bench(Path(args.output), quick=args.quick, device=args.device)


def _cluster_settings(args: argparse.Namespace) -> tuple[float | str | None, int | None]:
    """eps and min_cluster_size, each only for the method that has it (checked before the
    model loads, so a wrong option costs nothing)."""
    if args.cluster_method == "hdbscan" and args.eps is not None:
        raise CalciumAvaeError(
            "--eps is DBSCAN's radius and HDBSCAN needs none: add --cluster-method dbscan"
        )
    if args.cluster_method == "dbscan" and args.min_cluster_size is not None:
        raise CalciumAvaeError(
            "--min-cluster-size is HDBSCAN's: drop it or use --cluster-method hdbscan"
        )
    if args.min_samples < 1:
        raise CalciumAvaeError(f"--min-samples must be at least 1, got {args.min_samples}")
    if args.min_cluster_size is not None and args.min_cluster_size < 2:
        raise CalciumAvaeError(
            f"--min-cluster-size must be at least 2, got {args.min_cluster_size}"
        )
    eps = args.eps
    if eps is not None and eps != "auto":
        eps = _positive_float(eps, "--eps")
    return eps, args.min_cluster_size


def _positive_float(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CalciumAvaeError(f"{name} must be 'auto' or a number, got {text!r}") from None
    if not value > 0:
        raise CalciumAvaeError(f"{name} must be positive, got {text}")
    return value


# --- the parser -----------------------------------------------------------------------

INCLUDE_RESULTS_HELP = "also take *_avae.nwb result files found in folders as recordings"


MODEL_OPTIONS = {
    "hidden_size": "hidden_size",
    "latent_size": "latent_size",
    "beta": "beta",
    "learning_rate": "learning_rate",
    "batch_size": "batch_size",
    "epochs": "max_epochs",
    "patience": "patience",
    "seed": "random_state",
    "device": "device",
    "architecture": "architecture",
    "timing_channels": "timing_channels",
    "normalisation": "normalisation",
    "crop_s": "crop_s",
    "n_crops": "n_crops",
    "ar_order": "ar_order",
    "session_conditioning": "condition_on_session",
}
"""fit's model options (argparse dest) and the estimator parameter each sets."""


def _seconds_or(word: str, meaning: str | None) -> Callable[[str], float | str | None]:
    """An argparse type: a positive number of seconds, or ``word`` (which gives ``meaning``)."""

    def parse(text: str) -> float | str | None:
        if text == word:
            return meaning
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not (value > 0 and np.isfinite(value)):
            raise argparse.ArgumentTypeError(f"expected seconds > 0 or {word!r}, not {text!r}")
        return value

    return parse


def _add_model_options(p: argparse.ArgumentParser) -> None:
    """The models' options. Each defaults to the chosen model's own default (shown for
    both), so the estimators stay the one place where defaults live."""
    from .model import DEFAULT_MODEL, MODELS
    from .model.architectures import ARCHITECTURES, TimingPath
    from .model.estimator import NORMALISATIONS
    from .spikes.inference import AR_ORDERS

    defaults = {name: cls().get_params() for name, cls in MODELS.items()}

    def default(param: str) -> str:
        shown = [f"{name} {d[param]}" for name, d in defaults.items() if param in d]
        return f"(default: {', '.join(shown)})"

    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        choices=list(MODELS),
        default=DEFAULT_MODEL,
        help="crop-vae: neuron latents from timing-invariant features of random crops, "
        "traces denoised by the calcium model; avae: the paper's AVAE (default %(default)s)",
    )
    g.add_argument("--device", help=f"auto, cpu, cuda, cuda:N or mps {default('device')}")
    g.add_argument("--hidden-size", type=int, help=f"hidden units {default('hidden_size')}")
    g.add_argument("--latent-size", type=int, help=f"latent dimensions {default('latent_size')}")
    g.add_argument("--beta", type=float, help=f"KL weight {default('beta')}")
    g.add_argument("--learning-rate", type=float, help=default("learning_rate"))
    g.add_argument("--batch-size", type=int, help=default("batch_size"))
    g.add_argument("--epochs", type=int, help=f"maximum epochs {default('max_epochs')}")
    g.add_argument("--patience", type=int, help=f"early-stopping patience {default('patience')}")
    g.add_argument("--seed", type=int, help=default("random_state"))
    a = p.add_argument_group("the paper's AVAE only (--model avae)")
    a.add_argument("--architecture", choices=ARCHITECTURES, help=default("architecture"))
    a.add_argument(
        "--timing-channels",
        type=int,
        help=f"timing latents per {TimingPath.STRIDE} frames, which let reconstructions "
        f"denoise; 0 is the paper's model {default('timing_channels')}",
    )
    a.add_argument("--normalisation", choices=NORMALISATIONS, help=default("normalisation"))
    c = p.add_argument_group("the crop-feature VAE only (--model crop-vae)")
    c.add_argument(
        "--crop-s",
        type=_seconds_or("auto", "auto"),
        metavar="S|auto",
        help=f"crop length in seconds {default('crop_s')}",
    )
    c.add_argument("--n-crops", type=int, help=f"crops per neuron {default('n_crops')}")
    c.add_argument(
        "--ar-order",
        type=int,
        choices=AR_ORDERS,
        help=f"the calcium model's AR order for denoising {default('ar_order')}",
    )
    c.add_argument(
        "--session-conditioning",
        action="store_true",
        default=None,
        help="tell the decoder which recording a neuron came from (off by default: where "
        "each recording holds one kind of neuron it would hide the kind)",
    )


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
            shown = "%(default)s" if default != "" else "none"
            g.add_argument(
                meta["flag"],
                dest=f.name,
                type=type(default),
                default=default,
                metavar=meta.get("metavar"),
                help=f"{meta['help']} (default {shown}{unit})",
            )


def _add_result_options(p: argparse.ArgumentParser) -> None:
    """The inputs and outputs of apply and deconvolve: one result file per input."""
    p.add_argument("inputs", nargs="+", help="NWB files, folders or URLs (http(s), s3, DANDI)")
    p.add_argument("-o", "--output", type=Path, help="result file (one input) or folder (several)")
    p.add_argument("--in-place", action="store_true", help="append results to the inputs")
    p.add_argument("--overwrite", action="store_true", help="replace result files that exist")
    p.add_argument("--series", help="RoiResponseSeries path (default: see inspect)")
    p.add_argument("--include-results", action="store_true", help=INCLUDE_RESULTS_HELP)
    p.add_argument(
        "--resume",
        action="store_true",
        help="skip inputs whose result file already holds this run's results (a rerun "
        "after an interruption); other existing result files are refused",
    )
    p.add_argument(
        "--stop-on-error",
        action="store_true",
        help="stop at the first input that fails (default: go on, report it at the end)",
    )


def build_parser() -> argparse.ArgumentParser:
    from .analysis.clustering import (
        DEFAULT_METHOD,
        DEFAULT_MIN_CLUSTER_SIZE,
        DEFAULT_MIN_SAMPLES,
        METHODS,
    )
    from .analysis.embedding import EMBEDDINGS, TSNE_MAX_POINTS
    from .analysis.realism import DEFAULT_SPLITS as realism_splits
    from .generate import PopulationGenerator
    from .population.assemblies import DEFAULT_METHOD as DEFAULT_ASSEMBLY_METHOD
    from .population.assemblies import METHODS as ASSEMBLY_METHODS
    from .spikes import SpikeInference

    parser = argparse.ArgumentParser(
        prog="calcium-avae",
        description="Learn single-neuron representations from calcium imaging (NWB in, NWB out).",
        epilog=f"Method: {PAPER}.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("inspect", help="list the RoiResponseSeries of an NWB file")
    p.add_argument("file", help="NWB file, or an http(s), s3:// or DANDI URL (read lazily)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("simulate", help="simulate Izhikevich cultures into NWB sessions")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder (DANDI layout)")
    p.add_argument("--overwrite", action="store_true", help="replace sessions that exist")
    _add_simulation_options(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("fit", help="train a model on NWB files or folders")
    p.add_argument("inputs", nargs="+", help="NWB files, folders or URLs")
    p.add_argument("-o", "--output", type=Path, required=True, help="model checkpoint file")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--series", help="RoiResponseSeries path (default: see inspect)")
    p.add_argument("--include-results", action="store_true", help=INCLUDE_RESULTS_HELP)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run whose training checkpoint (OUTPUT.resume) is "
        "beside OUTPUT, to the model an uninterrupted run gives",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=1,
        metavar="N",
        help="write the training checkpoint OUTPUT.resume every N epochs and after the "
        "last; 0: none (default %(default)s)",
    )
    p.add_argument(
        "--stream",
        action="store_true",
        help="read the traces from the files a block of ROIs at a time, memory bounded "
        "whatever the number of files: the AVAE every epoch, the crop-feature VAE once for "
        "its features (docs/scaling.md)",
    )
    p.add_argument(
        "--workers", type=int, metavar="N", help="with --stream: DataLoader worker processes"
    )
    p.add_argument(
        "--shuffle-buffer",
        type=int,
        metavar="N",
        help="with --stream: traces shuffled at once, per worker (default 2048)",
    )
    p.add_argument(
        "--mismatched",
        choices=("error", "skip"),
        default="error",
        help="sessions whose number of frames differs from the others': stop with an "
        "error naming them, or (with --stream) skip them with a warning (default %(default)s)",
    )
    _add_model_options(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("apply", help="encode, denoise and cluster; write results to NWB")
    p.add_argument("model", type=Path, help="checkpoint written by fit")
    _add_result_options(p)
    p.add_argument(
        "--cluster-method",
        choices=list(METHODS),
        default=DEFAULT_METHOD,
        help="; ".join(f"{name}: {text}" for name, text in METHODS.items()),
    )
    p.add_argument(
        "--eps",
        help="DBSCAN only: 'auto' (the k-distance knee, the default) or a radius",
    )
    p.add_argument(
        "--min-samples",
        type=int,
        default=DEFAULT_MIN_SAMPLES,
        help="neighbours, the ROI included, that make a core ROI (default %(default)s)",
    )
    p.add_argument(
        "--min-cluster-size",
        type=int,
        help=f"HDBSCAN only: the fewest ROIs in a cluster (default {DEFAULT_MIN_CLUSTER_SIZE})",
    )
    p.add_argument(
        "--embedding",
        choices=[*EMBEDDINGS, "none"],
        default="auto",
        help=f"2-D view of the latents; auto is t-SNE up to {TSNE_MAX_POINTS:,} ROIs, else PCA",
    )
    p.add_argument(
        "--stream",
        action="store_true",
        help="hold one recording at a time: read each input twice, once for the latents "
        "that are clustered jointly, then for the denoising and spikes it writes "
        "(memory bounded whatever the number of inputs; docs/scaling.md)",
    )
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("deconvolve", help="infer spike rates; write them to NWB")
    _add_result_options(p)
    p.add_argument(
        "--ar-order",
        type=int,
        choices=(1, 2),
        default=SpikeInference().get_params()["ar_order"],
        help="calcium dynamics: 1 = instant rise, 2 = with a rise time (default %(default)s)",
    )
    p.add_argument(
        "--detrend-s",
        type=_seconds_or("none", None),
        default=SpikeInference().get_params()["detrend_s"],
        metavar="SECONDS|none",
        help="window of the running low-percentile baseline taken off each trace before "
        "the fit, so that slow drift is not read as calcium; none keeps only a constant "
        "baseline (default %(default)s)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="worker processes, each inferring one input at a time (default %(default)s)",
    )
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_deconvolve)

    p = sub.add_parser(
        "compare",
        help="realism report: spike and trace statistics of GENERATED next to REAL",
    )
    p.add_argument("real", type=Path, help="the real recording (NWB)")
    p.add_argument("generated", type=Path, help="the recording to judge (NWB)")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder for report.*")
    p.add_argument("--overwrite", action="store_true", help="replace a report that exists")
    p.add_argument("--series", help="RoiResponseSeries of REAL (default: see inspect)")
    p.add_argument("--generated-series", help="RoiResponseSeries of GENERATED")
    p.add_argument(
        "--splits",
        type=int,
        default=realism_splits,
        help="random neuron splits of REAL for the yardstick (default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the splits")
    p.add_argument("--device", default="auto", help="device for spike inference")
    p.set_defaults(func=cmd_compare)

    gen_defaults = PopulationGenerator().get_params()
    p = sub.add_parser(
        "generate",
        help="synthetic population recordings (NWB, with ground truth) from a fitted "
        "generator; --fit makes one",
        description="calcium-avae generate --fit RECORDING -o MODEL.npz fits a generator; "
        "calcium-avae generate MODEL.npz -o OUT.nwb --neurons N --duration S writes a "
        "recording (docs/generation.md)",
    )
    p.add_argument("model", nargs="?", type=Path, help="a generator file written by --fit")
    p.add_argument(
        "-o", "--output", type=Path, required=True, help="NWB file to write (with --fit: .npz)"
    )
    p.add_argument(
        "--fit", type=Path, metavar="RECORDING", help="fit a generator to RECORDING instead"
    )
    p.add_argument("--neurons", type=int, help="neurons to generate (default: as fitted)")
    p.add_argument("--duration", type=float, help="seconds (default: the fitted recording's)")
    p.add_argument("--frame-rate", type=float, help="Hz (default: the fitted recording's)")
    p.add_argument(
        "--like",
        type=Path,
        metavar="RECORDING",
        help="neurons, duration and frame rate of RECORDING's default series, unless given",
    )
    p.add_argument("--seed", type=int, default=0, help="same seed, same recording")
    p.add_argument(
        "--independent",
        action="store_true",
        help="baseline: each neuron with its own state sequence (no co-activation)",
    )
    p.add_argument(
        "--states",
        default=str(gen_defaults["n_states"]),
        help="with --fit: states of the calcium HMM: K, 'auto' (slow) or 'none' "
        "(default %(default)s)",
    )
    p.add_argument(
        "--jitter",
        type=float,
        default=gen_defaults["jitter"],
        help="with --fit: log-normal SD on each copy of a neuron after its first "
        "(default %(default)s)",
    )
    p.add_argument("--series", help="with --fit: RoiResponseSeries of RECORDING")
    p.add_argument("--device", default="auto", help="with --fit: device for the fits")
    p.add_argument("--overwrite", action="store_true", help="replace an output that exists")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "population", help="co-active assemblies and network states; write them to NWB"
    )
    _add_result_options(p)
    p.add_argument(
        "--assemblies",
        default="auto",
        help="number of assemblies: 'auto' (from the data, the default), N, or 'none'; found "
        "in the inferred spikes of a deconvolve result file, else in the traces",
    )
    p.add_argument(
        "--assembly-method",
        choices=ASSEMBLY_METHODS,
        default=DEFAULT_ASSEMBLY_METHOD,
        help="; ".join(f"{k}: {v}" for k, v in ASSEMBLY_METHODS.items()) + " (docs/population.md)",
    )
    p.add_argument(
        "--states",
        help="network states with the calcium HMM: K or 'auto' (held-out likelihood); "
        "default: none",
    )
    p.add_argument("--device", default="auto", help="for the state model")
    p.set_defaults(func=cmd_population)

    p = sub.add_parser("demo", help="simulate, fit, apply and score against PCA (minutes)")
    p.add_argument("-o", "--output", type=Path, default=Path("demo-output"))
    p.add_argument("--quick", action="store_true", help="a smaller run, for tests")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "bench", help="the paper's benchmarks: its AVAE and the default model against PCA"
    )
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
    if (
        args.command in ("apply", "deconvolve", "population")
        and not args.in_place
        and args.output is None
    ):
        parser.error(f"{args.command} needs -o OUTPUT (or --in-place)")
    warnings.showwarning = _one_line_warning
    warnings.simplefilter("always", CalciumAvaeWarning)
    try:
        args.func(args)
    except CalciumAvaeError as exc:
        print(f"calcium-avae: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        detail = f": {exc}" if str(exc) else ""
        print(f"calcium-avae: interrupted{detail}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def run() -> None:
    """The console entry point: once main() is done, Ctrl-C can no longer turn the
    interpreter's exit into a traceback."""
    status = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(status)


if __name__ == "__main__":
    run()
