"""Remote NWB: files read over HTTP range requests from a server started here (no test
needs the internet), URLs through the CLI, and one line naming the URL for each failure."""

from __future__ import annotations

import shutil
import socket
import sys
import urllib.request
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest

from benchmark_scripts import benchmark_module
from cli_output import one_line_error
from napari_calcium_avae import Results
from napari_calcium_avae.cli import main
from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.nwb import read_results, read_traces, remote, write_results
from napari_calcium_avae.nwb.read import list_series


@pytest.fixture(scope="module")
def bench():
    yield from benchmark_module("bench_remote")


@pytest.fixture(scope="module")
def served(bench, tiny_sessions, tmp_path_factory):
    """(base URL, folder): two tiny sessions and a file that is not HDF5, served with
    range support; paths under /private/ answer 403."""
    folder = tmp_path_factory.mktemp("served")
    for session in tiny_sessions[:2]:
        shutil.copy(session, folder / session.name)
    (folder / "notes.nwb").write_bytes(b"not an HDF5 file at all" * 10)

    class Handler(bench.RangeRequestHandler):
        def send_head(self):
            if self.path.startswith("/private/"):
                self.send_error(HTTPStatus.FORBIDDEN)
                return None
            return super().send_head()

    with bench.serve_in_thread(folder, Handler) as base:
        yield base, folder


def _fetch(url: str, headers: dict[str, str]) -> tuple[int, bytes, dict]:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
        return response.status, response.read(), dict(response.headers)


def test_the_test_server_answers_ranges(served):
    base, folder = served
    path = next(folder.glob("sub-*.nwb"))
    whole = path.read_bytes()
    url = f"{base}/{path.name}"
    status, body, headers = _fetch(url, {"Range": "bytes=10-19"})
    assert status == 206 and body == whole[10:20]
    assert headers["Content-Range"] == f"bytes 10-19/{len(whole)}"
    assert _fetch(url, {"Range": "bytes=-7"})[1] == whole[-7:]
    assert _fetch(url, {"Range": f"bytes={len(whole) - 3}-"})[1] == whole[-3:]
    status, body, _ = _fetch(url, {})
    assert status == 200 and body == whole


def test_a_url_reads_as_the_local_file(served):
    base, folder = served
    path = next(folder.glob("sub-*.nwb"))
    url = f"{base}/{path.name}"
    local, far = read_traces(path), read_traces(url)
    assert far.fingerprint() == local.fingerprint()
    np.testing.assert_array_equal(far.roi_ids, local.roi_ids)
    assert far.series_path == local.series_path and far.rate == local.rate
    assert len(far.masks) == len(local.masks)
    for a, b in zip(far.masks, local.masks, strict=True):
        np.testing.assert_array_equal(a, b)
    assert far.images.keys() == local.images.keys()
    assert far.source_file == url
    assert list_series(url) == list_series(path)


def test_results_of_a_url_go_to_a_local_file(served, tmp_path):
    base, folder = served
    path = next(folder.glob("sub-*.nwb"))
    traces = read_traces(f"{base}/{path.name}")
    labels = np.arange(traces.n_rois) % 2
    results = Results(latents=np.ones((traces.n_rois, 2), np.float32), labels=labels)
    out = write_results(traces, results, tmp_path / "out.nwb")
    # a complete copy, with no link back to the server
    assert read_traces(out).fingerprint() == traces.fingerprint()
    np.testing.assert_array_equal(read_results(out).labels, labels)
    with pytest.raises(CalciumAvaeError, match="remote file: results go to a new local file"):
        write_results(traces, results, None, in_place=True)


def test_cli_inspect_and_deconvolve_take_urls(served, tmp_path, capsys):
    base, folder = served
    paths = sorted(folder.glob("sub-*.nwb"))
    assert main(["inspect", f"{base}/{paths[0].name}"]) == 0
    listing = capsys.readouterr().out
    assert main(["inspect", str(paths[0])]) == 0
    assert listing.split(".nwb:", 1)[1] == capsys.readouterr().out.split(".nwb:", 1)[1]
    out = tmp_path / "results"
    urls = [f"{base}/{p.name}" for p in paths]
    assert main(["deconvolve", *urls, "-o", str(out)]) == 0
    written = sorted(out.iterdir())
    assert [p.name for p in written] == [f"{p.stem}_avae.nwb" for p in paths]
    assert read_results(written[0]).spike_rates.shape == read_traces(paths[0]).data.shape
    table = capsys.readouterr().out
    assert all(f"done     {url}" in table for url in urls)


def test_cli_fit_and_apply_take_urls(served, tmp_path, capsys):
    base, folder = served
    urls = [f"{base}/{p.name}" for p in sorted(folder.glob("sub-*.nwb"))]
    model = tmp_path / "model.pt"
    small = ["--model", "avae", "--hidden-size", "8", "--latent-size", "2", "--epochs", "1"]
    small += ["--device", "cpu"]
    assert main(["fit", *urls, "-o", str(model), *small]) == 0
    out = tmp_path / "results"
    assert main(["apply", str(model), *urls, "-o", str(out), "--embedding", "pca"]) == 0
    for url in urls:
        written = out / f"{Path(url).stem}_avae.nwb"
        assert read_results(written).labels is not None
        assert read_traces(written).fingerprint() == read_traces(url).fingerprint()


def test_every_failure_is_one_line_naming_the_url(served, tmp_path, capsys, monkeypatch):
    base, folder = served
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/x.nwb"
    cases = [
        (f"{base}/missing.nwb", "was not found (HTTP 404)"),
        (f"{base}/private/x.nwb", "is forbidden (HTTP 403"),
        (closed, "cannot reach"),
        (f"{base}/notes.nwb", "is not an NWB file"),
    ]
    for url, message in cases:
        assert main(["inspect", url]) == 2
        line = one_line_error(capsys)
        assert message in line and url in line, line
    # a batch goes on past the failed input, and says which one failed and why
    good = f"{base}/{next(folder.glob('sub-*.nwb')).name}"
    out = tmp_path / "out"
    assert main(["deconvolve", f"{base}/missing.nwb", good, "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert "1 of 2 inputs failed; first: " in captured.err.splitlines()[-1]
    assert f"failed   {base}/missing.nwb" in captured.out
    assert len(list(out.iterdir())) == 1
    # outputs are local
    assert main(["deconvolve", good, "--in-place"]) == 2
    assert "--in-place cannot write into it" in one_line_error(capsys)
    assert main(["deconvolve", good, "-o", "https://example.org/out/"]) == 2
    assert "outputs are local" in one_line_error(capsys)


def test_a_server_without_range_requests_is_one_line(bench, served, monkeypatch, capsys):
    _, folder = served
    monkeypatch.setattr(remote, "BLOCK_BYTES", 4096)  # the file is larger than one block

    class NoRanges(SimpleHTTPRequestHandler):  # python -m http.server, quiet
        def log_message(self, format: str, *args: object) -> None:
            pass

    with bench.serve_in_thread(folder, NoRanges) as base:
        url = f"{base}/{next(folder.glob('sub-*.nwb')).name}"
        assert main(["inspect", url]) == 2
    line = one_line_error(capsys)
    assert "does not answer range requests" in line and url in line


def test_s3_and_dandi_urls_resolve_without_the_network(monkeypatch):
    (url,) = remote.resolve("s3://dandiarchive/blobs/abc/def/0123")
    assert url == "https://dandiarchive.s3.amazonaws.com/blobs/abc/def/0123"
    with pytest.raises(CalciumAvaeError, match="needs a bucket and a key"):
        remote.resolve("s3://bucket-only")
    assert remote.file_name("https://host/a/b/session.nwb?x=1") == "session.nwb"

    class Asset:
        def __init__(self, path: str) -> None:
            self.path = path

        def get_content_url(self, regex: str, follow_redirects: int) -> str:
            return f"https://bucket.s3.amazonaws.com/blobs/{len(self.path)}"

    class Parsed:
        def navigate(self, strict: bool):
            import contextlib

            assets = [
                Asset("sub-1/sub-1_ses-a_ophys.nwb"),
                Asset("dataset_description.json"),
                Asset("sub-1/sub-1_ses-bb_ophys.nwb"),
            ]
            return contextlib.nullcontext((None, None, assets))

    import dandi.dandiarchive

    monkeypatch.setattr(dandi.dandiarchive, "parse_dandi_url", lambda url: Parsed())
    assets = remote.resolve("dandi://DANDI/000001/sub-1/")
    assert all(a.startswith("https://bucket.s3.amazonaws.com/blobs/") for a in assets)
    # outputs are named after the assets, not their blob ids
    assert [a.name for a in assets] == ["sub-1_ses-a_ophys.nwb", "sub-1_ses-bb_ophys.nwb"]
    with pytest.raises(CalciumAvaeError, match=r"names 2 \.nwb assets; give one of them"):
        remote.open_url("dandi://DANDI/000001/sub-1/")

    def offline(url):
        raise ConnectionError("Failed to resolve 'api.dandiarchive.org'\nmore detail")

    monkeypatch.setattr(dandi.dandiarchive, "parse_dandi_url", offline)
    with pytest.raises(CalciumAvaeError) as err:
        remote.resolve("https://dandiarchive.org/dandiset/000001")
    assert "cannot resolve the DANDI URL https://dandiarchive.org/dandiset/000001" in str(err)
    assert "\n" not in str(err.value)
    monkeypatch.setitem(sys.modules, "dandi.dandiarchive", None)  # the client not installed
    with pytest.raises(CalciumAvaeError, match="needs the dandi client"):
        remote.resolve("dandi://DANDI/000001/sub-1/")
