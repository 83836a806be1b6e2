"""Remote NWB over a local HTTP server vs local disk: inspect, read and a 1,000-ROI apply.

Issue 18's target: reading from a local HTTP server that answers range requests stays
within 2x of local disk for ``inspect`` and a 1,000-ROI ``apply``. The script writes one
simulated-looking recording (1,000 ROIs, pixel masks, a mean image), trains a small model
on it, serves the folder from a separate process (so that the server does not share the
client's interpreter), and times each command from local disk and from http:// in turn,
in one run, repeated; the ratio is of the medians.

    python benchmarks/bench_remote.py [--rois 1000] [--frames 3000] [--repeat 3]

It also holds :class:`RangeRequestHandler`, the small range-capable server the tests use
(``python -m http.server`` ignores Range headers, so h5py could not seek through it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeRequestHandler(SimpleHTTPRequestHandler):
    """Serves a folder like ``http.server``, answering ``Range: bytes=a-b`` with 206."""

    protocol_version = "HTTP/1.1"  # keep-alive: one connection serves many ranges
    disable_nagle_algorithm = True  # as real servers do: no 40 ms wait per small reply

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def send_head(self):  # type: ignore[override]
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        size = path.stat().st_size
        start, stop = 0, size  # stop is exclusive
        match = _RANGE.match(self.headers.get("Range", "").strip())
        partial_content = match is not None and match.group(0) != "bytes=-"
        if partial_content:
            first, last = match.group(1), match.group(2)
            if first:
                start = int(first)
                stop = min(size, int(last) + 1) if last else size
            else:  # the last N bytes
                start = max(0, size - int(last))
            if start >= size or start >= stop:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
        handle = path.open("rb")
        handle.seek(start)
        self.send_response(HTTPStatus.PARTIAL_CONTENT if partial_content else HTTPStatus.OK)
        self.send_header("Content-Type", "application/x-hdf5")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(stop - start))
        if partial_content:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        self.end_headers()
        self._remaining = stop - start
        return handle

    def copyfile(self, source, outputfile) -> None:  # type: ignore[override]
        left = self._remaining
        while left > 0:
            block = source.read(min(left, 2**20))
            if not block:
                break
            outputfile.write(block)
            left -= len(block)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # a client that closes mid-response (it had what it needed) is no error


def make_server(
    folder: Path, handler: type[SimpleHTTPRequestHandler] = RangeRequestHandler
) -> ThreadingHTTPServer:
    """A server for ``folder`` on a free local port (not yet serving)."""
    server = _QuietServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
    server.daemon_threads = True
    return server


@contextlib.contextmanager
def serve_in_thread(
    folder: Path, handler: type[SimpleHTTPRequestHandler] = RangeRequestHandler
) -> Iterator[str]:
    """Serve ``folder`` from a thread of this process; yields the base URL."""
    server = make_server(folder, handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def serve_in_process(folder: Path) -> Iterator[str]:
    """Serve ``folder`` from a child process (its own interpreter); yields the base URL."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(folder)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(child.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        child.terminate()
        child.wait(timeout=10)


def _serve_forever(folder: Path) -> None:
    server = make_server(folder)
    print(server.server_address[1], flush=True)
    server.serve_forever()


# --- the benchmark --------------------------------------------------------------------


def write_recording(path: Path, n_rois: int, n_frames: int, seed: int = 0) -> None:
    """A suite2p-like session: pixel masks on a 512 x 512 plane, a mean image, dF/F
    traces with calcium-like transients, chunked and gzip-compressed as neuroconv
    writes them."""
    import numpy as np
    from pynwb import NWBHDF5IO, H5DataIO
    from pynwb.base import Images
    from pynwb.image import GrayscaleImage
    from pynwb.ophys import Fluorescence

    from synthetic_nwb import ophys_scaffold

    # hdmf notes that the series' region table is elsewhere in the file, as it always is
    warnings.filterwarnings("ignore", message="The linked table for DynamicTableRegion")
    rng = np.random.default_rng(seed)
    nwbfile, ophys, ps = ophys_scaffold("remote-read benchmark", 30.0, subject_id="b")
    side = 512
    centres = rng.integers(4, side - 4, size=(n_rois, 2))
    r, c = np.mgrid[-3:4, -3:4]
    for y0, x0 in centres:
        pixels = [
            (int(x0 + dx), int(y0 + dy), 1.0) for dy, dx in zip(r.ravel(), c.ravel(), strict=True)
        ]
        ps.add_roi(pixel_mask=pixels)
    images = Images(name="Backgrounds_0", description="reference images")
    images.add_image(GrayscaleImage(name="meanImg", data=rng.random((side, side))))
    ophys.add(images)
    spikes = rng.random((n_frames, n_rois)) < 0.01
    kernel = np.exp(-np.arange(60) / 15.0)
    calcium = np.apply_along_axis(lambda s: np.convolve(s, kernel)[:n_frames], 0, spikes)
    traces = (calcium + rng.normal(0, 0.2, calcium.shape)).astype(np.float32)
    region = ps.create_roi_table_region(region=list(range(n_rois)), description="all")
    from pynwb.ophys import RoiResponseSeries

    series = RoiResponseSeries(
        name="RoiResponseSeries",
        data=H5DataIO(traces, chunks=(min(n_frames, 1000), min(n_rois, 100)), compression="gzip"),
        rois=region,
        unit="a.u.",
        rate=30.0,
    )
    ophys.add(Fluorescence(name="Fluorescence", roi_response_series=series))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)


def _time_cli(args: list[str]) -> float:
    """Wall seconds of one CLI run in a fresh interpreter (as a user would start it)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "napari_calcium_avae.cli", *args],
        capture_output=True,
        text=True,
        env=env,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stderr}")
    return seconds


def _time_list(source: str) -> float:
    """Seconds of list_series in this process (inspect's reading, without start-up)."""
    from napari_calcium_avae.nwb.read import list_series

    start = time.perf_counter()
    list_series(source)
    return time.perf_counter() - start


def _time_read(source: str) -> float:
    """Seconds of read_traces in this process (the part of apply that reads)."""
    from napari_calcium_avae.nwb import read_traces

    start = time.perf_counter()
    read_traces(source)
    return time.perf_counter() - start


def _time_write(source: str, out: Path) -> float:
    """Seconds of read_traces + write_results of latents and labels in this process:
    apply's reading and writing (the export copies the source through the reader)."""
    import numpy as np

    from napari_calcium_avae import Results
    from napari_calcium_avae.nwb import read_traces, write_results

    start = time.perf_counter()
    traces = read_traces(source)
    n = traces.n_rois
    results = Results(latents=np.zeros((n, 4), np.float32), labels=np.arange(n) % 5)
    write_results(traces, results, out, overwrite=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rois", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        _serve_forever(args.serve)
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "data"
        data.mkdir()
        session = data / "session.nwb"
        write_recording(session, args.rois, args.frames)
        size_mb = session.stat().st_size / 1e6
        model = folder / "model.pt"
        small = ["--hidden-size", "16", "--latent-size", "4", "--epochs", "2"]
        _time_cli(["fit", str(session), "-o", str(model), *small, "--device", "cpu"])
        apply = ["--embedding", "pca", "--device", "cpu", "--overwrite"]
        with serve_in_process(data) as base:
            url = f"{base}/{session.name}"
            cases = {
                "list_series": _time_list,
                "inspect (CLI)": lambda src: _time_cli(["inspect", src]),
                "read_traces": _time_read,
                "read+write": lambda src: _time_write(src, folder / "written.nwb"),
                "apply (CLI)": lambda src: _time_cli(
                    ["apply", str(model), src, "-o", str(folder / "out.nwb"), *apply]
                ),
            }
            rows = []
            for name, run in cases.items():
                local, remote = [], []
                for _ in range(args.repeat):  # interleaved, so drift hits both alike
                    local.append(run(str(session)))
                    remote.append(run(url))
                lm, rm = statistics.median(local), statistics.median(remote)
                rows.append((name, lm, rm, rm / lm))
    print(
        f"{args.rois} ROIs x {args.frames} frames ({size_mb:.1f} MB gzip), median of "
        f"{args.repeat}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, OMP_NUM_THREADS=1"
    )
    print(f"{'step':<14} {'local s':>8} {'http s':>8} {'ratio':>6}")
    for name, lm, rm, ratio in rows:
        print(f"{name:<14} {lm:8.3f} {rm:8.3f} {ratio:6.2f}")


if __name__ == "__main__":
    main()
