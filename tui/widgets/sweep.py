"""The sweep view: one row per trial as trials start and end, the best valid score so far over trials, then the
honest report (the winner's valid and test scores, the optimism gap, the top-N ensemble and the default on test,
the paired verdict) and the setting importances as a bar chart.

A screen of its own, pushed when a sweep starts: the trials table and the curve need more room than a quarter of
the main screen. The main screen hands it the engine's events; the view keeps what it was told, so events that
arrive before it is mounted are drawn when it is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from engine.config import RunConfig, SweepConfig
from engine.events import RunRecord, TrialEnded, TrialStarted
from tui.format import gap_verb, interval, percent
from tui.screens import setting_text
from tui.widgets.plot import PlotView
from tui.widgets.results import ellipsised
from tui.widgets.table import KeyScroll, KeyTable

TRIAL_COLUMNS = ("#", "state", "valid", "changes from the base")
FIXED_WIDTHS = (3, len("complete"), len("100.0 %"))  # the changes column takes the rest of the table's width
STATE_STYLES = {"running": "bold yellow", "complete": "", "pruned": "dim", "failed": "red"}
BEST_STYLE = "bold green"
NO_CURVE = "The best valid accuracy so far appears after the first finished trial."
NO_IMPORTANCES = "Setting importances appear when the sweep ends."


@dataclass(frozen=True)
class TrialLine:
    """What the view shows of one trial."""

    number: int
    state: str  # running | complete | pruned | failed
    accuracy: float | None
    changes: str
    note: str = ""  # why it was pruned or failed, or which trial's score it reused
    same_as: int | None = None


def changes_text(changes: dict) -> str:
    """{'model': 'logreg', 'pca': 32} → 'model=logreg pca=32', values written as the form writes them."""
    return " ".join(f"{name}={setting_text(name, value)}" for name, value in changes.items()) or "the base config"


def best_so_far(lines) -> list[tuple[int, float]]:
    """(trial number, best valid accuracy of the finished trials up to it), in trial order."""
    best, points = None, []
    for line in sorted(lines, key=lambda line: line.number):
        if line.state == "complete" and line.accuracy is not None:
            best = line.accuracy if best is None else max(best, line.accuracy)
            points.append((line.number, best))
    return points


def draw_best_so_far(lines: list[TrialLine], figure) -> None:
    finished = [(line.number, line.accuracy * 100) for line in lines
                if line.state == "complete" and line.accuracy is not None]
    points = best_so_far(lines)
    curve = figure.signal([n for n, _ in points], [best * 100 for _, best in points])
    curve.lines()
    figure.draw(curve)
    figure.draw(figure.signal([n for n, _ in finished], [a for _, a in finished], marker="dot"))
    numbers = sorted(line.number for line in lines)
    step = max(1, len(numbers) // 6)
    figure.ruler("x").ticks(numbers[::step])
    figure.title("best valid % so far (•: each trial)")  # plotext drops a title wider than the plot
    figure.label("trial", "x")
    figure.legend(False)


def draw_importances(importances: dict[str, float], figure) -> None:
    # Most important on top: plotext draws the first bar at the bottom.
    names = list(reversed(importances))
    values = [importances[name] for name in names]
    bars = figure.bar(names, values, orientation="h", width=0.6, labeled=[f"{v:.2f}" for v in values])
    figure.draw(bars)
    figure.ruler("x").lim(0, max(values) * 1.08 or 1)  # plotext's own horizontal limit can cut the longest bar
    figure.title("setting importance (fANOVA)")


def score_text(score) -> str:
    return f"{percent(score.accuracy)} (95 % CI {interval(score.low, score.high)}, {score.n:,} clips)"


def report_view(report) -> Table:
    gap = round(report.optimism_gap * 100, 1) + 0.0  # + 0.0: a gap that rounds to zero reads 0.0, not -0.0
    lines = Table.grid(padding=(0, 1))
    lines.add_column(style="bold", no_wrap=True)
    lines.add_column(overflow="fold")
    lines.add_row("Best", Text.assemble(f"trial {report.best_trial}: ", (report.best_valid.approach, "cyan")))
    lines.add_row("  valid", score_text(report.best_valid))
    lines.add_row("  test", Text.assemble((score_text(report.best_test), "bold green"), " retrained on train + valid"))
    gap_text = f"{gap:+.1f} points" if gap else "0.0 points"
    lines.add_row("  gap", Text.assemble((gap_text, "bold yellow" if gap > 0 else "bold"),
                                         f": the best valid score {gap_verb(gap)} what the winner does on "
                                         "clips no trial saw"))
    if report.ensemble_test is not None:
        members = ", ".join(map(str, report.ensemble_members))
        lines.add_row(f"Top-{len(report.ensemble_members)}", f"ensemble (trials {members}) on test: "
                                                           f"{score_text(report.ensemble_test)}")
    lines.add_row("Default", f"on test: {score_text(report.default_test)}")
    lines.add_row("Verdict", Text(f"winner vs default on the test clips: {report.winner_vs_default}", style="bold"))
    if report.mlp_importances:
        lines.add_row("MLP only", " · ".join(f"{name} {value:.2f}" for name, value in report.mlp_importances.items()))
    lines.add_row("Saved", Text(f"{report.summary_path} · study {report.storage}", style="dim"))
    return lines


class SweepScreen(Screen):
    """A sweep's trials while it runs, then its report. Esc goes back to the panels; the sweep goes on."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", tooltip="Back to the panels (the sweep goes on; s shows it)"),
        Binding("c", "cancel_sweep", "Cancel sweep",
                tooltip="Stop the sweep after the current batch; its trials so far stay in the results"),
        Binding("q", "app.quit", "Quit", tooltip="Quit (a running sweep is cancelled first)"),
    ]

    def __init__(self, base: RunConfig, search: SweepConfig) -> None:
        super().__init__()
        self.base, self.search = base, search
        self.lines: dict[int, TrialLine] = {}
        self.study = search.study
        self.phase = "preparing the data …"
        self.report = None
        self._mounted = False

    def compose(self):
        yield Static("", id="sweep-status")
        with KeyScroll(id="sweep-body"):
            with Horizontal(classes="sweep-row", id="sweep-live"):
                with Vertical(id="sweep-left"):
                    yield KeyTable(id="sweep-trials", cursor_type="row", zebra_stripes=True)
                    yield Static("", id="sweep-trial-detail")
                yield PlotView(NO_CURVE, id="sweep-curve")
            with Horizontal(classes="sweep-row", id="sweep-end"):
                yield Static("The report appears when the trials are done and the winner, the top-N and the "
                             "default config are scored on the test clips.", id="sweep-report")
                yield PlotView(NO_IMPORTANCES, id="sweep-importances")
        yield Footer()

    def on_mount(self) -> None:
        self._mounted = True  # Screen.is_mounted turns true only after this handler: what came before is drawn now
        self._show()
        self.call_after_refresh(self._show_trials)  # once laid out, the changes column knows its width
        if self.report is not None:
            self.call_after_refresh(self._scroll_to_report)

    def on_resize(self) -> None:
        self.call_after_refresh(self._show_trials)  # after the new layout gives the table its width

    # -- what the main screen hands on -----------------------------------------------------------------
    def trial_started(self, event: TrialStarted) -> None:
        self.study = event.sweep
        self.lines[event.number] = TrialLine(event.number, "running", None, changes_text(event.changes))
        self.phase = f"trial {event.number} running"
        self._show()

    def trial_ended(self, event: TrialEnded) -> None:
        self.study = event.sweep
        self.lines[event.number] = TrialLine(event.number, event.state, event.accuracy, changes_text(event.changes),
                                             event.message.splitlines()[0] if event.message else "", event.same_as)
        self._show()

    def scored_on_test(self, record: RunRecord) -> None:
        """One of the final runs (winner, top-N member, default) was retrained and scored on the test clips."""
        self.phase = f"scoring on the test clips: {record.approach} {percent(record.metrics.get('val_accuracy'))}"
        self._show()

    def finish(self, report) -> None:
        self.report = report
        for row in report.trials:  # trials other machines ran on a shared study, and the final states
            known = self.lines.get(row.number)
            self.lines[row.number] = (replace(known, state=row.state, accuracy=row.accuracy) if known else
                                      TrialLine(row.number, row.state, row.accuracy, changes_text(row.params)))
        self.phase = "done"
        self._show()
        if self._mounted:
            self.call_after_refresh(self._scroll_to_report)

    def stopped(self, why: str) -> None:
        self.lines = {n: replace(line, state="failed", note="stopped") if line.state == "running" else line
                      for n, line in self.lines.items()}
        self.phase = why
        self._show()

    # -- drawing ---------------------------------------------------------------------------------------
    def _show(self) -> None:
        if not self._mounted:
            return
        self._show_status()
        self._show_trials()
        lines = list(self.lines.values())
        curve = self.query_one("#sweep-curve", PlotView)
        curve.plot(partial(draw_best_so_far, lines) if best_so_far(lines) else None)
        if self.report is not None:
            self.query_one("#sweep-report", Static).update(report_view(self.report))
            importances = self.query_one("#sweep-importances", PlotView)
            if self.report.importances:
                importances.plot(partial(draw_importances, dict(self.report.importances)))
            else:
                importances.clear("No setting importances: they need two finished trials with different settings.")

    def _show_status(self) -> None:
        done = sum(line.state != "running" for line in self.lines.values())
        best = best_so_far(self.lines.values())
        text = Text.assemble(("Sweep ", "bold"), (self.study or "(new study)", "bold cyan"),
                             f" on {self.base.approach} · {done} of {self.search.trials} trials ended")
        if best:
            text.append(f" · best valid {percent(max(b for _, b in best))}")
        text.append(f" · {self.phase}", style="bold yellow" if self.report is None else "bold green")
        self.query_one("#sweep-status", Static).update(text)

    def _show_trials(self) -> None:
        if not self._mounted:
            return
        table = self.query_one("#sweep-trials", KeyTable)
        # Each column takes its width and a cell of padding either side; a cell more for the scrollbar.
        rest = max(12, (table.size.width or 80) - sum(FIXED_WIDTHS) - 2 * len(TRIAL_COLUMNS) - 1)
        best = max((line.accuracy for line in self.lines.values() if line.state == "complete"
                    and line.accuracy is not None), default=None)
        cursor = table.cursor_row
        table.clear(columns=True)
        for label, width in zip(TRIAL_COLUMNS, (*FIXED_WIDTHS, rest)):
            table.add_column(label, width=width)
        for line in sorted(self.lines.values(), key=lambda line: line.number):
            style = BEST_STYLE if line.accuracy == best and line.state == "complete" else STATE_STYLES.get(
                line.state, "")
            changes = ellipsised(line.changes if line.same_as is None else f"= trial {line.same_as}: {line.changes}",
                                 rest)
            table.add_row(*(Text(cell, style=style) for cell in
                            (str(line.number), line.state, percent(line.accuracy), changes)), key=str(line.number))
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        self._show_trial_detail()

    def on_data_table_row_highlighted(self, event: KeyTable.RowHighlighted) -> None:
        event.stop()
        self._show_trial_detail()

    def _show_trial_detail(self) -> None:
        """The highlighted trial in full: its changes (cut in the table) and why it was pruned or failed."""
        table = self.query_one("#sweep-trials", KeyTable)
        detail = self.query_one("#sweep-trial-detail", Static)
        if not table.row_count:
            detail.update("")
            return
        line = self.lines[int(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)]
        detail.update(Text.assemble((f"trial {line.number} {line.state}", STATE_STYLES.get(line.state) or "bold"),
                                    f" · {line.changes}", (f" · {line.note}" if line.note else "", "dim")))

    def _scroll_to_report(self) -> None:
        """Where the trials and the report do not fit on one screen (80×24), the report is what was waited for;
        the body takes the keys, so j/k/g/G scroll it (Tab reaches the trials table)."""
        body = self.query_one("#sweep-body", KeyScroll)
        body.scroll_to_widget(self.query_one("#sweep-end"), animate=False, top=True)
        body.focus()

    def action_cancel_sweep(self) -> None:
        self.app.main_screen.action_cancel_run()
