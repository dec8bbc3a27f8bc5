"""The app's approach keys driven as a user would: ablation queue, compare, ensemble, filter, export, predict.
Real keys through the Pilot on the small demo set; waits on workers, never on the clock."""

import pytest
from textual.widgets import DataTable

from tests.test_app import NARROW, config, make_app, notices, rows, screen_text, settle, shown, wait_until  # noqa: F401

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def features_column(app) -> list[str]:
    """The feature set of each run row, in table order (the Features column may be off screen at 80 columns)."""
    return [r.config["features"] for r in app.screen.results_panel.visible_records()]


async def test_ablation_queues_three_runs_on_one_split_and_cancel_stops_the_queue(make_app, tmp_path):
    app = make_app(epochs=1)
    async with app.run_test(size=NARROW, notifications=True) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        await pilot.pause()
        assert "a Ablation" in screen_text(app)
        await pilot.press("a")
        await settle(app, pilot)
        table = app.screen.query_one("#results-table", DataTable)
        assert sorted(features_column(app)) == ["both", "embeddings", "tabular"]
        assert "3 of 3 ablation runs finished" in notices(app)

        app.screen._set_config(app.screen.config.with_(epochs=200))
        await pilot.press("a")
        epochs = app.screen.query_one("#epochs", DataTable)
        await wait_until(pilot, lambda: epochs.row_count >= 1 or not app.screen.job)
        await pilot.press("c")
        await settle(app, pilot)
        statuses = [r.status for r in app.screen.results_panel.visible_records()]
        assert len(statuses) == 4 and statuses.count("cancelled") == 1  # the queue stopped with its first run
        assert app.screen.job == ""


def select(app, table: DataTable, wanted) -> None:
    """Put the cursor on the first run row whose (approach, features) satisfy `wanted`."""
    record = next(r for r in app.screen.results_panel.visible_records() if wanted((r.approach, r.config["features"])))
    table.move_cursor(row=table.get_row_index(record.run_id))


async def test_results_compare_ensemble_filter_export_and_predict(make_app, tmp_path, small_demo):
    app = make_app(epochs=2)
    async with app.run_test(size=NARROW, notifications=True) as pilot:
        await settle(app, pilot)
        await pilot.press("3", "a")
        await settle(app, pilot)
        table = app.screen.query_one("#results-table", DataTable)
        assert "lwlrap" in str(table.ordered_columns[3].label) and rows(table)[0][3][0].isdigit()

        await pilot.press("4")
        select(app, table, lambda row: row[1] == "both")
        await pilot.press("space")
        select(app, table, lambda row: row[1] == "embeddings")
        await pilot.press("space", "m")
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: app.screen.query("#compare-test"))
        test = shown(app, "#compare-test")
        assert "McNemar" in test and "p " in test and "valid clips" in test
        assert "features" in shown(app, "#compare-config") and "both" in shown(app, "#compare-config")
        assert "right only here" in shown(app, "#compare-runs")
        await pilot.press("escape")

        await pilot.press("space")  # unmark embeddings; with both still marked, one run cannot be compared
        await pilot.press("m")
        assert "Mark exactly two runs" in notices(app)

        await pilot.press("e")  # one marked run: the engine refuses with its own message
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "at least two runs" in notices(app)
        select(app, table, lambda row: row[1] == "both")
        await pilot.press("space", "e")  # none marked: the latest embeddings + tabular pair
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: any("ensemble" in row[0] for row in rows(table)))

        await pilot.press("slash", *"ensemble", "enter")
        listed = [r.approach for r in app.screen.results_panel.visible_records()]
        assert len(listed) == 1 and listed[0].startswith("ensemble") and "ensemble" in rows(table)[0][0]
        await pilot.press("x")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert (tmp_path / "results" / "table.csv").is_file() and (tmp_path / "results" / "table.md").is_file()
        assert "table.csv" in notices(app) and "table.md" in notices(app)
        assert "ensemble" in (tmp_path / "results" / "table.md").read_text()

        await pilot.press("slash", *["backspace"] * 8, *"tabular", "enter")
        assert features_column(app) and all("tabular" in features for features in features_column(app))
        select(app, table, lambda row: row[1] == "tabular")
        await pilot.press("s")
        await pilot.pause()
        assert "test_embeddings.csv" in app.screen.query_one("#field-embeddings").value
        await pilot.press("enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        submissions = list((tmp_path / "results").glob("submission_*.csv"))
        assert len(submissions) == 1 and "tabular" in submissions[0].name
        assert "Submission written" in notices(app) and "dropped" in notices(app)

        # A run on another split: compare refuses with the engine's words.
        app.screen._set_config(app.screen.config.with_(split_seed=7, epochs=1))
        await pilot.press("slash", *["backspace"] * 7, "enter", "t")
        await settle(app, pilot)
        await pilot.press("4")
        newest = app.screen.results_panel.records[-1]
        table.move_cursor(row=table.get_row_index(newest.run_id))
        await pilot.press("space")
        select(app, table, lambda row: row[1] == "tabular")
        await pilot.press("space", "m")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "different clips" in notices(app)
        assert app.screen.job == ""


async def test_new_keys_are_in_the_palette_and_help(make_app, tmp_path):
    app = make_app()
    async with app.run_test(size=NARROW, notifications=True) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+p", *"export", "enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen.active_panel == "results"
        assert (tmp_path / "results" / "table.md").is_file() and "table.csv" in notices(app)
        await pilot.press("?")
        await pilot.pause()
        help_text = shown(app, "#help-keys")
        for description in ("Ablation", "Sweep", "Mark", "Compare", "Ensemble", "Filter", "Export", "Predict"):
            assert description in help_text
        await pilot.press("escape")


async def test_the_best_row_when_an_ensemble_predicts_like_the_cli_and_reruns(tmp_path, config, small_demo, run_cli):
    """s and r on an ensemble row: the app's submission holds the CLI's probabilities for the same run; the re-run
    trains both members again and records a new ensemble of the same name."""
    import pandas as pd

    from engine.workbench import Workbench
    from tui.app import VggtabApp
    results, models = tmp_path / "results", tmp_path / "models"
    bench = Workbench(models_dir=models, results_dir=results)
    members = [bench.train(config.with_(features=features, epochs=1)).run_id for features in ("embeddings", "tabular")]
    ensemble = bench.ensemble(members)

    app = VggtabApp(config, results_dir=str(results), models_dir=str(models))
    async with app.run_test(size=NARROW, notifications=True) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        table = app.screen.query_one("#results-table", DataTable)
        table.move_cursor(row=table.get_row_index(ensemble.run_id))
        await pilot.press("s")
        await pilot.pause()
        await pilot.press("enter")  # the prefilled test files of the small demo set
        await wait_until(pilot, lambda: "Submission written" in notices(app))
        app_csv = next(results.glob("submission_ensemble*.csv"))
        app_probabilities = pd.read_csv(app_csv)

        await pilot.press("r")
        await settle(app, pilot)
        again = [r for r in app.screen.results_panel.records if r.approach == ensemble.approach]
        assert len(again) == 2 and again[-1].run_id != ensemble.run_id
        assert sorted(r.config["features"] for r in app.screen.results_panel.records[-3:-1]) == ["embeddings",
                                                                                                "tabular"]

    cli_csv = tmp_path / "cli.csv"
    outcome = run_cli("predict", "--model", ensemble.short_id, "--embeddings", str(small_demo.test_embeddings),
                      "--tabular", str(small_demo.test_tabular), "--results-dir", str(results),
                      "--models-dir", str(models), "--out", str(cli_csv))
    assert outcome.code == 0, outcome.err
    pd.testing.assert_frame_equal(app_probabilities, pd.read_csv(cli_csv))
    assert len(app_probabilities) > 0
