"""A simulated dataset on disk: one NWB session per culture, in DANDI layout."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import CalciumAvaeError
from ..nwb.session import write_session
from .imaging import field_of_view
from .session import culture_labels, simulate_imaged_cultures
from .settings import SimulationSettings, check_resources


def session_paths(output_dir: str | Path, settings: SimulationSettings) -> list[Path]:
    """Where :func:`simulate_dataset` writes each culture's session, in culture order."""
    out = Path(output_dir)
    labels = culture_labels(settings)
    return [out / f"sub-{lab}" / f"sub-{lab}_ses-culture_ophys.nwb" for lab in labels]


def _check_targets(output_dir: Path, paths: list[Path], overwrite: bool) -> None:
    """Refuse, before any simulation, a dataset folder that is a file or holds sessions."""
    if output_dir.exists() and not output_dir.is_dir():
        raise CalciumAvaeError(f"{output_dir} is a file; give a folder for the dataset")
    if not overwrite:
        existing = [p for p in paths if p.exists()]
        if existing:
            which = (
                f"{existing[0]} exists"
                if len(existing) == 1
                else (f"{existing[0]} and {len(existing) - 1} more sessions exist")
            )
            raise CalciumAvaeError(f"{which}; choose another folder or overwrite (--overwrite)")
    parent = next(p for p in (output_dir, *output_dir.parents) if p.exists())
    if not os.access(parent, os.W_OK):
        raise CalciumAvaeError(f"cannot write to the folder {parent}")


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed run created and left empty (deepest first)."""
    for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds when empty


def simulate_dataset(
    output_dir: str | Path,
    settings: SimulationSettings | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    overwrite: bool = False,
    **options: Any,
) -> list[Path]:
    """Write one NWB session per culture: output_dir/sub-<TYPE><NN>/..._ses-culture_ophys.nwb.

    The cultures are those of :func:`simulate_imaged_cultures` with the same settings
    (``settings`` with keyword ``options`` replacing single fields), framed and imaged by
    :func:`field_of_view`. ``progress(done, total, message)`` is called after each culture.
    Existing sessions are refused unless ``overwrite``, and a culture too big for the
    free memory is refused, both before anything is simulated. A failed or stopped run
    keeps the sessions it finished and removes the folders it created empty.
    """
    s = replace(settings or SimulationSettings(), **options)
    out = Path(output_dir)
    paths = session_paths(out, s)
    _check_targets(out, paths, overwrite)
    check_resources(s)
    created = [f for f in {out, *(p.parent for p in paths)} if not f.exists()]
    try:
        for done, (c, path) in enumerate(zip(simulate_imaged_cultures(s), paths, strict=True), 1):
            view = field_of_view(c.culture, c.imaged, c.clean, s.per_spike_fluorescence)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_session(path, c, view, s.frame_rate, overwrite=overwrite)
            if progress is not None:
                progress(done, s.n_cultures, f"wrote {path.name}")
    finally:
        _remove_empty(created)
    return paths
