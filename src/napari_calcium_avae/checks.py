"""Which traces can be used: one place for the rules every step applies.

NaN/Inf samples and flat traces cannot be min-max normalised, so such ROIs are left out
with a warning that names them (their results are NaN / noise), rather than interpolated:
a gap filled by us would be a signal we invented.
"""

from __future__ import annotations

import warnings

import numpy as np

from .errors import CalciumAvaeError, CalciumAvaeWarning


def _name_rois(rows: np.ndarray, roi_ids: np.ndarray | None, limit: int = 10) -> str:
    ids = rows if roi_ids is None else np.asarray(roi_ids)[rows]
    shown = ", ".join(str(i) for i in ids[:limit])
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return f"{shown}{more}"


def usable_rows(
    data: np.ndarray,
    *,
    min_frames: int = 1,
    min_rois: int = 1,
    roi_ids: np.ndarray | None = None,
) -> np.ndarray:
    """Boolean mask of the ROIs whose traces are finite and not flat.

    Warns naming the ROIs left out; raises CalciumAvaeError when too few frames or too
    few usable ROIs remain.
    """
    data = np.asarray(data)
    if data.ndim != 2:
        raise CalciumAvaeError(
            f"traces must be a 2-D array (ROIs x frames), got shape {data.shape}"
        )
    n_rois, n_frames = data.shape
    if n_frames < min_frames:
        raise CalciumAvaeError(
            f"the traces have {n_frames} frames but at least {min_frames} are needed; "
            "use a longer recording"
        )
    finite = np.isfinite(data).all(axis=1)
    with np.errstate(invalid="ignore"):
        span = np.nanmax(data, axis=1) - np.nanmin(data, axis=1) if n_frames else np.zeros(n_rois)
    flat = finite & ~(span > 0)
    if (~finite).any():
        warnings.warn(
            f"{(~finite).sum()} ROI(s) with NaN or Inf samples left out: "
            f"{_name_rois(np.flatnonzero(~finite), roi_ids)}",
            CalciumAvaeWarning,
            stacklevel=2,
        )
    if flat.any():
        warnings.warn(
            f"{flat.sum()} flat ROI trace(s) (constant signal) left out: "
            f"{_name_rois(np.flatnonzero(flat), roi_ids)}",
            CalciumAvaeWarning,
            stacklevel=2,
        )
    usable = finite & ~flat
    if usable.sum() < min_rois:
        raise CalciumAvaeError(
            f"only {int(usable.sum())} usable ROI(s) of {n_rois}, at least {min_rois} needed"
        )
    return usable
