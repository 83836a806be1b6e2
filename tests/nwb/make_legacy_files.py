"""Write the legacy NWB fixtures in tests/nwb/data/ with an old pynwb (2.x / hdmf 3.x).

The project's own venv has pynwb 4, so files of the pynwb 2 era (contiguous, unchunked
datasets and tables; NWB schema 2.7 cached in the file) are made once in a separate venv
and committed. Run from the repository root:

    python3 -m venv /tmp/legacy-venv
    /tmp/legacy-venv/bin/pip install "pynwb==2.8.3" "hdmf==3.14.6" "numpy<2"
    /tmp/legacy-venv/bin/python tests/nwb/make_legacy_files.py

The arrays come from the functions below (numpy only, fixed seeds), so the tests, which
run with pynwb 4, import this module to recompute what the files must hold. The plane is
24 rows x 40 cols (not square) so a transposed mask or image shows up in the tests.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
SUITE2P_FILE = DATA / "legacy_suite2p.nwb"
CAIMAN_FILE = DATA / "legacy_caiman.nwb"
ROWS, COLS = 24, 40
N_ROIS, N_FRAMES = 6, 200
RATE = 30.0
CAIMAN_IDS = np.arange(100, 100 + N_ROIS)
"""Non-trivial ROI ids: the series' rois region holds row indices, not these."""
CAIMAN_DFF_ROWS = np.array([1, 0, 2, 3, 5, 4])
"""The dF/F series names the table rows out of order, as a region may."""


def roi_pixels(i: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of ROI i: a block 2 rows high and 3 + i cols wide, all apart."""
    r, c = np.mgrid[2 + 3 * i : 4 + 3 * i, 4 + 5 * i : 7 + 6 * i]
    return r.ravel(), c.ravel()


def roi_weights(i: int) -> np.ndarray:
    r, _ = roi_pixels(i)
    return np.linspace(0.5, 1.0, len(r)).astype(np.float32)


def fluorescence(seed: int = 2) -> np.ndarray:
    """(N_ROIS, N_FRAMES) positive raw fluorescence, a random walk per ROI."""
    rng = np.random.default_rng(seed)
    steps = rng.random((N_ROIS, N_FRAMES)) - 0.5
    return (100.0 + 10.0 * np.arange(N_ROIS)[:, None] + steps.cumsum(axis=1)).astype(np.float32)


def neuropil() -> np.ndarray:
    return (0.7 * fluorescence(seed=3)).astype(np.float32)


def dff() -> np.ndarray:
    raw = fluorescence()
    base = raw.mean(axis=1, keepdims=True)
    return ((raw - base) / base).astype(np.float32)


def timestamps(seed: int = 4) -> np.ndarray:
    """Irregular frame times in seconds, starting at 0.5 s."""
    rng = np.random.default_rng(seed)
    return 0.5 + np.cumsum(1.0 / RATE + 0.004 * rng.random(N_FRAMES))


def image(scale: float = 1.0) -> np.ndarray:
    """(ROWS, COLS) image whose value encodes the position: scale * (100 * row + col)."""
    r, c = np.mgrid[:ROWS, :COLS]
    return (scale * (100.0 * r + c)).astype(np.float32)


def _new_file(description: str, notes: str):
    from pynwb import NWBFile
    from pynwb.file import Subject

    return NWBFile(
        session_description=description,
        identifier=str(uuid.uuid4()),
        session_start_time=datetime(2023, 3, 14, 9, 30, tzinfo=UTC),
        experimenter=["Doe, Jane"],
        institution="Test Institute",
        experiment_description="legacy-format calcium imaging test file",
        notes=notes,
        source_script=notes,
        source_script_file_name="tests/nwb/make_legacy_files.py",
        subject=Subject(
            subject_id="legacy-m1",
            species="Mus musculus",
            sex="U",
            age="P90D",
            description="a mouse",
        ),
    )


def _plane_segmentation(nwbfile):
    from pynwb.ophys import ImageSegmentation, OpticalChannel

    device = nwbfile.create_device(name="Microscope", description="two-photon microscope")
    channel = OpticalChannel(name="Green", description="GCaMP emission", emission_lambda=510.0)
    plane = nwbfile.create_imaging_plane(
        name="ImagingPlane",
        optical_channel=channel,
        imaging_rate=RATE,
        description="layer 2/3 of primary visual cortex",
        device=device,
        excitation_lambda=920.0,
        indicator="GCaMP6s",
        location="VISp",
    )
    ophys = nwbfile.create_processing_module(name="ophys", description="optical physiology")
    segmentation = ImageSegmentation(name="ImageSegmentation")
    return ophys, segmentation, plane


def write_suite2p(path: Path, notes: str) -> None:
    """suite2p's layout: pixel_mask rows (ypix, xpix, lam), plane0 series, Backgrounds_0."""
    from pynwb import NWBHDF5IO
    from pynwb.base import Images
    from pynwb.image import GrayscaleImage
    from pynwb.ophys import Fluorescence

    nwbfile = _new_file("two-photon session, suite2p-style segmentation", notes)
    ophys, segmentation, plane = _plane_segmentation(nwbfile)
    ophys.add_data_interface(segmentation)
    ps = segmentation.create_plane_segmentation(
        name="PlaneSegmentation", description="suite2p ROIs of plane 0", imaging_plane=plane
    )
    ps.add_column(name="iscell", description="two columns: iscell and its probability")
    for i in range(N_ROIS):
        ypix, xpix = roi_pixels(i)
        pixel_mask = np.stack([ypix, xpix, roi_weights(i)]).T
        ps.add_roi(pixel_mask=[tuple(row) for row in pixel_mask], iscell=[1.0, 0.9 - 0.1 * i])
    region = ps.create_roi_table_region(region=list(range(N_ROIS)), description="all ROIs")
    for container, values in (("Fluorescence", fluorescence()), ("Neuropil", neuropil())):
        interface = Fluorescence(name=container)
        ophys.add_data_interface(interface)
        interface.create_roi_response_series(
            name="plane0",
            data=values.T,
            rois=region,
            unit="lumens",
            rate=RATE,
            description=f"{container} of plane 0",
        )
    backgrounds = Images(name="Backgrounds_0", description="background images of plane 0")
    backgrounds.add_image(GrayscaleImage(name="meanImg", data=image(), description="mean"))
    backgrounds.add_image(
        GrayscaleImage(name="max_proj", data=image(2.0), description="max projection")
    )
    ophys.add_data_interface(backgrounds)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)


def write_caiman(path: Path, notes: str) -> None:
    """CaImAn / neuroconv layout: image_mask (n, x, y), DfOverF + Fluorescence, timestamps."""
    from pynwb import NWBHDF5IO
    from pynwb.base import Images
    from pynwb.image import GrayscaleImage
    from pynwb.ophys import DfOverF, Fluorescence

    nwbfile = _new_file("two-photon session, CaImAn-style segmentation", notes)
    ophys, segmentation, plane = _plane_segmentation(nwbfile)
    ophys.add(segmentation)
    ps = segmentation.create_plane_segmentation(
        name="PlaneSegmentation", description="CaImAn ROIs", imaging_plane=plane
    )
    ps.add_column(name="accepted", description="1 if CaImAn accepted the component")
    for i in range(N_ROIS):
        mask = np.zeros((COLS, ROWS), dtype=np.float32)  # NWB (x, y)
        r, c = roi_pixels(i)
        mask[c, r] = roi_weights(i)
        ps.add_roi(id=int(CAIMAN_IDS[i]), image_mask=mask, accepted=int(i % 2 == 0))
    times = timestamps()
    dff_series = DfOverF(name="DfOverF")
    ophys.add(dff_series)
    first = dff_series.create_roi_response_series(
        name="RoiResponseSeries",
        data=dff()[CAIMAN_DFF_ROWS].T,
        rois=ps.create_roi_table_region(
            region=CAIMAN_DFF_ROWS.tolist(), description="accepted and rejected ROIs"
        ),
        unit="n.a.",
        timestamps=times,
        description="dF/F of each ROI",
    )
    raw = Fluorescence(name="Fluorescence")
    ophys.add(raw)
    raw.create_roi_response_series(
        name="RoiResponseSeries",
        data=fluorescence().T,
        rois=ps.create_roi_table_region(region=list(range(N_ROIS)), description="all ROIs"),
        unit="a.u.",
        timestamps=first,
        description="raw fluorescence of each ROI",
    )
    summary = Images(name="SegmentationImages", description="summary images of the movie")
    summary.add_image(GrayscaleImage(name="mean", data=image().T, description="mean image"))
    summary.add_image(
        GrayscaleImage(name="correlation", data=image(0.5).T, description="local correlation")
    )
    ophys.add(summary)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)


def main() -> None:
    import hdmf
    import pynwb

    versions = f"pynwb {pynwb.__version__}, hdmf {hdmf.__version__}, numpy {np.__version__}"
    notes = f"written by tests/nwb/make_legacy_files.py with {versions}"
    DATA.mkdir(exist_ok=True)
    write_suite2p(SUITE2P_FILE, notes)
    write_caiman(CAIMAN_FILE, notes)
    print(versions)
    for path in (SUITE2P_FILE, CAIMAN_FILE):
        print(f"{path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
