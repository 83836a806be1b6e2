"""Matplotlib canvases that look like part of napari (its theme colours, its fonts)."""

from __future__ import annotations

from typing import Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg, NavigationToolbar2QT
from matplotlib.figure import Figure
from napari.utils.theme import get_theme
from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget


class ThemedCanvas(QWidget):
    """A figure whose axes follow the viewer's theme, restyled when the theme changes."""

    def __init__(self, viewer: Any, height: float = 2.6, toolbar: bool = False) -> None:
        super().__init__()
        self.viewer = viewer
        self.figure = Figure(figsize=(4.0, height), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.canvas.setMinimumHeight(int(height * 70))
        self.ax = self.figure.add_subplot()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        if toolbar:  # zoom, pan and home, matplotlib's own
            layout.addWidget(NavigationToolbar2QT(self.canvas, self))
        layout.addWidget(self.canvas)
        viewer.events.theme.connect(self.restyle)
        self.restyle()

    @property
    def colours(self) -> dict[str, str]:
        theme = get_theme(self.viewer.theme)
        return {
            "face": theme.background.as_hex(),
            "text": theme.text.as_hex(),
            "grid": theme.foreground.as_hex(),
        }

    def restyle(self, *_: Any) -> None:
        """Apply the theme to the figure and its axes (call after ``ax.clear()``)."""
        c = self.colours
        self.figure.set_facecolor(c["face"])
        ax = self.ax
        ax.set_facecolor(c["face"])
        ax.tick_params(colors=c["text"], labelsize=8)
        ax.xaxis.label.set_color(c["text"])
        ax.yaxis.label.set_color(c["text"])
        ax.xaxis.label.set_fontsize(9)
        ax.yaxis.label.set_fontsize(9)
        ax.title.set_color(c["text"])
        ax.title.set_fontsize(9)
        for spine in ax.spines.values():
            spine.set_color(c["grid"])
        legend = ax.get_legend()
        if legend is not None:
            legend.get_frame().set_facecolor(c["face"])
            legend.get_frame().set_edgecolor(c["grid"])
            for text in [*legend.get_texts(), legend.get_title()]:
                text.set_color(c["text"])
        self.canvas.draw_idle()
