"""Dataset panel: what was loaded, matched, dropped and split, and which features the model sees."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Static

from engine.config import FEATURE_SETS, RunConfig
from engine.events import DatasetSummary, StageDone
from tui.format import count
from tui.screens import DataForm, DroppedRowsScreen
from tui.widgets.table import KeyScroll

DROPPED_EXAMPLES = 2


def facts_table() -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    return table


def summary_view(summary: DatasetSummary) -> Table:
    facts = facts_table()
    facts.add_row("Embeddings", Text.assemble((summary.embeddings_path, "cyan"),
                                              f" · {count(summary.rows_embeddings)} rows"))
    facts.add_row("Tabular", Text.assemble((summary.tabular_path, "cyan"), f" · {count(summary.rows_tabular)} rows"))
    unmatched = (f"{count(summary.unmatched_embeddings)} only in embeddings · "
                 f"{count(summary.unmatched_tabular)} only in tabular")
    if summary.unmatched_examples:
        unmatched += f" (e.g. {', '.join(summary.unmatched_examples[:2])})"
    facts.add_row("Merge", f"on {summary.key}: {count(summary.matched)} matched · {unmatched}")
    facts.add_row("Audit", audit_text(summary))
    facts.add_row("Labels", labels_text(summary))
    facts.add_row("Classes", f"{summary.n_classes} · clips per class min {summary.class_size_min} · "
                             f"median {summary.class_size_median:g} · max {summary.class_size_max}")
    groups = " · ".join(f"{name} {count(n)}" for name, n in summary.feature_groups.items())
    facts.add_row("Features", Text.assemble(f"{groups} → set ", (summary.feature_set, "bold cyan"),
                                            f": {count(summary.n_features)} model inputs"))
    total = summary.train_rows + summary.valid_rows
    share = f" ({summary.valid_rows / total:.0%} valid)" if total else ""
    facts.add_row("Split", f"{count(summary.train_rows)} train · {count(summary.valid_rows)} valid{share}")
    for note in summary.feature_notes:
        facts.add_row("Note", note)
    for warning in summary.warnings:
        facts.add_row(Text("Warning", style="yellow"), Text(warning, style="yellow"))
    return facts


def audit_text(summary: DatasetSummary) -> Text:
    text = Text()
    if summary.dropped:
        rows = "row" if len(summary.dropped) == 1 else "rows"
        text.append(f"{len(summary.dropped)} {rows} dropped", style="bold")
        examples = "; ".join(f"{fname}: {why}" for fname, why in summary.dropped[:DROPPED_EXAMPLES])
        more = " …" if len(summary.dropped) > DROPPED_EXAMPLES else ""
        text.append(f" ({examples}{more}). ")
        text.append("w", style="bold reverse")
        text.append(" lists them.")
    else:
        text.append("no rows dropped")
    if summary.imputed:
        text.append(f" {len(summary.imputed)} rows imputed with the train median.")
    return text


def labels_text(summary: DatasetSummary) -> str:
    per_clip = " · ".join(f"{n}: {count(clips)}" for n, clips in sorted(summary.label_counts.items()))
    mode = "single-label" if summary.label_mode == "single" else "multi-label"
    return f"clips by number of labels {per_clip} → {mode} keeps {count(summary.kept_rows)}"


class DatasetPanel(KeyScroll):
    """Shows the preparation steps as they finish, then the dataset summary or the error."""

    ALLOW_MAXIMIZE = True  # z zooms it to the whole screen

    BINDINGS = [
        Binding("d", "open_data", "Data", tooltip="Load other embeddings and tabular files"),
        Binding("f", "cycle_features", "Features", tooltip="Cycle the feature set: both, embeddings, tabular"),
        Binding("w", "show_dropped", "Dropped", tooltip="List the rows the audit dropped, and why"),
    ]

    @dataclass
    class FilesChosen(Message):
        embeddings: str
        tabular: str

    @dataclass
    class FeatureSetChosen(Message):
        features: str

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.summary: DatasetSummary | None = None
        self.config = RunConfig()  # what is being prepared or was prepared last
        self._stages: list[StageDone] = []

    def compose(self):
        yield Static("Waiting for the data…", id="dataset-body")

    @property
    def body(self) -> Static:
        return self.query_one("#dataset-body", Static)

    def show_preparing(self, config: RunConfig) -> None:
        self.summary = None
        self.config = config
        self._stages = []
        self.body.update(Text.assemble(("Preparing ", "bold"), config.embeddings, " + ", config.tabular, " …"))

    def add_stage(self, stage: StageDone) -> None:
        if self.summary is not None:
            return  # a step after the summary (the warm-up's imports): the summary stays
        self._stages.append(stage)
        lines = Text("Preparing the dataset …\n", style="bold")
        for done in self._stages:
            lines.append(f" ✓ {done.stage:<9} {done.seconds:5.2f} s  {done.detail}\n", style="not bold")
        self.body.update(lines)

    def show_summary(self, summary: DatasetSummary) -> None:
        self.summary = summary
        self.body.update(summary_view(summary))

    def show_error(self, message: str) -> None:
        self.summary = None
        text = Text("Could not prepare the dataset\n\n", style="bold red")
        text.append(message)
        text.append("\n\nPress ")
        text.append("d", style="bold reverse")
        text.append(" to choose other files.")
        self.body.update(text)

    def action_open_data(self) -> None:
        def chosen(paths: tuple[str, str] | None) -> None:
            if paths is not None:
                self.post_message(self.FilesChosen(*paths))
        self.app.push_screen(DataForm(self.config.embeddings, self.config.tabular), chosen)

    def action_cycle_features(self) -> None:
        names = list(FEATURE_SETS)
        current = names.index(self.config.features) if self.config.features in names else -1
        self.post_message(self.FeatureSetChosen(names[(current + 1) % len(names)]))

    def action_show_dropped(self) -> None:
        summary = self.summary
        if summary is None or not (summary.dropped or summary.imputed):
            self.notify("No rows were dropped or imputed." if summary else
                        "No dataset summary yet: the data is still being prepared or failed to load.")
            return
        self.app.push_screen(DroppedRowsScreen(summary))
