"""Tables and scrolling bodies that take j/k/g/G as well as the arrows, as lazygit, k9s and htop do."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable


def vim_keys(down: str, up: str, first: str, last: str) -> list[Binding]:
    return [Binding(key, action, description, show=False)
            for key, action, description in (("j", down, "Down"), ("k", up, "Up"), ("g", first, "First"),
                                             ("G", last, "Last"))]


class KeyTable(DataTable):
    BINDINGS = vim_keys("cursor_down", "cursor_up", "scroll_top", "scroll_bottom")


class KeyScroll(VerticalScroll):
    """A scrolling body that takes the tables' keys."""

    BINDINGS = vim_keys("scroll_down", "scroll_up", "scroll_home", "scroll_end")
