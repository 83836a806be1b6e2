"""What the analysis produces for one recording, ready to be written to NWB or shown."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Results:
    """Per-ROI outputs of the model and the clustering, rows aligned with the Traces.

    ``provenance`` holds flat, human-readable facts (hyperparameters, seed, software
    version, source series): the writer renders them into descriptions, never into
    table cells.
    """

    latents: np.ndarray
    """(n_rois, D2) posterior means."""
    labels: np.ndarray | None = None
    """(n_rois,) DBSCAN cluster labels, -1 for noise."""
    embedding: np.ndarray | None = None
    """(n_rois, 2) display embedding (t-SNE or PCA of the latents)."""
    reconstruction: np.ndarray | None = None
    """(n_rois, n_frames) denoised traces in the source's units."""
    provenance: dict[str, str | int | float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.latents = np.asarray(self.latents, dtype=np.float32)
        n = len(self.latents)
        for name in ("labels", "embedding", "reconstruction"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} rows, latents have {n}")

    @property
    def n_rois(self) -> int:
        return len(self.latents)
