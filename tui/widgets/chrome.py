"""The main screen's frame: the status line that shows notifications, and a footer that always ends in ? and q."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.containers import Horizontal
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Footer, Label, Static

PINNED_KEYS = (("?", "Help"), ("q", "Quit"))  # their bindings are on the screen, with show=False
SEVERITY_STYLES = {"information": "bold", "warning": "bold yellow", "error": "bold red"}


class StatusLine(Static):
    """The latest notification, above the footer, for its timeout: at 80×24 a toast would cover the LR
    suggestions or the chart; this line moves the panel up instead and hides nothing."""

    @dataclass
    class Show(Message):
        title: str
        message: str
        severity: str
        timeout: float

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self._timer: Timer | None = None

    def on_mount(self) -> None:
        self.display = False

    def on_status_line_show(self, shown: Show) -> None:
        text = Text(f"{shown.title}: " if shown.title else "", style=SEVERITY_STYLES.get(shown.severity, "bold"))
        text.append(" ".join(shown.message.split()), style="red" if shown.severity == "error" else "")
        self.update(text)
        self.display = True
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(shown.timeout, self._hide)

    def _hide(self) -> None:
        self.display = False


class FooterBar(Horizontal):
    """Textual's footer for the focused panel's keys and the screen's, then `?` and `q` pinned at the right:
    the footer cuts what does not fit at 80 columns, and these two must never be cut."""

    def compose(self):
        yield Footer(compact=True, show_command_palette=False)
        for key, description in PINNED_KEYS:
            yield Label(key, classes="pinned-key")
            yield Label(description, classes="pinned-description")
