"""The NWB scaffold the benchmarks' synthetic sessions share (bench_read, bench_remote,
bench_streaming): a file with a subject, one two-photon imaging plane, an ophys module and
its empty PlaneSegmentation. Each script adds its own ROIs, images and series, laid out
as the readers it measures expect (contiguous, chunked, gzip)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any


def ophys_scaffold(description: str, rate: float, subject_id: str) -> tuple[Any, Any, Any]:
    """(NWBFile, ophys processing module, PlaneSegmentation) of a new session."""
    from pynwb import NWBFile
    from pynwb.file import Subject
    from pynwb.ophys import ImageSegmentation, OpticalChannel

    nwbfile = NWBFile(
        session_description=description,
        identifier=str(uuid.uuid4()),
        session_start_time=datetime(2024, 1, 1, tzinfo=UTC),
        subject=Subject(subject_id=subject_id, species="Mus musculus", sex="U", age="P90D"),
    )
    device = nwbfile.create_device(name="Microscope", description="two-photon")
    plane = nwbfile.create_imaging_plane(
        name="ImagingPlane",
        optical_channel=OpticalChannel(name="G", description="green", emission_lambda=510.0),
        imaging_rate=rate,
        description="plane",
        device=device,
        excitation_lambda=920.0,
        indicator="GCaMP6s",
        location="VISp",
    )
    ophys = nwbfile.create_processing_module(name="ophys", description="ophys")
    segmentation = ImageSegmentation(name="ImageSegmentation")
    ophys.add(segmentation)
    ps = segmentation.create_plane_segmentation(
        name="PlaneSegmentation", description="ROIs", imaging_plane=plane
    )
    return nwbfile, ophys, ps
