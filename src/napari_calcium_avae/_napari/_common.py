"""Pieces every dock widget uses: the ROI layer picker, turning errors into notices, and
the small controls each form repeats."""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import QObject, Qt, QTimer, Signal
from qtpy.QtGui import QValidator
from qtpy.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QDoubleSpinBox,
    QFrame,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..errors import CalciumAvaeError, CalciumAvaeWarning
from ._layers import RESULTS_KEY, TRACES_KEY, is_ours


class StepRelay(QObject):
    """Carries a worker thread's progress steps (done, total, message) to the GUI thread:
    Qt signals cross threads safely."""

    step = Signal(int, int, str)


def confirm_replace(parent: QWidget, title: str, question: str) -> bool:
    """Ask before replacing what the user owns; "No" is the default answer."""
    answer = QMessageBox.question(
        parent,
        title,
        question,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


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
    """Checkable list of the viewer's ROI layers, kept in step with the layer list.

    ``tick_results``: whether a new layer that already holds results is ticked (yes to
    re-cluster it, no to train: it is a second copy of its source recording).
    """

    def __init__(self, viewer: Any, tick_results: bool = False) -> None:
        super().__init__()
        self.viewer = viewer
        self.tick_results = tick_results
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

    def _ticked_at_first(self, layer: Any) -> bool:
        """A new recording is ticked when it can join the ticked ones.

        Ticking every new layer made Train fail as soon as a recording of another length
        was opened, and trained on a reopened results file as a second copy of its source.
        So: a layer that already holds results only where ``tick_results``, and only one
        of the same number of frames as the recordings ticked now.
        """
        if RESULTS_KEY in layer.metadata and not self.tick_results:
            return False
        frames = {
            other.metadata[TRACES_KEY].n_frames
            for other in self.viewer.layers
            if is_ours(other) and self._checked.get(id(other))
        }
        return not frames or frames == {layer.metadata[TRACES_KEY].n_frames}

    def refresh(self, *_: Any) -> None:
        self.blockSignals(True)
        self.clear()
        for layer in self.viewer.layers:
            if not is_ours(layer):
                continue
            item = QListWidgetItem(layer.name)
            item.setData(Qt.ItemDataRole.UserRole, layer)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            if id(layer) not in self._checked:
                self._checked[id(layer)] = self._ticked_at_first(layer)
            checked = self._checked[id(layer)]
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


class SignificantSpinBox(QDoubleSpinBox):
    """A number box that shows significant digits (1e-06, 0.3521, 1234) and steps by 10 %.

    A box with fixed decimals showed 0.0001 while DBSCAN used an eps of 1e-06: the value
    it shows must be the value in use, at any scale.
    """

    def __init__(self, low: float, high: float, value: float, digits: int = 4) -> None:
        super().__init__()
        self.digits = digits
        self.setDecimals(15)  # what Qt rounds values to; the text shows `digits`
        self.setRange(low, high)
        self.setValue(value)

    def textFromValue(self, value: float) -> str:
        return f"{value:.{self.digits}g}"

    def valueFromText(self, text: str) -> float:
        return float(text)

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        try:
            ok = self.minimum() <= float(text) <= self.maximum()
        except ValueError:
            ok = False
        state = QValidator.State.Acceptable if ok else QValidator.State.Intermediate
        return state, text, pos

    def stepBy(self, steps: int) -> None:
        self.setValue(self.value() * 1.1**steps)


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


def scrolling_layout(dock: QWidget) -> QVBoxLayout:
    """The layout a dock widget fills, inside a scroll area that fills the dock.

    napari stacks docks on one side of the window, and a window is at least as tall as its
    docks' minimum heights together: without scrolling, four of ours need 1,871 px and push
    the window, its status bar and its pop-ups off a laptop screen. In a scroll area a dock
    can shrink to a few lines and scroll the rest.
    """
    body = QWidget()
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(body)
    outer = QVBoxLayout(dock)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(area)
    return QVBoxLayout(body)


SHORT_SCREEN_PX = 1000
"""Below this screen height our docks open as tabs of one dock rather than one under another."""
_OUR_DOCK = "calcium_avae_dock"


def tab_on_short_screens(widget: QWidget) -> None:
    """On a laptop screen, dock ``widget`` as a tab beside our docks already open.

    napari opens plugin docks one under another; on a 768-px screen five of them get about
    a hundred pixels each. As tabs each gets the whole height, and a dock can still be
    dragged out by its title.
    """
    widget.setProperty(_OUR_DOCK, True)
    QTimer.singleShot(0, lambda: _tabify(widget))  # napari docks it after __init__


def _tabify(widget: QWidget) -> None:
    try:
        dock, screen = widget.parentWidget(), widget.screen()
    except RuntimeError:  # deleted before the event loop came round
        return
    window = dock.parentWidget() if isinstance(dock, QDockWidget) else None
    if not isinstance(window, QMainWindow) or dock.isFloating() or screen is None:
        return
    if screen.availableGeometry().height() >= SHORT_SCREEN_PX:
        return
    area = window.dockWidgetArea(dock)
    ours = [
        other
        for other in window.findChildren(QDockWidget)
        if other is not dock
        and other.widget() is not None
        and other.widget().property(_OUR_DOCK)
        and other.toggleViewAction().isChecked()
        and not other.isFloating()
        and window.dockWidgetArea(other) == area
    ]
    if ours:
        window.tabifyDockWidget(ours[-1], dock)
        dock.raise_()


class StoppableRun:
    """The Run/Stop button of a dock whose work runs in a napari thread worker.

    A dock mixes this in before ``QWidget``, sets ``run_label``, builds ``run_button``
    with :meth:`make_run_button`, and its ``start`` sets ``stop_event`` and ``worker``,
    then calls :meth:`run_started`; the worker's ``finished`` goes to
    :meth:`run_finished`. The work checks ``stop_event`` between steps and keeps what
    it finished.
    """

    run_label = "Run"
    worker: Any = None
    stop_event: threading.Event | None = None
    run_button: QPushButton

    def make_run_button(self) -> QPushButton:
        self.run_button = QPushButton(self.run_label)
        self.run_button.clicked.connect(lambda: self.toggle())
        return self.run_button

    @property
    def running(self) -> bool:
        return self.worker is not None

    def toggle(self) -> None:
        if self.running:
            self.stop()
        else:
            self.start()

    def stop(self) -> None:
        """Ask the run to end at its next check; what it finished is kept."""
        if self.stop_event is not None:
            self.stop_event.set()
            self.run_button.setText("Stopping…")
            self.run_button.setEnabled(False)

    def run_started(self) -> None:
        self.run_button.setText("Stop")

    def run_finished(self) -> None:
        self.worker = None
        self.run_button.setText(self.run_label)
        self.run_button.setEnabled(True)
