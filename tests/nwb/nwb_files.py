"""Small NWB files and fixtures in the suite2p, CaImAn and neuroconv layouts, DANDI-ready.

Every file has a 20-row x 30-col plane and ROI 0 is a wide, non-square block at rows
2..4, cols 10..19, so a swapped or transposed mask shows up in the tests.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from pynwb import NWBHDF5IO, NWBFile
from pynwb.base import Images
from pynwb.file import Subject
from pynwb.image import GrayscaleImage
from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation, OpticalChannel

ROWS, COLS = 20, 30
N_ROIS, N_FRAMES = 4, 200
RATE = 30.0


def roi_pixels(i: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of ROI i: ROI 0 is 3 rows x 10 cols; the others are small squares."""
    if i == 0:
        r, c = np.mgrid[2:5, 10:20]
    else:
        r, c = np.mgrid[8 + 3 * (i - 1) : 10 + 3 * (i - 1), 2 * i : 2 * i + 2]
    return r.ravel(), c.ravel()


def traces(seed: int = 0) -> np.ndarray:
    """(N_ROIS, N_FRAMES) positive fluorescence."""
    rng = np.random.default_rng(seed)
    return (40 + rng.normal(0, 1, (N_ROIS, N_FRAMES)).cumsum(axis=1) * 0.1 + 5).astype(np.float32)


def mean_image() -> np.ndarray:
    """(ROWS, COLS) with a value that encodes the position: 100 * row + col."""
    r, c = np.mgrid[:ROWS, :COLS]
    return (100.0 * r + c).astype(np.float32)


def new_file(source_script: str | None = None) -> NWBFile:
    nwbfile = NWBFile(
        session_description="test recording of a mouse visual cortex",
        identifier=str(uuid.uuid4()),
        session_start_time=datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        experimenter=["Doe, Jane"],
        institution="Test Institute",
        experiment_description="calcium imaging test file",
        source_script=source_script,
        source_script_file_name="script.py" if source_script else None,
        subject=Subject(
            subject_id="m1", species="Mus musculus", sex="F", age="P90D", description="a mouse"
        ),
    )
    return nwbfile


def plane_segmentation(nwbfile: NWBFile, name: str = "PlaneSegmentation"):
    device = nwbfile.create_device(name="Microscope", description="two-photon microscope")
    channel = OpticalChannel(name="Green", description="green channel", emission_lambda=510.0)
    plane = nwbfile.create_imaging_plane(
        name="ImagingPlane",
        optical_channel=channel,
        imaging_rate=RATE,
        description="layer 2/3",
        device=device,
        excitation_lambda=920.0,
        indicator="GCaMP6s",
        location="VISp",
    )
    segmentation = ImageSegmentation(name="ImageSegmentation")
    ophys = nwbfile.create_processing_module(name="ophys", description="optical physiology")
    ophys.add(segmentation)
    return ophys, segmentation.create_plane_segmentation(
        name=name, description="ROIs of the test plane", imaging_plane=plane
    )


def write(nwbfile: NWBFile, path: Path) -> Path:
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


@pytest.fixture
def suite2p_file(tmp_path: Path) -> Path:
    """suite2p: pixel_mask holds (ypix, xpix, lam); plane0 series; Backgrounds_0 images."""
    nwbfile = new_file("suite2p")
    ophys, ps = plane_segmentation(nwbfile)
    ps.add_column(name="iscell", description="is cell and its probability")
    for i in range(N_ROIS):
        r, c = roi_pixels(i)
        lam = np.linspace(1.0, 2.0, len(r))
        ps.add_roi(pixel_mask=list(zip(r, c, lam, strict=True)), iscell=[1.0, 0.9 - 0.1 * i])
    region = ps.create_roi_table_region(region=list(range(N_ROIS)), description="all ROIs")
    data = traces()
    for container, values in (
        ("Fluorescence", data),
        ("Neuropil", data * 0.5),
        ("Deconvolved", np.maximum(data - 45, 0)),
    ):
        fl = Fluorescence(name=container)
        ophys.add(fl)
        fl.create_roi_response_series(
            name="plane0",
            data=values.T,
            rois=region,
            unit="a.u.",
            rate=RATE,
            description=f"{container} of plane 0",
        )
    images = Images(name="Backgrounds_0", description="suite2p background images")
    images.add_image(GrayscaleImage(name="meanImg", data=mean_image(), description="mean"))
    images.add_image(
        GrayscaleImage(name="max_proj", data=mean_image()[1:-1, 1:-1], description="max projection")
    )
    ophys.add(images)
    return write(nwbfile, tmp_path / "suite2p.nwb")


@pytest.fixture
def caiman_file(tmp_path: Path) -> Path:
    """CaImAn: image_mask (n, x, y) in the NWB orientation; Fluorescence/RoiResponseSeries."""
    nwbfile = new_file()
    ophys, ps = plane_segmentation(nwbfile)
    for i in range(N_ROIS):
        r, c = roi_pixels(i)
        mask = np.zeros((COLS, ROWS), dtype=np.float32)
        mask[c, r] = 1.0
        ps.add_roi(image_mask=mask)
    region = ps.create_roi_table_region(region=list(range(N_ROIS)), description="all ROIs")
    fl = Fluorescence(name="Fluorescence")
    ophys.add(fl)
    fl.create_roi_response_series(
        name="RoiResponseSeries",
        data=traces().T,
        rois=region,
        unit="a.u.",
        rate=RATE,
        starting_time=2.0,
        description="CNMF temporal components",
    )
    return write(nwbfile, tmp_path / "caiman.nwb")


@pytest.fixture
def neuroconv_file(tmp_path: Path) -> Path:
    """neuroconv: DfOverF plus Fluorescence with four series, irregular timestamps,
    a PlaneSegmentation whose rois region lists rows out of order, SegmentationImages."""
    nwbfile = new_file()
    ophys, ps = plane_segmentation(nwbfile)
    ps.add_column(name="quality", description="ROI quality score")
    for i in range(N_ROIS):
        r, c = roi_pixels(i)
        ps.add_roi(
            pixel_mask=list(zip(c, r, np.ones(len(r)), strict=True)),
            id=100 + i,
            quality=0.5 + 0.1 * i,
        )
    order = [2, 0, 3, 1]
    region = ps.create_roi_table_region(region=order, description="ROIs in series order")
    jitter = np.random.default_rng(1).uniform(0.2, 1.8, N_FRAMES)
    timestamps = 1.0 + np.cumsum(jitter / RATE)
    data = traces()[order]
    fl = Fluorescence(name="Fluorescence")
    ophys.add(fl)
    for name, values in (
        ("RoiResponseSeries", data),
        ("Neuropil", data * 0.5),
        ("Deconvolved", np.maximum(data - 45, 0)),
        ("Denoised", data + 0.1),
    ):
        fl.create_roi_response_series(
            name=name,
            data=values.T,
            rois=region,
            unit="a.u.",
            timestamps=timestamps,
            description=f"{name} traces",
        )
    dff = DfOverF(name="DfOverF")
    ophys.add(dff)
    dff.create_roi_response_series(
        name="RoiResponseSeries",
        data=(data / 40 - 1).T,
        rois=region,
        unit="n.a.",
        timestamps=timestamps,
        description="dF/F",
    )
    images = Images(name="SegmentationImages", description="summary images")
    images.add_image(GrayscaleImage(name="mean", data=mean_image().T, description="mean"))
    ophys.add(images)
    return write(nwbfile, tmp_path / "neuroconv.nwb")
