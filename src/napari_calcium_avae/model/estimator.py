"""The AVAE estimator and its PCA baseline, with scikit-learn conventions.

Both take clean ROIs x frames arrays (the pipeline drops NaN/flat ROIs first), min-max
scale each trace to [-0.5, 0.5] (Abante et al. 2025, eq. 4) or all traces with one global range,
and give latents, decoded traces in that normalised scale, and reconstructions in the
input's own units.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.utils.validation import check_is_fitted

from ..errors import CalciumAvaeError
from . import distributed
from .architectures import ARCHITECTURES, TimingPath, build
from .checkpoint import (
    Checkpoint,
    ResumeCheckpoint,
    read_checkpoint,
    read_resume_checkpoint,
    save_checkpoint,
    save_resume_checkpoint,
)
from .device import is_out_of_memory, resolve_device
from .training import EpochReport, TrainingConfig, TrainingState, train_iter

if TYPE_CHECKING:
    from .streaming import NWBTraceDataset

NORMALISATIONS = ("per_trace", "global")
MIN_FIT_ROIS = 4
"""A validation split needs at least one trace and training at least three."""
_CHUNK_ELEMENTS = 2**24
"""Samples per inference chunk (64 MB of float32): bounds memory for any data size."""


def _check_traces(X: Any, per_trace: bool) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] == 0:
        raise CalciumAvaeError(f"traces must be a 2-D array (ROIs x frames), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise CalciumAvaeError(f"traces must be real numbers, got dtype {X.dtype}")
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise CalciumAvaeError(
            f"{int(bad.sum())} trace(s) contain NaN or Inf (first: row {int(np.argmax(bad))}); "
            "drop them first (napari_calcium_avae.checks.usable_rows)"
        )
    if per_trace:
        flat = X.max(axis=1) == X.min(axis=1)
        if flat.any():
            raise CalciumAvaeError(
                f"{int(flat.sum())} flat trace(s) cannot be min-max normalised (first: row "
                f"{int(np.argmax(flat))}); drop them first (napari_calcium_avae.checks.usable_rows)"
            )
    return X


@dataclass(frozen=True)
class _TrainingCheckpoint:
    path: Path
    every: int
    resume: bool


RESUMABLE_CHANGES = ("max_epochs", "device", "verbose")
"""Parameters a resumed fit may change: they say how long and where, not what, to learn."""


def _fingerprint(X: np.ndarray) -> str:
    """A digest of the training traces, so a checkpoint resumes only on the same data."""
    digest = hashlib.sha256(f"{X.shape}{X.dtype.str}".encode())
    digest.update(np.ascontiguousarray(X).data)
    return digest.hexdigest()[:32]


def _chunks(n_rows: int, n_frames: int) -> Iterator[slice]:
    step = max(1, _CHUNK_ELEMENTS // max(n_frames, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


class _Normalised:
    """Min-max scaling shared by the AVAE and the PCA baseline."""

    normalisation: str
    norm_: tuple[float, float] | None

    def _fit_norm(self, X: np.ndarray) -> None:
        if self.normalisation not in NORMALISATIONS:
            raise CalciumAvaeError(
                f"normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}"
            )
        self.norm_ = None
        if self.normalisation == "global":
            lo, hi = float(X.min()), float(X.max())
            if hi <= lo:
                raise CalciumAvaeError("all traces are one constant value; nothing to learn")
            self.norm_ = (lo, hi - lo)

    def normalise(self, X: Any) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """(Xn in [-0.5, 0.5] as float32, (offset, span) per row) with Xn = (X - offset) /
        span - 0.5, the scale the metrics protocol and inverse_transform use."""
        X = _check_traces(X, per_trace=self.normalisation == "per_trace")
        if self.normalisation == "global":
            check_is_fitted(self, "norm_")
            lo = np.full((len(X), 1), self.norm_[0])
            span = np.full((len(X), 1), self.norm_[1])
        else:
            lo = X.min(axis=1, keepdims=True).astype(np.float64)
            span = X.max(axis=1, keepdims=True) - lo
        Xn = ((X - lo) / span - 0.5).astype(np.float32)
        return Xn, (lo, span)


class AVAE(_Normalised, TransformerMixin, BaseEstimator):
    """Autoregressive beta-VAE of Abante et al. 2025: one latent vector per neuron's trace.

    ``architecture="released"`` is the released model's function class (fixed trace
    length); ``"recurrent"`` reads and writes the trace as a sequence (any length).
    ``timing_channels`` > 0 adds the timing path (latents every 4 frames that say when
    the neuron fired), which is what makes reconstructions denoise; 0 is the paper's
    model. See docs/model.md for the parameters and the speed of each.

    ``device`` is where :meth:`fit` trains; the fitted model lives on ``device_``, which
    :meth:`to` and :meth:`load` set without changing ``device``, so ``get_params`` and
    ``clone`` always give back the estimator as it was configured. ``verbose`` shows a
    progress bar during :meth:`fit`.
    """

    def __init__(
        self,
        hidden_size: int = 128,
        latent_size: int = 8,
        beta: float = 0.5,
        architecture: str = "released",
        timing_channels: int = 2,
        learning_rate: float = 5e-3,
        lr_decay: float = 0.99,
        batch_size: int = 256,
        max_epochs: int = 200,
        patience: int = 5,
        min_delta: float = 0.005,
        validation_fraction: float = 0.2,
        normalisation: str = "per_trace",
        device: str = "auto",
        random_state: int = 0,
        verbose: bool = False,
    ) -> None:
        self.hidden_size = hidden_size
        self.latent_size = latent_size
        self.beta = beta
        self.architecture = architecture
        self.timing_channels = timing_channels
        self.learning_rate = learning_rate
        self.lr_decay = lr_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.min_delta = min_delta
        self.validation_fraction = validation_fraction
        self.normalisation = normalisation
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # --- training -----------------------------------------------------------------

    def _check_params(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise CalciumAvaeError(
                f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}"
            )
        for name in ("hidden_size", "latent_size", "batch_size", "max_epochs", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise CalciumAvaeError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.timing_channels, int | np.integer) or self.timing_channels < 0:
            raise CalciumAvaeError(
                f"timing_channels must be an integer >= 0, got {self.timing_channels!r}"
            )
        if not 0 < self.validation_fraction < 1:
            raise CalciumAvaeError(
                f"validation_fraction must be between 0 and 1, got {self.validation_fraction}"
            )
        if self.beta < 0 or self.learning_rate <= 0 or not 0 < self.lr_decay <= 1:
            raise CalciumAvaeError(
                "need beta >= 0, learning_rate > 0 and 0 < lr_decay <= 1, got "
                f"{self.beta}, {self.learning_rate}, {self.lr_decay}"
            )
        if self.min_delta < 0:
            raise CalciumAvaeError(f"min_delta must be >= 0, got {self.min_delta}")

    def set_checkpoint(
        self, path: str | Path | None, *, every: int = 1, resume: bool = False
    ) -> AVAE:
        """Make :meth:`fit` write a training checkpoint to ``path`` every ``every`` epochs
        and after the last (atomically: a kill leaves the previous one whole), and, with
        ``resume``, continue from the one at ``path`` when it exists, to the weights a
        run that was never stopped would end with. ``None`` turns checkpoints off.

        Like scikit-learn's ``set_output`` this says how to run, not what to learn, so it
        is not a parameter (``get_params`` and ``clone`` leave it out). A resumed fit must
        have the same data and parameters, except those in ``RESUMABLE_CHANGES``.
        """
        if not isinstance(every, int | np.integer) or every < 1:
            raise CalciumAvaeError(f"checkpoint every must be a positive integer, got {every!r}")
        self._checkpoint = (
            None if path is None else _TrainingCheckpoint(Path(path), int(every), bool(resume))
        )
        return self

    def fit(self, X: Any, y: Any = None) -> AVAE:
        """Train to the end (or early stop); ``verbose`` shows a progress bar (on rank 0
        when training is distributed)."""
        reports = self.fit_iter(X)
        if self.verbose and distributed.is_main():
            from ..progress import show_epochs

            show_epochs(reports, self.max_epochs)
        else:
            for _ in reports:
                pass
        return self

    def fit_iter(self, X: Any, stop: threading.Event | None = None) -> Iterator[EpochReport]:
        """Train, yielding an :class:`EpochReport` per epoch.

        Closing the generator or setting ``stop`` (checked before every batch) ends
        training with the best weights so far in place; the model is then usable.

        In a process group (torchrun, see ``distributed.process_group``) every rank calls
        this with the same traces; each trains on its share of every batch, and all end
        with the same weights. Training checkpoints (:meth:`set_checkpoint`) are written
        by rank 0.

        ``X`` may be a :class:`~.streaming.NWBTraceDataset` (many NWB files, read as
        training goes, memory bounded): out-of-core training, each rank streaming its
        share of the files (docs/scaling.md).
        """
        self._check_params()
        from .streaming import NWBTraceDataset

        if isinstance(X, NWBTraceDataset):
            yield from self._fit_stream_iter(X, stop)
            return
        X = _check_traces(X, per_trace=self.normalisation == "per_trace")
        n_rois, n_frames = X.shape
        if n_rois < MIN_FIT_ROIS:
            raise CalciumAvaeError(
                f"only {n_rois} trace(s) to train on; at least {MIN_FIT_ROIS} are needed "
                "(a validation split is held out)"
            )
        if self.timing_channels and n_frames < 2 * TimingPath.STRIDE:
            raise CalciumAvaeError(
                f"traces of {n_frames} frames are too short for the timing path (at least "
                f"{2 * TimingPath.STRIDE}); use timing_channels=0"
            )
        group = distributed.current()
        device = distributed.rank_device(resolve_device(self.device), group)
        self._fit_norm(X)
        Xn, _ = self.normalise(X)
        split = torch.Generator().manual_seed(self.random_state)
        order = torch.randperm(n_rois, generator=split)
        n_val = min(max(1, round(self.validation_fraction * n_rois)), n_rois - 1)
        if group is not None and n_rois - n_val < group.world_size:
            raise CalciumAvaeError(
                f"{n_rois - n_val} training traces cannot be shared by {group.world_size} "
                "ranks; train on more traces or with fewer ranks"
            )

        def data() -> tuple[torch.Tensor, torch.Tensor]:
            on_device = torch.from_numpy(Xn).to(device)
            return on_device[order[n_val:]], on_device[order[:n_val]]

        yield from self._train(n_frames, _fingerprint(X), data, group, device, split, stop)

    def _fit_stream_iter(
        self, dataset: NWBTraceDataset, stop: threading.Event | None
    ) -> Iterator[EpochReport]:
        """:meth:`fit_iter` on a stream: the split by ROI hash, batches read per epoch."""
        from .streaming import StreamBatches

        n_frames = dataset.n_frames
        fraction, seed = float(self.validation_fraction), int(self.random_state)
        n_val = dataset.count("validation", fraction, seed)
        n_train = dataset.n_rois - n_val
        if n_val < 1 or n_train < MIN_FIT_ROIS - 1:
            raise CalciumAvaeError(
                f"{n_train} training and {n_val} validation ROI(s) in the streamed files; at "
                f"least {MIN_FIT_ROIS - 1} and 1 are needed (stream more ROIs)"
            )
        if self.timing_channels and n_frames < 2 * TimingPath.STRIDE:
            raise CalciumAvaeError(
                f"traces of {n_frames} frames are too short for the timing path (at least "
                f"{2 * TimingPath.STRIDE}); use timing_channels=0"
            )
        group = distributed.current()
        world = group.world_size if group is not None else 1
        if len(dataset.sessions) < world:
            raise CalciumAvaeError(
                f"{len(dataset.sessions)} streamed file(s) cannot be shared by {world} ranks; "
                "stream more files or train with fewer ranks"
            )
        device = distributed.rank_device(resolve_device(self.device), group)
        if self.normalisation == "global":
            self._fit_norm(np.array(dataset.value_range(fraction, seed)))
        else:
            self._fit_norm(np.zeros(1))  # checks the choice; per-trace scaling needs no range
        batches = StreamBatches(
            dataset,
            batch_size=-(-int(self.batch_size) // world),
            device=device,
            validation_fraction=fraction,
            seed=seed,
            norm=self.norm_,
            rank=group.rank if group is not None else 0,
            world_size=world,
        )
        split = torch.Generator().manual_seed(self.random_state)  # unused: kept in the state
        yield from self._train(
            n_frames, dataset.fingerprint(), lambda: (batches, None), group, device, split, stop
        )

    def _train(
        self,
        n_frames: int,
        fingerprint: str,
        data: Callable[[], tuple[Any, Any]],
        group: distributed.Group | None,
        device: torch.device,
        split: torch.Generator,
        stop: threading.Event | None,
    ) -> Iterator[EpochReport]:
        """The network, checkpoints and loop shared by the in-memory and streamed fits;
        ``data()`` gives (training, validation) tensors or (a stream, None)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            net = build(
                self.architecture,
                n_frames,
                self.hidden_size,
                self.latent_size,
                int(self.timing_channels),
            )
        config = TrainingConfig(
            beta=float(self.beta),
            learning_rate=float(self.learning_rate),
            lr_decay=float(self.lr_decay),
            batch_size=int(self.batch_size),
            max_epochs=int(self.max_epochs),
            patience=int(self.patience),
            min_delta=float(self.min_delta),
        )
        self.n_features_in_ = n_frames
        self.history_: list[dict[str, Any]] = []
        self.best_epoch_ = 0
        checkpoint: _TrainingCheckpoint | None = getattr(self, "_checkpoint", None)
        identity: dict[str, Any] = {}
        resume = None
        if checkpoint is not None:
            identity = {
                "params": {
                    k: v for k, v in self.get_params().items() if k not in RESUMABLE_CHANGES
                },
                "n_frames": n_frames,
                "data": fingerprint,
                "device_type": device.type,
            }
            found = checkpoint.resume and checkpoint.path.exists()
            if group is not None and checkpoint.resume:  # every rank resumes, or none
                seen = round(group.sum([float(found)])[0])
                if 0 < seen < group.world_size:
                    raise CalciumAvaeError(
                        f"{group.world_size - seen} of {group.world_size} ranks cannot see the "
                        f"training checkpoint {checkpoint.path}; resume on a folder every "
                        "node shares"
                    )
            if found:
                resume = self._resume_from(checkpoint.path, identity)
        reports = None
        self.device_ = device
        try:
            self.module_ = net.to(device).eval()
            train_data, val_data = data()
            # the same noise stream on every rank: each keeps its rows of it (RankNoise)
            noise = torch.Generator(device=device).manual_seed(self.random_state)
            on_state = None
            if checkpoint is not None:

                def on_state(state: TrainingState, report: EpochReport) -> None:
                    config = {
                        **identity,
                        "params": self.get_params(),
                        "norm": list(self.norm_) if self.norm_ is not None else None,
                        "history": [*self.history_, asdict(report)],
                        # a resumed run may have another number: all ranks share one
                        # batch order and noise stream (equal up to rounding)
                        "world_size": group.world_size if group is not None else 1,
                    }
                    values = {f.name: getattr(state, f.name) for f in fields(state)}
                    save_resume_checkpoint(ResumeCheckpoint(config, values), checkpoint.path)

            reports = train_iter(
                net,
                train_data,
                val_data,
                config,
                split,
                noise,
                stop,
                resume=resume,
                on_state=on_state,
                state_every=checkpoint.every if checkpoint is not None else 1,
                group=group,
            )
            for report in reports:
                self.history_.append(asdict(report))
                self.best_epoch_ = report.best_epoch
                yield report
        except RuntimeError as error:
            if is_out_of_memory(error):
                raise self._oom_error("training") from None
            raise
        finally:
            if reports is not None:
                reports.close()  # puts the best weights back

    def _resume_from(self, path: Path, identity: dict[str, Any]) -> TrainingState:
        """The state saved at ``path``, once its run is known to be this one (same data,
        parameters, kind of device; the number of ranks may differ); the history is
        taken back too."""
        saved = read_resume_checkpoint(path)
        params = {
            k: v for k, v in saved.config.get("params", {}).items() if k not in RESUMABLE_CHANGES
        }
        theirs = {**{k: saved.config.get(k) for k in identity}, "params": params}
        differ = [k for k in identity if theirs[k] != identity[k]]
        if differ:
            what = {
                "params": "parameters",
                "n_frames": "trace length",
                "data": "training traces",
                "device_type": "kind of device",
            }
            if "params" in differ:
                names = sorted(
                    k for k in identity["params"] if params.get(k) != identity["params"][k]
                )
                what["params"] = f"parameters ({', '.join(names)})"
            raise CalciumAvaeError(
                f"{path} is the checkpoint of another training run (its "
                f"{' and '.join(what[k] for k in differ)} differ); delete it to start afresh"
            )
        try:
            state = TrainingState(**{f.name: saved.state[f.name] for f in fields(TrainingState)})
            history = list(saved.config["history"])
        except (KeyError, TypeError):
            raise CalciumAvaeError(f"{path} is a damaged training checkpoint") from None
        self.history_ = history
        self.best_epoch_ = state.best_epoch
        return state

    def _oom_error(self, what: str) -> CalciumAvaeError:
        if self.device_.type == "cuda":
            torch.cuda.empty_cache()
        return CalciumAvaeError(
            f"{self.device_} ran out of memory during {what}; use device='cpu' (model.to('cpu')) "
            f"or a smaller batch_size (now {self.batch_size})"
        )

    # --- inference ----------------------------------------------------------------

    def _check_length(self, n_frames: int) -> None:
        if self.architecture == "released" and n_frames != self.n_features_in_:
            raise CalciumAvaeError(
                f"model was trained on traces of {self.n_features_in_} frames, these have "
                f"{n_frames}; the released architecture needs that exact length "
                "(use architecture='recurrent' for any length)"
            )

    def _encode_decode(self, X: Any, decode: bool) -> tuple[np.ndarray, np.ndarray | None]:
        check_is_fitted(self, "module_")
        X = _check_traces(X, per_trace=self.normalisation == "per_trace")
        n, n_frames = X.shape
        self._check_length(n_frames)
        latents = np.empty((n, self.latent_size), dtype=np.float32)
        recon = np.empty((n, n_frames), dtype=np.float32) if decode else None
        self.module_.eval()
        try:
            with torch.inference_mode():
                for rows in _chunks(n, n_frames):
                    Xn, (lo, span) = self.normalise(X[rows])
                    x = torch.from_numpy(Xn).to(self.device_)
                    if recon is None:
                        mu, _ = self.module_.encode(x)
                    else:
                        mu, out = self.module_.reconstruct(x)
                        recon[rows] = (out.cpu().numpy() + 0.5) * span + lo
                    latents[rows] = mu.cpu().numpy()
        except RuntimeError as error:
            if is_out_of_memory(error):
                raise self._oom_error("inference") from None
            raise
        return latents, recon

    def transform(self, X: Any) -> np.ndarray:
        """Posterior means (n, latent_size), float32."""
        return self._encode_decode(X, decode=False)[0]

    def reconstruct(self, X: Any) -> np.ndarray:
        """Denoised traces in X's own units (each trace's scaling, or the global one, undone)."""
        recon = self._encode_decode(X, decode=True)[1]
        assert recon is not None
        return recon

    def transform_reconstruct(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Both of the above from one pass of the encoder (apply needs both)."""
        latents, recon = self._encode_decode(X, decode=True)
        assert recon is not None
        return latents, recon

    def inverse_transform(self, Z: Any) -> np.ndarray:
        """Decoded traces (n, n_features_in_) in the normalised scale [-0.5, 0.5]: a latent
        carries no trace's offset and range, so source units are undefined here. The
        timing latents, which belong to a trace and not to a neuron, sit at their prior
        mean, so this is the neuron's typical trace rather than one recording of it."""
        return self._generate(Z, None)

    def sample(self, n: int, random_state: int | None = None) -> np.ndarray:
        """n new traces with every latent drawn from its prior N(0, I), normalised scale."""
        check_is_fitted(self, "module_")
        rng = np.random.default_rng(random_state)
        z = rng.standard_normal((n, self.latent_size))
        timing = self.module_.timing
        if timing is None:
            return self._generate(z, None)
        shape = timing.latent_shape(n, self.n_features_in_)
        return self._generate(z, rng.standard_normal(shape).astype(np.float32))

    def _generate(self, Z: Any, detail: np.ndarray | None) -> np.ndarray:
        check_is_fitted(self, "module_")
        Z = np.asarray(Z, dtype=np.float32)
        if Z.ndim != 2 or Z.shape[1] != self.latent_size:
            raise CalciumAvaeError(
                f"latents must have shape (n, {self.latent_size}), got {Z.shape}"
            )
        n_frames = self.n_features_in_
        out = np.empty((len(Z), n_frames), dtype=np.float32)
        self.module_.eval()
        with torch.inference_mode():
            for rows in _chunks(len(Z), n_frames):
                z = torch.from_numpy(Z[rows]).to(self.device_)
                d = None if detail is None else torch.from_numpy(detail[rows]).to(self.device_)
                out[rows] = self.module_.generate(z, n_frames, d).cpu().numpy()
        return out

    def to(self, device: str) -> AVAE:
        """Move a fitted model (e.g. to the CPU after a GPU ran out of memory).

        Only ``device_`` changes: ``device`` stays the hyper-parameter the estimator was
        made with, which a refit (or a ``clone``) uses again.
        """
        check_is_fitted(self, "module_")
        self.device_ = resolve_device(device)
        self.module_.to(self.device_)
        return self

    # --- checkpoints --------------------------------------------------------------

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """One file: weights plus a JSON config (see checkpoint.py); an existing file is
        replaced only with ``overwrite=True``."""
        check_is_fitted(self, "module_")
        checkpoint = Checkpoint(
            params=self.get_params(),
            n_frames=self.n_features_in_,
            norm=self.norm_,
            best_epoch=self.best_epoch_,
            history=self.history_,
            state_dict=self.module_.state_dict(),
        )
        return save_checkpoint(checkpoint, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> AVAE:
        """A fitted model saved by :meth:`save`, on ``device``; never unpickles arbitrary
        objects. ``device`` becomes the loaded estimator's ``device`` parameter too."""
        saved = read_checkpoint(path)
        # checkpoints from before the timing path have no timing_channels: they had none
        params = {"timing_channels": 0, **saved.params, "device": device}
        try:
            model = cls(**params)
        except TypeError:
            raise CalciumAvaeError(
                f"{path} was written with settings this version does not know "
                f"(napari-calcium-avae {saved.made_by}); update napari-calcium-avae"
            ) from None
        model._check_params()
        net = build(
            model.architecture,
            saved.n_frames,
            model.hidden_size,
            model.latent_size,
            int(model.timing_channels),
        )
        try:
            net.load_state_dict(saved.state_dict)
        except (RuntimeError, TypeError) as error:
            reason = str(error).splitlines()[0][:200]
            raise CalciumAvaeError(
                f"{path}: weights do not match the saved settings ({reason})"
            ) from None
        model.device_ = resolve_device(device)
        model.module_ = net.to(model.device_).eval()
        model.n_features_in_ = saved.n_frames
        model.norm_ = saved.norm
        model.best_epoch_ = saved.best_epoch
        model.history_ = saved.history
        return model

    def posterior(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means and log-variances of the per-neuron latents, (n, latent_size)
        each, float32: the latent diagnostics count active dimensions from them."""
        check_is_fitted(self, "module_")
        X = _check_traces(X, per_trace=self.normalisation == "per_trace")
        self._check_length(X.shape[1])
        mean = np.empty((len(X), self.latent_size), dtype=np.float32)
        logvar = np.empty_like(mean)
        self.module_.eval()
        with torch.inference_mode():
            for rows in _chunks(*X.shape):
                x = torch.from_numpy(self.normalise(X[rows])[0]).to(self.device_)
                mu, lv = self.module_.encode(x)
                mean[rows], logvar[rows] = mu.cpu().numpy(), lv.cpu().numpy()
        return mean, logvar


class PCABaseline(_Normalised, TransformerMixin, BaseEstimator):
    """PCA on the same normalised traces: the paper's baseline, same interface as AVAE.

    sklearn centres the data, so the reconstruction is mean + U U^T (x - mean) rather
    than U U^T x: without centring the first component is spent on the mean trace.
    """

    def __init__(
        self, n_components: int = 8, normalisation: str = "per_trace", random_state: int = 0
    ) -> None:
        self.n_components = n_components
        self.normalisation = normalisation
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> PCABaseline:
        X = _check_traces(X, per_trace=self.normalisation == "per_trace")
        if not 1 <= self.n_components <= min(X.shape):
            raise CalciumAvaeError(
                f"n_components must be between 1 and {min(X.shape)} for {X.shape[0]} traces "
                f"of {X.shape[1]} frames, got {self.n_components}"
            )
        self._fit_norm(X)
        Xn, _ = self.normalise(X)
        self.pca_ = PCA(self.n_components, random_state=self.random_state).fit(Xn)
        self.n_features_in_ = X.shape[1]
        return self

    def _check_length(self, n_frames: int) -> None:
        check_is_fitted(self, "pca_")
        if n_frames != self.n_features_in_:
            raise CalciumAvaeError(
                f"PCA was fitted on traces of {self.n_features_in_} frames, these have {n_frames}"
            )

    def transform(self, X: Any) -> np.ndarray:
        """Projections onto the components, (n, n_components) float32."""
        self._check_length(np.shape(X)[-1])
        return self.pca_.transform(self.normalise(X)[0]).astype(np.float32)

    def inverse_transform(self, Z: Any) -> np.ndarray:
        """Z U^T + mean, in the normalised scale."""
        check_is_fitted(self, "pca_")
        return self.pca_.inverse_transform(np.asarray(Z, dtype=np.float32)).astype(np.float32)

    def reconstruct(self, X: Any) -> np.ndarray:
        """Projection onto the components, in X's own units."""
        return self.transform_reconstruct(X)[1]

    def transform_reconstruct(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Both from one projection, as for the AVAE."""
        self._check_length(np.shape(X)[-1])
        Xn, (lo, span) = self.normalise(X)
        z = self.pca_.transform(Xn)
        out = self.pca_.inverse_transform(z)
        return z.astype(np.float32), ((out + 0.5) * span + lo).astype(np.float32)
