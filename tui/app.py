"""The vggtab app: the main screen with its four panels, the engine workers behind it, and `launch_app`.

Nothing heavy is imported here: pandas, fastai and torch arrive with engine.pipeline inside a worker thread,
so the first screen paints at once.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Callable, NamedTuple

from rich.text import Text
from textual import work
from textual.actions import parse as parse_action
from textual.app import App
from textual.binding import Binding
from textual.containers import Container, Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerFailed, WorkerState

from engine.config import FEATURE_SETS, RunConfig
from engine.errors import Cancelled, ConfigError, VggtabError
from engine.events import (BatchEnded, DatasetSummarised, EpochEnded, LRFinderReady, RunCancelled, RunFailed,
                           RunFinished, StageDone)
from tui.commands import ScreenCommands
from tui.format import lr_text, percent, sentence
from tui.messages import EngineReported, EngineReporter, JobFailed, LearningRateChosen
from tui.screens import CompareScreen, DataForm, DroppedRowsScreen, HelpScreen, ParamsForm, PredictForm
from tui.widgets.dataset import DatasetPanel
from tui.widgets.lr_finder import LRFinderPanel
from tui.widgets.results import ResultsPanel
from tui.widgets.training import TrainingPanel

PANELS = {"dataset": "Dataset", "lr": "LR finder", "training": "Training", "results": "Results"}
FOCUS_TARGETS = {"dataset": "#dataset", "lr": "#lr", "training": "#training", "results": "#results-table"}
PREPARE, FIND_LR, TRAIN, ABLATION = "preparing the data", "the LR finder", "training", "the ablation"
RUNS = (TRAIN, ABLATION)  # jobs that train, so c cancels them and quitting waits for them
ENGINE_GROUP = "engine"
RESULTS_GROUP = "results"  # compare, ensemble, export, predict: read saved runs, never train

PANEL_KEYS = Binding.Group("Panel", compact=True)


class Job(NamedTuple):
    name: str
    step: Callable[[object], object]  # runs on the engine session in a worker thread
    on_start: Callable[[], None]  # shows the job starting, on the UI thread


def model_settings(config: RunConfig) -> RunConfig:
    """What the LR curve depends on: everything but the run length, the LR itself and the name."""
    return config.with_(epochs=1, lr=None, lr_suggestion="valley", name="")


class MainScreen(Screen):
    BINDINGS = [
        *(Binding(str(number), f"show_panel('{name}')", f"Show the {title} panel", group=PANEL_KEYS)
          for number, (name, title) in enumerate(PANELS.items(), start=1)),
        Binding("l", "find_lr", "Find LR", tooltip="Run the LR finder on the current data and model"),
        Binding("t", "train", "Train", tooltip="Train with the settings shown in the Training panel"),
        Binding("c", "cancel_run", "Cancel run", tooltip="Stop the run after the current batch"),
        Binding("question_mark", "help", "Help", tooltip="The workflow and every key"),
        Binding("q", "app.quit", "Quit", tooltip="Quit (a running run is cancelled first)"),
    ]

    active_panel = reactive("dataset", init=False)
    job = reactive("", init=False)  # the engine job running now; one at a time

    def __init__(self, config: RunConfig, *, results_dir: str, models_dir: str) -> None:
        super().__init__()
        self.config = config
        self.results_dir, self.models_dir = results_dir, models_dir
        self._session = None  # engine.pipeline.Session, made in the first worker
        self._cancel = threading.Event()
        self._queued: Job | None = None  # waits for the data preparation that is running
        self._ablation: list[RunConfig] = []  # the ablation's configs not yet started

    # -- layout ------------------------------------------------------------------------------------------
    def compose(self):
        with Horizontal(id="top-bar"):
            yield Static(id="panel-tabs")
            yield Static("starting …", id="job-status")
        with Container(id="panels"):
            yield DatasetPanel(id="dataset", classes="panel")
            yield LRFinderPanel(id="lr", classes="panel")
            yield TrainingPanel(id="training", classes="panel")
            yield ResultsPanel(id="results", classes="panel")
        yield Footer(compact=True, show_command_palette=False)

    @property
    def dataset_panel(self) -> DatasetPanel:
        return self.query_one(DatasetPanel)

    @property
    def lr_panel(self) -> LRFinderPanel:
        return self.query_one(LRFinderPanel)

    @property
    def training_panel(self) -> TrainingPanel:
        return self.query_one(TrainingPanel)

    @property
    def results_panel(self) -> ResultsPanel:
        return self.query_one(ResultsPanel)

    def on_mount(self) -> None:
        for number, (name, title) in enumerate(PANELS.items(), start=1):
            self.query_one(f"#{name}").border_title = f"{number} {title}"
        self._show_config()
        self.watch_active_panel(self.active_panel)  # the first value fires no watcher
        self.action_show_panel("dataset")
        self.call_after_refresh(self._start_background_work)

    def _start_background_work(self) -> None:
        """After the first paint: the imports in these threads would otherwise hold the GIL against it."""
        self.warm_up()
        self.load_history()
        self._prepare()

    def watch_active_panel(self, active: str) -> None:
        for name in PANELS:
            self.query_one(f"#{name}").set_class(name == active, "-active")
        tabs = Text()
        for number, (name, title) in enumerate(PANELS.items(), start=1):
            tabs.append(f" {number} {title} ", style="bold reverse" if name == active else "")
        self.query_one("#panel-tabs", Static).update(tabs)

    def watch_job(self, job: str) -> None:
        status = Text(f"● {job} …", style="bold yellow") if job else Text.assemble(
            ("ready", "green"), " · ctrl+p commands")
        self.query_one("#job-status", Static).update(status)
        self.refresh_bindings()

    def on_descendant_focus(self, event) -> None:
        for node in event.widget.ancestors_with_self:
            if node.id in PANELS:
                self.active_panel = node.id
                return

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide keys that cannot act now: the footer shows what works."""
        if action == "cancel_run":
            return self.job in RUNS
        if action == "take_suggestion":
            return self.lr_panel.finder is not None
        return True

    def commands(self) -> list[tuple[str, Binding, Callable[[], None]]]:
        """Every described key (the screen's and each panel's) with where it lives and a callable that runs
        it whatever is focused: for the command palette and the help screen."""
        found = []
        for node in (self, *self.query(".panel")):
            place = "Everywhere" if node is self else f"{PANELS[node.id]} panel"
            for binding in node.BINDINGS:
                if isinstance(binding, Binding) and binding.description:
                    found.append((place, binding, partial(self._run_command, node, binding.action)))
        return found

    def _run_command(self, node, action: str) -> None:
        if node is not self:
            self.action_show_panel(node.id)  # the panel is shown and focused before its action runs
        namespace, name, parameters = parse_action(action)
        target = {"app": self.app, "screen": self}.get(namespace, node)
        self.call_after_refresh(getattr(target, f"action_{name}"), *parameters)

    # -- engine jobs -------------------------------------------------------------------------------------
    def _refuse_if_busy(self) -> bool:
        """The LR finder and training cannot be interrupted by another job; data preparation can be queued
        behind (see `_start`)."""
        if self.job not in (FIND_LR, *RUNS):
            return False
        hint = " Press c to cancel it." if self.job in RUNS else ""
        self.notify(f"Still busy with {self.job}: one job at a time.{hint}", title="Refused", severity="warning")
        return True

    def _engine(self):
        """The engine session, created in the first job's thread (importing it takes seconds)."""
        if self._session is None:
            from engine.pipeline import Session
            self._session = Session(EngineReporter(self), models_dir=self.models_dir, results_dir=self.results_dir)
        return self._session

    @work(thread=True, exclusive=True, group=ENGINE_GROUP, exit_on_error=False)
    def _run_job(self, job: str, step: Callable[[object], object]) -> None:
        try:
            step(self._engine())
        except Cancelled:
            pass  # the engine has reported RunCancelled
        except VggtabError as error:
            self.post_message(JobFailed(job, str(error)))

    def _start(self, job: str, step: Callable[[object], object], on_start: Callable[[], None]) -> None:
        """Run `job` now; while the data is being prepared, run it right after (the latest request wins)."""
        if self._refuse_if_busy():
            return
        if self.job == PREPARE:
            self._queued = Job(job, step, on_start)
            self.notify(f"{sentence(job)} starts as soon as the data is ready.")
            return
        self.job = job
        on_start()
        self._run_job(job, step)

    def _start_queued(self) -> None:
        queued, self._queued = self._queued, None
        if queued is not None:
            self._start(*queued)

    def _prepare(self) -> None:
        config = self.config
        self._start(PREPARE, lambda session: session.prepare(config),
                    lambda: self.dataset_panel.show_preparing(config))

    @work(thread=True, group="warm-up", exit_on_error=False)
    def warm_up(self) -> None:
        import plotext  # noqa: F401  (its import stalls ~0.4 s: here, not on the first chart in the UI thread)
        from engine.pipeline import warm_up
        warm_up()

    @work(thread=True, group="history", exit_on_error=False)
    def load_history(self):
        from engine.store.history import load_history
        return load_history(self.results_dir)

    @work(thread=True, group=RESULTS_GROUP, exit_on_error=False)
    def _results_job(self, title: str, step: Callable[[], object], done: Callable[[object], None]) -> None:
        """`step` in a thread (engine imports and file reads stay off the UI thread); `done(result)` on the UI
        thread; an engine error becomes a notification titled `title`."""
        try:
            result = step()
        except VggtabError as error:
            self.app.call_from_thread(self.notify, str(error), title=title, severity="error", timeout=15)
            return
        self.app.call_from_thread(done, result)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state == WorkerState.SUCCESS and worker.group == "history":
            self.results_panel.show_history(worker.result.records)
            for warning in worker.result.warnings:
                self.notify(warning, title="Run history", severity="warning", timeout=10)
        if event.state == WorkerState.ERROR:
            error = worker.error
            self._show_failure(self.job if worker.group == ENGINE_GROUP else worker.group,
                               f"Unexpected {type(error).__name__}: {error}")
        if worker.group == ENGINE_GROUP and event.state in (WorkerState.SUCCESS, WorkerState.ERROR,
                                                             WorkerState.CANCELLED):
            self.job = ""
            self._show_config()
            self._start_queued()

    def on_job_failed(self, message: JobFailed) -> None:
        self._show_failure(message.job, message.message)

    def _show_failure(self, job: str, message: str) -> None:
        if job == PREPARE:
            self.dataset_panel.show_error(message)
            if self._queued is not None and self._queued.name != PREPARE:
                self.notify(f"{sentence(self._queued.name)} was not started.", severity="warning")
                self._queued = None
        elif job == FIND_LR:
            self.lr_panel.show_error(message)
        elif job in RUNS:
            self.training_panel.fail(message)
        self.notify(message, title=f"{sentence(job)} failed", severity="error", timeout=15)

    def on_engine_reported(self, message: EngineReported) -> None:
        event = message.event
        match event:
            case StageDone() if self.job == PREPARE:
                self.dataset_panel.add_stage(event)
            case StageDone(stage="queue") if self.job == ABLATION and self._ablation:
                self.training_panel.start(self._ablation.pop(0))
                self.notify(sentence(event.detail), title="Ablation")
            case DatasetSummarised():
                self.dataset_panel.show_summary(event.summary)
                self.results_panel.set_classes(event.summary.n_classes)
            case LRFinderReady():
                self.lr_panel.show_curve(event)
                self.refresh_bindings()
            case BatchEnded():
                self.training_panel.show_batch(event)
            case EpochEnded():
                self.training_panel.add_epoch(event)
            case RunFinished():
                self.training_panel.finish(event.record, event.evaluation)
                self.results_panel.add_record(event.record)
                evaluation = event.evaluation
                self.notify(f"Valid accuracy {percent(evaluation.accuracy)} (random "
                            f"{percent(evaluation.random_baseline)}). Press 4 for the results.", title="Run finished")
            case RunFailed() if event.record is not None:
                self.results_panel.add_record(event.record)
                if self.job == ABLATION:  # the queue goes on: say so, the next run takes the panel
                    self.notify(event.message, title=f"{event.record.approach} failed", severity="error", timeout=15)
            case RunCancelled():
                self.training_panel.cancel(event.epochs_done)
                if event.record is not None:
                    self.results_panel.add_record(event.record)
                self.notify(f"Cancelled after {event.epochs_done} epochs.", title="Run cancelled")

    async def stop_jobs(self) -> None:
        """Before quitting: drop a queued job; cancel a run and wait until it is recorded as cancelled.
        Data preparation and the LR finder write nothing worth waiting for."""
        self._queued = None
        running = [w for w in self.app.workers if w.group == ENGINE_GROUP and not w.is_finished]
        if self.job not in RUNS or not running:
            return
        self._cancel.set()
        self.notify("Cancelling the run before quitting …")
        with suppress(WorkerFailed):
            await self.app.workers.wait_for_complete(running)

    # -- configuration -----------------------------------------------------------------------------------
    def _set_config(self, config: RunConfig) -> None:
        if model_settings(config) != model_settings(self.config):
            self.lr_panel.forget_curve()
            self.refresh_bindings()
        self.config = config
        self._show_config()

    def _show_config(self) -> None:
        self.lr_panel.show_lr(self.config.lr, self.config.lr_suggestion)
        self.training_panel.show_next_run(self.config)

    def on_learning_rate_chosen(self, message: LearningRateChosen) -> None:
        self._set_config(self.config.with_(lr=message.lr))

    # -- actions -----------------------------------------------------------------------------------------
    def action_show_panel(self, name: str) -> None:
        self.active_panel = name
        # Focus now, not after the repaint: keys typed ahead ("3p") must reach the panel they follow.
        self.set_focus(self.query_one(FOCUS_TARGETS[name]))

    def action_find_lr(self) -> None:
        def started() -> None:
            self.lr_panel.show_running()
            self.action_show_panel("lr")
        config = self.config
        self._start(FIND_LR, lambda session: session.find_lr(config), started)

    def action_train(self) -> None:
        def started() -> None:
            self._cancel = cancel
            self.training_panel.start(config)
            self.action_show_panel("training")
        config, cancel = self.config, threading.Event()
        self._start(TRAIN, lambda session: session.train(config, cancel), started)

    def action_ablation(self) -> None:
        """embeddings-only, tabular-only and both on the current config's split and seed, queued in one job."""
        def started() -> None:
            self._cancel = cancel
            self._ablation = []
            self.action_show_panel("training")

        def step(session) -> None:
            from engine.approaches import ablation_configs, run_queue  # in the worker: it imports numpy
            configs = ablation_configs(config)
            self._ablation = list(configs)  # read by the UI thread on each run's queue event, posted after this
            finished = run_queue(session, configs, cancel)
            self.app.call_from_thread(self.notify, f"{len(finished)} of {len(configs)} ablation runs finished. "
                                      "Press 4 for the results.", title="Ablation")
        config, cancel = self.config, threading.Event()
        self._start(ABLATION, step, started)

    def action_cancel_run(self) -> None:
        if self.job not in RUNS:
            self.notify("No run to cancel.")
            return
        self._cancel.set()
        self.notify("Cancelling after the current batch …")

    def action_take_suggestion(self, name: str) -> None:
        finder = self.lr_panel.finder
        if finder is None or name not in finder.suggestions:
            self.notify("Run the LR finder first (l)." if finder is None
                        else f"The LR finder gave no usable {name} suggestion.", severity="warning")
            return
        self._set_config(self.config.with_(lr=finder.suggestions[name], lr_suggestion=name))
        self.notify(f"The next run uses the {name} LR {lr_text(self.config.lr)}.")

    def action_cycle_features(self) -> None:
        if self._refuse_if_busy():
            return
        names = list(FEATURE_SETS)
        current = names.index(self.config.features) if self.config.features in names else -1
        self._set_config(self.config.with_(features=names[(current + 1) % len(names)]))
        self.notify(f"Feature set: {self.config.features}.")
        self._prepare()

    def action_edit_params(self) -> None:
        def apply(config: RunConfig | None) -> None:
            if config is not None and config != self.config:
                self._set_config(config)
                self.notify("Hyperparameters set for the next run.")
        self.app.push_screen(ParamsForm(self.config), apply)

    def action_open_data(self) -> None:
        def load(paths: tuple[str, str] | None) -> None:
            if paths is None or self._refuse_if_busy():
                return
            self._set_config(self.config.with_(embeddings=paths[0], tabular=paths[1]))
            self.action_show_panel("dataset")
            self._prepare()
        if not self._refuse_if_busy():
            self.app.push_screen(DataForm(self.config.embeddings, self.config.tabular), load)

    def action_show_dropped(self) -> None:
        summary = self.dataset_panel.summary
        if summary is None or not (summary.dropped or summary.imputed):
            self.notify("No rows were dropped." if summary else "No dataset summary yet.")
            return
        self.app.push_screen(DroppedRowsScreen(summary))

    def action_rerun(self) -> None:
        record = self.results_panel.selected_record()
        if record is None:
            self.notify("Select a run in the results table first.", severity="warning")
            return
        if self._refuse_if_busy():
            return
        try:
            config = RunConfig.from_dict(record.config)
        except VggtabError as error:
            self.notify(str(error), title="Cannot re-run this row", severity="error")
            return
        self._set_config(config)
        self.notify(f"Re-running {record.approach} with its recorded config.")
        self.action_train()

    def action_compare(self) -> None:
        marked = self.results_panel.marked_records()
        if len(marked) != 2:
            self.notify(f"Mark exactly two runs with space to compare them ({len(marked)} marked).",
                        severity="warning")
            return
        first, second = marked
        results_dir = self.results_dir

        def step():
            from engine.approaches import compare
            return compare(results_dir, first.run_id, second.run_id)
        self._results_job("Cannot compare", step, lambda comparison: self.app.push_screen(CompareScreen(comparison)))

    def action_ensemble(self) -> None:
        marked = [r.run_id for r in self.results_panel.marked_records()]
        records, results_dir = list(self.results_panel.records), self.results_dir

        def step():
            from engine.approaches import default_ensemble_members, ensemble
            members = marked or default_ensemble_members(records)
            if not members:
                raise ConfigError("No runs marked, and no finished embeddings-only and tabular-only pair on one "
                                  "split to average.", hint="Mark two or more runs with space, or press a in the "
                                  "Training panel for the ablation.")
            return ensemble(results_dir, members)

        def done(record) -> None:
            self.results_panel.marked.clear()
            self.results_panel.add_record(record)
            self.notify(f"{record.approach}: valid accuracy {percent(record.metrics.get('val_accuracy'))}.",
                        title="Ensemble")
        self._results_job("Cannot ensemble", step, done)

    def action_export_table(self) -> None:
        records, results_dir = self.results_panel.visible_records(), self.results_dir

        def step():
            from engine.store.export import export_table
            folder = Path(results_dir)
            # The app's own names: each export replaces the previous one.
            return [export_table(records, folder / name, fmt, force=True)
                    for name, fmt in (("table.csv", "csv"), ("table.md", "markdown"))]
        self._results_job("Cannot export", step, lambda paths: self.notify(
            f"{len(records)} runs written to {' and '.join(map(str, paths))}.", title="Table exported"))

    def action_predict(self) -> None:
        record = self.results_panel.selected_record()
        if record is None or record.status != "finished" or not record.model_path:
            self.notify("Select a finished run with a saved model (ensembles and random forests have none).",
                        severity="warning")
            return
        folder = Path(self.config.embeddings).parent
        self.app.push_screen(PredictForm(str(folder / "test_embeddings.csv"), str(folder / "test_tabular.csv"),
                                         record.approach), partial(self._predict, record))

    def _predict(self, record, paths: tuple[str, str] | None) -> None:
        if paths is None:
            return
        embeddings, tabular = paths
        results_dir, models_dir = Path(self.results_dir), self.models_dir

        def step():
            from engine.predict import predict_files, write_submission
            from engine.store.names import safe_name
            out = results_dir / f"submission_{safe_name(record.approach)}.csv"  # a named run may hold spaces
            prediction = predict_files(record.model_path, embeddings, tabular, models_dir=models_dir)
            return prediction, write_submission(prediction, out, force=True)

        def done(result) -> None:
            prediction, path = result
            dropped = len(prediction.dropped)
            self.notify(f"{len(prediction.frame):,} clips written to {path}; "
                        f"{dropped} clip{'' if dropped == 1 else 's'} dropped.", title="Submission written",
                        timeout=10)
            for warning in prediction.warnings:
                self.notify(warning, title="Predict", severity="warning", timeout=10)
        self.notify(f"Predicting {embeddings} + {tabular} with {record.approach} …")
        self._results_job("Cannot predict", step, done)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen([(place, binding) for place, binding, _ in self.commands()]))


class VggtabApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "vggtab"
    COMMANDS = App.COMMANDS | {ScreenCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]

    def __init__(self, config: RunConfig | None = None, *, results_dir: str = "results",
                 models_dir: str = "models") -> None:
        super().__init__()
        self.initial_config = config or RunConfig()
        self.results_dir, self.models_dir = str(results_dir), str(models_dir)

    def get_default_screen(self) -> MainScreen:
        return MainScreen(self.initial_config, results_dir=self.results_dir, models_dir=self.models_dir)

    @property
    def main_screen(self) -> MainScreen:
        return self.screen_stack[0]

    async def action_quit(self) -> None:
        await self.main_screen.stop_jobs()
        self.exit()


def launch_app(embeddings: str, tabular: str, *, key: str | None = None, results_dir: str = "results",
               models_dir: str = "models") -> int:
    app = VggtabApp(RunConfig(embeddings=embeddings, tabular=tabular, key=key), results_dir=results_dir,
                    models_dir=models_dir)
    # Our own loop, not asyncio.run: that would join the worker threads on the way out. What can be left
    # only imports fastai/torch or reads data (a run is cancelled and recorded before the app closes), and
    # waiting for it would hold the shell for seconds after quitting.
    app.run(loop=asyncio.new_event_loop())
    code = app.return_code or 0
    if any(thread.is_alive() for thread in threading.enumerate() if thread is not threading.main_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
