"""Small NWB recordings for the GUI tests, written with pynwb in a few milliseconds, and a
one-line failure for each GUI test when Qt cannot start here."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from qt_libraries import missing_libraries

PROBE = "from qtpy.QtWidgets import QApplication; QApplication([])"
PROBE_TIMEOUT_S = 60


@functools.cache
def qt_cannot_start() -> str | None:
    """Why Qt cannot create a QApplication on this display, in one line; None if it can.

    Tried once, in a subprocess: Qt aborts the whole process when its platform plugin cannot
    load, which would hide every other test's result behind a core dump.
    """
    try:
        probe = subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return f"Qt did not create a QApplication within {PROBE_TIMEOUT_S} s"
    if probe.returncode == 0:
        return None
    reasons = []
    if missing := missing_libraries():
        reasons.append(f"Qt's xcb plugin lacks {', '.join(missing)} (ldd)")
    if "DISPLAY" not in os.environ:
        no_xvfb = " and Xvfb, which pytest-xvfb starts, is not installed"
        reasons.append(f"DISPLAY is unset{no_xvfb if shutil.which('Xvfb') is None else ''}")
    if reasons:
        fix = "bash scripts/test.sh installs what is missing"
        return f"Qt cannot start: {'; '.join(reasons)}; {fix}"
    lines = probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"]
    return f"Qt cannot start: {next((line for line in lines if 'qt.qpa' in line), lines[-1])}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test that needs a QApplication fails in one line, before pytest-qt would create it."""
    if "qapp" in getattr(item, "fixturenames", ()) and (reason := qt_cannot_start()):
        pytest.fail(reason, pytrace=False)


N_ROIS = 24
N_FRAMES = 64
SHAPE = (40, 48)


def write_small_nwb(path: Path, *, n_rois: int = N_ROIS, n_frames: int = N_FRAMES) -> Path:
    """Two families of ROIs (fast and slow transients) with disc masks and a mean image."""
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.base import Images
    from pynwb.file import Subject
    from pynwb.image import GrayscaleImage
    from pynwb.ophys import (
        Fluorescence,
        ImageSegmentation,
        OpticalChannel,
    )

    rng = np.random.default_rng(0)
    nwb = NWBFile(
        session_description="small test recording",
        identifier=str(uuid.uuid4()),
        session_start_time=datetime(2024, 1, 1, tzinfo=UTC),
        subject=Subject(subject_id="m1", species="Mus musculus", sex="U", age="P90D"),
    )
    device = nwb.create_device(name="Microscope", description="two-photon microscope")
    plane = nwb.create_imaging_plane(
        name="ImagingPlane",
        optical_channel=OpticalChannel(
            name="green", description="GCaMP emission", emission_lambda=510.0
        ),
        description="one plane",
        device=device,
        excitation_lambda=920.0,
        imaging_rate=30.0,
        indicator="GCaMP6s",
        location="VISp",
    )
    ophys = nwb.create_processing_module(name="ophys", description="optical physiology")
    segmentation = ImageSegmentation()
    ophys.add(segmentation)
    table = segmentation.create_plane_segmentation(
        name="PlaneSegmentation", description="disc ROIs", imaging_plane=plane
    )
    table.add_column(name="neuron_type", description="ground-truth family")
    rows, cols = np.mgrid[: SHAPE[0], : SHAPE[1]]
    grid = np.stack(np.mgrid[5 : SHAPE[0] : 8, 5 : SHAPE[1] : 8], -1).reshape(-1, 2)
    centres = grid[rng.permutation(len(grid))[:n_rois]]  # apart: no ROI hides another
    for i, (r, c) in enumerate(centres):
        mask = ((rows - r) ** 2 + (cols - c) ** 2 <= 6).astype(np.float32)
        table.add_roi(image_mask=mask.T, neuron_type="fast" if i % 2 else "slow")
    region = table.create_roi_table_region(region=list(range(n_rois)), description="all ROIs")
    t = np.arange(n_frames) / 30.0
    data = np.empty((n_rois, n_frames), dtype=np.float32)
    for i in range(n_rois):
        tau = 0.1 if i % 2 else 0.6
        onset = rng.uniform(0, t[-1] / 2)
        data[i] = 42 + 5 * np.exp(-np.clip(t - onset, 0, None) / tau) * (t >= onset)
    data += rng.normal(0, 0.2, data.shape).astype(np.float32)
    fluorescence = Fluorescence()
    ophys.add(fluorescence)  # attached first, so the region shares an ancestor with its table
    fluorescence.create_roi_response_series(
        name="RoiResponseSeries",
        data=data.T,
        rois=region,
        unit="a.u.",
        rate=30.0,
        description="fluorescence",
    )
    mean = np.zeros(SHAPE, dtype=np.float32)
    mean[rows % 7 == 0] = 1.0
    ophys.add(Images(name="Backgrounds", images=[GrayscaleImage(name="mean", data=mean.T)]))
    with NWBHDF5IO(path, "w") as io:
        io.write(nwb)
    return path


@pytest.fixture
def small_nwb(tmp_path: Path) -> Path:
    return write_small_nwb(tmp_path / "small.nwb")


@pytest.fixture
def notices(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every notification our GUI code shows, as (kind, message), instead of popups."""
    from napari_calcium_avae._napari import _common, reader, writer

    shown: list[tuple[str, str]] = []
    for module in (_common, reader, writer):
        monkeypatch.setattr(module, "show_error", lambda m: shown.append(("error", m)))
        if hasattr(module, "show_warning"):
            monkeypatch.setattr(module, "show_warning", lambda m: shown.append(("warning", m)))
    return shown
