"""State the dock widgets of one viewer share: the current model and its training history.

The widgets are separate docks that napari creates independently; they meet here rather
than holding references to each other. Per-ROI results do not live here: they belong
to the layers (features and metadata), where the writer finds them too.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from psygnal import Signal


@dataclass(eq=False)
class Session:
    model: Any = None
    history: list[dict[str, Any]] = field(default_factory=list)

    model_changed = Signal()
    """The model was trained, stopped or loaded (history changed with it)."""
    epoch_done = Signal(dict)
    """One training epoch finished, with its report as a dict."""
    results_changed = Signal()
    """Results were put on one or more layers."""

    def set_model(self, model: Any) -> None:
        self.model = model
        self.history = [dict(h) for h in getattr(model, "history_", None) or []]
        self.model_changed.emit()


_SESSIONS: dict[int, Session] = {}


def session_for(viewer: Any) -> Session:
    """The one Session of a viewer, created on first use and dropped with the viewer.

    napari hands each plugin widget its own proxy of the viewer; the session belongs to
    the viewer behind the proxies, so every widget of one window shares it.
    """
    viewer = getattr(viewer, "__wrapped__", viewer)
    key = id(viewer)
    if key not in _SESSIONS:
        _SESSIONS[key] = Session()
        weakref.finalize(viewer, _SESSIONS.pop, key, None)
    return _SESSIONS[key]
