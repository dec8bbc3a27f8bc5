"""Training panel: progress with ETA, one row per epoch, live loss/accuracy chart, then the evaluation."""

from __future__ import annotations

from functools import partial

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, ProgressBar, Static

from engine.config import RunConfig
from engine.events import BatchEnded, EpochEnded, RunRecord
from tui.format import duration, interval, layers_text, loss_text, lr_text, percent
from tui.widgets.plot import THEME, PlotView

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


class TrainingPanel(VerticalScroll):
    BINDINGS = [Binding("p", "screen.edit_params", "Params",
                        tooltip="Edit layers, epochs, batch size, dropout, weight decay and seed"),
                Binding("a", "screen.ablation", "Ablation",
                        tooltip="Train embeddings-only, tabular-only and both on the same split and seed, "
                                "one after another")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.epochs: list[EpochEnded] = []

    def compose(self):
        yield Static("", id="run-status")
        yield ProgressBar(id="run-progress", show_eta=True)
        yield Static("", id="run-outcome")
        table = DataTable(id="epochs", cursor_type="none", zebra_stripes=True)
        table.add_columns(*EPOCH_COLUMNS)
        yield table
        yield PlotView("The loss and accuracy chart appears after the first epoch.", id="run-plot")

    @property
    def epoch_table(self) -> DataTable:
        return self.query_one("#epochs", DataTable)

    def show_next_run(self, config: RunConfig) -> None:
        if not self.has_class("-running"):
            self.query_one("#run-status", Static).update(next_run_text(config))

    def start(self, config: RunConfig) -> None:
        self.add_class("-running")
        self.epochs = []
        self.epoch_table.clear()
        self.query_one("#run-progress", ProgressBar).update(total=None, progress=0)
        self.query_one("#run-outcome", Static).update("")
        self.query_one("#run-plot", PlotView).clear()
        lr = lr_text(config.lr) if config.lr is not None else f"from the LR finder ({config.lr_suggestion})"
        self.query_one("#run-status", Static).update(Text.assemble(
            ("Training ", "bold"), (config.approach, "bold cyan"), f" · LR {lr} · {config.epochs} epochs …"))

    def show_batch(self, event: BatchEnded) -> None:
        self.query_one("#run-progress", ProgressBar).update(
            total=event.n_batches * event.n_epochs, progress=event.epoch * event.n_batches + event.batch)

    def add_epoch(self, event: EpochEnded) -> None:
        self.epochs.append(event)
        table = self.epoch_table
        table.add_row(f"{event.epoch}/{event.n_epochs}", loss_text(event.train_loss), loss_text(event.valid_loss),
                      percent(event.accuracy), percent(event.error_rate), duration(event.seconds))
        table.move_cursor(row=table.row_count - 1)  # keep the newest epoch in view
        self.query_one("#run-plot", PlotView).plot(partial(draw_history, list(self.epochs)))

    def finish(self, record: RunRecord, evaluation) -> None:
        self._end(evaluation_view(record, evaluation))

    def fail(self, message: str) -> None:
        self._end(Text.assemble(("Run failed\n", "bold red"), message))

    def cancel(self, epochs_done: int) -> None:
        self._end(Text(f"Run cancelled after {epochs_done} epoch{'s' if epochs_done != 1 else ''}; "
                       "it is recorded in the results as cancelled.", style="bold yellow"))

    def _end(self, outcome) -> None:
        """The outcome goes above the epoch table, where a short terminal still shows it."""
        self.remove_class("-running")
        self.query_one("#run-outcome", Static).update(outcome)
        self.scroll_home(animate=False)
