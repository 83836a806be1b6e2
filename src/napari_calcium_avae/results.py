"""What the analysis produces for one recording, ready to be written to NWB or shown."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .analysis.diagnostics import LatentDiagnostics


@dataclass(frozen=True)
class Column:
    """How a per-ROI field of Results is named and typed in tables.

    The NWB results table has one column ``name`` per field (a 2-D one for vectors);
    flat tables (``Traces.roi_table``, a napari layer's features) spell a vector as
    ``name_0``, ``name_1``... . Writer, reader and layers all go through this one spec.
    """

    name: str
    dtype: type
    fill: float | int
    """Value of ROIs a stored result does not cover."""
    vector: bool
    description: str

    def component(self, flat_name: object) -> int | None:
        """Which component a flat column holds (0 for a scalar field), None if not ours."""
        if not self.vector:
            return 0 if flat_name == self.name else None
        match = re.fullmatch(rf"{re.escape(self.name)}_(\d+)", str(flat_name))
        return None if match is None else int(match.group(1))

    def flat_names(self, table: pd.DataFrame) -> list[str]:
        """This field's columns in a flat table, vectors in component order."""
        found = [(k, c) for c in table.columns if (k := self.component(c)) is not None]
        return [c for _, c in sorted(found)]


PER_ROI: dict[str, Column] = {
    "latents": Column(
        "latent", np.float32, np.nan, True, "posterior mean of the AVAE latent vector of each ROI"
    ),
    "labels": Column(
        "cluster",
        np.int64,
        -1,
        False,
        "cluster of the latent means (HDBSCAN or DBSCAN: see the provenance), -1 for noise",
    ),
    "probabilities": Column(
        "cluster_probability",
        np.float32,
        np.nan,
        False,
        "strength of the ROI's membership of its cluster, 0 (noise) to 1 (HDBSCAN: the "
        "density level at which it leaves the cluster over the cluster's highest; DBSCAN: "
        "1 for every member)",
    ),
    "outlier_scores": Column(
        "outlier_score",
        np.float32,
        np.nan,
        False,
        "GLOSH outlier score of the ROI, 0 (typical) to 1 (outlier), HDBSCAN only",
    ),
    "embedding": Column(
        "embedding", np.float32, np.nan, True, "2-D display embedding of the latent means"
    ),
    "decay_s": Column(
        "calcium_decay_s",
        np.float32,
        np.nan,
        False,
        "decay time constant (s) of the fitted calcium observation model",
    ),
    "spike_gain": Column(
        "spike_gain",
        np.float32,
        np.nan,
        False,
        "fluorescence of one spike in the fitted calcium observation model (source unit)",
    ),
    "noise_sd": Column(
        "noise_sd",
        np.float32,
        np.nan,
        False,
        "standard deviation of the fluorescence noise in the fitted observation model",
    ),
}
"""The fields of Results with one value (or vector) per ROI, in table order."""

PER_ROW = (*PER_ROI, "reconstruction", "spike_rates")
"""Every field of Results with one row per ROI: per-ROI columns and ROIs x frames arrays."""


@dataclass
class Results:
    """Per-ROI outputs of the model and the clustering, rows aligned with the Traces.

    Each fact has one field. Per-ROI fields are declared in ``PER_ROI`` (their table
    columns); the others (reconstruction, provenance, diagnostics) are per recording.
    ``provenance`` holds flat, human-readable facts (hyperparameters, seed, software
    version, source series, latent diagnostics): the writer renders them into
    descriptions, never into table cells.
    """

    latents: np.ndarray | None = None
    """(n_rois, D2) posterior means; None for spike inference alone."""
    labels: np.ndarray | None = None
    """(n_rois,) cluster labels (HDBSCAN or DBSCAN), -1 for noise."""
    probabilities: np.ndarray | None = None
    """(n_rois,) membership strength in [0, 1] (NaN: no latent)."""
    outlier_scores: np.ndarray | None = None
    """(n_rois,) GLOSH outlier score in [0, 1] (HDBSCAN; NaN for DBSCAN or no latent)."""
    embedding: np.ndarray | None = None
    """(n_rois, 2) display embedding (t-SNE or PCA of the latents); None when not drawn."""
    reconstruction: np.ndarray | None = None
    """(n_rois, n_frames) denoised traces in the source's units."""
    decay_s: np.ndarray | None = None
    """(n_rois,) calcium decay time constants (s) of the spike-inference model."""
    spike_gain: np.ndarray | None = None
    """(n_rois,) fluorescence per spike (source unit)."""
    noise_sd: np.ndarray | None = None
    """(n_rois,) noise standard deviation (source unit)."""
    spike_rates: np.ndarray | None = None
    """(n_rois, n_frames) inferred spikes per frame (expected counts)."""
    provenance: dict[str, str | int | float] = field(default_factory=dict)
    diagnostics: LatentDiagnostics | None = None
    """Whether the latents carry information (set by pipeline.apply; its facts are also in
    provenance, which is what a file keeps)."""

    def __post_init__(self) -> None:
        if self.latents is not None:
            self.latents = np.asarray(self.latents, dtype=np.float32)
        present = [(name, v) for name in PER_ROW if (v := getattr(self, name)) is not None]
        if not present:
            raise ValueError("Results needs at least one per-ROI field (latents, spike rates…)")
        first, value = present[0]
        for name, other in present[1:]:
            if len(other) != len(value):
                raise ValueError(f"{name} has {len(other)} rows, {first} has {len(value)}")

    @property
    def n_rois(self) -> int:
        return next(len(v) for name in PER_ROW if (v := getattr(self, name)) is not None)

    def table(self) -> pd.DataFrame:
        """The per-ROI fields as flat columns (``latent_0``..., ``cluster``, ``embedding_0``...)."""
        columns: dict[str, np.ndarray] = {}
        for name, column in PER_ROI.items():
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value)
            if column.vector:
                for k in range(value.shape[1]):
                    columns[f"{column.name}_{k}"] = value[:, k]
            else:
                columns[column.name] = value
        return pd.DataFrame(columns)

    @classmethod
    def from_table(cls, table: pd.DataFrame, like: Results | None = None) -> Results:
        """Per-ROI fields from flat columns (as :meth:`table` writes them), the others from
        ``like``: how a layer whose features a user may have edited becomes Results."""
        values: dict[str, object] = {}
        if like is not None:
            values = {f.name: getattr(like, f.name) for f in fields(like)}
            values["provenance"] = dict(like.provenance)
        if like is None and not any(column.flat_names(table) for column in PER_ROI.values()):
            raise ValueError("the table has no result columns")
        for name, column in PER_ROI.items():
            names = column.flat_names(table)
            if not names:
                values[name] = None
            elif column.vector:
                values[name] = table[names].to_numpy(dtype=column.dtype)
            else:
                values[name] = table[names[0]].to_numpy(dtype=column.dtype)
        return cls(**values)


def is_result_column(name: object) -> bool:
    """True for a flat column that :meth:`Results.table` makes."""
    return any(column.component(name) is not None for column in PER_ROI.values())
