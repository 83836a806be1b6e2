"""Where recordings go in the viewer: side by side, never on top of each other.

Every file opened used to land at the origin, so a second session covered the first and
a ROI picked in one could sit under another layer. Each recording's layers (ROIs and
reference images) are moved right of everything of ours already shown, with a gap.
"""

from __future__ import annotations

from typing import Any

from ._layers import LayerData, is_ours

GAP = 0.05
"""Space left between recordings laid side by side, as a fraction of the image width."""


def right_edge(viewer: Any) -> float:
    """World x just right of the viewer's ROI layers (0 when it has none), plus the gap."""
    edges = [
        layer.translate[-1] + layer.data.shape[-1] * layer.scale[-1] * (1.0 + GAP)
        for layer in (viewer.layers if viewer is not None else [])
        if is_ours(layer)
    ]
    return float(max(edges, default=0.0))


def side_by_side(per_file: list[list[LayerData]], start: float = 0.0) -> list[LayerData]:
    """Lay recordings out left to right from world x ``start``."""
    out: list[LayerData] = []
    offset = start
    for layers in per_file:
        width = max(data.shape[-1] for data, _, _ in layers)
        for data, attributes, kind in layers:
            out.append((data, {**attributes, "translate": (0.0, offset)}, kind))
        offset += width * (1.0 + GAP)
    return out
