"""Results panel: every recorded run against a random-guess baseline, sortable; the selected run's details."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Input, Static

from engine.events import RunRecord
from tui.format import count, duration, is_number, layers_text, loss_text, lr_text, percent

SORT_KEYS = Binding.Group("Sort", compact=True)
BASELINE_KEY = "baseline"
BEST_STYLE = "bold green"
UNFINISHED_STYLE = "dim"


def metric(record: RunRecord, name: str):
    value = record.metrics.get(name)
    return value if is_number(value) else None


def run_lr(record: RunRecord):
    return metric(record, "learning_rate") or record.config.get("lr")


def accuracy_cell(record: RunRecord) -> str:
    if record.status != "finished":
        return record.status
    low, high = metric(record, "ci_low"), metric(record, "ci_high")
    ci = f" [{low * 100:.1f}–{high * 100:.1f}]" if low is not None and high is not None else ""
    return f"{percent(metric(record, 'val_accuracy'))}{ci}"


def epochs_cell(record: RunRecord) -> str:
    planned = record.config.get("epochs", "?")
    return str(planned) if record.status == "finished" else f"{len(record.history)}/{planned}"


@dataclass(frozen=True)
class Column:
    label: str
    cell: Callable[[RunRecord], str]
    sort_key: Callable[[RunRecord], Any]  # None sorts last in either direction
    descending_first: bool = False


COLUMNS = (
    Column("Approach", lambda r: r.approach, lambda r: r.approach),
    Column("Valid acc [95 % CI]", accuracy_cell, lambda r: metric(r, "val_accuracy"), descending_first=True),
    Column("Error", lambda r: percent(metric(r, "error_rate")), lambda r: metric(r, "error_rate")),
    Column("lwlrap", lambda r: f"{metric(r, 'lwlrap'):.3f}" if metric(r, "lwlrap") is not None else "–",
           lambda r: metric(r, "lwlrap"), descending_first=True),
    Column("LR", lambda r: lr_text(run_lr(r)), run_lr),
    Column("Epochs", epochs_cell, lambda r: r.config.get("epochs")),
    Column("Layers", lambda r: layers_text(r.config.get("layers", ())), lambda r: tuple(r.config.get("layers", ()))),
    Column("Features", lambda r: str(r.config.get("features", "")), lambda r: str(r.config.get("features", ""))),
    Column("Time", lambda r: duration(r.train_seconds) if r.train_seconds else "–", lambda r: r.train_seconds),
    Column("Params", lambda r: count(r.num_params) if r.num_params else "–", lambda r: r.num_params or None),
    Column("Date", lambda r: r.created.replace("T", " ")[:16], lambda r: r.created),
)
DATE_COLUMN = len(COLUMNS) - 1


def sorted_records(records: list[RunRecord], column: Column, descending: bool) -> list[RunRecord]:
    known = [r for r in records if column.sort_key(r) is not None]
    unknown = [r for r in records if column.sort_key(r) is None]
    return sorted(known, key=column.sort_key, reverse=descending) + unknown


def best_run(records: list[RunRecord]) -> RunRecord | None:
    finished = [r for r in records if r.status == "finished" and metric(r, "val_accuracy") is not None]
    return max(finished, key=lambda r: metric(r, "val_accuracy"), default=None)


def details_view(record: RunRecord) -> Group:
    head = Text.assemble((record.approach, "bold cyan"), f" · {record.status} · {record.created} · run {record.run_id}")
    parts: list = [head]
    if record.message:
        parts.append(Text(record.message, style="yellow"))
    config = Text()
    for key, value in record.config.items():
        config.append(key, style="bold")
        config.append(f"\u00a0{value}   ")  # a no-break space keeps each value on its key's line
    parts += [Text("Config (r re-runs exactly this)", style="bold"), config]
    if record.history:
        history = Table("epoch", "train loss", "valid loss", "accuracy", "time", box=None, padding=(0, 1),
                        header_style="bold")
        for row in record.history:
            history.add_row(str(row.get("epoch", "")), loss_text(row.get("train_loss")),
                            loss_text(row.get("valid_loss")), percent(row.get("accuracy")),
                            duration(row.get("seconds")))
        parts.append(history)
    if record.model_path:
        parts.append(Text(f"Model {record.model_path}\nCSV   {record.results_csv}", style="dim"))
    return Group(*parts)


def baseline_view(n_classes: int) -> Text:
    return Text(f"Random guessing among {n_classes} classes is right {percent(1 / n_classes)} of the time: "
                "a run worth keeping beats it by a wide margin, with its whole confidence interval above it.")


class ResultsPanel(Vertical):
    BINDINGS = [
        Binding("o", "sort_next_column", "Sort by the next column", group=SORT_KEYS),
        Binding("O", "reverse_sort", "Reverse the sort order", group=SORT_KEYS),
        Binding("r", "screen.rerun", "Re-run", tooltip="Train again with the selected row's exact config"),
        Binding("space", "toggle_mark", "Mark", tooltip="Mark or unmark the selected run for compare or ensemble"),
        Binding("m", "screen.compare", "Compare",
                tooltip="McNemar's paired test between the two marked runs, and how their configs differ"),
        Binding("e", "screen.ensemble", "Ensemble",
                tooltip="Average the marked runs' predictions (none marked: latest embeddings + tabular pair)"),
        Binding("slash", "filter", "Filter", tooltip="Show only the rows containing a text"),
        Binding("x", "screen.export_table", "Export", tooltip="Write the table to results/table.csv and table.md"),
        Binding("s", "screen.predict", "Predict",
                tooltip="Predict unlabeled files (the demo test files by default) with the selected run's model; "
                        "writes a submission CSV"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.records: list[RunRecord] = []
        self.n_classes: int | None = None
        self.sort_column = DATE_COLUMN
        self.descending = False
        self.marked: list[str] = []  # run ids, in the order marked
        self.filter_text = ""

    def compose(self):
        yield Input(placeholder="filter: text in any column (Enter: back to the table)", id="results-filter",
                    compact=True)
        yield DataTable(id="results-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="run-details-scroll"):
            yield Static("No runs yet: press t to train one.", id="run-details")

    @property
    def table(self) -> DataTable:
        return self.query_one("#results-table", DataTable)

    def on_mount(self) -> None:
        self.query_one("#results-filter", Input).display = False
        self._rebuild()

    def visible_records(self) -> list[RunRecord]:
        """The rows the filter lets through, in table order."""
        words = self.filter_text.lower().split()
        shown = sorted_records(self.records, COLUMNS[self.sort_column], self.descending)
        if not words:
            return shown
        def text(record: RunRecord) -> str:
            return " ".join([record.run_id, record.status, *(c.cell(record) for c in COLUMNS)]).lower()
        return [r for r in shown if all(word in text(r) for word in words)]

    def marked_records(self) -> list[RunRecord]:
        by_id = {r.run_id: r for r in self.records}
        return [by_id[run_id] for run_id in self.marked if run_id in by_id]

    def action_toggle_mark(self) -> None:
        record = self.selected_record()
        if record is None:
            self.notify("Select a run to mark.", severity="warning")
            return
        if record.run_id in self.marked:
            self.marked.remove(record.run_id)
        else:
            self.marked.append(record.run_id)
        self._rebuild()

    def action_filter(self) -> None:
        field = self.query_one("#results-filter", Input)
        field.display = True
        field.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.filter_text = event.value
        self._rebuild()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        field = self.query_one("#results-filter", Input)
        field.display = bool(field.value)
        self.table.focus()

    def show_history(self, records: list[RunRecord]) -> None:
        self.records = list(records)
        self._rebuild()

    def add_record(self, record: RunRecord) -> None:
        self.records.append(record)
        self._rebuild(select=record.run_id)

    def set_classes(self, n_classes: int) -> None:
        self.n_classes = n_classes
        self._rebuild()

    def action_sort_next_column(self) -> None:
        self.sort_column = (self.sort_column + 1) % len(COLUMNS)
        self.descending = COLUMNS[self.sort_column].descending_first
        self._rebuild()

    def action_reverse_sort(self) -> None:
        self.descending = not self.descending
        self._rebuild()

    def selected_record(self) -> RunRecord | None:
        table = self.table
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((r for r in self.records if r.run_id == key), None)

    def _rebuild(self, select: str | None = None) -> None:
        table = self.table
        if select is None and table.row_count:
            select = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        arrow = " ▼" if self.descending else " ▲"
        table.clear(columns=True)
        table.add_columns(*(c.label + (arrow if i == self.sort_column else "") for i, c in enumerate(COLUMNS)))
        best = best_run(self.records)
        for record in self.visible_records():
            style = BEST_STYLE if record is best else "" if record.status == "finished" else UNFINISHED_STYLE
            cells = [Text(column.cell(record), style=style) for column in COLUMNS]
            mark = "✓ " if record.run_id in self.marked else ""
            if record is best or mark:
                cells[0] = Text(f"{mark}{'★ ' if record is best else ''}{record.approach}", style=style)
            table.add_row(*cells, key=record.run_id)
        if self.n_classes:
            cells = [Text("–", style="italic")] * len(COLUMNS)
            cells[0] = Text(f"random guess (1 in {self.n_classes})", style="italic")
            cells[1] = Text(percent(1 / self.n_classes), style="italic")
            cells[2] = Text(percent(1 - 1 / self.n_classes), style="italic")
            table.add_row(*cells, key=BASELINE_KEY)
        if select is not None and select in table.rows:
            table.move_cursor(row=table.get_row_index(select))
        self._show_details()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_details()

    def _show_details(self) -> None:
        details = self.query_one("#run-details", Static)
        record = self.selected_record()
        if record is not None:
            details.update(details_view(record))
        elif self.table.row_count and self.n_classes:
            details.update(baseline_view(self.n_classes))
        else:
            details.update("No runs yet: press t to train one.")
