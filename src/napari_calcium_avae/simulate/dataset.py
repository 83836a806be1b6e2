"""A simulated dataset on disk: one NWB session per culture, in DANDI layout."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..nwb.session import write_session
from .imaging import field_of_view
from .session import simulate_imaged_cultures
from .settings import SimulationSettings


def simulate_dataset(
    output_dir: str | Path,
    settings: SimulationSettings | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    **options: Any,
) -> list[Path]:
    """Write one NWB session per culture: output_dir/sub-<TYPE><NN>/..._ses-culture_ophys.nwb.

    The cultures are those of :func:`simulate_imaged_cultures` with the same settings
    (``settings`` with keyword ``options`` replacing single fields), framed and imaged by
    :func:`field_of_view`. ``progress(done, total, message)`` is called after each culture.
    """
    s = replace(settings or SimulationSettings(), **options)
    cultures = simulate_imaged_cultures(s)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for done, c in enumerate(cultures, start=1):
        path = out / f"sub-{c.label}" / f"sub-{c.label}_ses-culture_ophys.nwb"
        view = field_of_view(c.culture, c.imaged, c.clean, s.per_spike_fluorescence)
        write_session(path, c, view, s.frame_rate)
        paths.append(path)
        if progress is not None:
            progress(done, s.n_cultures, f"wrote {path.name}")
    return paths
