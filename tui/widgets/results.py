"""Results panel: every recorded run against a random-guess baseline, sortable and filterable, with the selected
run's details. The panel owns its keys; what needs the engine it asks for with the messages defined on it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Static

from engine.events import DatasetSummary, RunRecord
from engine.workbench import can_predict
from tui.format import count, duration, is_number, layers_text, loss_text, lr_text, percent, short_date
from tui.screens import PredictForm, config_view
from tui.widgets.table import KeyTable

SORT_KEYS = Binding.Group("Sort", compact=True)
BASELINE_KEY = "baseline"
BEST_STYLE = "bold green"
UNFINISHED_STYLE = "dim"
BEST, MARKED, PINNED = "★ ", "✓ ", "⚑ "
APPROACH_MIN = 12  # the approach column never shrinks below this; longer names are ellipsised


def metric(record: RunRecord, name: str):
    value = record.metrics.get(name)
    return value if is_number(value) else None


def run_lr(record: RunRecord):
    """The LR the run trained with; None for models without one (logreg, SVM, forest, ensembles)."""
    if record.config.get("model", "mlp") != "mlp":
        return None
    return metric(record, "learning_rate") or record.config.get("lr")


def accuracy_cell(record: RunRecord) -> str:
    if record.status != "finished":
        return record.status
    low, high = metric(record, "ci_low"), metric(record, "ci_high")
    ci = f" [{low * 100:.1f}–{high * 100:.1f}]" if low is not None and high is not None else ""
    return f"{percent(metric(record, 'val_accuracy'))}{ci}"


def epochs_cell(record: RunRecord) -> str:
    planned = record.config.get("epochs") or "–"  # an ensemble trains no epochs of its own
    return str(planned) if record.status == "finished" else f"{len(record.history)}/{planned}"


def model_cell(record: RunRecord) -> str:
    model = record.config.get("model", "mlp")
    return layers_text(record.config.get("layers", ())) if model == "mlp" else str(model)


@dataclass(frozen=True)
class Column:
    label: str
    cell: Callable[[RunRecord], str]
    sort_key: Callable[[RunRecord], Any]  # None sorts last in either direction
    descending_first: bool = False
    max_width: int = 0  # longer cells are ellipsised; 0: as wide as the widest cell


# In the order they are given room: what answers "which approach is best?" first (the labels no wider than the
# cells, so the run id still fits at 80 columns zoomed); the rest shows when zoomed
# or wider, and always in the details below the table.
COLUMNS = (
    Column("Approach", lambda r: r.approach, lambda r: r.approach),
    Column("Acc [95 % CI]", accuracy_cell, lambda r: metric(r, "val_accuracy"), descending_first=True),
    Column("Error", lambda r: percent(metric(r, "error_rate")), lambda r: metric(r, "error_rate")),
    Column("lwlrap", lambda r: f"{metric(r, 'lwlrap'):.3f}" if metric(r, "lwlrap") is not None else "–",
           lambda r: metric(r, "lwlrap"), descending_first=True),
    Column("LR", lambda r: lr_text(run_lr(r)) if run_lr(r) else "–", run_lr),
    Column("Ep", epochs_cell, lambda r: r.config.get("epochs")),
    Column("Features", lambda r: str(r.config.get("features", "")), lambda r: str(r.config.get("features", "")),
           max_width=8),
    Column("Run", lambda r: r.short_id, lambda r: r.short_id),
    Column("Date", lambda r: short_date(r.created), lambda r: r.created),
    Column("Model", model_cell, model_cell, max_width=14),
    Column("Time", lambda r: duration(r.train_seconds) if r.train_seconds else "–", lambda r: r.train_seconds),
    Column("Params", lambda r: count(r.num_params) if r.num_params else "–", lambda r: r.num_params or None),
)
APPROACH, ACCURACY, ERROR = 0, 1, 2
DATE_COLUMN = COLUMNS.index(next(c for c in COLUMNS if c.label == "Date"))


def sorted_records(records: list[RunRecord], column: Column, descending: bool) -> list[RunRecord]:
    known = [r for r in records if column.sort_key(r) is not None]
    unknown = [r for r in records if column.sort_key(r) is None]
    return sorted(known, key=column.sort_key, reverse=descending) + unknown


def best_run(records: list[RunRecord]) -> RunRecord | None:
    finished = [r for r in records if r.status == "finished" and metric(r, "val_accuracy") is not None]
    return max(finished, key=lambda r: metric(r, "val_accuracy"), default=None)


def fitting_columns(natural: list[int], capped: list[int], available: int) -> tuple[list[int], list[int]]:
    """Which columns fit `available` cells (each takes its width plus one space), in priority order, at their
    `capped` widths (the approach at APPROACH_MIN); then the cells left widen the approach, then the capped
    columns, up to their `natural` widths. Returns (the columns shown, every column's width)."""
    widths = [min(natural[APPROACH], APPROACH_MIN), *capped[1:]]
    used, chosen = widths[APPROACH] + 1, [APPROACH]
    for index in range(1, len(widths)):
        if used + widths[index] + 1 > available:
            break
        chosen.append(index)
        used += widths[index] + 1
    left = max(0, available - used)
    for index in chosen:
        grow = min(natural[index] - widths[index], left)
        widths[index] += grow
        left -= grow
    return chosen, widths


def ellipsised(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(0, width - 1)] + "…"


def details_view(record: RunRecord, width: int) -> Group:
    head = Text.assemble((record.approach, "bold cyan"), f" · {record.status} · {record.created.replace('T', ' ')}"
                         f" · run {record.run_id}")
    parts: list = [head]
    if record.message:
        parts.append(Text(record.message, style="yellow"))
    parts.append(metrics_view(record))
    parts += config_view(record.config, width)
    if record.history:
        parts.append(Text("Per epoch", style="bold underline"))
        history = Table("epoch", "train loss", "valid loss", "accuracy", "time", box=None, padding=(0, 1),
                        header_style="bold")
        for row in record.history:
            history.add_row(str(row.get("epoch", "")), loss_text(row.get("train_loss")),
                            loss_text(row.get("valid_loss")), percent(row.get("accuracy")),
                            duration(row.get("seconds")))
        parts.append(history)
    per_class = record.per_class_accuracy
    if per_class:
        parts.append(Text("Valid accuracy per class", style="bold underline"))
        classes = Table.grid(padding=(0, 2))
        columns = max(1, width // 32)
        for _ in range(columns):
            classes.add_column(style="bold", no_wrap=True)
            classes.add_column(justify="right", no_wrap=True)
        items = sorted(per_class.items(), key=lambda item: item[1])
        for start in range(0, len(items), columns):
            classes.add_row(*(cell for name, value in items[start:start + columns]
                              for cell in (name, percent(value))))
        parts.append(classes)
    if record.model_path:
        parts.append(Text(f"Model {record.model_path}\nCSV   {record.results_csv}", style="dim"))
    return Group(*parts)


def metrics_view(record: RunRecord) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("valid accuracy", accuracy_cell(record))
    grid.add_row("error · lwlrap", f"{COLUMNS[ERROR].cell(record)} · {COLUMNS[3].cell(record)}")
    grid.add_row("LR · epochs", f"{COLUMNS[4].cell(record)} · {epochs_cell(record)}")
    grid.add_row("model · params", f"{model_cell(record)} · {COLUMNS[-1].cell(record)}")
    grid.add_row("train time", COLUMNS[-2].cell(record))
    return grid


def baseline_view(n_classes: int) -> Text:
    return Text(f"Random guessing among {n_classes} classes is right {percent(1 / n_classes)} of the time: "
                "a run worth keeping beats it by a wide margin, with its whole confidence interval above it.")


class ResultsPanel(Vertical):
    """Every run in the history. Keys that read saved runs post the request messages below; the screen hands
    them to the job runner."""

    ALLOW_MAXIMIZE = True  # z zooms it to the whole screen

    BINDINGS = [
        Binding("o", "sort_next_column", "Sort by the next column", group=SORT_KEYS),
        Binding("O", "reverse_sort", "Reverse the sort order", group=SORT_KEYS),
        Binding("r", "rerun", "Re-run", tooltip="Train again with the selected row's exact config"),
        Binding("space", "toggle_mark", "Mark", tooltip="Mark or unmark the selected run for compare or ensemble"),
        Binding("p", "toggle_pin", "Pin", tooltip="Pin or unpin the selected run: pinned runs stay on top"),
        Binding("m", "compare", "Compare",
                tooltip="McNemar's paired test between the two marked runs, and how their configs differ"),
        Binding("e", "ensemble", "Ensemble",
                tooltip="Average the marked runs' predictions (none marked: latest embeddings + tabular pair)"),
        Binding("slash", "filter", "Filter", tooltip="Show only the rows containing a text"),
        Binding("escape", "leave_filter", "Leave or clear the filter", show=False),
        Binding("x", "export", "Export", tooltip="Write the table to results/table.csv and table.md"),
        Binding("s", "predict", "Predict",
                tooltip="Predict unlabeled files (the demo test files by default) with the selected run's model; "
                        "writes a submission CSV"),
    ]

    @dataclass
    class RerunRequested(Message):
        record: RunRecord

    @dataclass
    class CompareRequested(Message):
        first: RunRecord
        second: RunRecord

    @dataclass
    class EnsembleRequested(Message):
        members: list[str]  # run ids; empty: let the engine pick the latest embeddings + tabular pair
        records: list[RunRecord]

    @dataclass
    class ExportRequested(Message):
        records: list[RunRecord]

    @dataclass
    class PredictRequested(Message):
        record: RunRecord
        embeddings: str
        tabular: str

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.records: list[RunRecord] = []
        self.n_classes: int | None = None
        self.data_folder = Path(".")  # where the training files are: the test files are looked for there
        self.sort_column = DATE_COLUMN
        self.descending = False
        self.marked: list[str] = []  # run ids, in the order marked
        self.pinned: list[str] = []  # run ids shown above the others, in the order pinned
        self.filter_text = ""
        self._shown_columns: list[int] = []

    def compose(self):
        with Horizontal(id="filter-row"):
            yield Label("Filter", id="filter-label")
            yield Input(placeholder="text in any column", id="results-filter", compact=True)
            yield Static("", id="filter-hint")
        yield KeyTable(id="results-table", cursor_type="row", zebra_stripes=True, cell_padding=0)
        with VerticalScroll(id="run-details-scroll"):
            yield Static("No runs yet: press t to train one.", id="run-details")

    @property
    def table(self) -> KeyTable:
        return self.query_one("#results-table", KeyTable)

    @property
    def filter_input(self) -> Input:
        return self.query_one("#results-filter", Input)

    def on_mount(self) -> None:
        self._show_filter()
        self._rebuild()

    def on_resize(self) -> None:
        self._rebuild()

    # -- what is shown ---------------------------------------------------------------------------------
    def visible_records(self) -> list[RunRecord]:
        """The rows the filter lets through, in table order: pinned runs first."""
        words = self.filter_text.lower().split()
        shown = sorted_records(self.records, COLUMNS[self.sort_column], self.descending)
        shown.sort(key=lambda r: self.pinned.index(r.run_id) if r.run_id in self.pinned else len(self.pinned))
        if not words:
            return shown

        def text(record: RunRecord) -> str:  # with the sweep a trial belongs to: /sweep_… shows its rows
            return " ".join([record.run_id, record.status, str(record.config.get("sweep", "")),
                             *(c.cell(record) for c in COLUMNS)]).lower()
        return [r for r in shown if all(word in text(r) for word in words)]

    def marked_records(self) -> list[RunRecord]:
        by_id = {r.run_id: r for r in self.records}
        return [by_id[run_id] for run_id in self.marked if run_id in by_id]

    def selected_record(self) -> RunRecord | None:
        table = self.table
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((r for r in self.records if r.run_id == key), None)

    def show_history(self, records: list[RunRecord]) -> None:
        self.records = list(records)
        self._rebuild()

    def add_record(self, record: RunRecord) -> None:
        self.records.append(record)
        self._rebuild(select=record.run_id)

    def show_dataset(self, summary: DatasetSummary) -> None:
        self.n_classes = summary.n_classes
        self.data_folder = Path(summary.embeddings_path).parent
        self._rebuild()

    def _rebuild(self, select: str | None = None) -> None:
        table = self.table
        if select is None and table.row_count:
            select = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        records = self.visible_records()
        best = best_run(self.records)
        cells = {r.run_id: [column.cell(r) for column in COLUMNS] for r in records}
        for record in records:
            marks = ((PINNED, record.run_id in self.pinned), (MARKED, record.run_id in self.marked),
                     (BEST, record is best))
            prefix = "".join(mark for mark, on in marks if on)
            cells[record.run_id][APPROACH] = prefix + record.approach
        baseline = self._baseline_cells()
        arrow = " ▼" if self.descending else " ▲"
        labels = [c.label + (arrow if i == self.sort_column else "") for i, c in enumerate(COLUMNS)]
        natural = [max([len(labels[i]), *(len(row[i]) for row in [*cells.values(), *baseline[:1]])])
                   for i in range(len(COLUMNS))]
        capped = [min(width, c.max_width) if c.max_width else width for width, c in zip(natural, COLUMNS)]
        # The table is as wide as the panel, less a cell, and two more for the scrollbar when the rows overflow.
        overflowing = len(records) + len(baseline) + 1 > table.size.height
        shown, widths = fitting_columns(natural, capped, (self.content_size.width or 80) - (3 if overflowing else 1))
        self._shown_columns = shown
        table.clear(columns=True)
        for index in shown:
            table.add_column(Text(" " + ellipsised(labels[index], widths[index]), style="bold"),
                             width=widths[index] + 1)
        for record in records:
            style = BEST_STYLE if record is best else "" if record.status == "finished" else UNFINISHED_STYLE
            table.add_row(*(Text(" " + ellipsised(cells[record.run_id][i], widths[i]), style=style) for i in shown),
                          key=record.run_id)
        if baseline:
            table.add_row(*(Text(" " + ellipsised(baseline[0][i], widths[i]), style="italic") for i in shown),
                          key=BASELINE_KEY)
        if select is not None and select in table.rows:
            table.move_cursor(row=table.get_row_index(select))
        self._show_details()

    def _baseline_cells(self) -> list[list[str]]:
        if not self.n_classes:
            return []
        cells = ["–"] * len(COLUMNS)
        cells[APPROACH] = f"random guess (1 in {self.n_classes})"
        cells[ACCURACY] = percent(1 / self.n_classes)
        cells[ERROR] = percent(1 - 1 / self.n_classes)
        return [cells]

    def hidden_columns(self) -> list[str]:
        return [c.label for i, c in enumerate(COLUMNS) if i not in self._shown_columns]

    def on_data_table_row_highlighted(self, event: KeyTable.RowHighlighted) -> None:
        event.stop()
        self._show_details()

    def _show_details(self) -> None:
        details = self.query_one("#run-details", Static)
        record = self.selected_record()
        if record is not None:
            details.update(details_view(record, self.size.width))
        elif self.table.row_count and self.n_classes:
            details.update(baseline_view(self.n_classes))
        else:
            details.update("No runs yet: press t to train one.")

    # -- keys ------------------------------------------------------------------------------------------
    def action_sort_next_column(self) -> None:
        """Cycles through the columns on screen: a hidden column's order would not show."""
        shown = self._shown_columns or [APPROACH]
        position = shown.index(self.sort_column) if self.sort_column in shown else -1
        self.sort_column = shown[(position + 1) % len(shown)]
        self.descending = COLUMNS[self.sort_column].descending_first
        self._rebuild()

    def action_reverse_sort(self) -> None:
        self.descending = not self.descending
        self._rebuild()

    def _selected_or_say(self, doing: str) -> RunRecord | None:
        record = self.selected_record()
        if record is None:
            self.notify(f"Select a run to {doing} (the random-guess row is not a run)." if self.table.row_count
                        else f"No runs yet to {doing}: press t to train one.", severity="warning")
        return record

    def _toggle(self, run_ids: list[str], doing: str) -> None:
        record = self._selected_or_say(doing)
        if record is None:
            return
        if record.run_id in run_ids:
            run_ids.remove(record.run_id)
        else:
            run_ids.append(record.run_id)
        self._rebuild()

    def action_toggle_mark(self) -> None:
        self._toggle(self.marked, "mark")

    def action_toggle_pin(self) -> None:
        self._toggle(self.pinned, "pin")

    def action_rerun(self) -> None:
        record = self._selected_or_say("re-run")
        if record is not None:
            self.post_message(self.RerunRequested(record))

    def action_compare(self) -> None:
        marked = self.marked_records()
        if len(marked) != 2:
            self.notify(f"Mark exactly two runs with space to compare them ({len(marked)} marked).",
                        severity="warning")
            return
        self.post_message(self.CompareRequested(*marked))

    def action_ensemble(self) -> None:
        self.post_message(self.EnsembleRequested([r.run_id for r in self.marked_records()], list(self.records)))

    def action_export(self) -> None:
        self.post_message(self.ExportRequested(self.visible_records()))

    def action_predict(self) -> None:
        record = self._selected_or_say("predict with")
        if record is None:
            return
        if not can_predict(record):
            why = f"it is {record.status}" if record.status != "finished" else "it saved no model (random forest)"
            self.notify(f"Cannot predict with {record.approach}: {why}. Select a finished run with a saved model.",
                        severity="warning")
            return

        def chosen(paths: tuple[str, str] | None) -> None:
            if paths is not None:
                self.post_message(self.PredictRequested(record, *paths))
        folder = self.data_folder
        self.app.push_screen(PredictForm(str(folder / "test_embeddings.csv"), str(folder / "test_tabular.csv"),
                                         record.approach), chosen)

    def ensemble_added(self, record: RunRecord) -> None:
        self.marked.clear()
        self.add_record(record)

    # -- the filter: / opens it, Esc leaves it, Esc again clears it --------------------------------------
    def action_filter(self) -> None:
        self.query_one("#filter-row").display = True
        self.filter_input.focus()
        self._show_filter()

    def action_leave_filter(self) -> None:
        if self.filter_input.has_focus:
            self.table.focus()
        elif self.filter_text:
            self.filter_input.value = ""  # Input.Changed rebuilds the table
            self.notify("Filter cleared.")
        else:
            self.notify("No filter to clear: / filters the rows.")
        self.call_after_refresh(self._show_filter)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.filter_text = event.value
        self._rebuild()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.table.focus()
        self.call_after_refresh(self._show_filter)

    def on_descendant_blur(self) -> None:
        self.call_after_refresh(self._show_filter)

    def _show_filter(self) -> None:
        """The filter row shows while it is typed in or applied, so a filtered table always says so."""
        editing = self.filter_input.has_focus
        self.query_one("#filter-row").display = editing or bool(self.filter_text)
        hint = "Enter or Esc: back to the table" if editing else "Esc clears · / edits"
        self.query_one("#filter-hint", Static).update(Text(hint, style="dim"))
