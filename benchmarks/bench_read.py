"""Time read_traces on 10,000 ROIs x 30,000 frames of float32 (SPEC 9: <= 5 s).

Writes the test file once (pixel masks; traces contiguous as suite2p writes them, or in
chunks of 1000 frames x 100 ROIs, optionally gzip level 4 as neuroconv does), then reads
it several times and prints wall time and peak memory (with --write, also times
write_results of a full-size reconstruction).

    python benchmarks/bench_read.py [--path big.nwb] [--layout contiguous|chunked|gzip] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from hdmf.data_utils import DataChunkIterator
from pynwb import NWBHDF5IO, H5DataIO
from pynwb.ophys import Fluorescence

from napari_calcium_avae import Results
from napari_calcium_avae.nwb import read_traces, write_results
from synthetic_nwb import ophys_scaffold

N_ROIS, N_FRAMES, SIDE = 10_000, 30_000, 512
BLOCK = 1_000


def write_file(path: Path, layout: str) -> None:
    nwbfile, ophys, ps = ophys_scaffold("read benchmark", 30.0, subject_id="b")
    rng = np.random.default_rng(0)
    centres = rng.integers(3, SIDE - 3, size=(N_ROIS, 2))
    dy, dx = np.mgrid[-2:3, -2:3]
    for cy, cx in centres:
        ps.add_roi(
            pixel_mask=list(zip((cy + dy).ravel(), (cx + dx).ravel(), np.ones(25), strict=True))
        )
    fluorescence = Fluorescence(name="Fluorescence")
    ophys.add(fluorescence)

    def blocks():
        block_rng = np.random.default_rng(1)
        for _ in range(N_FRAMES // BLOCK):
            yield block_rng.normal(42, 2, size=(BLOCK, N_ROIS)).astype(np.float32)

    if layout in ("chunked", "gzip"):
        iterator = DataChunkIterator(
            data=(row for block in blocks() for row in block),
            maxshape=(N_FRAMES, N_ROIS),
            dtype=np.dtype("float32"),
            buffer_size=BLOCK,
        )
        compression = {"compression": "gzip", "compression_opts": 4} if layout == "gzip" else {}
        data = H5DataIO(iterator, chunks=(BLOCK, 100), **compression)
    else:  # suite2p writes plain arrays: one contiguous dataset
        data = np.concatenate(list(blocks()))
    fluorescence.create_roi_response_series(
        name="RoiResponseSeries",
        data=data,
        rois=ps.create_roi_table_region(region=list(range(N_ROIS)), description="all"),
        unit="a.u.",
        rate=30.0,
        description="benchmark traces",
    )
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, help="file to write once and reuse")
    parser.add_argument("--layout", choices=["contiguous", "chunked", "gzip"], default="contiguous")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--write", action="store_true", help="also time write_results (a 2.4 GB new file)"
    )
    args = parser.parse_args()
    path = args.path or Path(tempfile.gettempdir()) / f"bench_read_{args.layout}.nwb"
    if not path.exists():
        start = time.perf_counter()
        write_file(path, args.layout)
        print(
            f"wrote {path} ({path.stat().st_size / 1e9:.2f} GB) in "
            f"{time.perf_counter() - start:.1f} s"
        )
    times = []
    for _ in range(args.repeat):
        tracemalloc.start()
        start = time.perf_counter()
        traces = read_traces(path)
        times.append(time.perf_counter() - start)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert traces.data.shape == (N_ROIS, N_FRAMES)
        if args.write:
            results = Results(
                latents=np.zeros((N_ROIS, 8)),
                labels=np.zeros(N_ROIS, dtype=int),
                embedding=np.zeros((N_ROIS, 2)),
                reconstruction=traces.data,
            )
            output = path.with_name(f"{path.stem}_results.nwb")
            start = time.perf_counter()
            write_results(traces, results, output)
            print(f"write_results: {time.perf_counter() - start:.1f} s")
            output.unlink()
            del results
        del traces
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"read_traces {N_ROIS} ROIs x {N_FRAMES} frames ({args.layout}): "
        f"best {min(times):.2f} s, all {', '.join(f'{t:.2f}' for t in times)} s; "
        f"peak traced memory {peak / 1e9:.2f} GB, max RSS {rss:.2f} GB"
    )


if __name__ == "__main__":
    main()
