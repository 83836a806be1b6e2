"""Simulated cultures as objects and as NWB sessions in DANDI layout.

One culture = one session: the imaged neurons' ROIs, their noisy and noise-free
fluorescence, their ground-truth spikes and the wiring between them, so that every
number the method should recover is in the file next to the data.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .. import __version__
from ..errors import CalciumAvaeError, CalciumAvaeWarning
from ..files import atomic_output
from .dynamics import NEURON_TYPES, draw_parameters, simulate_spikes
from .fluorescence import add_noise, fluorescence
from .network import build_network

DT_MS = 1.0
IMAGE_PIXELS = 512
SOMA_RADIUS_UM = 7.5
SUBJECT_AGE = "P14D"  # a culture imaged at 14 days in vitro (see docs/simulator.md)
EMISSION_NM = 510.0
EXCITATION_NM = 488.0  # one-photon widefield imaging, as for cultures


@dataclass(frozen=True)
class Culture:
    """One simulated culture with its full ground truth (times in ms from recording start).

    ``weights[i, j]`` is the synapse from j onto i (see ``released_wiring``);
    ``discarded_spike_times_ms`` holds the (negative) spike times of the discarded
    initial stretch, whose calcium is still present when recording starts.
    """

    neuron_type: str
    positions_um: np.ndarray
    dish_radius_um: float
    weights: sp.csc_matrix
    excitatory: np.ndarray
    a: np.ndarray
    b: np.ndarray
    v0: np.ndarray
    du: np.ndarray
    axon_length_um: np.ndarray
    dendrite_radius_um: np.ndarray
    spike_times_ms: list[np.ndarray]
    discarded_spike_times_ms: list[np.ndarray]
    discarded_ms: float
    duration_s: float
    dt_ms: float
    seed: int
    released_wiring: bool

    @property
    def n_neurons(self) -> int:
        return len(self.positions_um)

    def spike_counts(self) -> np.ndarray:
        """Spikes per neuron in the recorded window."""
        return np.array([len(t) for t in self.spike_times_ms])


def simulate_culture(
    neuron_type: str = "RS",
    n_neurons: int | None = None,
    density_per_mm2: float = 250.0,
    dish_size_mm: float = 3.0,
    duration_s: float = 30.0,
    seed: int = 0,
    released_wiring: bool = False,
    discard_s: tuple[float, float] = (1.0, 3.0),
) -> Culture:
    """Grow, wire and run one culture; the discarded stretch T_in ~ U(discard_s).

    ``n_neurons`` defaults to density x dish_size^2 (2,250 for the paper's culture).
    """
    if neuron_type not in NEURON_TYPES:
        known = ", ".join(NEURON_TYPES)
        raise CalciumAvaeError(f"Unknown neuron type {neuron_type!r}; choose one of {known}.")
    if duration_s <= 0 or dish_size_mm <= 0 or density_per_mm2 <= 0:
        raise CalciumAvaeError("Duration, dish size and density must be positive.")
    lo, hi = discard_s
    if not 0 <= lo <= hi:
        raise CalciumAvaeError(
            f"discard_s must be (low, high) with 0 <= low <= high; got {discard_s}."
        )
    n = round(density_per_mm2 * dish_size_mm**2) if n_neurons is None else int(n_neurons)
    if n < 2:
        raise CalciumAvaeError(f"A culture needs at least 2 neurons; got {n}.")
    rng_net, rng_par, rng_dyn = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    net = build_network(n, dish_size_mm, rng_net, released_wiring=released_wiring)
    params = draw_parameters(neuron_type, n, rng_par)
    n_discard = round(rng_dyn.uniform(lo, hi) * 1000.0 / DT_MS)
    n_steps = round(duration_s * 1000.0 / DT_MS)
    times = simulate_spikes(net.weights, params, n_steps, rng_dyn, n_discard, DT_MS)
    recorded = [t[t >= 0] for t in times]
    discarded = [t[t < 0] for t in times]
    return Culture(
        neuron_type=neuron_type,
        positions_um=net.positions_um,
        dish_radius_um=net.dish_radius_um,
        weights=net.weights,
        excitatory=net.excitatory,
        a=params.a,
        b=params.b,
        v0=params.v0,
        du=params.du,
        axon_length_um=net.axon_length_um,
        dendrite_radius_um=net.dendrite_radius_um,
        spike_times_ms=recorded,
        discarded_spike_times_ms=discarded,
        discarded_ms=n_discard * DT_MS,
        duration_s=duration_s,
        dt_ms=DT_MS,
        seed=seed,
        released_wiring=released_wiring,
    )


def firing_statistics(
    culture: Culture, window_ms: float = 100.0, burst_fraction: float = 0.05
) -> dict[str, float]:
    """Summary numbers to compare a culture with the paper's (rates, silence, bursts).

    Bursts travel across the dish as waves lasting hundreds of ms, so a network burst is
    a stretch of 10 ms bins where the population fires more than ``burst_fraction`` x n
    spikes per sliding ``window_ms``, padded by half a window (which closes short gaps);
    participation is the fraction of neurons spiking at least once in a burst (mean and
    max over bursts).
    """
    n = culture.n_neurons
    counts = culture.spike_counts()
    bin_ms = 10.0
    n_bins = int(np.ceil(culture.duration_s * 1000.0 / bin_ms))
    who = np.repeat(np.arange(n), counts)
    times = np.concatenate(culture.spike_times_ms) if counts.sum() else np.empty(0)
    bins = np.minimum((times // bin_ms).astype(np.int64), n_bins - 1)
    width = max(1, round(window_ms / bin_ms))
    per_window = np.convolve(np.bincount(bins, minlength=n_bins), np.ones(width), "same")
    in_burst = per_window > burst_fraction * n
    in_burst = np.convolve(in_burst, np.ones(width), "same") > 0  # pad, close short gaps
    edges = np.diff(np.concatenate([[0], in_burst.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    event = np.full(n_bins, -1)
    for k, (lo, hi) in enumerate(zip(starts, ends, strict=True)):
        event[lo:hi] = k
    spike_event = event[bins]
    inside = spike_event >= 0
    n_bursts = len(starts)
    participation = max_participation = spikes_per_burst = 0.0
    if n_bursts:
        ev_pairs = np.unique(spike_event[inside] * n + who[inside])
        per_event = np.bincount(ev_pairs // n, minlength=n_bursts)
        participation = float(per_event.mean() / n)
        max_participation = float(per_event.max() / n)
        spikes_per_burst = float(inside.sum() / max(len(ev_pairs), 1))
    isis = [np.diff(t) for t in culture.spike_times_ms if len(t) > 1]
    all_isi = np.concatenate(isis) if isis else np.empty(0)
    return {
        "mean_rate_hz": float(counts.mean() / culture.duration_s),
        "fraction_silent": float((counts == 0).mean()),
        "n_bursts": float(n_bursts),
        "burst_participation": participation,
        "max_burst_participation": max_participation,
        "spikes_per_burst": spikes_per_burst,
        "fraction_isi_below_10ms": float((all_isi < 10).mean()) if len(all_isi) else 0.0,
        "median_isi_ms": float(np.median(all_isi)) if len(all_isi) else float("nan"),
        "mean_out_degree": float(culture.weights.nnz / n),
    }


def culture_fluorescence(
    culture: Culture,
    neurons: np.ndarray,
    frame_rate: float,
    per_spike: bool = False,
) -> np.ndarray:
    """Noise-free fluorescence of the given neurons (neurons x frames)."""
    spikes = [
        np.concatenate([culture.discarded_spike_times_ms[i], culture.spike_times_ms[i]])
        for i in neurons
    ]
    return fluorescence(spikes, culture.duration_s, frame_rate, per_spike)


def _sub_seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


@dataclass(frozen=True)
class ImagedCulture:
    """One culture as the microscope sees it: the imaged neurons' traces and ground truth."""

    label: str
    """e.g. "IB03": type and 1-based index, the NWB subject id."""
    culture: Culture
    imaged: np.ndarray
    """Indices of the imaged neurons in the culture, one per ROI."""
    clean: np.ndarray
    """(ROIs, frames) noise-free fluorescence, the ground truth of every noise level."""
    noisy: list[np.ndarray]
    """One (ROIs, frames) float32 array per noise level, all sharing the same spikes."""
    noise_levels: tuple[float, ...]


def simulate_imaged_cultures(
    types: tuple[str, ...] = ("RS", "IB", "CH"),
    cultures_per_type: int = 5,
    neurons_per_culture: int | None = 50,
    duration_s: float = 30.0,
    frame_rate: float = 500.0,
    noise_levels: tuple[float, ...] = (1.0,),
    seed: int = 0,
    density_per_mm2: float = 250.0,
    dish_size_mm: float = 3.0,
    released_wiring: bool = False,
    per_spike_fluorescence: bool = False,
) -> Iterator[ImagedCulture]:
    """The cultures of a dataset in memory, one at a time, type by type (no files).

    Imaged neurons are drawn among those that spiked at least once in the recorded window
    (all neurons when ``neurons_per_culture`` is None). Each culture's seed comes from
    (seed, type, culture index), so the same seed gives the same data and adding a type
    leaves the other cultures unchanged. The options are checked before anything runs.
    """
    if not types:
        raise CalciumAvaeError("No neuron types given; choose among RS, IB, CH.")
    for t in types:
        if t not in NEURON_TYPES:
            known = ", ".join(NEURON_TYPES)
            raise CalciumAvaeError(f"Unknown neuron type {t!r}; choose one of {known}.")
    if cultures_per_type < 1:
        raise CalciumAvaeError("cultures_per_type must be at least 1.")
    if not noise_levels:
        raise CalciumAvaeError("Give at least one noise level (sigma in fluorescence units).")
    if neurons_per_culture is not None and neurons_per_culture < 1:
        raise CalciumAvaeError("neurons_per_culture must be at least 1 (or None for all).")
    if frame_rate <= 0:
        raise CalciumAvaeError(f"Frame rate must be positive; got {frame_rate}.")

    def cultures() -> Iterator[ImagedCulture]:
        for neuron_type in types:
            type_index = list(NEURON_TYPES).index(neuron_type)
            for ci in range(cultures_per_type):
                label = f"{neuron_type}{ci + 1:02d}"
                culture = simulate_culture(
                    neuron_type,
                    None,
                    density_per_mm2,
                    dish_size_mm,
                    duration_s,
                    _sub_seed(seed, type_index, ci, 0),
                    released_wiring,
                )
                rng = np.random.default_rng(_sub_seed(seed, type_index, ci, 1))
                imaged = _choose_imaged(culture, neurons_per_culture, rng, label)
                clean = culture_fluorescence(culture, imaged, frame_rate, per_spike_fluorescence)
                noisy = add_noise(clean, tuple(noise_levels), rng)
                yield ImagedCulture(label, culture, imaged, clean, noisy, tuple(noise_levels))

    return cultures()


def simulate_dataset(
    output_dir: str | Path,
    types: tuple[str, ...] = ("RS", "IB", "CH"),
    cultures_per_type: int = 5,
    neurons_per_culture: int | None = 50,
    duration_s: float = 30.0,
    frame_rate: float = 500.0,
    noise_levels: tuple[float, ...] = (1.0,),
    seed: int = 0,
    density_per_mm2: float = 250.0,
    dish_size_mm: float = 3.0,
    released_wiring: bool = False,
    per_spike_fluorescence: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[Path]:
    """Write one NWB session per culture: output_dir/sub-<TYPE><NN>/..._ses-culture_ophys.nwb.

    The cultures are those of :func:`simulate_imaged_cultures` with the same arguments.
    ``progress(done, total, message)`` is called after each culture.
    """
    cultures = simulate_imaged_cultures(
        types,
        cultures_per_type,
        neurons_per_culture,
        duration_s,
        frame_rate,
        noise_levels,
        seed,
        density_per_mm2,
        dish_size_mm,
        released_wiring,
        per_spike_fluorescence,
    )
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    total = len(types) * cultures_per_type
    paths: list[Path] = []
    for done, c in enumerate(cultures, start=1):
        path = out / f"sub-{c.label}" / f"sub-{c.label}_ses-culture_ophys.nwb"
        write_session(
            path, c.culture, c.imaged, c.clean, c.noisy, c.noise_levels, frame_rate, c.label
        )
        paths.append(path)
        if progress is not None:
            progress(done, total, f"wrote {path.name}")
    return paths


def _choose_imaged(
    culture: Culture, n: int | None, rng: np.random.Generator, label: str
) -> np.ndarray:
    if n is None:
        return np.arange(culture.n_neurons)
    active = np.flatnonzero(culture.spike_counts() > 0)
    if len(active) == 0:
        raise CalciumAvaeError(
            f"Culture {label}: no neuron spiked; simulate longer or image all neurons."
        )
    if len(active) < n:
        warnings.warn(
            f"Culture {label}: only {len(active)} neurons spiked; imaging all of them "
            f"instead of {n}.",
            CalciumAvaeWarning,
            stacklevel=3,
        )
        return active
    return np.sort(rng.choice(active, n, replace=False))


def _disc_pixels(
    centre_px: np.ndarray, radius_px: float, size: int
) -> list[tuple[int, int, float]]:
    """(x, y, weight) of the pixels whose centres lie in the disc (at least one pixel)."""
    r = int(np.ceil(radius_px))
    cx, cy = centre_px
    xs, ys = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1), indexing="ij")
    x0, y0 = int(np.floor(cx)), int(np.floor(cy))
    px, py = x0 + xs.ravel(), y0 + ys.ravel()
    inside = ((px + 0.5 - cx) ** 2 + (py + 0.5 - cy) ** 2 <= radius_px**2) & (
        (px >= 0) & (px < size) & (py >= 0) & (py < size)
    )
    if not inside.any():
        px, py = np.array([min(max(x0, 0), size - 1)]), np.array([min(max(y0, 0), size - 1)])
        inside = np.array([True])
    return [(int(x), int(y), 1.0) for x, y in zip(px[inside], py[inside], strict=True)]


def write_session(
    path: str | Path,
    culture: Culture,
    imaged: np.ndarray,
    clean: np.ndarray,
    noisy: list[np.ndarray],
    noise_levels: tuple[float, ...],
    frame_rate: float,
    subject_id: str,
) -> Path:
    """Write one culture's session to ``path`` atomically (temporary file, then rename).

    Pixel masks use x = column (the dish's x axis) and y = row, on a square image of
    ``IMAGE_PIXELS`` pixels covering the dish; the Units table's ``roi_index`` column is
    the row of the neuron's ROI in the PlaneSegmentation.
    """
    from hdmf.common import DynamicTable, VectorData
    from pynwb import NWBHDF5IO, NWBFile
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
    c = culture
    kind = "released-code wiring" if c.released_wiring else "biological wiring"
    description = (
        f"Simulated dissociated culture of {c.n_neurons} Izhikevich neurons "
        f"({c.neuron_type} excitatory type, 20% inhibitory, {kind}), seed {c.seed}, "
        f"{c.duration_s} s recorded after discarding {c.discarded_ms / 1000:.3f} s; "
        f"GCaMP6s fluorescence model of Deneux et al. 2016; napari-calcium-avae {__version__}."
    )
    nwb = NWBFile(
        session_description=description,
        identifier=str(uuid.uuid4()),
        session_start_time=datetime.now(UTC).replace(microsecond=0),
        session_id="culture",
        experiment_description="Ground-truth simulation to benchmark single-neuron "
        "representation learning from calcium imaging (seed paper section 2.1).",
        source_script="napari_calcium_avae.simulate",
        source_script_file_name="napari_calcium_avae/simulate/session.py",
    )
    nwb.subject = Subject(
        subject_id=subject_id,
        species="Mus musculus",
        sex="U",
        age=SUBJECT_AGE,
        description=f"Simulated in vitro culture {subject_id} (days in vitro given as age).",
    )
    device = nwb.create_device(
        name="Microscope", description="simulated widefield microscope (no hardware)"
    )
    channel = OpticalChannel(
        name="OpticalChannel", description="GCaMP6s emission", emission_lambda=EMISSION_NM
    )
    px_um = 2 * c.dish_radius_um / IMAGE_PIXELS
    plane = nwb.create_imaging_plane(
        name="ImagingPlane",
        optical_channel=channel,
        description="in vitro culture of dissociated cortical neurons (Allen CCF term of "
        "their tissue of origin as location); whole dish, dish centre at the image centre",
        device=device,
        excitation_lambda=EXCITATION_NM,
        indicator="GCaMP6s",
        location="Isocortex",
        imaging_rate=float(frame_rate),
        grid_spacing=[px_um, px_um],
        grid_spacing_unit="micrometers",
        origin_coords=[-c.dish_radius_um, -c.dish_radius_um],
        origin_coords_unit="micrometers",
    )
    ophys = nwb.create_processing_module("ophys", "simulated optical physiology")
    seg = ImageSegmentation(name="ImageSegmentation")
    ps = PlaneSegmentation(
        name="PlaneSegmentation",
        description=f"disc ROIs of radius {SOMA_RADIUS_UM} um at the imaged somata",
        imaging_plane=plane,
    )
    columns = {
        "neuron_type": "Izhikevich type of the culture (RS, IB or CH)",
        "excitatory": "True for excitatory, False for inhibitory neurons",
        "a": "Izhikevich recovery time scale a",
        "b": "Izhikevich recovery sensitivity b",
        "v0": "Izhikevich reset potential v0 = c (mV)",
        "du": "Izhikevich recovery jump du = d",
        "x_um": "soma x position from the dish centre (um)",
        "y_um": "soma y position from the dish centre (um)",
        "culture": "culture label (subject id)",
        "neuron_index": "index of the neuron in the simulated culture",
    }
    for name, doc in columns.items():
        ps.add_column(name=name, description=doc)
    radius_px = max(SOMA_RADIUS_UM / px_um, 1.5)
    image = np.zeros((IMAGE_PIXELS, IMAGE_PIXELS), dtype=np.float32)
    mean_f = clean.mean(axis=1)
    for row, i in enumerate(imaged):
        x, y = c.positions_um[i]
        centre = np.array([(x + c.dish_radius_um) / px_um, (y + c.dish_radius_um) / px_um])
        mask = _disc_pixels(centre, radius_px, IMAGE_PIXELS)
        for mx, my, _ in mask:
            image[mx, my] = mean_f[row]
        ps.add_roi(
            pixel_mask=mask,
            neuron_type=c.neuron_type,
            excitatory=bool(c.excitatory[i]),
            a=float(c.a[i]),
            b=float(c.b[i]),
            v0=float(c.v0[i]),
            du=float(c.du[i]),
            x_um=float(x),
            y_um=float(y),
            culture=subject_id,
            neuron_index=int(i),
        )
    seg.add_plane_segmentation(ps)
    ophys.add(seg)
    ophys.add(
        Images(
            name="SegmentationImages",
            images=[
                GrayscaleImage(
                    name="mean",
                    data=image,
                    description="time-mean noise-free fluorescence painted into the ROI "
                    "masks, stored (x, y) as NWB images are, like the pixel masks",
                )
            ],
            description="reference images of the simulated plane",
        )
    )
    rois = ps.create_roi_table_region(
        description="all imaged neurons", region=list(range(len(imaged)))
    )
    fl = Fluorescence(name="Fluorescence")
    ophys.add(fl)
    for k, (sigma, data) in enumerate(zip(noise_levels, noisy, strict=True)):
        name = "RoiResponseSeries" if k == 0 else f"RoiResponseSeries_sigma_{sigma:g}"
        fl.create_roi_response_series(
            name=name,
            data=np.ascontiguousarray(data.T),
            rois=rois,
            unit="a.u.",
            rate=float(frame_rate),
            description=f"simulated GCaMP6s fluorescence plus Gaussian noise, sigma = "
            f"{sigma:g} (baseline F0 = 42)",
        )
    fl.add_roi_response_series(
        RoiResponseSeries(
            name="NoiseFreeFluorescence",
            data=np.ascontiguousarray(clean.T.astype(np.float32)),
            rois=rois,
            unit="a.u.",
            rate=float(frame_rate),
            description="noise-free simulated fluorescence (ground truth of every noise level)",
        )
    )
    units = Units(
        name="units",
        description="ground-truth spikes of the imaged neurons (recorded window)",
        resolution=c.dt_ms / 1000.0,
    )
    units.add_column(name="neuron_type", description="Izhikevich type")
    units.add_column(name="roi_index", description="row of this neuron's ROI in PlaneSegmentation")
    for row, i in enumerate(imaged):
        units.add_unit(
            spike_times=c.spike_times_ms[i] / 1000.0, neuron_type=c.neuron_type, roi_index=row
        )
    nwb.units = units
    sim = nwb.create_processing_module(
        "simulation", "ground-truth connectivity between the imaged neurons"
    )
    sub = c.weights[imaged][:, imaged].tocoo()
    order = np.lexsort((sub.row, sub.col))
    conn = DynamicTable(
        name="connectivity",
        description="synapses between imaged neurons; input to post = sum of weight x P(pre)",
        columns=[
            VectorData(
                name="pre_roi",
                description="presynaptic ROI row in PlaneSegmentation",
                data=sub.col[order].astype(np.int64),
            ),
            VectorData(
                name="post_roi",
                description="postsynaptic ROI row in PlaneSegmentation",
                data=sub.row[order].astype(np.int64),
            ),
            VectorData(
                name="weight",
                description="synaptic weight (mV per unit of P)",
                data=sub.data[order].astype(np.float64),
            ),
        ],
    )
    sim.add(conn)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, overwrite=True) as tmp, NWBHDF5IO(tmp, "w") as io:
        io.write(nwb)
    return path
