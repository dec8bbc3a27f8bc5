"""Training panel: progress with ETA, one row per epoch, live loss/accuracy chart, then the evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import ProgressBar, Static

from engine.config import RunConfig
from engine.events import BatchEnded, EpochEnded, RunRecord
from tui.format import duration, interval, layers_text, loss_text, lr_text, percent
from tui.screens import ParamsForm
from tui.widgets.plot import THEME, PlotView
from tui.widgets.table import KeyScroll, KeyTable

EPOCH_COLUMNS = ("epoch", "train loss", "valid loss", "accuracy", "error rate", "time")
MISCLASSIFIED_SHOWN = 5
CONFUSED_SHOWN = 3


def next_run_text(config: RunConfig) -> Text:
    lr = f"LR {lr_text(config.lr)}" if config.lr is not None else f"LR auto ({config.lr_suggestion})"
    return Text.assemble(("Next run: ", "bold"), f"{config.approach} · features {config.features} · "
                         f"layers {layers_text(config.layers)} · {lr} · {config.epochs} epochs · bs {config.bs} · "
                         f"ps {config.ps:g} · wd {config.wd:g} · seed {config.seed}")


def draw_history(rows: list[EpochEnded], figure) -> None:
    epochs = [row.epoch for row in rows]
    figure.subplots(1, 2)
    losses = figure.subplot(1, 1)
    losses.theme(THEME)
    for values in ([r.train_loss for r in rows], [r.valid_loss for r in rows]):
        line = losses.signal(epochs, values)
        line.lines()
        losses.draw(line)
    losses.title("loss: train blue, valid red")  # a legend box would hide the first epochs' points
    accuracy = figure.subplot(1, 2)
    accuracy.theme(THEME)
    line = accuracy.signal(epochs, [r.accuracy for r in rows])
    line.lines()
    accuracy.draw(line)
    accuracy.title("valid accuracy")
    for plot in (losses, accuracy):
        plot.ruler("x").ticks(epoch_ticks(epochs))


def epoch_ticks(epochs: list[int]) -> list[int]:
    step = max(1, len(epochs) // 5)
    return epochs[::step]


def evaluation_view(record: RunRecord, evaluation) -> Group:
    lines = Table.grid(padding=(0, 1))
    lines.add_column(style="bold", no_wrap=True)
    lines.add_column(overflow="fold")
    lines.add_row("Accuracy", Text.assemble(
        (percent(evaluation.accuracy), "bold green"),
        f" (95 % CI {interval(evaluation.ci_low, evaluation.ci_high)}, {evaluation.n_valid} valid clips) · "
        f"error rate {percent(evaluation.error_rate)}"))
    lines.add_row("Baselines", f"random {percent(evaluation.random_baseline)} · majority class "
                               f"{percent(evaluation.majority_baseline)} → "
                               f"{evaluation.improvement_over_random:.1f}× random")
    gap = (evaluation.train_accuracy - evaluation.accuracy) * 100
    lines.add_row("Train", f"accuracy {percent(evaluation.train_accuracy)} · train−valid gap {gap:.1f} points")
    if evaluation.diagnosis:
        lines.add_row("Diagnosis", Text("\n".join(f"• {line}" for line in evaluation.diagnosis), style="yellow"))
    if evaluation.confused_pairs:
        lines.add_row("Confused", " · ".join(f"{true} → {predicted} ({n})"
                                             for true, predicted, n in evaluation.confused_pairs[:CONFUSED_SHOWN]))
    if evaluation.misclassified:
        sample = Table.grid(padding=(0, 1))
        for fname, true, predicted, confidence in evaluation.misclassified[:MISCLASSIFIED_SHOWN]:
            sample.add_row(fname, f"{true} → {predicted}", percent(confidence, 0))
        lines.add_row("Mistakes", sample)
    lines.add_row("Saved", Text(f"{record.model_path}\n{record.results_csv}", style="dim"))
    return Group(Text(f"Run {record.approach} finished in {duration(record.train_seconds)}", style="bold"), lines)


class TrainingPanel(Vertical):
    """The next run's settings, the running run's progress, one row per epoch, the chart, then the evaluation.
    Only the body scrolls; after a run it shows the last epochs and the chart."""

    ALLOW_MAXIMIZE = True  # z zooms it to the whole screen

    BINDINGS = [Binding("p", "edit_params", "Params", tooltip="Edit every setting of the next run"),
                Binding("a", "ablation", "Ablation",
                        tooltip="Train embeddings-only, tabular-only and both on the same split and seed, "
                                "one after another"),
                Binding("s", "sweep", "Sweep",
                        tooltip="Search the run settings with Optuna from the next run's settings, then score the "
                                "winner once on held-out test clips (while a sweep runs: show it)")]

    @dataclass
    class ConfigEdited(Message):
        config: RunConfig

    class AblationRequested(Message):
        pass

    class SweepRequested(Message):
        """s: the screen opens the sweep form, or shows the sweep that runs."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.epochs: list[EpochEnded] = []
        self.config = RunConfig()  # the next run's, as last shown

    def compose(self):
        yield Static("", id="run-status")
        with Horizontal(id="run-progress-row"):
            yield ProgressBar(id="run-progress", show_eta=True)
            yield Static("", id="run-progress-label")
        with KeyScroll(id="training-body"):
            table = KeyTable(id="epochs", cursor_type="none", zebra_stripes=True)
            table.add_columns(*EPOCH_COLUMNS)
            yield table
            yield PlotView("The loss and accuracy chart appears after the first epoch.", id="run-plot")
            yield Static("", id="run-outcome")

    def on_mount(self) -> None:
        self._idle("idle")

    @property
    def epoch_table(self) -> KeyTable:
        return self.query_one("#epochs", KeyTable)

    @property
    def progress(self) -> ProgressBar:
        return self.query_one("#run-progress", ProgressBar)

    def show_next_run(self, config: RunConfig) -> None:
        self.config = config
        if not self.has_class("-running"):
            self.query_one("#run-status", Static).update(next_run_text(config))

    def start(self, config: RunConfig) -> None:
        lr = lr_text(config.lr) if config.lr is not None else f"from the LR finder ({config.lr_suggestion})"
        self._begin(config.approach, Text.assemble(("Training ", "bold"), (config.approach, "bold cyan"),
                                                   f" · LR {lr} · {config.epochs} epochs …"))

    def start_sweep(self, config: RunConfig, trials: int) -> None:
        self._begin(config.approach, Text.assemble(("Sweep ", "bold"), f"of {trials} trials from ",
                                                   (config.approach, "bold cyan"),
                                                   ": each trial trains here in turn · s shows the sweep"))

    def start_rerun(self, approach: str) -> None:
        """An ensemble's re-run: its members train one after another (each restarts the table), then average."""
        self._begin(approach, Text.assemble(("Re-running ", "bold"), (approach, "bold cyan"),
                                            ": each member with its recorded config, then their average …"))

    def _begin(self, approach: str, status: Text) -> None:
        self._set_running(True)
        self._clear_epochs()
        self.progress.update(total=None, progress=0)
        self._label(f"starting {approach} …")
        self.query_one("#run-outcome", Static).update("")
        self.query_one("#run-status", Static).update(status)

    def _clear_epochs(self) -> None:
        self.epochs = []
        self.epoch_table.clear()
        self.query_one("#run-plot", PlotView).clear()

    def show_batch(self, event: BatchEnded) -> None:
        self._set_running(True)  # the next member of an ensemble's re-run, after the previous one finished
        self.progress.update(total=event.n_batches * event.n_epochs,
                             progress=event.epoch * event.n_batches + event.batch)
        self._label(f"epoch {event.epoch + 1}/{event.n_epochs}")

    def add_epoch(self, event: EpochEnded) -> None:
        if event.epoch == 1 and self.epochs:
            self._clear_epochs()  # a new run of the same job (an ensemble's next member)
        self.epochs.append(event)
        self.epoch_table.add_row(f"{event.epoch}/{event.n_epochs}", loss_text(event.train_loss),
                                 loss_text(event.valid_loss), percent(event.accuracy), percent(event.error_rate),
                                 duration(event.seconds))
        self.query_one("#run-plot", PlotView).plot(partial(draw_history, list(self.epochs)))
        self.call_after_refresh(self._show_last_epochs)

    def finish(self, record: RunRecord, evaluation) -> None:
        self.progress.update(total=1, progress=1)
        self._end(f"done · valid {percent(evaluation.accuracy)} · {len(self.epochs)} epochs · "
                  f"{duration(record.train_seconds)}", evaluation_view(record, evaluation))

    def fail(self, message: str) -> None:
        self._end(f"failed after epoch {len(self.epochs)}",
                  Text.assemble(("Run failed\n", "bold red"), message))

    def cancel(self, epochs_done: int) -> None:
        self._end(f"cancelled at epoch {epochs_done}", Text(
            f"Run cancelled after {epochs_done} epoch{'s' if epochs_done != 1 else ''}; it is recorded in the "
            "results as cancelled.", style="bold yellow"))

    def _end(self, label: str, outcome) -> None:
        self._set_running(False)
        self.show_next_run(self.config)
        self._label(label)
        self.query_one("#run-outcome", Static).update(outcome)
        self.call_after_refresh(self._show_last_epochs)

    def _idle(self, label: str) -> None:
        self._set_running(False)
        self.progress.update(total=1, progress=0)
        self._label(label)

    def _set_running(self, running: bool) -> None:
        """-idle hides the bar's percentage and ETA: they would read 0 % or freeze once nothing runs."""
        self.set_class(running, "-running")
        self.set_class(not running, "-idle")

    def _label(self, text: str) -> None:
        self.query_one("#run-progress-label", Static).update(text)

    def _show_last_epochs(self) -> None:
        """Scroll the body so the chart ends at the bottom: above it, the table's last rows."""
        self.query_one("#training-body", KeyScroll).scroll_to_widget(self.query_one("#run-plot"), animate=False,
                                                                      top=False)

    def action_edit_params(self) -> None:
        def apply(config: RunConfig | None) -> None:
            if config is not None and config != self.config:
                self.post_message(self.ConfigEdited(config))
        self.app.push_screen(ParamsForm(self.config), apply)

    def action_ablation(self) -> None:
        self.post_message(self.AblationRequested())

    def action_sweep(self) -> None:
        self.post_message(self.SweepRequested())
