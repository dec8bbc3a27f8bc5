"""SVG snapshots that pin the app's layout at 80×24, 120×40 and 160×50: each panel, the zoomed results view and
the training view after a run. The history is a committed fixture and the training view is fed fixed events,
so nothing in a snapshot depends on the clock. `pytest --snapshot-update` rewrites them after a deliberate change.
"""

import shutil
from pathlib import Path

import pytest

from engine.config import RunConfig, SweepConfig
from engine.evaluate import Evaluation
from engine.events import EpochEnded, LRFinderReady, RunRecord, TrialEnded, TrialStarted
from engine.sweep import Score, SweepReport, TrialRow
from tests.test_app import wait_until
from tui.app import VggtabApp
from tui.widgets.dataset import DatasetPanel
from tui.widgets.sweep import SweepScreen

FIXTURE_HISTORY = Path(__file__).parent / "fixtures" / "snapshot_history.jsonl"
SIZES = {"80x24": (80, 24), "120x40": (120, 40), "160x50": (160, 50)}
PANEL_KEYS = {"dataset": "1", "lr": "2", "training": "3", "results": "4"}


@pytest.fixture
def snapshot_app(tmp_path, monkeypatch, small_demo):
    """The app on the small demo set and the fixture history, from a folder where every path shown is short."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "embeddings.csv").symlink_to(small_demo.embeddings)
    (tmp_path / "tabular.csv").symlink_to(small_demo.tabular)
    (tmp_path / "results").mkdir()
    shutil.copy(FIXTURE_HISTORY, tmp_path / "results" / "history.jsonl")
    return VggtabApp(RunConfig(embeddings="embeddings.csv", tabular="tabular.csv", lr=3e-3),
                     results_dir="results", models_dir="models")


async def ready(pilot) -> None:
    """The data summarised, the history listed, every worker done (the warm-up too: it writes nothing)."""
    app = pilot.app
    await wait_until(pilot, lambda: app.screen.query(DatasetPanel))  # the auto-pilot starts before the first mount
    await wait_until(pilot, lambda: app.screen.dataset_panel.summary is not None and not app.screen.job)
    await app.workers.wait_for_complete()
    await pilot.pause()


def finished_run(app) -> None:
    """A five-epoch run shown as the training panel shows one that just finished."""
    panel = app.screen.training_panel
    config = app.screen.config.with_(epochs=5)
    panel.start(config)
    for epoch in range(1, 6):
        panel.add_epoch(EpochEnded(epoch=epoch, n_epochs=5, train_loss=2.0 / epoch, valid_loss=1.2 + 0.6 / epoch,
                                   accuracy=0.5 + 0.04 * epoch, error_rate=0.5 - 0.04 * epoch, seconds=1.5))
    record = RunRecord(run_id="20261202_160000_abcdef", created="2026-12-02T16:00:00", status="finished",
                       approach=config.approach, config=config.to_dict(), train_seconds=7.5,
                       model_path="models/both_200-100_20261202_160000.pkl",
                       results_csv="results/both_200-100_results_20261202_160000.csv")
    evaluation = Evaluation(accuracy=0.7, error_rate=0.3, ci_low=0.62, ci_high=0.77, n_valid=104,
                            random_baseline=0.125, majority_baseline=0.15, improvement_over_random=5.6,
                            train_accuracy=0.95, lwlrap=0.8, per_class_accuracy={}, diagnosis=[],
                            confused_pairs=[("Bark", "Meow", 4)],
                            misclassified=[("clip_0001.wav", "Bark", "Meow", 0.81)])
    panel.finish(record, evaluation)


# Seven trials of a fixed sweep: (number, state, valid accuracy, changes from the base, message, same as).
SWEEP_TRIALS = (
    (0, "complete", 0.712, {"pca": 32, "ps": 0.3, "wd": 0.0031, "lr": None}, "", None),
    (1, "complete", 0.745, {"features": "embeddings", "model": "logreg"}, "", None),
    (2, "pruned", None, {"layers": [512, 256, 128, 64], "ps": 0.55, "wd": 0.12, "bs": 32, "epochs": 10, "lr": None},
     "Pruned by sweep demo-sweep (valid loss 2.1 worse than the median of earlier trials at epoch 2)", None),
    (3, "complete", 0.781, {"select_k": 6, "layers": [400, 200, 100], "ps": 0.15, "epochs": 10, "lr": 0.0021}, "",
     None),
    (4, "failed", None, {"features": "tabular", "model": "linear_svm"}, "The SVM did not converge.", None),
    (5, "complete", 0.781, {"select_k": 6, "layers": [400, 200, 100], "ps": 0.15, "epochs": 10, "lr": 0.0021},
     "same settings as trial 3: its score is reused, no new run", 3),
    (6, "complete", 0.758, {"features": "embeddings", "layers": [400, 200, 100], "ps": 0.4, "epochs": 5}, "", None),
)


def score(accuracy: float, low: float, high: float, n: int, run: str, approach: str) -> Score:
    return Score(accuracy=accuracy, low=low, high=high, n=n, run_id=f"20261202_17{run}", approach=approach)


SWEEP_REPORT = SweepReport(
    study="demo-sweep", storage="results/sweeps/demo-sweep.journal", test_pct=0.2,
    trials=tuple(TrialRow(number=n, state=state, accuracy=accuracy, approach="", params={}, run_ids=())
                 for n, state, accuracy, *_ in SWEEP_TRIALS),
    best_trial=3, best_params={},
    best_valid=score(0.781, 0.738, 0.819, 400, "0300_aaaaaa", "both_top6_400-200-100_ps0.15"),
    best_test=score(0.752, 0.712, 0.788, 500, "1000_bbbbbb", "demo-sweep best (trial 3)"),
    default_test=score(0.736, 0.695, 0.773, 500, "1100_cccccc", "demo-sweep default config"),
    ensemble_test=score(0.764, 0.725, 0.799, 500, "1200_dddddd", "demo-sweep top-3 ensemble (test)"),
    ensemble_members=(3, 6, 1),
    winner_vs_default="demo-sweep best (trial 3) and demo-sweep default config tie: each is right on 31 and 23 clips "
                      "the other misses (McNemar mid-p = 0.32) — within noise at the 5 % level",
    winner_vs_default_p=0.32, importances={"model": 0.46, "features": 0.31, "reduce": 0.15, "lr_source": 0.08},
    mlp_importances={"ps": 0.52, "layers": 0.3, "wd": 0.18}, best_valid_mean=0.781,
    summary_path="results/sweeps/demo-sweep.json")


def finished_sweep(app) -> None:
    """The sweep view as it shows a sweep that just ended, fed the events and the report of a fixed one."""
    screen = SweepScreen(app.screen.config, SweepConfig(trials=7, study="demo-sweep"))
    app.screen._show_sweep(screen)
    for number, state, accuracy, changes, message, same_as in SWEEP_TRIALS:
        if same_as is None:
            screen.trial_started(TrialStarted(sweep="demo-sweep", number=number, approach="", params={},
                                              changes=changes))
        screen.trial_ended(TrialEnded(sweep="demo-sweep", number=number, state=state, accuracy=accuracy,
                                      approach="", params={}, run_ids=(), message=message, same_as=same_as,
                                      changes=changes))
    screen.finish(SWEEP_REPORT)


# A fixed LR finder curve: a dip around 1e-3, then the loss explodes.
CURVE = LRFinderReady(lrs=tuple(10 ** (-6 + i * 0.1) for i in range(50)),
                      losses=tuple(2.2 - 0.2 * min(i, 30) / 10 + (0.05 * (i - 38) ** 2 if i > 38 else 0)
                                   for i in range(50)),
                      suggestions={"valley": 1.2e-3, "slide": 2.5e-3, "minimum": 4.0e-3, "steep": 6.3e-4})


def pressing(*keys: str, then=None):
    """A run_before for snap_compare: the app ready, the fixed LR curve shown, `keys` pressed, then `then(app)`."""
    async def run_before(pilot) -> None:
        await ready(pilot)
        pilot.app.screen.lr_panel.show_curve(CURVE)
        await pilot.press(*keys)
        if then is not None:
            then(pilot.app)
        await pilot.pause()
        await pilot.pause()  # the training body scrolls to the last epochs after the table's refresh
    return run_before


@pytest.mark.parametrize("panel", PANEL_KEYS)
def test_each_panel_at_80x24(snap_compare, snapshot_app, panel):
    assert snap_compare(snapshot_app, terminal_size=SIZES["80x24"], run_before=pressing(PANEL_KEYS[panel]))


@pytest.mark.parametrize("size", ["120x40", "160x50"])
def test_all_four_panels_on_a_wide_terminal(snap_compare, snapshot_app, size):
    # The results panel active, as after a run.
    assert snap_compare(snapshot_app, terminal_size=SIZES[size], run_before=pressing("4"))


@pytest.mark.parametrize("size", SIZES)
def test_zoomed_results(snap_compare, snapshot_app, size):
    assert snap_compare(snapshot_app, terminal_size=SIZES[size], run_before=pressing("4", "z"))


@pytest.mark.parametrize("size", SIZES)
def test_training_view_after_a_run(snap_compare, snapshot_app, size):
    assert snap_compare(snapshot_app, terminal_size=SIZES[size], run_before=pressing("3", then=finished_run))


def test_finished_sweep_view(snap_compare, snapshot_app):
    assert snap_compare(snapshot_app, terminal_size=SIZES["120x40"], run_before=pressing("3", then=finished_sweep))
