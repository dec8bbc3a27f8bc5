"""A plotext figure drawn into a Static at the widget's own size (no textual-plotext dependency)."""

from __future__ import annotations

import functools
from typing import Callable

from rich.text import Text
from textual.widgets import Static

THEME = "vggtab"
# Bright blue, red, green, yellow, cyan, magenta: readable on 16-colour terminals, dark or light.
SIGNAL_COLOURS = [12, 9, 10, 11, 14, 13]
MIN_WIDTH, MIN_HEIGHT = 24, 6

Draw = Callable[[object], None]  # receives plotext's figure, sized and themed (subplots: theme each), adds data


@functools.cache
def plotext_figure():
    """plotext's global figure, imported on first use: the import costs ~0.4 s, too much before first paint."""
    import plotext

    plotext.add_theme(THEME, sequence=SIGNAL_COLOURS)
    return plotext.figure


class PlotView(Static):
    """Shows `placeholder` until `plot(draw)` is called; redraws on resize. Use from the UI thread only:
    plotext keeps one global figure."""

    def __init__(self, placeholder: str, **kwargs) -> None:
        super().__init__(placeholder, **kwargs)
        self.placeholder = placeholder
        self._draw: Draw | None = None

    @property
    def has_plot(self) -> bool:
        return self._draw is not None

    def plot(self, draw: Draw | None) -> None:
        self._draw = draw
        self.redraw()

    def clear(self, placeholder: str | None = None) -> None:
        if placeholder is not None:
            self.placeholder = placeholder
        self.plot(None)

    def on_resize(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        if self._draw is None:
            self.update(self.placeholder)
            return
        width, height = self.content_size
        if width < MIN_WIDTH or height < MIN_HEIGHT:
            return  # hidden or squeezed: the next resize draws it
        figure = plotext_figure()
        figure.clear.all()
        figure.plot_size(width, height)
        figure.theme(THEME)
        self._draw(figure)
        self.update(Text.from_ansi(figure.build().string(), no_wrap=True))
