"""The recording every step passes along: traces, timing, ROI geometry and provenance."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import CalciumAvaeError


def rate_from_timestamps(timestamps: np.ndarray | None) -> float | None:
    """Frames per second from the median positive frame interval; None when there is none."""
    steps = np.diff(np.asarray(timestamps if timestamps is not None else [], dtype=float))
    steps = steps[np.isfinite(steps) & (steps > 0)]
    return float(1.0 / np.median(steps)) if len(steps) else None


@dataclass
class Traces:
    """Fluorescence traces of one recording, ROIs x frames.

    NWB stores time x ROIs; we keep ROIs x frames because every model and metric works
    per neuron. ``masks`` are sparse so 10,000 overlapping ROIs cost little; napari
    needs a label image, which :meth:`label_image` builds on demand.
    """

    data: np.ndarray
    """(n_rois, n_frames) float32, in ``unit``."""
    rate: float | None = None
    """Frames per second, when the series is regular."""
    timestamps: np.ndarray | None = None
    """(n_frames,) seconds, when the series has irregular timing."""
    starting_time: float = 0.0
    roi_ids: np.ndarray | None = None
    """(n_rois,) the PlaneSegmentation ids; defaults to the row numbers."""
    masks: list[np.ndarray] | None = None
    """Per ROI, an (k, 3) array of (row, col, weight) pixels in image coordinates."""
    image_shape: tuple[int, int] | None = None
    """(rows, cols) of the imaging plane the masks live on."""
    roi_table: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per-ROI columns (one row per ROI, in ROI order): metadata, ground truth, results."""
    unit: str = "a.u."
    source_file: Path | None = None
    series_path: str | None = None
    """Path of the RoiResponseSeries inside the NWB file, e.g.
    ``processing/ophys/Fluorescence/RoiResponseSeries``."""
    plane_segmentation_path: str | None = None
    roi_rows: np.ndarray | None = None
    """(n_rois,) rows of the PlaneSegmentation the series' ``rois`` region points at."""
    images: dict[str, np.ndarray] = field(default_factory=dict)
    """Reference images (mean, max projection, correlation...) by name, rows x cols."""

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data, dtype=np.float32)
        if self.data.ndim != 2:
            raise CalciumAvaeError(
                f"traces must be 2-D (ROIs x frames), got an array of shape {self.data.shape}"
            )
        n = self.n_rois
        if self.roi_ids is None:
            self.roi_ids = np.arange(n)
        self.roi_ids = np.asarray(self.roi_ids)
        if self.roi_rows is None:
            self.roi_rows = np.arange(n)
        self.roi_rows = np.asarray(self.roi_rows)
        if len(self.roi_ids) != n or len(self.roi_rows) != n:
            raise ValueError("roi_ids and roi_rows must have one entry per ROI")
        if self.masks is not None and len(self.masks) != n:
            raise ValueError("masks must have one entry per ROI")
        if len(self.roi_table) and len(self.roi_table) != n:
            raise ValueError("roi_table must have one row per ROI")
        if self.timestamps is not None:
            self.timestamps = np.asarray(self.timestamps, dtype=np.float64)
            if len(self.timestamps) != self.n_frames:
                raise ValueError("timestamps must have one entry per frame")

    @property
    def n_rois(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.data.shape[1])

    def fingerprint(self) -> str:
        """A digest of the trace values: equal when two files hold the same recording (a
        recording and a result file exported from it, say)."""
        values = np.ascontiguousarray(self.data)
        digest = hashlib.blake2b(values.tobytes(), digest_size=16)
        digest.update(str((values.dtype, values.shape)).encode())
        return digest.hexdigest()

    @property
    def times(self) -> np.ndarray:
        """Frame times in seconds, from the timestamps or the rate."""
        if self.timestamps is not None:
            return self.timestamps
        rate = self.rate or 1.0
        return self.starting_time + np.arange(self.n_frames) / rate

    @property
    def centroids(self) -> np.ndarray:
        """(n_rois, 2) weighted (row, col) centre of each mask; NaN without masks."""
        out = np.full((self.n_rois, 2), np.nan)
        for i, mask in enumerate(self.masks or []):
            if len(mask):
                w = np.abs(mask[:, 2]) + 1e-12
                out[i] = (mask[:, :2] * w[:, None]).sum(0) / w.sum()
        return out

    def label_image(self) -> np.ndarray:
        """Rows x cols image with value ``i + 1`` where ROI ``i`` has its largest weight.

        Where masks overlap the ROI with the larger weight wins, so every ROI that has
        a pixel of its own stays visible.
        """
        if self.masks is None or self.image_shape is None:
            raise CalciumAvaeError("this recording has no ROI masks to draw")
        labels = np.zeros(self.image_shape, dtype=np.int32)
        best = np.zeros(self.image_shape, dtype=np.float64)
        for i, mask in enumerate(self.masks):
            if not len(mask):
                continue
            r = mask[:, 0].astype(np.intp)
            c = mask[:, 1].astype(np.intp)
            w = np.abs(mask[:, 2])
            keep = (r >= 0) & (r < self.image_shape[0]) & (c >= 0) & (c < self.image_shape[1])
            r, c, w = r[keep], c[keep], w[keep]
            win = w > best[r, c]
            labels[r[win], c[win]] = i + 1
            best[r[win], c[win]] = w[win]
        return labels

    def subset(self, rows: np.ndarray) -> Traces:
        """The same recording restricted to some ROIs (boolean mask or indices)."""
        idx = np.arange(self.n_rois)[rows]
        return Traces(
            data=self.data[idx],
            rate=self.rate,
            timestamps=self.timestamps,
            starting_time=self.starting_time,
            roi_ids=self.roi_ids[idx],
            masks=None if self.masks is None else [self.masks[i] for i in idx],
            image_shape=self.image_shape,
            roi_table=self.roi_table.iloc[idx].reset_index(drop=True)
            if len(self.roi_table)
            else pd.DataFrame(),
            unit=self.unit,
            source_file=self.source_file,
            series_path=self.series_path,
            plane_segmentation_path=self.plane_segmentation_path,
            roi_rows=self.roi_rows[idx],
            images=self.images,
        )
