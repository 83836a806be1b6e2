"""Population results in NWB: assemblies and network states, beside the per-ROI results.

Everything goes into the results module (``processing/calcium_avae``), exported with the
recording into a new file, or appended in place, through the same atomic writes as
:func:`napari_calcium_avae.nwb.write.write_results`:

- ``assemblies``: a DynamicTable, one row per assembly, whose ragged ``rois`` column is a
  DynamicTableRegion to the PlaneSegmentation (its members) with the members' ``weights``,
  the assembly's ``strength`` (variance of the z-scored data along its weights), its
  ``p_value`` against circularly shifted data and ``significant``;
- ``assembly_rois``: one row per ROI (``rois`` region) with its ``main_assembly`` (-1: none);
- ``assembly_activity``: a TimeSeries, frames x assemblies (absent when none was found);
- ``population_states``: a TimeSeries of the most likely state per frame;
  ``state_probabilities`` (frames x K); ``state_rates``: per ROI (``rois`` region) its rate
  in each state in spikes per frame; ``state_transitions``: the K x K transition matrix, one
  row per state of origin.

Later runs add ``assemblies_2``... so earlier results stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CalciumAvaeError
from ..traces import Traces
from .common import RESULTS_MODULE, SPIKES_UNIT, open_nwb, text
from .write import free_suffix, provenance_text, write_beside

ASSEMBLIES = "assemblies"
ASSEMBLY_ROIS = "assembly_rois"
ACTIVITY = "assembly_activity"
STATES = "population_states"
STATE_PROBABILITIES = "state_probabilities"
STATE_RATES = "state_rates"
TRANSITIONS = "state_transitions"
NAMES = (ASSEMBLIES, ASSEMBLY_ROIS, ACTIVITY, STATES, STATE_PROBABILITIES, STATE_RATES, TRANSITIONS)


@dataclass
class PopulationResults:
    """Population results of one recording, ROIs in the order of ``roi_rows`` (rows of
    the PlaneSegmentation). Assembly fields are None when no assemblies were written,
    state fields when no states were."""

    roi_rows: np.ndarray
    n_assemblies: int | None = None
    weights: np.ndarray | None = None
    """(assemblies, ROIs): members' weights, 0 for non-members."""
    memberships: np.ndarray | None = None
    labels: np.ndarray | None = None
    activity: np.ndarray | None = None
    """(assemblies, frames)."""
    strength: np.ndarray | None = None
    p_values: np.ndarray | None = None
    significant: np.ndarray | None = None
    states: np.ndarray | None = None
    state_probabilities: np.ndarray | None = None
    rates: np.ndarray | None = None
    """(states, ROIs) spikes per frame."""
    transmat: np.ndarray | None = None
    provenance: dict[str, str] = field(default_factory=dict)


def _timing(traces: Traces, source_series) -> dict:
    if traces.timestamps is not None:
        if source_series.timestamps is not None:
            return {"timestamps": source_series}
        return {"timestamps": traces.timestamps}
    return {"rate": float(traces.rate or 1.0), "starting_time": float(traces.starting_time)}


def _check_fitted(traces: Traces, assemblies: Any, states: Any) -> None:
    if assemblies is None and states is None:
        raise CalciumAvaeError("nothing to write: give fitted assemblies, states or both")
    if assemblies is not None:
        if not hasattr(assemblies, "weights_"):
            raise CalciumAvaeError("the AssemblyDetector is not fitted; fit it first")
        if assemblies.weights_.shape[1] != traces.n_rois or (
            assemblies.activity_.shape[1] != traces.n_frames
        ):
            raise CalciumAvaeError(
                f"the assemblies were found in {assemblies.weights_.shape[1]} ROIs x "
                f"{assemblies.activity_.shape[1]} frames, the traces are {traces.n_rois} x "
                f"{traces.n_frames}; write results computed on these traces"
            )
    if states is not None:
        if not hasattr(states, "states_"):
            raise CalciumAvaeError("the state model is not fitted; fit it first")
        if len(states.states_) != traces.n_frames or states.rates_.shape[1] != traces.n_rois:
            raise CalciumAvaeError(
                f"the states cover {len(states.states_)} frames and "
                f"{states.rates_.shape[1]} ROIs, the traces {traces.n_frames} x "
                f"{traces.n_rois}; write states fitted to these traces"
            )


def _add(nwbfile, containers: tuple, traces: Traces, assemblies, states, facts, name) -> None:
    from hdmf.common import DynamicTable, DynamicTableRegion, VectorData, VectorIndex
    from pynwb import TimeSeries

    source_series, plane_segmentation = containers
    provenance = provenance_text(traces, facts)
    module = nwbfile.processing.get(name)
    if module is None:
        module = nwbfile.create_processing_module(
            name=name, description=f"calcium_avae results; first run: {provenance}"
        )
    suffix = free_suffix(module, NAMES)
    rows = np.asarray(traces.roi_rows, dtype=np.int64)
    timing = _timing(traces, source_series)

    def per_roi_table(table: str, description: str, column: VectorData) -> DynamicTable:
        """One row per ROI: a region to its PlaneSegmentation row and one column."""
        region = DynamicTableRegion(
            name="rois",
            data=rows.tolist(),
            description=f"rows of {traces.plane_segmentation_path}",
            table=plane_segmentation,
        )
        return DynamicTable(
            name=f"{table}{suffix}",
            description=f"{description}; {provenance}",
            id=list(range(traces.n_rois)),
            columns=[region, column],
        )

    if assemblies is not None:
        k = int(assemblies.n_assemblies_)
        members = [np.flatnonzero(assemblies.memberships_[:, a]) for a in range(k)]
        ends = np.cumsum([m.size for m in members]).astype(np.int64)
        flat = np.concatenate(members) if k else np.zeros(0, dtype=np.int64)
        owner = np.repeat(np.arange(k), [m.size for m in members])
        region_column = DynamicTableRegion(
            name="rois",
            data=rows[flat].astype(np.int64),
            description=f"members: rows of {traces.plane_segmentation_path}",
            table=plane_segmentation,
        )
        weights_column = VectorData(
            name="weights",
            data=np.asarray(assemblies.weights_[owner, flat], dtype=np.float64),
            description="each member's weight (the assembly's unit-norm weight vector)",
        )
        table = DynamicTable(
            name=f"{ASSEMBLIES}{suffix}",
            description=(
                f"co-active assemblies, one row per assembly (rois: its members); {provenance}"
            ),
            id=np.arange(k, dtype=np.int64),
            columns=[
                region_column,
                VectorIndex(name="rois_index", data=ends.copy(), target=region_column),
                weights_column,
                VectorIndex(name="weights_index", data=ends.copy(), target=weights_column),
                VectorData(
                    name="strength",
                    data=np.asarray(assemblies.strength_, dtype=np.float64),
                    description="variance of the z-scored activity along the assembly's weights",
                ),
                VectorData(
                    name="p_value",
                    data=np.asarray(assemblies.p_values_, dtype=np.float64),
                    description="against the largest correlation eigenvalue of circularly "
                    "shifted data",
                ),
                VectorData(
                    name="significant",
                    data=np.asarray(assemblies.significant_, dtype=bool),
                    description="p_value below the detector's alpha",
                ),
            ],
        )
        if k:  # an empty table is a best-practice violation: no rows, no table
            module.add(table)
        module.add(
            per_roi_table(
                ASSEMBLY_ROIS,
                f"each ROI's main assembly (row of {ASSEMBLIES}{suffix})",
                VectorData(
                    name="main_assembly",
                    data=np.asarray(assemblies.labels_, dtype=np.int64),
                    description="the assembly in which the ROI has its largest weight "
                    "among its memberships; -1 in none",
                ),
            )
        )
        if k:
            module.add(
                TimeSeries(
                    name=f"{ACTIVITY}{suffix}",
                    data=np.asarray(assemblies.activity_.T, dtype=np.float32),
                    unit="a.u.",
                    description=(
                        f"activity of each assembly (columns: rows of {ASSEMBLIES}{suffix}), "
                        f"z(t)' P z(t) with P its weights' outer product without the "
                        f"diagonal (Lopes-dos-Santos et al. 2013); {provenance}"
                    ),
                    **timing,
                )
            )
    if states is not None:
        n_states = int(states.n_states_)
        kind = type(states).__name__
        module.add(
            TimeSeries(
                name=f"{STATES}{suffix}",
                data=np.asarray(states.states_, dtype=np.int64),
                unit="state index",
                description=(
                    f"most likely network state per frame (Viterbi) of a {kind} with "
                    f"{n_states} states (0..{n_states - 1}); {provenance}"
                ),
                continuity="step",
                **timing,
            )
        )
        module.add(
            TimeSeries(
                name=f"{STATE_PROBABILITIES}{suffix}",
                data=np.asarray(states.state_probabilities_, dtype=np.float32),
                unit="probability",
                description=f"posterior probability of each state per frame; {provenance}",
                **timing,
            )
        )
        module.add(
            per_roi_table(
                STATE_RATES,
                f"each ROI's rate in each state of {STATES}{suffix}",
                VectorData(
                    name="rates",
                    data=np.asarray(states.rates_.T, dtype=np.float64),
                    description=f"rate per state ({SPIKES_UNIT}); NaN: ROI left out",
                ),
            )
        )
        module.add(
            DynamicTable(
                name=f"{TRANSITIONS}{suffix}",
                description=(
                    f"transition matrix of {STATES}{suffix}: row i gives the probabilities "
                    f"of going from state i to each state; {provenance}"
                ),
                id=list(range(n_states)),
                columns=[
                    VectorData(
                        name="to_state",
                        data=np.asarray(states.transmat_, dtype=np.float64),
                        description="probability of each next state (columns 0..K-1)",
                    )
                ],
            )
        )


def write_population(
    traces: Traces,
    output: str | Path | None,
    *,
    assemblies: Any = None,
    states: Any = None,
    facts: dict[str, Any] | None = None,
    in_place: bool = False,
    overwrite: bool = False,
    name: str = RESULTS_MODULE,
) -> Path:
    """Write fitted assemblies (an AssemblyDetector) and/or states (a fitted CalciumHMM)
    of ``traces`` into a new NWB file exported from their source, or append them in place.

    ``facts`` are provenance ``key=value`` pairs kept in the descriptions.
    """
    _check_fitted(traces, assemblies, states)
    extra = 0
    if assemblies is not None:
        extra += assemblies.activity_.nbytes
    if states is not None:
        extra += np.asarray(states.state_probabilities_).size * 4
    return write_beside(
        traces,
        output,
        lambda nwbfile, containers: _add(
            nwbfile, containers, traces, assemblies, states, dict(facts or {}), name
        ),
        extra_bytes=extra,
        in_place=in_place,
        overwrite=overwrite,
    )


def _latest(group, base: str) -> str | None:
    """The name of the last run's object named ``base`` (``base``, ``base_2``...)."""
    found = []
    for key in group:
        if key == base:
            found.append((1, key))
        elif key.startswith(f"{base}_") and key[len(base) + 1 :].isdigit():
            found.append((int(key[len(base) + 1 :]), key))
    return max(found)[1] if found else None


def _facts(description: str) -> dict[str, str]:
    facts = {}
    for part in description.split("; "):
        key, sep, value = part.partition("=")
        if sep and " " not in key:
            facts[key] = value
    return facts


def _source_frames(f, description: str) -> int:
    """Frames of the series the results were computed on (named in their provenance);
    0 when the file no longer holds it."""
    for part in description.split("; "):
        if part.startswith("source series: "):
            data = f.get(f"{part.removeprefix('source series: ').strip('/')}/data")
            return 0 if data is None else int(data.shape[0])
    return 0


def read_population(path: str | Path, name: str = RESULTS_MODULE) -> PopulationResults | None:
    """The latest population results in ``path``, or None when it holds none.

    Assemblies and states are each taken from their latest run.
    """
    path = Path(path)
    with open_nwb(path) as f:
        module = f.get(f"processing/{name}")
        if module is None:
            return None
        rois_name = _latest(module, ASSEMBLY_ROIS)
        rates_name = _latest(module, STATE_RATES)
        if rois_name is None and rates_name is None:
            return None
        per_roi = module[rois_name or rates_name]
        rows = np.asarray(per_roi["rois"][()], dtype=np.int64)
        position = {int(r): i for i, r in enumerate(rows)}
        out = PopulationResults(roi_rows=rows)
        if rois_name is not None:
            suffix = rois_name[len(ASSEMBLY_ROIS) :]
            table = module.get(f"{ASSEMBLIES}{suffix}")  # absent: none found
            k = 0 if table is None else len(table["id"])
            ends = np.asarray(table["rois_index"][()], dtype=np.int64) if k else np.zeros(0)
            members = np.asarray(table["rois"][()], dtype=np.int64) if k else ends
            weights = np.asarray(table["weights"][()], dtype=np.float64) if k else ends
            out.n_assemblies = k
            out.weights = np.zeros((k, rows.size))
            out.memberships = np.zeros((rows.size, k), dtype=bool)
            start = 0
            for a, end in enumerate(ends):
                for row, w in zip(members[start:end], weights[start:end], strict=True):
                    out.weights[a, position[int(row)]] = w
                    out.memberships[position[int(row)], a] = True
                start = end
            out.labels = np.asarray(module[rois_name]["main_assembly"][()], dtype=np.int64)
            out.strength = np.asarray(table["strength"][()] if k else [], dtype=np.float64)
            out.p_values = np.asarray(table["p_value"][()] if k else [], dtype=np.float64)
            out.significant = np.asarray(table["significant"][()] if k else [], dtype=bool)
            activity = f"{ACTIVITY}{suffix}"
            description = text(module[rois_name].attrs.get("description", ""))
            if activity in module:
                out.activity = np.asarray(module[activity]["data"][()], dtype=np.float32).T
            else:  # no assembly: no activity, over the frames of the source series
                n_frames = _source_frames(f, description)
                out.activity = np.zeros((0, n_frames), dtype=np.float32)
            out.provenance = _facts(description)
        if rates_name is not None:
            suffix = rates_name[len(STATE_RATES) :]
            out.states = np.asarray(module[f"{STATES}{suffix}"]["data"][()], dtype=np.int64)
            out.state_probabilities = np.asarray(
                module[f"{STATE_PROBABILITIES}{suffix}"]["data"][()], dtype=np.float64
            )
            rates_rows = np.asarray(module[rates_name]["rois"][()], dtype=np.int64)
            rates = np.asarray(module[rates_name]["rates"][()], dtype=np.float64)
            out.rates = np.full((rates.shape[1], rows.size), np.nan)
            for i, r in enumerate(rates_rows):
                if int(r) in position:
                    out.rates[:, position[int(r)]] = rates[i]
            out.transmat = np.asarray(module[f"{TRANSITIONS}{suffix}"]["to_state"][()])
            if not out.provenance:
                out.provenance = _facts(
                    text(module[f"{STATES}{suffix}"].attrs.get("description", ""))
                )
        return out
