"""Remote NWB files: http(s) and public s3:// URLs read lazily, DANDI URLs resolved.

A remote file is opened the way the NWB ecosystem streams DANDI assets: h5py reads a
file-like object from fsspec's HTTP filesystem, which fetches only the byte ranges HDF5
asks for, in blocks kept in a small cache, so listing a file's series reads its metadata
and not its data. Nothing is written to disk: outputs are always local files.

URL forms:

- ``http://`` / ``https://``: any server that answers range requests (DANDI's S3
  bucket, a lab's web server, ``python -m http.server`` does not: it ignores ranges);
- ``s3://bucket/key``: a public object, read anonymously over https
  (``https://bucket.s3.amazonaws.com/key``); credentials are not supported;
- DANDI URLs (``dandi://...``, ``https://dandiarchive.org/...``,
  ``https://api.dandiarchive.org/...``): resolved to their assets' content URLs with the
  ``dandi`` client, which needs the client installed and the archive reachable. A URL
  naming a folder or a whole dandiset gives each ``.nwb`` asset in it.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

import h5py

from ..errors import CalciumAvaeError

SCHEMES = ("http://", "https://", "s3://", "dandi://")
"""What makes an input a URL rather than a local path."""

BLOCK_BYTES = 2 * 2**20
"""Bytes fetched per request: HDF5 metadata comes in small scattered reads, so a block
serves many of them; data reads are chunk-sized and larger."""
CACHED_BLOCKS = 64
"""Blocks kept per open file (128 MiB at most): a read of the trace matrix revisits
metadata blocks (chunk index, attributes) between data blocks."""
CONNECT_TIMEOUT_S = 20.0
READ_TIMEOUT_S = 120.0

_DANDI_HOSTS = ("dandiarchive.org", "api.dandiarchive.org", "gui.dandiarchive.org")


class RemoteURL(str):
    """A readable http(s) URL that also knows the file name to give its outputs.

    A DANDI asset's content URL ends in an opaque blob id; its ``name`` is the asset's own
    file name (``sub-1_ses-2_ophys.nwb``), so ``<name>_avae.nwb`` reads well.
    """

    def __new__(cls, url: str, name: str | None = None) -> RemoteURL:
        self = super().__new__(cls, url)
        self._name = name
        return self

    def __reduce__(self) -> tuple:  # worker processes receive the name too
        return (RemoteURL, (str(self), self._name))

    @property
    def name(self) -> str:
        return self._name or url_file_name(str(self))


def is_url(source: object) -> bool:
    """True for a str naming a remote file (a Path is always local)."""
    return isinstance(source, str) and source.lower().startswith(SCHEMES)


def url_file_name(url: str) -> str:
    """The last component of a URL's path (``file.nwb``), for naming local outputs."""
    name = posixpath.basename(unquote(urlsplit(url).path.rstrip("/")))
    return name or urlsplit(url).netloc


def file_name(source: object) -> str:
    """The file name of a local path or a URL: what result files are named after."""
    if isinstance(source, RemoteURL):
        return source.name
    if is_url(source):
        return url_file_name(str(source))
    from pathlib import Path

    return Path(str(source)).name


def is_dandi(url: str) -> bool:
    """True for URLs that the dandi client resolves (not the S3 content URLs themselves)."""
    if url.lower().startswith("dandi://"):
        return True
    return urlsplit(url).hostname in _DANDI_HOSTS


def _s3_https(url: str) -> str:
    parts = urlsplit(url)
    if not parts.netloc or not parts.path.strip("/"):
        raise CalciumAvaeError(f"{url}: an s3 URL needs a bucket and a key (s3://bucket/key)")
    return f"https://{parts.netloc}.s3.amazonaws.com/{parts.path.lstrip('/')}"


def resolve(url: str) -> list[RemoteURL]:
    """The http(s) URLs to read for a URL input: itself, its public S3 https form, or the
    ``.nwb`` assets a DANDI URL names."""
    if is_dandi(url):
        return _resolve_dandi(url)
    if url.lower().startswith("s3://"):
        https = _s3_https(url)
        return [RemoteURL(https, url_file_name(url))]
    return [RemoteURL(url)]


def _resolve_dandi(url: str) -> list[RemoteURL]:
    try:
        from dandi.dandiarchive import parse_dandi_url
    except ImportError:
        raise CalciumAvaeError(
            f"{url} is a DANDI URL, which needs the dandi client (pip install dandi); or give "
            "the asset's https content URL"
        ) from None
    import logging

    logging.getLogger("dandi").setLevel(logging.ERROR)  # its offline fallbacks are noisy
    try:
        parsed = parse_dandi_url(url)
        with parsed.navigate(strict=True) as (_client, _dandiset, assets):
            found = [
                RemoteURL(
                    asset.get_content_url(regex=r"amazonaws\.com", follow_redirects=1),
                    posixpath.basename(asset.path),
                )
                for asset in assets
                if asset.path.endswith(".nwb")
            ]
    except CalciumAvaeError:
        raise
    except Exception as err:  # the client's errors differ by version; each is one line here
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CalciumAvaeError(
            f"cannot resolve the DANDI URL {url} (offline, or no such asset?): {reason}"
        ) from err
    if not found:
        raise CalciumAvaeError(f"the DANDI URL {url} names no .nwb asset")
    return found


def _filesystem():
    import aiohttp
    import fsspec

    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S
    )
    return fsspec.filesystem("http", client_kwargs={"timeout": timeout})


def _no_ranges(url: str) -> CalciumAvaeError:
    return CalciumAvaeError(
        f"{url}: the server does not answer range requests, so the file cannot be read "
        "lazily; download it and give the local file"
    )


def _http_error(url: str, err: BaseException) -> CalciumAvaeError:
    """One line naming the URL for every way a request can fail."""
    import asyncio

    import aiohttp

    # fsspec reports any failure of its size request as FileNotFoundError: the cause says
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, aiohttp.ClientError | TimeoutError):
        cause = cause.__cause__ or cause.__context__
    err = cause or err
    status = getattr(err, "status", None)
    if isinstance(err, FileNotFoundError) or status == 404:
        return CalciumAvaeError(f"{url} was not found (HTTP 404); check the address")
    if isinstance(err, aiohttp.ClientResponseError):
        what = {401: "needs a login", 403: "is forbidden"}.get(status, "failed")
        return CalciumAvaeError(f"{url} {what} (HTTP {status} {err.message})")
    if isinstance(err, aiohttp.ClientConnectionError | asyncio.TimeoutError | TimeoutError):
        reason = str(err) or type(err).__name__
        return CalciumAvaeError(f"cannot reach {url} ({reason})")
    if "range requests" in str(err):  # fsspec's words for a whole file sent for a range
        return _no_ranges(url)
    return CalciumAvaeError(f"cannot read {url} ({type(err).__name__}: {err})")


def size(url: str) -> int:
    """The file's size in bytes, as the server reports it."""
    try:
        value = _filesystem().size(str(url))
    except Exception as err:
        raise _http_error(str(url), err) from err
    if value is None:
        raise CalciumAvaeError(f"{url}: the server does not say the file's size")
    return int(value)


def _guard(handle, url: str) -> None:
    """Make a request that fails mid-read (a dropped connection, a server error) one line
    naming the URL, not the HTTP client's exception from deep inside HDF5, so that a batch
    fails that input and goes on. The block cache's fetcher is wrapped, not the file: h5py
    must get fsspec's own file object (a proxy of it left requests hanging after an error)."""
    fetch = handle.cache.fetcher

    def guarded(start: int, end: int) -> bytes:
        try:
            return fetch(start, end)
        except Exception as err:
            raise _http_error(url, err) from err

    handle.cache.fetcher = guarded


class _RemoteFile(h5py.File):
    """An h5py file over a remote file-like object; closing it closes the object too."""

    _remote = None

    def close(self) -> None:
        super().close()
        if self._remote is not None:
            self._remote.close()
            self._remote = None


def open_url(url: str) -> h5py.File:
    """Open a remote HDF5 file read-only, lazily; every failure is one line naming the URL."""
    from fsspec.implementations.http import HTTPFile

    url = str(url)
    if not url.lower().startswith(("http://", "https://")) or is_dandi(url):
        found = resolve(url)  # s3:// and DANDI assets
        if len(found) > 1:
            raise CalciumAvaeError(
                f"{url} names {len(found)} .nwb assets; give one of them (e.g. {found[0].name})"
            )
        url = str(found[0])
    try:
        handle = _filesystem().open(
            url,
            "rb",
            block_size=BLOCK_BYTES,
            cache_type="blockcache",
            cache_options={"maxblocks": CACHED_BLOCKS},
        )
    except Exception as err:
        raise _http_error(url, err) from err
    if not isinstance(handle, HTTPFile):
        handle.close()
        raise _no_ranges(url)
    _guard(handle, url)
    try:
        f = _RemoteFile(handle, "r")
    except OSError as err:
        handle.close()
        raise CalciumAvaeError(f"{url} is not an NWB file (not HDF5, or damaged)") from err
    except CalciumAvaeError:
        handle.close()
        raise
    except Exception as err:
        handle.close()
        raise _http_error(url, err) from err
    f._remote = handle
    return f


@contextlib.contextmanager
def open_io(url: str) -> Iterator:
    """A read-only pynwb NWBHDF5IO on a remote file (for exporting it to a local one)."""
    from pynwb import NWBHDF5IO

    from .common import open_nwb

    with open_nwb(url) as f, NWBHDF5IO(file=f, mode="r") as io:
        yield io
