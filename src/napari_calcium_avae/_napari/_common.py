"""Pieces every dock widget uses: the ROI layer picker, turning errors into notices, and
the small controls each form repeats."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QSpinBox,
)

from ..errors import CalciumAvaeError, CalciumAvaeWarning
from ._layers import is_ours


def report_error(error: BaseException) -> None:
    """A notification for anything a background job raised; never a traceback dialog."""
    if isinstance(error, CalciumAvaeError):
        show_error(str(error))
    else:
        show_error(f"unexpected {type(error).__name__}: {error}")


def report_warning(warning: tuple) -> None:
    """Slot for a worker's ``warned`` signal (showwarning's arguments)."""
    show_warning(str(warning[0]))


@contextmanager
def notices() -> Iterator[None]:
    """Turn our warnings into notifications and our errors into an error notification."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CalciumAvaeWarning)
        try:
            yield
        except CalciumAvaeError as error:
            show_error(str(error))
    for w in caught:
        if issubclass(w.category, CalciumAvaeWarning):
            show_warning(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a widget action under :func:`notices`; connect buttons through a lambda."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with notices():
            return method(*args, **kwargs)

    return wrapper


class RoiLayerList(QListWidget):
    """Checkable list of the viewer's ROI layers, kept in step with the layer list."""

    def __init__(self, viewer: Any) -> None:
        super().__init__()
        self.viewer = viewer
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setMaximumHeight(90)
        self._checked: dict[int, bool] = {}
        viewer.layers.events.inserted.connect(self.refresh)
        viewer.layers.events.removed.connect(self.refresh)
        viewer.layers.events.moved.connect(self.refresh)
        viewer.layers.selection.events.active.connect(self.refresh)
        self.itemChanged.connect(self._remember)
        self.refresh()

    def _remember(self, item: QListWidgetItem) -> None:
        layer = item.data(Qt.ItemDataRole.UserRole)
        self._checked[id(layer)] = item.checkState() == Qt.CheckState.Checked

    def refresh(self, *_: Any) -> None:
        self.blockSignals(True)
        self.clear()
        for layer in self.viewer.layers:
            if not is_ours(layer):
                continue
            item = QListWidgetItem(layer.name)
            item.setData(Qt.ItemDataRole.UserRole, layer)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            checked = self._checked.setdefault(id(layer), True)
            item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
            self.addItem(item)
        self.blockSignals(False)

    def set_checked(self, layers: list[Any]) -> None:
        """Check exactly these layers (used by scripts and tests)."""
        wanted = {id(layer) for layer in layers}
        for i in range(self.count()):
            item = self.item(i)
            on = id(item.data(Qt.ItemDataRole.UserRole)) in wanted
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def layers(self) -> list[Any]:
        """The checked ROI layers; a one-line error when there are none."""
        chosen = [
            self.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.count())
            if self.item(i).checkState() == Qt.CheckState.Checked
        ]
        if not chosen:
            raise CalciumAvaeError(
                "no ROI layer chosen: open an NWB file (File > Open) and tick its ROI layer"
            )
        return chosen


def spin_box(low: int, high: int, value: int, tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(int(value))
    box.setToolTip(tip)
    return box


def idle_progress_bar(text: str) -> QProgressBar:
    """A bar at rest that shows ``text``; a job sets its range when it starts."""
    bar = QProgressBar()
    bar.setRange(0, 1)
    bar.setValue(0)
    bar.setFormat(text)
    return bar


def wrapped_label(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    return label
