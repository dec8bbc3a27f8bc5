"""Modal screens: the data and hyperparameter forms, the dropped-rows list and the key help."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, Static

from engine.config import ARCHITECTURE_PRESETS, SETTINGS, SETTINGS_BY_NAME, SWEEP_SETTINGS, RunConfig, SweepConfig
from engine.errors import ConfigError
from engine.events import DatasetSummary
from engine.workbench import format_p
from tui.widgets.table import KeyScroll, KeyTable


class Field(NamedTuple):
    label: str
    value: str  # the initial text
    help: str = ""  # one dim line under the field
    section: str = ""  # a heading shown above the first field of each section


class FormScreen(ModalScreen):
    """Labelled inputs, each with its own error line; Enter in any field submits, Esc closes unchanged."""

    BINDINGS = [Binding("escape", "dismiss_form", "Close unchanged")]
    TITLE_TEXT = ""
    HELP_TEXT = ""

    def fields(self) -> dict[str, Field]:
        raise NotImplementedError

    def check(self, values: dict[str, str]) -> tuple[object, dict[str, str]]:
        """(result to dismiss with, {field: error}); the result is used only when there are no errors."""
        raise NotImplementedError

    def compose(self):
        with Vertical(classes="form"):
            yield Static(self.TITLE_TEXT, classes="form-title")
            with VerticalScroll(classes="form-fields", can_focus=False):
                section = ""
                for name, field in self.fields().items():
                    if field.section != section:
                        section = field.section
                        yield Static(section, classes="form-section")
                    with Horizontal(classes="form-row"):
                        yield Label(field.label, classes="form-label")
                        yield Input(field.value, id=f"field-{name}", classes="form-input", compact=True)
                    if field.help:
                        yield Static(field.help, id=f"help-{name}", classes="form-field-help")
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
            first = self.query_one(f"#field-{next(iter(errors))}", Input)
            first.focus()
            first.scroll_visible(animate=False)
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

    def fields(self) -> dict[str, Field]:
        return {"embeddings": Field("Embeddings (fname, labels, emb_*)", self.paths["embeddings"]),
                "tabular": Field("Tabular (file, stft_*, mel_*, cqt_*)", self.paths["tabular"])}

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


FORM_SETTINGS = [s for s in SETTINGS if s.editable]  # the data files have their own form (d)
SECTIONS = {"data": "Data", "split": "Split", "features": "Features", "model": "Model",
            "training": "Training", "run": "Run", "sweep": "Search"}
PREPARED_BY = ("data", "split", "features")  # groups whose settings change the prepared dataset


class SettingsForm(FormScreen):
    """One field per setting of a config's schema (RunConfig's, SweepConfig's), each parsed and checked by it;
    dismisses with the new config or None."""

    def __init__(self, config, settings) -> None:
        super().__init__()
        self.config = config
        self.settings = {s.name: s for s in settings}

    def fields(self) -> dict[str, Field]:
        return {s.name: Field(s.name, s.format(getattr(self.config, s.name)), s.describe(),
                              SECTIONS.get(s.group, s.group)) for s in self.settings.values()}

    def check(self, values: dict[str, str]) -> tuple[object, dict[str, str]]:
        changes, errors = {}, {}
        for name, text in values.items():
            try:
                changes[name] = self.settings[name].parse(text)
            except ConfigError as error:
                errors[name] = str(error)
        if errors:
            return None, errors
        try:
            return self.config.with_(**changes), {}
        except ConfigError as error:  # settings that must agree (fold < n_folds): shown on the first changed
            changed = [name for name, value in changes.items() if value != getattr(self.config, name)]
            return None, {(changed or list(changes))[0]: str(error)}


class ParamsForm(SettingsForm):
    """Every run setting the CLI has, from the run config's schema; dismisses with the new RunConfig or None."""

    TITLE_TEXT = "Settings for the next run"
    HELP_TEXT = "Layer presets: " + " · ".join(f"{name} {','.join(map(str, sizes))}"
                                               for name, sizes in ARCHITECTURE_PRESETS.items())

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config, FORM_SETTINGS)


class SweepForm(SettingsForm):
    """The sweep's search settings (the CLI's sweep options); dismisses with the new SweepConfig or None."""

    TITLE_TEXT = "Sweep: search the run settings with Optuna"
    HELP_TEXT = ("The next run's settings are the base; 20 % of the clips are set aside as test (unless test_pct "
                 "says otherwise) and the winner is scored on them once.")

    def __init__(self, config: SweepConfig) -> None:
        super().__init__(config, SWEEP_SETTINGS)


def changes_prepared_data(before: RunConfig, after: RunConfig) -> bool:
    return any(getattr(before, s.name) != getattr(after, s.name) for s in SETTINGS if s.group in PREPARED_BY)


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


def setting_text(key: str, value) -> str:
    """A recorded setting as the form and the CLI write it ('200,100', 'auto'); other keys as values read."""
    setting = SETTINGS_BY_NAME.get(key)
    return (setting.format(value) if setting is not None else value_text(value)) or "–"


def is_default(key: str, value) -> bool:
    setting = SETTINGS_BY_NAME.get(key)
    return setting is not None and (tuple(value) if isinstance(value, list) else value) == setting.default


def config_view(config: dict, width: int) -> list:
    """A recorded config as read by a person: what differs from the schema's defaults first, then every setting."""
    differences = Table.grid(padding=(0, 2))
    differences.add_column(style="bold", no_wrap=True)
    differences.add_column()
    differences.add_column(style="dim")
    for key, value in config.items():
        if not is_default(key, value):
            default = setting_text(key, SETTINGS_BY_NAME[key].default) if key in SETTINGS_BY_NAME else ""
            differences.add_row(key, setting_text(key, value), f"default {default}" if default else "")
    # One difference per line, so a path or a layer list reads whole; the full config packs pairs by width.
    return [Text("Differences from the default (r re-runs exactly this)", style="bold underline"),
            differences if differences.row_count else Text("none: every setting is the default"),
            Text("Full config", style="bold underline"),
            pairs_grid([(key, setting_text(key, value)) for key, value in config.items()], width)]


class CompareScreen(CloseableScreen):
    """Two runs on the same valid clips: McNemar's exact test, its verdict, and what differs between them."""

    def __init__(self, comparison) -> None:
        super().__init__()
        self.comparison = comparison

    def compose(self):
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
        test = Text.assemble(("McNemar's test", "bold"), f" on {c.n_clips:,} valid clips: mid-"
                             f"{format_p(c.test.mid_p)} (exact {format_p(c.test.p_value)})\n", (c.verdict, "bold"))
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
            "3 Training: t trains with the settings on screen (p edits every setting), c cancels; a queues the\n"
            "  ablation (embeddings-only, tabular-only, both on the same split and seed); s sweeps the settings\n"
            "  with Optuna from these (each trial live, then the winner scored once on held-out test clips).\n",
            "4 Results: every run with its confidence interval; o/O sort, r re-runs the selected row, / filters\n"
            "  (Esc leaves the filter, Esc again clears it); space marks runs: m compares two (paired test),\n"
            "  e averages them (ensemble); p pins a run on top; x exports the table, s predicts unlabeled files\n"
            "  (the demo test files by default) into a submission CSV.\n",
            "z zooms the active panel to the whole screen and back; j/k/g/G move in every table.\n")
        with KeyScroll(classes="dialog"):
            yield Static(workflow)
            yield Static(keys, id="help-keys")
        yield Footer()
