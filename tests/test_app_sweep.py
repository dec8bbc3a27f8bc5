"""The sweep from the app, driven as a user would: s on the Training panel opens the search settings' form, the
sweep runs in the job runner's worker on the real engine (small demo set, two-epoch trials), the sweep view fills
one row per trial and ends with the report the engine saved; c cancels. Waits on workers, never on the clock."""

import json

import pytest
from textual.widgets import DataTable, Input

from engine.config import SWEEP_SETTINGS
from tests.test_app import (CLEAR, WIDE, config, make_app, notices, rows, screen_text, settle, shown,  # noqa: F401
                            wait_until)
from tui.app import MainScreen
from tui.format import percent
from tui.widgets.plot import PlotView
from tui.widgets.sweep import SweepScreen

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def fill_sweep_form(app, pilot, **values: str) -> None:
    """Type each value over its field's text, then Enter (no pause for idle after it: a sweep keeps the CPU busy)."""
    for name, text in values.items():
        app.screen.query_one(f"#field-{name}", Input).focus()
        await pilot.press(*CLEAR, *text)
    await pilot.press("enter")


async def test_a_sweep_from_the_training_panel_is_cancelled_then_run_to_its_report(make_app, tmp_path):
    app = make_app()
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        await pilot.pause()
        assert "s Sweep" in screen_text(app)
        await pilot.press("s")
        await pilot.pause()
        for setting in SWEEP_SETTINGS:  # the form is the schema's, as the CLI's options are
            assert app.screen.query(f"#field-{setting.name}"), setting.name
        await fill_sweep_form(app, pilot, trials="0")
        await pilot.pause()
        assert "trials" in shown(app, "#error-trials")  # checked by the schema, next to the field

        # 30 long MLP trials: c stops the first at its next batch, and no other starts.
        await fill_sweep_form(app, pilot, trials="30", model_choices="mlp", epoch_choices="200")
        await wait_until(pilot, lambda: isinstance(app.screen, SweepScreen) and app.screen.lines)
        assert rows(app.screen.query_one("#sweep-trials", DataTable))[0][1] == "running"
        await pilot.press("c")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "cancelled" in shown(app, "#sweep-status") and "Sweep cancelled" in notices(app)
        trials = rows(app.screen.query_one("#sweep-trials", DataTable))
        assert 1 <= len(trials) < 30 and trials[-1][1] == "failed"  # the engine tells the study it was cut short
        assert app.main_screen.job == ""
        assert "cancelled" in [r.status for r in app.main_screen.results_panel.records]

        await pilot.press("escape", "s")  # nothing runs now: s opens the form again, with the last settings
        await pilot.pause()
        assert app.screen.query_one("#field-model_choices", Input).value == "mlp"
        await fill_sweep_form(app, pilot, trials="3", study="app", model_choices="logreg")
        await wait_until(pilot, lambda: isinstance(app.screen, SweepScreen) and app.screen.study == "app")
        await app.workers.wait_for_complete()
        await pilot.pause()

        summary = json.loads((tmp_path / "results" / "sweeps" / "app.json").read_text())
        trials = rows(app.screen.query_one("#sweep-trials", DataTable))
        assert [row[0] for row in trials] == [str(t["number"]) for t in summary["trials"]]
        for row, trial in zip(trials, summary["trials"]):
            assert row[1] == trial["state"] and row[2] == percent(trial["accuracy"])
            assert row[3] != "the base config"  # every trial changes something the base has
        assert sum(row[1] == "complete" for row in trials) >= 1
        assert app.screen.query_one("#sweep-curve", PlotView).has_plot

        report = shown(app, "#sweep-report")
        assert f"trial {summary['best_trial']}" in report
        for score in ("best_valid", "best_test", "default_test"):
            assert percent(summary[score]["accuracy"]) in report
        gap = round(100 * summary["optimism_gap"], 1)
        assert (f"{gap:+.1f} points" if gap else "0.0 points") in report
        assert "on test" in report and "winner vs default" in report and "McNemar" in report
        if summary["ensemble_test"] is not None:
            assert f"Top-{len(summary['ensemble_members'])}" in report
        assert app.screen.query_one("#sweep-importances", PlotView).has_plot == bool(summary["importances"])
        assert "done" in shown(app, "#sweep-status")

        await pilot.press("escape")  # back to the panels: every trial's run is a row of the results
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        trial_runs = {run_id for t in summary["trials"] for run_id in t["run_ids"]}
        sweep_rows = {r.run_id for r in app.screen.results_panel.records if r.config.get("sweep") == "app"}
        assert trial_runs < sweep_rows and summary["best_test"]["run_id"] in sweep_rows
        await pilot.press("4", "slash", *"app", "enter")  # the filter finds a sweep's rows by its name
        await pilot.pause()
        assert {r.run_id for r in app.screen.results_panel.visible_records()} == sweep_rows
