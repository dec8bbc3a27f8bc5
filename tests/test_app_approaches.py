"""The app's approach keys driven as a user would: ablation queue, compare, ensemble, filter, export, predict.
Real keys through the Pilot on the small demo set; waits on workers, never on the clock."""

import pytest
from textual.widgets import DataTable

from tests.test_app import NARROW, config, make_app, notices, rows, screen_text, settle, shown, wait_until  # noqa: F401

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def features_column(table: DataTable) -> list[str]:
    return [row[6] for row in rows(table) if "random guess" not in row[0]]


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
        assert sorted(features_column(table)) == ["both", "embeddings", "tabular"]
        assert "3 of 3 ablation runs finished" in notices(app)

        app.screen._set_config(app.screen.config.with_(epochs=200))
        await pilot.press("a")
        epochs = app.screen.query_one("#epochs", DataTable)
        await wait_until(pilot, lambda: epochs.row_count >= 1 or not app.screen.job)
        await pilot.press("c")
        await settle(app, pilot)
        statuses = [row[1] for row in rows(table) if "random guess" not in row[0]]
        assert len(statuses) == 4 and statuses.count("cancelled") == 1  # the queue stopped with its first run
        assert app.screen.job == ""
