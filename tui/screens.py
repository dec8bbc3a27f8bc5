"""Modal screens: the data and hyperparameter forms, the dropped-rows list and the key help."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, Static

from engine.config import ARCHITECTURE_PRESETS, RunConfig, parse_layers
from engine.errors import ConfigError
from engine.events import DatasetSummary
from tui.widgets.table import KeyScroll, KeyTable


class FormScreen(ModalScreen):
    """Labelled inputs, each with its own error line; Enter in any field submits, Esc closes unchanged."""

    BINDINGS = [Binding("escape", "dismiss_form", "Close unchanged")]
    TITLE_TEXT = ""
    HELP_TEXT = ""

    def fields(self) -> dict[str, tuple[str, str]]:
        """field name → (label, initial text)."""
        raise NotImplementedError

    def check(self, values: dict[str, str]) -> tuple[object, dict[str, str]]:
        """(result to dismiss with, {field: error}); the result is used only when there are no errors."""
        raise NotImplementedError

    def compose(self):
        with Vertical(classes="form"):
            yield Static(self.TITLE_TEXT, classes="form-title")
            for name, (label, value) in self.fields().items():
                with Horizontal(classes="form-row"):
                    yield Label(label, classes="form-label")
                    yield Input(value, id=f"field-{name}", classes="form-input", compact=True)
                yield Static("", id=f"error-{name}", classes="form-error")
            yield Static(self.HELP_TEXT + "\nEnter: apply · Tab: next field · Esc: close unchanged",
                         classes="form-help")
        yield Footer()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        values = {name: self.query_one(f"#field-{name}", Input).value for name in self.fields()}
        result, errors = self.check(values)
        for name in values:
            error = self.query_one(f"#error-{name}", Static)
            error.update(Text(errors.get(name, ""), style="red"))
            error.display = name in errors
        if errors:
            self.query_one(f"#field-{next(iter(errors))}", Input).focus()
        else:
            self.dismiss(result)

    def action_dismiss_form(self) -> None:
        self.dismiss(None)


class DataForm(FormScreen):
    """Choose the embeddings and tabular files; dismisses with (embeddings, tabular) or None."""

    TITLE_TEXT = "Load data"
    HELP_TEXT = "CSV or Parquet. The key column may be fname or file in either; labels may come from either."

    def __init__(self, embeddings: str, tabular: str) -> None:
        super().__init__()
        self.paths = {"embeddings": embeddings, "tabular": tabular}

    def fields(self) -> dict[str, tuple[str, str]]:
        return {"embeddings": ("Embeddings (fname, labels, emb_*)", self.paths["embeddings"]),
                "tabular": ("Tabular (file, stft_*, mel_*, cqt_*)", self.paths["tabular"])}

    def check(self, values: dict[str, str]) -> tuple[object, dict[str, str]]:
        paths = {name: text.strip() for name, text in values.items()}
        errors = {name: f"No file at {path!r}." if path else "Type a path."
                  for name, path in paths.items() if not path or not Path(path).expanduser().is_file()}
        return (str(Path(paths["embeddings"]).expanduser()), str(Path(paths["tabular"]).expanduser())), errors


class PredictForm(DataForm):
    """The unlabeled files to predict (prefilled with the demo test files); dismisses with the two paths."""

    TITLE_TEXT = "Predict unlabeled clips"
    HELP_TEXT = "The same columns as the training files; labels are not needed. The submission goes to results/."

    def __init__(self, embeddings: str, tabular: str, approach: str) -> None:
        super().__init__(embeddings, tabular)
        self.TITLE_TEXT = f"Predict unlabeled clips with {approach}"


def whole_number(name: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return int(text.strip())
        except ValueError:
            raise ConfigError(f"{name} {text!r} is not a whole number.") from None
    return parse


def decimal(name: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return float(text.strip())
        except ValueError:
            raise ConfigError(f"{name} {text!r} is not a number.") from None
    return parse


PARAMETERS: dict[str, tuple[str, Callable[[str], object], Callable[[RunConfig], str]]] = {
    "layers": ("Hidden layers (e.g. 200,100)", parse_layers, lambda c: ",".join(map(str, c.layers))),
    "epochs": ("Epochs", whole_number("Epochs"), lambda c: str(c.epochs)),
    "bs": ("Batch size", whole_number("Batch size"), lambda c: str(c.bs)),
    "ps": ("Dropout probability ps", decimal("Dropout"), lambda c: f"{c.ps:g}"),
    "wd": ("Weight decay wd", decimal("Weight decay"), lambda c: f"{c.wd:g}"),
    "seed": ("Training seed", whole_number("Seed"), lambda c: str(c.seed)),
}


class ParamsForm(FormScreen):
    """Edit the model's hyperparameters; dismisses with the changed RunConfig or None."""

    TITLE_TEXT = "Hyperparameters for the next run"
    HELP_TEXT = "Layer presets: " + " · ".join(f"{name} {','.join(map(str, sizes))}"
                                               for name, sizes in ARCHITECTURE_PRESETS.items())

    def __init__(self, config: RunConfig) -> None:
        super().__init__()
        self.config = config

    def fields(self) -> dict[str, tuple[str, str]]:
        return {name: (label, shown(self.config)) for name, (label, _, shown) in PARAMETERS.items()}

    def check(self, values: dict[str, str]) -> tuple[object, dict[str, str]]:
        changes, errors = {}, {}
        for name, text in values.items():
            try:
                value = PARAMETERS[name][1](text)
                self.config.with_(**{name: value})  # the config's own range check, one field at a time
                changes[name] = value
            except ConfigError as error:
                errors[name] = str(error)
        return (self.config.with_(**changes) if not errors else None), errors


class CloseableScreen(ModalScreen):
    BINDINGS: list[BindingType] = [Binding("escape,q", "app.pop_screen", "Close")]


class DroppedRowsScreen(CloseableScreen):
    """Every row the audit removed, with the reason, and every imputed row."""

    def __init__(self, summary: DatasetSummary) -> None:
        super().__init__()
        self.summary = summary

    def compose(self):
        with Vertical(classes="dialog"):
            yield Static(f"Rows the audit dropped: {len(self.summary.dropped)} · imputed: "
                         f"{len(self.summary.imputed)}", classes="form-title")
            table = KeyTable(id="dropped-table", cursor_type="row", zebra_stripes=True)
            table.add_columns("file", "what happened", "why")
            for fname, why in self.summary.dropped:
                table.add_row(fname, "dropped", why)
            for fname, columns in self.summary.imputed:
                table.add_row(fname, "imputed", columns)
            yield table
        yield Footer()


def differences(first: dict, second: dict) -> list[tuple[str, str, str]]:
    """(key, first's value, second's value) for every key whose values differ, in first-seen order."""
    keys = list(dict.fromkeys([*first, *second]))
    return [(key, value_text(first.get(key)), value_text(second.get(key))) for key in keys
            if first.get(key) != second.get(key)]


def value_text(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "-".join(map(str, value)) if all(isinstance(v, int) for v in value) else ", ".join(map(str, value))
    return str(value)


def pairs_grid(pairs: list[tuple[str, Text | str]], width: int) -> Table:
    """Key/value pairs aligned in as many column pairs as `width` holds (at least one)."""
    per_row = max(1, width // 38)
    grid = Table.grid(padding=(0, 1))
    for _ in range(per_row):
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(min_width=12)
    for start in range(0, len(pairs), per_row):
        row = [cell for pair in pairs[start:start + per_row] for cell in pair]
        grid.add_row(*row, *[""] * (2 * per_row - len(row)))
    return grid


def config_view(config: dict, width: int) -> list:
    """A recorded config as read by a person: what differs from the default first, then every setting."""
    defaults = RunConfig().to_dict()
    changed = [(key, Text.assemble(value_text(value), (f"  (default {value_text(defaults[key])})", "dim"))
                if key in defaults else value_text(value))
               for key, value in config.items() if key not in defaults or value != defaults[key]]
    return [Text("Differences from the default (r re-runs exactly this)", style="bold underline"),
            pairs_grid(changed, width) if changed else Text("none: every setting is the default"),
            Text("Full config", style="bold underline"),
            pairs_grid([(key, value_text(value)) for key, value in config.items()], width)]


class CompareScreen(CloseableScreen):
    """Two runs on the same valid clips: McNemar's exact test, its verdict, and what differs between them."""

    def __init__(self, comparison) -> None:
        super().__init__()
        self.comparison = comparison

    def compose(self):
        from engine.stats import format_p
        c = self.comparison
        a, b = c.run_a, c.run_b
        head = Table.grid(padding=(0, 2))
        head.add_column(style="bold")
        head.add_column()
        head.add_column()
        head.add_row("", Text(f"A {a.approach}", style="bold cyan"), Text(f"B {b.approach}", style="bold cyan"))
        head.add_row("run", a.run_id, b.run_id)
        head.add_row("valid accuracy", *(f"{acc:.1%} [{low:.1%}–{high:.1%}]" for acc, (low, high) in
                                         ((c.accuracy_a, c.interval_a), (c.accuracy_b, c.interval_b))))
        head.add_row("right only here", f"{c.test.a_only} clips", f"{c.test.b_only} clips")
        test = Text.assemble(("McNemar's exact test", "bold"), f" on {c.n_clips:,} valid clips: "
                             f"{format_p(c.test.p_value)}\n", (c.verdict, "bold"))
        diff = Table("", "A", "B", box=None, padding=(0, 2), header_style="bold")
        for key, first, second in differences(a.config, b.config):
            diff.add_row(Text(key, style="bold"), first, second)
        metrics = Table("metric", "A", "B", box=None, padding=(0, 2), header_style="bold")
        for key, first, second in differences(a.metrics, b.metrics):
            metrics.add_row(Text(key, style="bold"), first, second)
        with KeyScroll(classes="dialog"):
            yield Static("Compare two runs on the same valid clips", classes="form-title")
            yield Static(head, id="compare-runs")
            yield Static(test, id="compare-test")
            yield Static(Text("Config differences", style="bold underline"))
            yield Static(diff if diff.row_count else Text("none"), id="compare-config")
            yield Static(Text("Metric differences", style="bold underline"))
            yield Static(metrics if metrics.row_count else Text("none"), id="compare-metrics")
        yield Footer()


class HelpScreen(CloseableScreen):
    """The workflow in five lines and every key of the main screen, from its own bindings."""

    def __init__(self, keys: list[tuple[str, Binding]]) -> None:
        super().__init__()
        self.keys = keys  # (where the key works, binding)

    def compose(self):
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold", no_wrap=True)
        keys.add_column()
        place = None
        for where, binding in self.keys:
            if where != place:
                keys.add_row(Text(where, style="bold underline"), "")
                place = where
            keys.add_row(self.app.get_key_display(binding), binding.description)
        keys.add_row("ctrl+p", "Command palette: every action by name, from anywhere")
        workflow = Text.assemble(
            ("Workflow\n", "bold"),
            "1 Dataset: check what was merged, dropped and split (d loads other files, f changes features).\n",
            "2 LR finder: l runs it; v/s/m/g take a suggestion or e types an LR.\n",
            "3 Training: t trains with the settings on screen (p edits them), c cancels; a queues the ablation\n"
            "  (embeddings-only, tabular-only, both on the same split and seed).\n",
            "4 Results: every run with its confidence interval; o/O sort, r re-runs the selected row, / filters;\n"
            "  space marks runs: m compares two (paired test), e averages them (ensemble); x exports the table,\n"
            "  s predicts unlabeled files (the demo test files by default) into a submission CSV.\n")
        with KeyScroll(classes="dialog"):
            yield Static(workflow)
            yield Static(keys, id="help-keys")
        yield Footer()
