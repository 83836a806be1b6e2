"""Dock widget: save a ROI layer and its results to NWB, a new file by default.

The same code path as File > Save Layers with our writer; the source recording is
never modified unless "append to the source file" is ticked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari.qt.threading import create_worker
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from ..errors import CalciumAvaeError
from ._common import (
    confirm_replace,
    guarded,
    report_error,
    report_warning,
    scrolling_layout,
    tab_on_short_screens,
    wrapped_label,
)
from ._layers import SOURCE_KEY, is_ours
from .writer import nwb_name, save_layer_results


def default_output(source: str | Path | None) -> str:
    """``<source>_avae.nwb`` beside the source."""
    from ..nwb import result_path

    return str(result_path(source)) if source else ""


class SaveWidget(QWidget):
    """Pick a ROI layer and a file; write latents, clusters, embedding, reconstruction."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker: Any = None
        self.layer = QComboBox()
        self.layer.currentIndexChanged.connect(self._suggest)
        self.output = QLineEdit()
        browse = QPushButton("…")
        browse.setMaximumWidth(30)
        browse.clicked.connect(lambda: self._browse())
        row = QHBoxLayout()
        row.addWidget(self.output)
        row.addWidget(browse)
        self.in_place = QCheckBox("append to the source file instead (modifies it)")
        self.in_place.toggled.connect(lambda on: self.output.setEnabled(not on))
        form = QFormLayout()
        form.addRow("ROI layer", self.layer)
        form.addRow("new file", row)
        form.addRow("", self.in_place)
        self.save_button = QPushButton("Save to NWB")
        self.save_button.clicked.connect(lambda: self.save())
        self.status = wrapped_label()
        layout = scrolling_layout(self)
        tab_on_short_screens(self)
        layout.addLayout(form)
        layout.addWidget(self.save_button)
        layout.addWidget(self.status)
        layout.addStretch()
        napari_viewer.layers.events.inserted.connect(self.refresh)
        napari_viewer.layers.events.removed.connect(self.refresh)
        self.refresh()

    def refresh(self, *_: Any) -> None:
        current = self.layer.currentText()
        self.layer.blockSignals(True)
        self.layer.clear()
        for layer in self.viewer.layers:
            if is_ours(layer):
                self.layer.addItem(layer.name, layer)
        if current:
            self.layer.setCurrentText(current)
        self.layer.blockSignals(False)
        self._suggest()

    def _suggest(self, *_: Any) -> None:
        layer = self.layer.currentData()
        if layer is not None:
            self.output.setText(default_output(layer.metadata.get(SOURCE_KEY)))

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save to NWB", self.output.text(), "*.nwb")
        if path:
            self.output.setText(path)

    @guarded
    def save(self) -> None:
        layer = self.layer.currentData()
        if layer is None:
            raise CalciumAvaeError("no ROI layer to save: open an NWB file first")
        output = self.output.text().strip()
        in_place = self.in_place.isChecked()
        if not output and not in_place:
            raise CalciumAvaeError("choose a file name to save to")
        target = None if in_place else nwb_name(output)
        renamed = "" if target is None or str(target) == output else f" (not {Path(output).name})"
        replace = target is not None and target.exists()
        if replace and not self.confirm_overwrite(target):
            self.status.setText(f"not saved: {target.name} exists and was kept")
            return
        self.save_button.setEnabled(False)
        self.status.setText("saving…")
        self.worker = create_worker(
            save_layer_results,
            output,
            layer.name,
            layer.features.copy(),
            dict(layer.metadata),
            in_place=in_place,
            overwrite=replace,  # the user's answer; a file that appears meanwhile is kept
            _start_thread=True,
            _connect={
                "returned": lambda path: self.status.setText(f"saved {path}{renamed}"),
                "errored": self._on_error,
                "warned": report_warning,
                "finished": self._on_finished,
            },
        )

    def confirm_overwrite(self, target: Path) -> bool:
        """Ask before replacing a file: saving twice to one name used to replace it silently."""
        return confirm_replace(
            self, "Replace file?", f"{target} exists. Replace it with these results?"
        )

    def _on_error(self, error: BaseException) -> None:
        self.status.setText("not saved")
        report_error(error)

    def _on_finished(self) -> None:
        self.worker = None
        self.save_button.setEnabled(True)
