"""The keys of the app, pressed as a user would at 80×24 on the committed history fixture (no training):
? and q always in the footer, z zoom, j/k/g/G, space and p, the filter's Esc, the status line, keys that say
why they do nothing."""

import shutil

import pytest
from textual.widgets import Input

from tests.test_app import NARROW, config, notices, rows, screen_text, settle, shown  # noqa: F401
from tests.test_app_snapshots import FIXTURE_HISTORY

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def app(tmp_path, config):
    from tui.app import VggtabApp
    (tmp_path / "results").mkdir()
    shutil.copy(FIXTURE_HISTORY, tmp_path / "results" / "history.jsonl")
    return VggtabApp(config, results_dir=str(tmp_path / "results"), models_dir=str(tmp_path / "models"))


def approaches(app) -> list[str]:
    return [row[0] for row in rows(app.screen.query_one("#results-table"))]


async def test_help_and_quit_stay_in_the_footer_of_every_panel_at_80_columns(app):
    async with app.run_test(size=NARROW) as pilot:
        await settle(app, pilot)
        for key in "1234":
            await pilot.press(key)
            await pilot.pause()
            footer = screen_text(app).splitlines()[-1]
            assert footer.rstrip().endswith("? Help q Quit"), f"panel {key}: {footer!r}"


async def test_z_zooms_the_results_to_the_whole_screen_and_back(app):
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        panel = app.screen.results_panel
        assert "Date" in panel.hidden_columns()  # the grid's quarter is too narrow for it
        await pilot.press("z")
        await pilot.pause()
        assert app.screen.maximized is panel and panel.region.width >= 116
        assert panel.hidden_columns() == [] and "12-02 15:09" in screen_text(app)
        await pilot.press("z")
        await pilot.pause()
        assert app.screen.maximized is None and "Date" in panel.hidden_columns()


async def test_tables_take_j_k_g_and_G(app):
    async with app.run_test(size=NARROW) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        table = app.screen.query_one("#results-table")
        await pilot.press("g", "j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("G")
        assert table.cursor_row == table.row_count - 1
        await pilot.press("1", "w")  # the dropped-rows dialog's table too
        await pilot.pause()
        dropped = app.screen.query_one("#dropped-table")
        await pilot.press("G")
        assert dropped.cursor_row == dropped.row_count - 1


async def test_space_marks_and_p_pins_a_run_on_top(app):
    async with app.run_test(size=NARROW) as pilot:
        await settle(app, pilot)
        await pilot.press("4", "G", "k")  # the last run (cancelled), above the random-guess row
        panel = app.screen.results_panel
        last = panel.selected_record()
        await pilot.press("space")
        assert approaches(app)[-2].startswith("✓ ") and panel.marked_records() == [last]
        await pilot.press("p")
        assert approaches(app)[0].startswith("⚑ ✓ ") and panel.visible_records()[0] is last
        assert panel.selected_record() is last  # the cursor followed the row
        await pilot.press("p")
        assert not approaches(app)[0].startswith("⚑") and panel.visible_records()[-1] is last


async def test_esc_leaves_the_filter_then_clears_it(app):
    async with app.run_test(size=NARROW) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        everything = len(approaches(app))
        await pilot.press("slash", *"logreg")
        assert len(approaches(app)) == 2  # the logreg run and the random-guess row
        await pilot.press("escape")
        assert app.focused is app.screen.query_one("#results-table")  # a typed q now quits, not filters
        filter_row = app.screen.query_one("#filter-row")
        assert filter_row.display and "Filter" in screen_text(app) and "Esc clears" in screen_text(app)
        assert app.screen.query_one("#results-filter", Input).value == "logreg"
        await pilot.press("escape")
        await pilot.pause()
        assert len(approaches(app)) == everything and not filter_row.display


async def test_notifications_go_to_the_status_line_and_idle_keys_say_why(app):
    async with app.run_test(size=NARROW, notifications=True) as pilot:
        await settle(app, pilot)
        await pilot.press("c")
        await pilot.pause()
        assert "Nothing to cancel: no run is going" in shown(app, "#status-line")
        assert "Nothing to cancel" in notices(app)
        toasts = app.screen.query("Toast")
        assert all(not toast.visible for toast in toasts)  # no toast over the panels
        await pilot.press("4", "escape")
        await pilot.pause()
        assert "No filter to clear" in shown(app, "#status-line")
