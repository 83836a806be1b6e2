"""A simulated culture as an NWB session: the data, the imaged plane and all ground truth.

One culture = one session: the imaged neurons' ROIs and reference image, their noisy and
noise-free fluorescence, their ground-truth spikes and the wiring between them, so that
every number the method should recover is in the file next to the data.
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

if TYPE_CHECKING:
    from ..simulate.imaging import FieldOfView
    from ..simulate.session import ImagedCulture

NOISE_FREE = "NoiseFree"
"""Marks a ground-truth series: never the default series, and what the demo and the
benchmark score against."""
NOISE_FREE_SERIES = f"{NOISE_FREE}Fluorescence"
SUBJECT_AGE = "P14D"  # a culture imaged at 14 days in vitro (see docs/simulator.md)
EMISSION_NM = 510.0
EXCITATION_NM = 488.0  # one-photon widefield imaging, as for cultures
ROI_INDEX_DOC = "row of this neuron's ROI in PlaneSegmentation"


def write_session(
    path: str | Path,
    imaged_culture: ImagedCulture,
    view: FieldOfView,
    frame_rate: float,
    *,
    overwrite: bool = False,
) -> Path:
    """Write one culture's session to ``path`` atomically (temporary file, then rename).

    Pixel masks and the mean image come from ``view``, x = column (the dish's x axis) and
    y = row, stored (x, y) as NWB images are; the Units table's ``roi_index`` column is the
    row of the neuron's ROI in the PlaneSegmentation.
    """
    from hdmf.common import DynamicTable, VectorData
    from pynwb import NWBFile
    from pynwb.file import Subject

    path = Path(path)
    c, imaged, subject_id = imaged_culture.culture, imaged_culture.imaged, imaged_culture.label
    kind = "released-code wiring" if c.released_wiring else "biological wiring"
    settings = imaged_culture.settings
    indicator = settings.indicator_label if settings is not None else "GCaMP6s"
    roi_types, roi_indicators = imaged_culture.neuron_types, imaged_culture.indicators
    model = (
        f"{indicator} fluorescence model of napari_calcium_avae.simulate.indicators"
        if settings is None
        else f"{indicator} fluorescence model of napari_calcium_avae.simulate.indicators "
        f"(amplitude CV {settings.amplitude_cv:g}, decay CV {settings.decay_cv:g}, neuropil "
        f"r {settings.neuropil:g}, drift {settings.drift:g}); settings: {settings}"
    )
    description = (
        f"Simulated dissociated culture of {c.n_neurons} Izhikevich neurons "
        f"({_type_text(c.neuron_types)}, 20% inhibitory, {kind}), seed {c.seed}, "
        f"{c.duration_s} s recorded after discarding {c.discarded_ms / 1000:.3f} s; "
        f"{model}; napari-calcium-avae {__version__}."
    )
    nwb = NWBFile(
        session_description=description,
        identifier=str(uuid.uuid4()),
        session_start_time=datetime.now(UTC).replace(microsecond=0),
        session_id="culture",
        experiment_description="Ground-truth simulation to benchmark single-neuron "
        f"representation learning from calcium imaging ({PAPER}, section 2.1).",
        source_script="napari_calcium_avae.simulate",
        source_script_file_name="napari_calcium_avae/nwb/session.py",
    )
    nwb.subject = Subject(
        subject_id=subject_id,
        species="Mus musculus",
        sex="U",
        age=SUBJECT_AGE,
        description=f"Simulated in vitro culture {subject_id} (days in vitro given as age).",
    )
    columns = {
        "neuron_type": "Izhikevich type of this neuron (RS, IB or CH; a mixed culture, "
        "subject MIXnn, holds several)",
        "indicator": "calcium indicator this neuron expresses, whose kinetics, amplitude "
        "and saturation made its fluorescence",
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
    rois = [
        {
            "pixel_mask": mask,
            "neuron_type": str(neuron_type),
            "indicator": str(roi_indicator),
            "excitatory": bool(c.excitatory[i]),
            "a": float(c.a[i]),
            "b": float(c.b[i]),
            "v0": float(c.v0[i]),
            "du": float(c.du[i]),
            "x_um": float(c.positions_um[i][0]),
            "y_um": float(c.positions_um[i][1]),
            "culture": subject_id,
            "neuron_index": int(i),
        }
        for i, mask, neuron_type, roi_indicator in zip(
            imaged, view.masks, roi_types, roi_indicators, strict=True
        )
    ]
    noisy = zip(imaged_culture.noise_levels, imaged_culture.noisy, strict=True)
    add_imaged_plane(
        nwb,
        indicator=indicator,
        frame_rate=frame_rate,
        device_description="simulated widefield microscope (no hardware)",
        plane={
            "description": "in vitro culture of dissociated cortical neurons (Allen CCF term "
            "of their tissue of origin as location); field of view framed on the imaged "
            "neurons, origin_coords from the dish centre",
            "location": "Isocortex",
            "grid_spacing": [view.pixel_um, view.pixel_um],
            "grid_spacing_unit": "micrometers",
            "origin_coords": list(view.origin_um),
            "origin_coords_unit": "micrometers",
        },
        module_description="simulated optical physiology",
        roi_description=f"disc ROIs of radius {view.soma_radius_um} um at the imaged somata",
        columns=columns,
        rois=rois,
        image=view.image,
        image_description="simulated widefield mean image: every soma in view at its "
        "time-mean noise-free fluorescence, blurred by the point-spread function, on "
        "neuropil background, with shot noise; stored (x, y) as NWB images are, like the "
        "pixel masks",
        images_description="reference images of the simulated plane",
        series=[
            (
                "RoiResponseSeries" if k == 0 else f"RoiResponseSeries_sigma_{sigma:g}",
                data,
                f"simulated {indicator} fluorescence plus Gaussian noise, sigma = {sigma:g} "
                "(baseline F0 = 42)",
            )
            for k, (sigma, data) in enumerate(noisy)
        ],
        noise_free=(
            imaged_culture.clean,
            "noise-free simulated fluorescence (ground truth of every noise level)",
        ),
        region_description="all imaged neurons",
    )
    add_units(
        nwb,
        description="ground-truth spikes of the imaged neurons (recorded window)",
        resolution=c.dt_ms / 1000.0,
        columns={"neuron_type": "Izhikevich type of this neuron"},
        rows=[
            {
                "spike_times": c.spike_times_ms[i] / 1000.0,
                "neuron_type": str(roi_types[row]),
                "roi_index": row,
            }
            for row, i in enumerate(imaged)
        ],
    )
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
    return write_nwb_file(path, nwb, overwrite)


def add_imaged_plane(
    nwb: Any,
    *,
    indicator: str,
    frame_rate: float,
    device_description: str,
    plane: dict[str, Any],
    module_description: str,
    roi_description: str,
    columns: dict[str, str],
    rois: list[dict[str, Any]],
    image: np.ndarray,
    image_description: str,
    images_description: str,
    series: list[tuple[str, np.ndarray, str]],
    noise_free: tuple[np.ndarray, str],
    region_description: str,
) -> None:
    """The ophys part every ground-truth session shares (simulated and generated): one
    plane, its ROIs (pixel masks plus ``columns``), a mean image, the noisy series
    (``series``: name, ROIs x frames, description; the first is the default) and the
    noise-free series, all in a processing module ``ophys``."""
    from pynwb.base import Images
    from pynwb.image import GrayscaleImage
    from pynwb.ophys import (
        Fluorescence,
        ImageSegmentation,
        OpticalChannel,
        PlaneSegmentation,
        RoiResponseSeries,
    )

    device = nwb.create_device(name="Microscope", description=device_description)
    channel = OpticalChannel(
        name="OpticalChannel", description=f"{indicator} emission", emission_lambda=EMISSION_NM
    )
    imaging_plane = nwb.create_imaging_plane(
        name="ImagingPlane",
        optical_channel=channel,
        device=device,
        excitation_lambda=EXCITATION_NM,
        indicator=indicator,
        imaging_rate=float(frame_rate),
        **plane,
    )
    ophys = nwb.create_processing_module("ophys", module_description)
    seg = ImageSegmentation(name="ImageSegmentation")
    ps = PlaneSegmentation(
        name="PlaneSegmentation", description=roi_description, imaging_plane=imaging_plane
    )
    for name, doc in columns.items():
        ps.add_column(name=name, description=doc)
    for row in rois:
        ps.add_roi(**row)
    seg.add_plane_segmentation(ps)
    ophys.add(seg)
    ophys.add(
        Images(
            name="SegmentationImages",
            images=[GrayscaleImage(name="mean", data=image, description=image_description)],
            description=images_description,
        )
    )
    region = ps.create_roi_table_region(
        description=region_description, region=list(range(len(rois)))
    )
    fl = Fluorescence(name="Fluorescence")
    ophys.add(fl)
    for name, data, description in series:
        fl.create_roi_response_series(
            name=name,
            data=np.ascontiguousarray(data.T),
            rois=region,
            unit="a.u.",
            rate=float(frame_rate),
            description=description,
        )
    data, description = noise_free
    fl.add_roi_response_series(
        RoiResponseSeries(
            name=NOISE_FREE_SERIES,
            data=np.ascontiguousarray(data.T.astype(np.float32)),
            rois=region,
            unit="a.u.",
            rate=float(frame_rate),
            description=description,
        )
    )


def add_units(
    nwb: Any,
    *,
    description: str,
    resolution: float,
    columns: dict[str, str],
    rows: list[dict[str, Any]],
) -> None:
    """The ground-truth spikes: one unit per ROI (``spike_times`` in s, ``roi_index`` =
    the ROI's row, plus ``columns``)."""
    from pynwb.misc import Units

    units = Units(name="units", description=description, resolution=resolution)
    for name, doc in {**columns, "roi_index": ROI_INDEX_DOC}.items():
        units.add_column(name=name, description=doc)
    for row in rows:
        units.add_unit(**row)
    nwb.units = units


def write_nwb_file(path: Path, nwb: Any, overwrite: bool) -> Path:
    """Write a whole in-memory NWB file to ``path`` atomically."""
    from pynwb import NWBHDF5IO

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, overwrite=overwrite) as tmp, NWBHDF5IO(tmp, "w") as io:
        io.write(nwb)
    return path


def _type_text(types: np.ndarray) -> str:
    """'RS excitatory type', or a mixed culture's counts: 'mixed types: 900 RS, 700 IB'."""
    names, counts = np.unique(types, return_counts=True)
    if len(names) == 1:
        return f"{names[0]} excitatory type"
    return "mixed types: " + ", ".join(f"{k} {n}" for n, k in zip(names, counts, strict=True))
