"""LR finder panel: loss against learning rate on a log axis, the four suggestions, and the LR field."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Static

from engine.config import LR_SUGGESTIONS, lr_warning, parse_lr
from engine.errors import ConfigError
from engine.events import LRFinderReady
from tui.format import lr_text
from tui.widgets.plot import PlotView

# The key that takes each suggestion; also the marker drawn on the curve, so the plot teaches the keys.
SUGGESTION_KEYS = dict(zip(LR_SUGGESTIONS, ("v", "s", "m", "g")))
TAKE_LR_KEYS = Binding.Group("Take LR", compact=True)
NO_CURVE = "No LR curve yet: press l to run the LR finder on the current data and model."


def input_text(lr: float | None) -> str:
    return "auto" if lr is None else f"{lr:.3g}"


def draw_lr_curve(finder: LRFinderReady, figure) -> None:
    exponents = [math.log10(lr) for lr in finder.lrs]
    curve = figure.signal(exponents, list(finder.losses))
    curve.lines()
    figure.draw(curve)
    for name, lr in finder.suggestions.items():
        nearest = min(range(len(exponents)), key=lambda i: abs(exponents[i] - math.log10(lr)))
        figure.draw(figure.signal([math.log10(lr)], [finder.losses[nearest]], marker=SUGGESTION_KEYS[name]))
    # The loss explodes past the minimum; clip there so the useful part of the curve keeps the height.
    lowest = finder.losses.index(min(finder.losses))
    figure.ruler("y").lim(None, max(finder.losses[:lowest + 1]) * 1.2)
    ticks = list(range(math.ceil(min(exponents)), math.floor(max(exponents)) + 1))
    figure.ruler("x").ticks(ticks, [f"1e{e}" for e in ticks])
    figure.label("learning rate (log scale)", "x")
    figure.legend(False)


def suggestions_text(finder: LRFinderReady) -> Text:
    text = Text("Take ", style="bold")
    for name in LR_SUGGESTIONS:
        if name in finder.suggestions:
            text.append(SUGGESTION_KEYS[name], style="bold reverse")
            text.append(f" {name} {lr_text(finder.suggestions[name])}  ")
    missing = [name for name in LR_SUGGESTIONS if name not in finder.suggestions]
    if missing:
        text.append(f"(no usable {', '.join(missing)})", style="dim")
    return text


class LRFinderPanel(VerticalScroll):
    """The curve and the learning rate the next run will use. Posts LearningRateChosen when the user sets one."""

    ALLOW_MAXIMIZE = True  # z zooms it to the whole screen

    BINDINGS = [
        Binding("e", "edit", "Edit LR", tooltip="Type the learning rate for the next run"),
        *(Binding(key, f"take_suggestion('{name}')", f"Take the {name} LR", group=TAKE_LR_KEYS)
          for name, key in SUGGESTION_KEYS.items()),
        Binding("escape", "revert_lr", "Revert the LR field", show=False),
    ]

    @dataclass
    class LearningRateChosen(Message):
        """The user typed a valid LR (None: the finder's suggestion) or took the `suggestion` named."""
        lr: float | None
        suggestion: str | None = None

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.finder: LRFinderReady | None = None
        self._applied_text = "auto"
        self._auto_suggestion = "valley"

    def compose(self):
        yield PlotView(NO_CURVE, id="lr-plot")
        yield Static("", id="lr-suggestions")
        with Horizontal(id="lr-row"):
            yield Label("LR for the\nnext run", id="lr-label")
            yield Input("auto", placeholder="e.g. 3e-3 or auto", id="lr-input")
            yield Static("", id="lr-message")

    @property
    def lr_input(self) -> Input:
        return self.query_one("#lr-input", Input)

    def show_running(self) -> None:
        self.finder = None
        self.refresh_bindings()
        self.query_one("#lr-plot", PlotView).clear("Running the LR finder (a short mock training) …")
        self.query_one("#lr-suggestions", Static).update("")

    def show_curve(self, finder: LRFinderReady) -> None:
        self.finder = finder
        self.refresh_bindings()
        plot = self.query_one("#lr-plot", PlotView)
        if finder.lrs:
            plot.placeholder = NO_CURVE
            plot.plot(partial(draw_lr_curve, finder))
        else:
            plot.clear("The LR finder recorded no finite loss.")
        self.query_one("#lr-suggestions", Static).update(suggestions_text(finder))

    def show_error(self, message: str) -> None:
        self.finder = None
        self.refresh_bindings()
        self.query_one("#lr-plot", PlotView).clear(f"The LR finder failed.\n\n{message}")
        self.query_one("#lr-suggestions", Static).update("")

    def forget_curve(self) -> None:
        """The data or features changed: the curve no longer applies."""
        self.finder = None
        self.refresh_bindings()
        self.query_one("#lr-plot", PlotView).clear(NO_CURVE)
        self.query_one("#lr-suggestions", Static).update("")

    def show_lr(self, lr: float | None, auto_suggestion: str) -> None:
        """Show the LR the next run will use (None: the finder's `auto_suggestion`)."""
        self._applied_text = input_text(lr)
        self._auto_suggestion = auto_suggestion
        self.lr_input.value = self._applied_text
        self._describe(self._applied_text)

    def action_edit(self) -> None:
        self.lr_input.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._describe(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            lr = parse_lr(event.value)
        except ConfigError:
            return  # the message next to the field already says why
        self.post_message(self.LearningRateChosen(lr))
        self.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The suggestion keys show once there is a curve (from the command palette they say why not)."""
        return self.finder is not None if action == "take_suggestion" else True

    def action_take_suggestion(self, name: str) -> None:
        finder = self.finder
        if finder is None or name not in finder.suggestions:
            self.notify("Run the LR finder first (l)." if finder is None
                        else f"The LR finder gave no usable {name} suggestion.", severity="warning")
            return
        self.post_message(self.LearningRateChosen(finder.suggestions[name], name))

    def action_revert_lr(self) -> None:
        self.lr_input.value = self._applied_text
        self.focus()

    def _describe(self, value: str) -> None:
        message = Text()
        try:
            lr = parse_lr(value)
        except ConfigError as error:
            message.append("✗ Not used. ", style="bold red")
            message.append(str(error), style="red")
        else:
            if value.strip() == self._applied_text:
                message.append("✓ ", style="bold green")
                message.append(f"the finder's {self._auto_suggestion} suggestion" if lr is None
                               else "used for the next run")
            else:
                message.append("Enter: use it · Esc: revert", style="bold")
            warning = lr_warning(lr) if lr is not None else ""
            if warning:
                message.append(f"\n⚠ {warning}", style="yellow")
        self.query_one("#lr-message", Static).update(message)
