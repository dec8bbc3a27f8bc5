"""The app driven as a user would: real keys through Textual's Pilot, the real engine on the small demo set,
assertions on what the widgets show. Runs wait on workers or on what the screen shows, never on the clock."""

import asyncio
import io
import json
import re

import pytest
from rich.console import Console
from textual.widgets import DataTable, Input

from engine.config import RunConfig
from tui.app import MainScreen, VggtabApp
from tui.widgets.dataset import DatasetPanel
from tui.widgets.plot import PlotView

NARROW, WIDE = (80, 24), (120, 40)
CLEAR = ("ctrl+a", "ctrl+k")  # to the start of the field, then delete to its end
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def config(small_demo):
    return RunConfig(embeddings=str(small_demo.embeddings), tabular=str(small_demo.tabular), epochs=2, bs=32,
                     lr=3e-3)


@pytest.fixture
def make_app(tmp_path, config):
    def make(**changes) -> VggtabApp:
        return VggtabApp(config.with_(**changes), results_dir=str(tmp_path / "results"),
                         models_dir=str(tmp_path / "models"))
    return make


def shown(app, selector: str) -> str:
    """The text a Static shows, rendered as the terminal would (tables and all)."""
    console = Console(width=200, file=io.StringIO(), record=True, legacy_windows=False)
    console.print(app.screen.query_one(selector).content)
    return console.export_text()


def screen_text(app) -> str:
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


def notices(app) -> str:
    """Every notification still live (the main screen shows the latest on its status line, not as toasts)."""
    return "\n".join(f"{n.title} {n.message}" for n in app._notifications)


def rows(table: DataTable) -> list[list[str]]:
    return [[str(cell).strip() for cell in table.get_row_at(index)] for index in range(table.row_count)]


async def settle(app, pilot) -> None:
    """Wait for the app's start-up work to begin, for every worker, then for the messages they posted."""
    await wait_until(pilot, lambda: "starting" not in shown(app, "#job-status"))
    await app.workers.wait_for_complete()
    await pilot.pause()


async def wait_until(pilot, condition, limit: float = 120) -> None:
    """Poll the UI until `condition()` holds; `limit` only stops a broken test from hanging."""
    async with asyncio.timeout(limit):
        while not condition():
            await pilot.pause(0.02)


async def test_opens_on_the_data_and_summarises_it_at_80x24(make_app, tmp_path):
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await settle(app, pilot)
        summary = shown(app, "#dataset-body")
        assert "matched" in summary and "only in tabular" in summary
        assert "1 row dropped" in summary and "NaN" in summary  # the notebook's NaN row, named
        assert "single-label keeps" in summary
        assert "8 · clips per class min" in summary and "median" in summary
        assert "emb 128" in summary and "set both" in summary
        assert "train" in summary and "valid" in summary

        screen = screen_text(app)
        assert "1 Dataset" in screen and "4 Results" in screen
        for key in ("d Data", "f Features", "w Dropped", "Panel", "l Find LR", "t Train", "q Quit"):
            assert key in screen, f"footer lacks {key!r} at 80×24"
        assert not app.screen.query_one("#lr").display  # one panel at a time on a narrow terminal
        app.save_screenshot("narrow.svg", path=str(tmp_path))

        await pilot.press("w")
        await pilot.pause()
        dropped = rows(app.screen.query_one("#dropped-table", DataTable))
        assert len(dropped) == 1 and "NaN" in dropped[0][2]
        await pilot.press("escape")

        await pilot.press("f")  # both → embeddings
        await settle(app, pilot)
        assert "set embeddings: 128 model inputs" in shown(app, "#dataset-body")


async def test_wide_terminal_shows_all_four_panels(make_app, tmp_path):
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(app, pilot)
        for name in ("dataset", "lr", "training", "results"):
            panel = app.screen.query_one(f"#{name}")
            assert panel.display and panel.region.width >= 50 and panel.region.height >= 15
        screen = screen_text(app)
        assert "1 Dataset" in screen and "2 LR finder" in screen and "Next run:" in screen
        app.save_screenshot("wide.svg", path=str(tmp_path))


async def test_lr_finder_plots_the_curve_and_a_key_takes_a_suggestion(make_app):
    app = make_app(lr=None)
    async with app.run_test(size=NARROW, notifications=True) as pilot:
        await settle(app, pilot)
        # What l then t do when t comes while the finder runs, in one tick so no race decides it:
        app.screen.action_find_lr()
        app.screen.action_train()
        await pilot.pause()
        assert "one job at a time" in notices(app)
        await settle(app, pilot)
        await pilot.press("1", "l")  # the curve for these settings is shown: l says so instead of redoing it
        await settle(app, pilot)
        assert app.screen.active_panel == "lr" and "would give the same one" in notices(app)

        plot = app.screen.query_one("#lr-plot", PlotView)
        assert plot.has_plot
        curve = shown(app, "#lr-plot")
        assert any("\u2800" < char <= "\u28ff" or char in "▘▝▀▄▖▗▚▞" for char in curve)  # plotted points
        assert "learning rate (log scale)" in curve and "1e-3" in curve
        suggestions = shown(app, "#lr-suggestions")
        for name in ("valley", "slide", "minimum", "steep"):
            assert name in suggestions

        lr_input = app.screen.query_one("#lr-input", Input)
        assert lr_input.value == "auto"
        await pilot.press("g")
        await pilot.pause()
        steep = app.screen.lr_panel.finder.suggestions["steep"]
        assert app.screen.config.lr == steep
        assert lr_input.value == f"{steep:.3g}"
        await pilot.press("v")
        await pilot.pause()
        assert app.screen.config.lr == app.screen.lr_panel.finder.suggestions["valley"]
        assert "Next run:" in shown(app, "#run-status") and "LR" in shown(app, "#run-status")


async def test_typed_lr_is_checked_next_to_the_field(make_app):
    app = make_app(lr=None)
    async with app.run_test(size=NARROW) as pilot:
        await settle(app, pilot)
        await pilot.press("2", "e")
        assert app.focused is app.screen.query_one("#lr-input")

        for typed, why in (("abc", "not a number"), ("0", "not usable"), ("20", "not usable")):
            await pilot.press(*CLEAR, *typed, "enter")
            message = shown(app, "#lr-message")
            assert "Not used" in message and why in message
            assert app.screen.config.lr is None  # refused

        await pilot.press(*CLEAR, *"0.05", "enter")
        await pilot.pause()
        assert app.screen.config.lr == 0.05
        assert "above 1e-2" in shown(app, "#lr-message")  # accepted, with a warning

        await pilot.press("e", *CLEAR, *"3e-3", "enter")
        await pilot.pause()
        assert app.screen.config.lr == 0.003
        assert "⚠" not in shown(app, "#lr-message")

        await pilot.press("e", *CLEAR, *"xyz", "escape")  # Esc reverts the field
        assert app.screen.query_one("#lr-input", Input).value == "0.003"


async def test_training_fills_the_epoch_table_and_the_results(make_app, tmp_path):
    app = make_app(epochs=3)
    async with app.run_test(size=NARROW, notifications=True) as pilot:
        await settle(app, pilot)
        # What f then t do when t comes while the data is being prepared, in one tick so no race decides it:
        app.screen.on_dataset_panel_feature_set_chosen(DatasetPanel.FeatureSetChosen("embeddings"))
        app.screen.action_train()
        await pilot.pause()
        assert "starts as soon as the data is ready" in notices(app)
        await settle(app, pilot)

        epochs = rows(app.screen.query_one("#epochs", DataTable))
        assert [row[0] for row in epochs] == ["1/3", "2/3", "3/3"]
        assert all(row[3].endswith("%") for row in epochs)
        assert app.screen.query_one("#run-plot", PlotView).has_plot
        outcome = shown(app, "#run-outcome")
        for part in ("Accuracy", "95 % CI", "random", "majority", "train−valid gap"):
            assert part in outcome

        results = app.screen.query_one("#results-table", DataTable)
        table = rows(results)
        assert len(table) == 2 and table[0][0].startswith("★ ") and "random guess" in table[1][0]
        history = (tmp_path / "results" / "history.jsonl").read_text().splitlines()
        assert json.loads(history[-1])["status"] == "finished"

        await pilot.press("4")
        details = shown(app, "#run-details")
        assert (details.index("Differences from the default") < details.index("Full config") < details.index("Per epoch")
                < details.index("Valid accuracy per class"))
        # one difference per line: setting, value, default
        assert re.search(r"features +embeddings +default both", details) and re.search(r"epochs +3 +default 20", details)
        await pilot.press("o", "o")  # from Date (history order) past Approach to Valid acc, best first
        assert "▼" in str(results.columns[results.ordered_columns[1].key].label)
        await pilot.press("O")
        assert "▲" in str(results.columns[results.ordered_columns[1].key].label)

        await pilot.press("up", "r")  # re-run the selected row's exact config
        await settle(app, pilot)
        assert len(rows(results)) == 3


async def test_cancel_stops_a_run_midway_and_records_it(make_app, tmp_path):
    app = make_app(epochs=200)
    async with app.run_test(size=NARROW) as pilot:
        await settle(app, pilot)
        await pilot.press("t")
        epochs = app.screen.query_one("#epochs", DataTable)
        await wait_until(pilot, lambda: epochs.row_count >= 1 or not app.screen.job)
        await pilot.press("c")
        await settle(app, pilot)

        assert 1 <= epochs.row_count < 200
        assert "cancelled" in shown(app, "#run-outcome")
        assert shown(app, "#run-progress-label").strip() == f"cancelled at epoch {epochs.row_count}"
        assert not app.screen.query_one("#run-progress ETAStatus").display  # no frozen countdown
        assert rows(app.screen.query_one("#results-table", DataTable))[0][1] == "cancelled"
        assert app.screen.job == ""
        await pilot.press("t")  # the app is ready for the next run
        assert app.screen.job == "training"
        await pilot.press("c")
        await settle(app, pilot)


async def test_quitting_during_a_run_cancels_it_first(make_app, tmp_path):
    app = make_app(epochs=200)
    async with app.run_test(size=NARROW) as pilot:
        await settle(app, pilot)
        await pilot.press("t")
        epochs = app.screen.query_one("#epochs", DataTable)
        await wait_until(pilot, lambda: epochs.row_count >= 1 or not app.screen.job)
        assert app.screen.job == "training"
        await pilot.press("q")
        await pilot.pause()
    statuses = [json.loads(line)["status"] for line in (tmp_path / "results" / "history.jsonl").open()]
    assert statuses == ["cancelled"]


async def test_a_broken_file_shows_a_readable_message(make_app, tmp_path, small_demo, monkeypatch):
    monkeypatch.chdir(tmp_path)  # short relative paths to type, as a user in their data folder would
    (tmp_path / "broken.csv").write_text("fname,labels\nclip.wav,Bark\n")  # no feature columns at all
    (tmp_path / "good.csv").symlink_to(small_demo.embeddings)
    app = make_app()
    async with app.run_test(size=NARROW, notifications=True) as pilot:
        await settle(app, pilot)
        await pilot.press("d")
        field = app.screen.query_one("#field-embeddings", Input)
        assert app.focused is field

        await pilot.press(*CLEAR, *"nope.csv", "enter")
        assert "No file at 'nope.csv'" in shown(app, "#error-embeddings")  # the form refuses it

        await pilot.press(*CLEAR, *"broken.csv", "enter")
        await settle(app, pilot)
        message = shown(app, "#dataset-body")
        assert "Could not prepare the dataset" in message and "broken.csv" in message
        assert "failed" in notices(app)
        assert app.screen.config.embeddings == "broken.csv"

        await pilot.press("d", *CLEAR, *"good.csv", "enter")  # and the app carries on
        await settle(app, pilot)
        assert "matched" in shown(app, "#dataset-body")


async def test_settings_form_has_every_run_setting_and_checks_each_field(make_app):
    from engine.config import SETTINGS
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await settle(app, pilot)
        await pilot.press("3", "p")
        await pilot.pause()
        for setting in SETTINGS:  # every setting the CLI has an option for, but the two files (d loads them)
            assert bool(app.screen.query(f"#field-{setting.name}")) == setting.editable, setting.name
        assert "logreg" in shown(app, "#help-model")  # the allowed values, from the schema

        async def type_into(name: str, text: str) -> None:
            app.screen.query_one(f"#field-{name}", Input).focus()
            await pilot.press(*CLEAR, *text)

        await type_into("layers", "200,x")
        await type_into("epochs", "0")
        await type_into("model", "svm")
        await pilot.press("enter")
        assert "not a positive whole number" in shown(app, "#error-layers")
        assert "epochs" in shown(app, "#error-epochs") and "linear_svm" in shown(app, "#error-model")
        assert app.focused is app.screen.query_one("#field-model")  # the first field in error, in form order

        await type_into("layers", "64,32")
        await type_into("epochs", "5")
        await type_into("model", "mlp")
        await type_into("select_k", "20")  # a feature setting: the data is prepared again for it
        await type_into("label_mode", "multi")
        await pilot.press("enter")
        config = app.screen.config
        assert (config.layers, config.epochs, config.select_k, config.label_mode) == ((64, 32), 5, 20, "multi")
        assert "layers 64-32" in shown(app, "#run-status") and "5 epochs" in shown(app, "#run-status")
        await settle(app, pilot)
        summary = shown(app, "#dataset-body")
        assert "multi-label keeps" in summary and "148 model inputs" in summary  # 128 embeddings + top 20


async def test_command_palette_reaches_panel_keys(make_app):
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+p", *"sort by", "enter")
        await pilot.pause()
        assert app.screen.active_panel == "results"
        await pilot.press("?")
        await pilot.pause()
        help_text = shown(app, "#help-keys")
        assert "Take the valley LR" in help_text and "Results panel" in help_text
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
