"""Generated recordings as NWB sessions in the simulator's layout (``nwb/session.py``).

Every generated file is also a benchmark with ground truth, as a simulated culture is:
the noisy fluorescence (``RoiResponseSeries``, the default series), the noise-free one
(``NoiseFreeFluorescence``), the generating spikes in the Units table (``roi_index`` =
the ROI's row) and the population state per frame (processing module ``generation``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..citation import PAPER
from ..files import atomic_output
from ..nwb.session import EMISSION_NM, EXCITATION_NM, NOISE_FREE_SERIES

if TYPE_CHECKING:
    from ..traces import Traces
    from .generator import GeneratedRecording

#: Pixels between ROI centres on the generated plane (discs of radius ROI_RADIUS_PX).
ROI_SPACING_PX = 12
ROI_RADIUS_PX = 4.0
#: Spike times are written rounded to this (the simulator's step, 1 ms).
SPIKE_RESOLUTION_S = 0.001
#: Species written when the fitted recording states none (DANDI requires one).
FALLBACK_SPECIES = "Mus musculus"
#: Age written when the fitted recording states none: an open ISO 8601 interval, "at
#: least 0 days", which DANDI accepts and which claims nothing.
FALLBACK_AGE = "P0D/"
#: Imaging location written when the fitted recording states none: the Allen CCF's root.
FALLBACK_LOCATION = "root"


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return _text(value.item()) if value.size == 1 else str(value.tolist())
    return str(value)


def recording_facts(traces: Traces) -> dict[str, str]:
    """Facts a generated file carries over from the recording its model was fitted to: its
    name, series, subject (species, age, sex, id) and indicator, where the file has them."""
    facts: dict[str, str] = {}
    source = traces.source_file
    if source is None:
        return facts
    facts["file"] = Path(str(source)).name
    if traces.series_path:
        facts["series"] = str(traces.series_path)
    if not Path(str(source)).is_file():
        return facts
    import h5py

    try:
        with h5py.File(source, "r") as f:
            subject = f.get("general/subject")
            if subject is not None:
                for key in ("species", "age", "sex", "subject_id"):
                    if key in subject and isinstance(subject[key], h5py.Dataset):
                        facts[key] = _text(subject[key][()])
            planes = f.get("general/optophysiology")
            if planes is not None:
                for plane in planes.values():
                    if isinstance(plane, h5py.Group) and "indicator" in plane:
                        facts["indicator"] = _text(plane["indicator"][()])
                        if "location" in plane:
                            facts["location"] = _text(plane["location"][()])
                        break
    except OSError:
        return facts
    return facts


def roi_masks(n: int) -> tuple[list[list[tuple[int, int, float]]], tuple[int, int]]:
    """Disc pixel masks (x, y, weight) on a square grid, and the plane's (x, y) size: the
    generated neurons have no place in a real field of view, only a ROI each."""
    side = max(1, int(np.ceil(np.sqrt(n))))
    size = side * ROI_SPACING_PX
    r = int(np.ceil(ROI_RADIUS_PX))
    offsets = [
        (dx, dy)
        for dx in range(-r, r + 1)
        for dy in range(-r, r + 1)
        if dx * dx + dy * dy <= ROI_RADIUS_PX**2
    ]
    masks = []
    for i in range(n):
        cx = (i % side) * ROI_SPACING_PX + ROI_SPACING_PX // 2
        cy = (i // side) * ROI_SPACING_PX + ROI_SPACING_PX // 2
        masks.append([(cx + dx, cy + dy, 1.0) for dx, dy in offsets])
    return masks, (size, size)


def write_generated(
    path: str | Path,
    recording: GeneratedRecording,
    *,
    overwrite: bool = False,
    spike_seed: int | None = 0,
) -> Path:
    """Write a generated recording to ``path`` as an NWB session, atomically."""
    from hdmf.common import DynamicTable, VectorData
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.base import Images
    from pynwb.file import Subject
    from pynwb.image import GrayscaleImage
    from pynwb.misc import Units
    from pynwb.ophys import (
        Fluorescence,
        ImageSegmentation,
        OpticalChannel,
        PlaneSegmentation,
        RoiResponseSeries,
    )

    path = Path(path)
    facts = recording.facts
    rate = float(recording.frame_rate)
    n, t = recording.n_neurons, recording.n_frames
    source = facts.get("source_file", "an unnamed recording")
    indicator = str(facts.get("source_indicator", "unknown"))
    species = str(facts.get("source_species", "")) or FALLBACK_SPECIES
    coupling = (
        "independent neurons (each with its own state sequence)"
        if facts.get("independent")
        else f"one shared sequence of {facts.get('n_states')} population state(s)"
    )
    description = (
        f"Synthetic population recording of {n} neurons, {t / rate:g} s at {rate:g} Hz, "
        f"generated by napari-calcium-avae {__version__} (PopulationGenerator, seed "
        f"{facts.get('seed')}) from a model fitted to {source} ({facts.get('fitted_neurons')} "
        f"neurons at {facts.get('fitted_frame_rate'):g} Hz): {coupling}, Poisson spikes, "
        f"seed 002's AR calcium model with each neuron's kinetics, gain and noise; the "
        f"neurons are the fitted ones (copy 0) or jittered copies (jitter "
        f"{facts.get('jitter'):g})."
    )
    nwb = NWBFile(
        session_description=description,
        identifier=str(uuid.uuid4()),
        session_start_time=datetime.now(UTC).replace(microsecond=0),
        session_id="generated",
        experiment_description="Generated recording with ground truth (spikes, noise-free "
        f"fluorescence, population states) to benchmark analyses of calcium imaging ({PAPER}).",
        source_script="napari_calcium_avae.generate",
        source_script_file_name="napari_calcium_avae/generate/nwb.py",
    )
    subject_note = (
        ""
        if facts.get("source_species")
        else f" The fitted recording states no species; {FALLBACK_SPECIES} is written."
    )
    age = str(facts.get("source_age", "")) or FALLBACK_AGE
    nwb.subject = Subject(
        subject_id=f"generated-{facts.get('source_subject_id', 'model')}",
        species=species,
        sex=str(facts.get("source_sex", "U")) or "U",
        description=f"No animal: neurons generated from a model of {source}"
        f" (subject {facts.get('source_subject_id', 'not stated')}).{subject_note}"
        + ("" if facts.get("source_age") else " Its age is not stated (written as P0D/)."),
        age=age,
    )
    device = nwb.create_device(name="Microscope", description="generated data (no hardware)")
    channel = OpticalChannel(
        name="OpticalChannel", description=f"{indicator} emission", emission_lambda=EMISSION_NM
    )
    masks, shape = roi_masks(n)
    plane = nwb.create_imaging_plane(
        name="ImagingPlane",
        optical_channel=channel,
        description="generated neurons laid out on a grid (no real field of view)",
        device=device,
        excitation_lambda=EXCITATION_NM,
        indicator=indicator,
        location=str(facts.get("source_location", "")) or FALLBACK_LOCATION,
        imaging_rate=rate,
    )
    ophys = nwb.create_processing_module("ophys", "generated optical physiology")
    seg = ImageSegmentation(name="ImageSegmentation")
    ps = PlaneSegmentation(
        name="PlaneSegmentation",
        description=f"disc ROIs of radius {ROI_RADIUS_PX:g} px on a grid, one per generated neuron",
        imaging_plane=plane,
    )
    columns = {
        "template_neuron": "row of the fitted recording's usable neurons this neuron copies",
        "copy_index": "0 for the exact fitted neuron, k > 0 for its k-th jittered copy",
        "decay_s": "calcium decay time constant (s)",
        "gain": "fluorescence step per spike (recording units)",
        "noise_sd": "SD of the noise fed through the AR calcium process (recording units)",
        "baseline": "baseline fluorescence (recording units)",
        "firing_rate_hz": "expected firing rate (Hz)",
    }
    for name, doc in columns.items():
        ps.add_column(name=name, description=doc)
    for i in range(n):
        ps.add_roi(
            pixel_mask=masks[i],
            **{k: _cell(recording.neurons[k][i]) for k in columns},
        )
    seg.add_plane_segmentation(ps)
    ophys.add(seg)
    image = np.zeros(shape, np.float32)
    level = recording.noise_free.mean(1)
    for i, mask in enumerate(masks):
        for x, y, _ in mask:
            image[x, y] = level[i]
    ophys.add(
        Images(
            name="SegmentationImages",
            images=[
                GrayscaleImage(
                    name="mean",
                    data=image,
                    description="each ROI painted at its mean noise-free fluorescence; "
                    "stored (x, y) as NWB images are, like the pixel masks",
                )
            ],
            description="reference image of the generated plane",
        )
    )
    rois = ps.create_roi_table_region(description="all generated neurons", region=list(range(n)))
    unit = "a.u."
    fl = Fluorescence(name="Fluorescence")
    ophys.add(fl)
    fl.create_roi_response_series(
        name="RoiResponseSeries",
        data=np.ascontiguousarray(recording.traces.T),
        rois=rois,
        unit=unit,
        rate=rate,
        description="generated fluorescence (noise fed through each neuron's AR calcium "
        f"process; units of the fitted recording, {facts.get('input_kind', 'unknown')})",
    )
    fl.add_roi_response_series(
        RoiResponseSeries(
            name=NOISE_FREE_SERIES,
            data=np.ascontiguousarray(recording.noise_free.T),
            rois=rois,
            unit=unit,
            rate=rate,
            description="noise-free generated fluorescence (ground truth)",
        )
    )
    units = Units(
        name="units",
        description="ground-truth spikes of the generated neurons; a frame's spikes at "
        "uniform random times within that frame (1 ms steps from its start)",
        resolution=SPIKE_RESOLUTION_S,
    )
    units.add_column(name="roi_index", description="row of this neuron's ROI in PlaneSegmentation")
    for row, times in enumerate(recording.spike_times(spike_seed, SPIKE_RESOLUTION_S)):
        units.add_unit(spike_times=times, roi_index=row)
    nwb.units = units
    gen = nwb.create_processing_module(
        "generation", "ground truth of how the recording was generated"
    )
    states = np.asarray(recording.states)
    gen.add(
        TimeSeries(
            name="population_state",
            data=np.ascontiguousarray(states.T.astype(np.int32)),
            unit="n.a.",
            rate=rate,
            description="population state per frame (columns = neurons when each neuron has "
            "its own sequence: independent neurons)",
        )
    )
    gen.add(
        DynamicTable(
            name="generation_facts",
            description="how this recording was generated",
            columns=[
                VectorData(name="key", description="fact", data=[str(k) for k in sorted(facts)]),
                VectorData(
                    name="value",
                    description="its value",
                    data=[str(facts[k]) for k in sorted(facts)],
                ),
            ],
        )
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, overwrite=overwrite) as tmp, NWBHDF5IO(tmp, "w") as io:
        io.write(nwb)
    return path


def _cell(value: Any) -> Any:
    value = np.asarray(value).item()
    return float(value) if isinstance(value, float) else value


def read_ground_truth(path: str | Path) -> dict[str, Any]:
    """The generating spikes (times per ROI row) and states of a generated file."""
    import h5py

    with h5py.File(path, "r") as f:
        times = f["units/spike_times"][()]
        index = f["units/spike_times_index"][()]
        rows = f["units/roi_index"][()]
        states = f["processing/generation/population_state/data"][()]
    starts = np.concatenate([[0], index[:-1]])
    spikes = [np.asarray(times[a:b]) for a, b in zip(starts, index, strict=True)]
    order = np.argsort(rows)
    return {"spike_times": [spikes[i] for i in order], "states": np.asarray(states).T}
