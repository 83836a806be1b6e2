"""Per-ROI reference labels from a CSV table, and how well clusters agree with them.

Users who already know something about their neurons (published assemblies, cell types
from a stain) want to see it beside the clusters and to score the agreement. The table
has a ``roi`` column, the row of the ROI in the recording's ROI table, and one label
column. A cell may list several labels separated by spaces (a neuron in several
assemblies): the first one is taken, so that each ROI has exactly one. An empty cell, or
a ROI the table does not list, is -1, "none", which ARI scores as a group of its own, as
it does DBSCAN's noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CalciumAvaeError
from .metrics import adjusted_rand

ROI_COLUMN = "roi"
NONE = -1


@dataclass(frozen=True)
class LabelTable:
    """One integer label per ROI row (-1: none), and the label column's name."""

    column: str
    labels: np.ndarray
    names: dict[int, str]
    """Label -> the text the table used for it (labels that are not numbers get codes)."""


def read_label_table(path: str | Path, n_rois: int, column: str | None = None) -> LabelTable:
    """Read a per-ROI label CSV for a recording of ``n_rois`` ROIs.

    ``column`` is the label column; by default the table's only column besides ``roi``,
    or the one named ``label``.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise CalciumAvaeError(f"cannot read the label table {path.name}: {err}") from err
    if ROI_COLUMN not in table.columns:
        raise CalciumAvaeError(
            f"{path.name} has no '{ROI_COLUMN}' column: give one ROI row per line, e.g. 'roi,label'"
        )
    column = column or _label_column(table, path.name)
    if column not in table.columns:
        raise CalciumAvaeError(f"{path.name} has no column '{column}'")
    rois = pd.to_numeric(table[ROI_COLUMN], errors="coerce")
    if rois.isna().any() or (rois % 1 != 0).any():
        raise CalciumAvaeError(f"{path.name}: the '{ROI_COLUMN}' column must hold ROI rows 0, 1, …")
    rois = rois.astype(np.int64).to_numpy()
    if rois.min(initial=0) < 0 or rois.max(initial=0) >= n_rois:
        raise CalciumAvaeError(
            f"{path.name} names ROI rows up to {rois.max()}, but the recording has {n_rois} "
            f"ROIs (rows 0-{n_rois - 1}): is it the table of another recording?"
        )
    if len(np.unique(rois)) != len(rois):
        raise CalciumAvaeError(f"{path.name} lists a ROI row twice")
    first = table[column].str.split().str[0].fillna("")
    labels, names = _codes(first.to_numpy(dtype=str))
    out = np.full(n_rois, NONE, dtype=np.int64)
    out[rois] = labels
    return LabelTable(column=column, labels=out, names=names)


def agreement(clusters: np.ndarray, reference: np.ndarray) -> float:
    """ARI of the clusters with the reference labels over all ROIs; both -1 form groups."""
    clusters, reference = np.asarray(clusters), np.asarray(reference)
    if clusters.shape != reference.shape:
        raise CalciumAvaeError(
            f"{len(clusters)} clustered ROIs but {len(reference)} reference labels"
        )
    return adjusted_rand(reference, clusters)


def _label_column(table: pd.DataFrame, name: str) -> str:
    others = [c for c in table.columns if c != ROI_COLUMN]
    if len(others) == 1:
        return others[0]
    if "label" in others:
        return "label"
    raise CalciumAvaeError(
        f"{name} has the columns {', '.join(others)} besides '{ROI_COLUMN}': name the label "
        "column 'label' or keep only one"
    )


def _codes(tokens: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
    """Integer labels for the first tokens: the numbers themselves, else sorted codes."""
    given = tokens != ""
    numbers = pd.to_numeric(pd.Series(tokens[given]), errors="coerce")
    labels = np.full(len(tokens), NONE, dtype=np.int64)
    if not numbers.isna().any() and (numbers % 1 == 0).all() and (numbers >= 0).all():
        labels[given] = numbers.astype(np.int64).to_numpy()
        return labels, {int(v): str(int(v)) for v in np.unique(labels[given])}
    categories = sorted(set(tokens[given].tolist()))
    code = {text: i for i, text in enumerate(categories)}
    labels[given] = [code[t] for t in tokens[given]]
    return labels, {i: text for text, i in code.items()}
