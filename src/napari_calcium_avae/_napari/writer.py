"""npe2 writer: a ROI layer and the results its features hold, to a new NWB file.

The source recording is never modified: ``write_results`` exports a new file from the
source named in the layer's metadata, adding the results table and, when the model was
applied in this session, the reconstructed traces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari.utils.notifications import show_error

from ..errors import CalciumAvaeError
from ._layers import results_from_features


def nwb_name(path: str | Path) -> Path:
    """The file a typed name saves to: NWB readers want ``.nwb``, so any other suffix goes."""
    path = Path(path)
    return path if path.suffix.lower() == ".nwb" else path.with_suffix(".nwb")


def save_layer_results(
    path: str | Path,
    name: str,
    features: Any,
    metadata: dict,
    *,
    in_place: bool = False,
    overwrite: bool = True,
) -> Path:
    """Write a layer's results next to its source; raises CalciumAvaeError on bad input.

    ``overwrite=False`` refuses an existing file, for callers that asked the user first.
    """
    from ..nwb import write_results

    traces, results = results_from_features(name, features, metadata)
    if traces.source_file is None:
        raise CalciumAvaeError(
            f"layer '{name}' was not read from an NWB file, so there is no recording to "
            "add the results to"
        )
    output = None if in_place else nwb_name(path)
    return Path(write_results(traces, results, output, in_place=in_place, overwrite=overwrite))


def write_labels(path: str, data: Any, attributes: dict) -> list[str]:
    """napari's entry point; a layer we cannot save is reported, and nothing is written."""
    try:
        written = save_layer_results(
            path,
            attributes.get("name", "layer"),
            attributes.get("features"),
            attributes.get("metadata") or {},
            overwrite=True,  # napari's save dialog has asked already
        )
    except CalciumAvaeError as error:
        show_error(str(error))
        return []
    return [str(written)]
