"""The vggtab app: the main screen lays out four panels and wires their messages to the job runner.

Nothing heavy is imported here: pandas, fastai and torch arrive with the engine inside a worker thread,
so the first screen paints at once.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from functools import partial
from typing import Callable

from rich.text import Text
from textual import on
from textual.actions import parse as parse_action
from textual.app import App
from textual.binding import Binding
from textual.containers import Container, Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Static

from engine.config import RunConfig, SweepConfig
from engine.errors import VggtabError
from engine.events import (BatchEnded, DatasetSummarised, EpochEnded, LRFinderReady, RunCancelled, RunFailed,
                           RunFinished, StageDone, TrialEnded, TrialStarted)
from engine.workbench import is_ensemble
from tui.commands import ScreenCommands
from tui.format import lr_text, percent, sentence
from tui.jobs import ABLATION, FIND_LR, PREPARE, RERUN, RUNS, SWEEP, TRAIN, EngineReported, JobRunner
from tui.screens import CompareScreen, HelpScreen, SweepForm, changes_prepared_data
from tui.widgets.chrome import FooterBar, StatusLine
from tui.widgets.dataset import DatasetPanel
from tui.widgets.lr_finder import LRFinderPanel
from tui.widgets.results import ResultsPanel
from tui.widgets.sweep import SweepScreen
from tui.widgets.training import TrainingPanel

PANELS = {"dataset": "Dataset", "lr": "LR finder", "training": "Training", "results": "Results"}
FOCUS_TARGETS = {"dataset": "#dataset", "lr": "#lr", "training": "#training-body", "results": "#results-table"}

PANEL_KEYS = Binding.Group("Panel", compact=True)
SWEEP_SCREEN = "sweep"


def model_settings(config: RunConfig) -> RunConfig:
    """What the LR curve depends on: everything but the run length, the LR itself and the name."""
    return config.with_(epochs=1, lr=None, lr_suggestion="valley", name="")


class MainScreen(Screen):
    BINDINGS = [
        *(Binding(str(number), f"show_panel('{name}')", f"Show the {title} panel", group=PANEL_KEYS)
          for number, (name, title) in enumerate(PANELS.items(), start=1)),
        Binding("l", "find_lr", "Find LR", tooltip="Run the LR finder on the current data and model"),
        Binding("t", "train", "Train", tooltip="Train with the settings shown in the Training panel"),
        Binding("c", "cancel_run", "Cancel run", show=False, tooltip="Stop the run after the current batch"),
        Binding("z", "toggle_zoom", "Zoom", tooltip="Show the active panel on the whole screen, or back"),
        Binding("question_mark", "help", "Help", show=False, tooltip="The workflow and every key"),
        Binding("q", "app.quit", "Quit", show=False, tooltip="Quit (a running run is cancelled first)"),
    ]
    ESCAPE_TO_MINIMIZE = False  # Esc leaves the filter and reverts the LR field; z zooms back
    ALLOW_IN_MAXIMIZED_VIEW = "#top-bar, #status-line, FooterBar"

    active_panel = reactive("dataset", init=False)

    def __init__(self, config: RunConfig, *, results_dir: str, models_dir: str) -> None:
        super().__init__()
        self.config = config  # the next run's settings
        self.results_dir, self.models_dir = results_dir, models_dir
        self._ablation: list[RunConfig] = []  # the ablation's configs not yet started, from AblationPlanned
        self.sweep_config = SweepConfig()  # the search settings the sweep form shows: the last ones submitted
        self.sweep_screen: SweepScreen | None = None  # the running or last sweep's view
        self.status_line = StatusLine(id="status-line")  # made here: App.notify reaches it from any thread

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
        yield self.status_line
        yield FooterBar()
        yield JobRunner(results_dir=self.results_dir, models_dir=self.models_dir)

    @property
    def jobs(self) -> JobRunner:
        return self.query_one(JobRunner)

    @property
    def job(self) -> str:
        return self.jobs.job

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
        self.jobs.warm_up()
        self.jobs.load_history()
        self.jobs.prepare(self.config)

    def watch_active_panel(self, active: str) -> None:
        for name in PANELS:
            self.query_one(f"#{name}").set_class(name == active, "-active")
        tabs = Text()
        for number, (name, title) in enumerate(PANELS.items(), start=1):
            tabs.append(f" {number} {title} ", style="bold reverse" if name == active else "")
        self.query_one("#panel-tabs", Static).update(tabs)

    def on_job_runner_job_changed(self, message: JobRunner.JobChanged) -> None:
        job = message.job
        status = (Text.assemble((f"● {job} …", "bold yellow"), " c cancels" if job in RUNS else "") if job else
                  Text.assemble(("ready", "green"), " · ctrl+p commands"))
        self.query_one("#job-status", Static).update(status)
        if not job:
            self._show_config()
        self.refresh_bindings()

    def on_descendant_focus(self, event) -> None:
        for node in event.widget.ancestors_with_self:
            if node.id in PANELS:
                self.active_panel = node.id
                return

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

    # -- what the job runner reports ---------------------------------------------------------------------
    def on_job_runner_job_started(self, message: JobRunner.JobStarted) -> None:
        if message.job == PREPARE:
            self.dataset_panel.show_preparing(message.config)
        elif message.job == FIND_LR:
            self.lr_panel.show_running()
            self.action_show_panel("lr")
        elif message.job == TRAIN:
            self.training_panel.start(message.config)
            self.action_show_panel("training")
        elif message.job == RERUN:
            self.training_panel.start_rerun(message.title)
            self.action_show_panel("training")
        elif message.job == ABLATION:
            self._ablation = []
            self.action_show_panel("training")
        elif message.job == SWEEP:
            self.training_panel.start_sweep(message.config, self.sweep_config.trials)
            self.action_show_panel("training")
            self._show_sweep(SweepScreen(message.config, self.sweep_config))

    def on_job_runner_job_failed(self, message: JobRunner.JobFailed) -> None:
        job = message.job
        if job == PREPARE:
            self.dataset_panel.show_error(message.message)
        elif job == FIND_LR:
            self.lr_panel.show_error(message.message)
        elif job in RUNS:
            self.training_panel.fail(message.message)
        if job == SWEEP and self.sweep_screen is not None:
            self.sweep_screen.stopped(f"failed: {message.message}")
        self.notify(message.message, title=f"{sentence(job)} failed", severity="error", timeout=15)

    def on_job_runner_ablation_planned(self, message: JobRunner.AblationPlanned) -> None:
        self._ablation = list(message.configs)

    def on_job_runner_ablation_done(self, message: JobRunner.AblationDone) -> None:
        self.notify(f"{message.finished} of {message.total} ablation runs finished. Press 4 for the results.",
                    title="Ablation")

    def on_job_runner_sweep_ended(self, message: JobRunner.SweepEnded) -> None:
        if message.report is None:
            self.sweep_screen.stopped("cancelled: the trials so far are rows of the results table")
            self.notify("Sweep cancelled; its trials so far are in the results.", title="Sweep")
            return
        report = message.report
        self.sweep_screen.finish(report)
        self.notify(f"Winner on test {percent(report.best_test.accuracy)}, optimism gap "
                    f"{100 * report.optimism_gap:+.1f} points. Esc goes back to the panels.", title="Sweep done")

    def on_job_runner_history_loaded(self, message: JobRunner.HistoryLoaded) -> None:
        self.results_panel.show_history(message.records)
        for warning in message.warnings:
            self.notify(warning, title="Run history", severity="warning", timeout=10)

    def on_job_runner_compared(self, message: JobRunner.Compared) -> None:
        self.app.push_screen(CompareScreen(message.comparison))

    def on_job_runner_ensembled(self, message: JobRunner.Ensembled) -> None:
        record = message.record
        self.results_panel.ensemble_added(record)
        self.notify(f"{record.approach}: valid accuracy {percent(record.metrics.get('val_accuracy'))}.",
                    title="Ensemble")

    def on_job_runner_exported(self, message: JobRunner.Exported) -> None:
        self.notify(f"{message.n_records} runs written to {' and '.join(map(str, message.paths))}.",
                    title="Table exported")

    def on_job_runner_predicted(self, message: JobRunner.Predicted) -> None:
        prediction, dropped = message.submission.prediction, len(message.submission.prediction.dropped)
        self.notify(f"{len(prediction.frame):,} clips written to {message.submission.path}; "
                    f"{dropped} clip{'' if dropped == 1 else 's'} dropped.", title="Submission written", timeout=10)
        for warning in prediction.warnings:
            self.notify(warning, title="Predict", severity="warning", timeout=10)

    def on_engine_reported(self, message: EngineReported) -> None:
        event = message.event
        match event:
            case StageDone() if self.job == PREPARE:
                self.dataset_panel.add_stage(event)
            case StageDone(stage="queue") if self.job == ABLATION and self._ablation:
                self.training_panel.start(self._ablation.pop(0))
                self.notify(sentence(event.detail), title="Ablation")
            case DatasetSummarised() if self.job != SWEEP:  # a sweep's trials split off its test clips
                self.dataset_panel.show_summary(event.summary)
                self.results_panel.show_dataset(event.summary)
            case TrialStarted():
                self.sweep_screen.trial_started(event)
            case TrialEnded():
                self.sweep_screen.trial_ended(event)
            case RunFinished() if self.job == SWEEP:  # a trial, or one of the final runs on the test clips
                self.training_panel.finish(event.record, event.evaluation)
                self.results_panel.add_record(event.record)
                if event.record.config.get("score_on") == "test":
                    self.sweep_screen.scored_on_test(event.record)
            case LRFinderReady() if self.job != SWEEP:  # a trial's curve is for its own model, not the next run's
                self.lr_panel.show_curve(event)
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
                if self.job == SWEEP:  # a pruned trial: its row in the sweep says so
                    return
                self.notify(f"Cancelled after {event.epochs_done} epochs.", title="Run cancelled")

    # -- what the panels ask for -------------------------------------------------------------------------
    def on_dataset_panel_files_chosen(self, message: DatasetPanel.FilesChosen) -> None:
        if not self.jobs.refuse_if_busy():
            self._set_config(self.config.with_(embeddings=message.embeddings, tabular=message.tabular))
            self.action_show_panel("dataset")
            self.jobs.prepare(self.config)

    def on_dataset_panel_feature_set_chosen(self, message: DatasetPanel.FeatureSetChosen) -> None:
        if not self.jobs.refuse_if_busy():
            self._set_config(self.config.with_(features=message.features))
            self.notify(f"Feature set: {self.config.features}.")
            self.jobs.prepare(self.config)

    @on(LRFinderPanel.LearningRateChosen)
    def take_learning_rate(self, message: LRFinderPanel.LearningRateChosen) -> None:
        if message.suggestion is None:
            self._set_config(self.config.with_(lr=message.lr))
            return
        self._set_config(self.config.with_(lr=message.lr, lr_suggestion=message.suggestion))
        self.notify(f"The next run uses the {message.suggestion} LR {lr_text(self.config.lr)}.")

    def on_training_panel_config_edited(self, message: TrainingPanel.ConfigEdited) -> None:
        before = self.config
        self._set_config(message.config)
        if changes_prepared_data(before, self.config) and not self.jobs.refuse_if_busy():
            self.notify("Settings changed for the next run: preparing the data for them.")
            self.jobs.prepare(self.config)
        else:
            self.notify("Settings changed for the next run.")

    def on_training_panel_ablation_requested(self) -> None:
        self.jobs.ablation(self.config)

    def on_training_panel_sweep_requested(self) -> None:
        if self.job == SWEEP:
            self._show_sweep()
            return
        if self.jobs.refuse_if_busy():
            return

        def start(search: SweepConfig | None) -> None:
            if search is not None:
                self.sweep_config = search
                self.jobs.sweep(self.config, search)
        self.app.push_screen(SweepForm(self.sweep_config), start)

    def on_results_panel_rerun_requested(self, message: ResultsPanel.RerunRequested) -> None:
        record = message.record
        if self.jobs.refuse_if_busy():
            return
        if is_ensemble(record):
            self.notify(f"Re-running the members of {record.approach}, then averaging them again.")
            self.jobs.rerun(record)
            return
        try:
            config = RunConfig.from_dict(record.config)
        except VggtabError as error:
            self.notify(str(error), title="Cannot re-run this row", severity="error")
            return
        self._set_config(config)
        self.notify(f"Re-running {record.approach} with its recorded config.")
        self.action_train()

    def on_results_panel_compare_requested(self, message: ResultsPanel.CompareRequested) -> None:
        self.jobs.compare(message.first, message.second)

    def on_results_panel_ensemble_requested(self, message: ResultsPanel.EnsembleRequested) -> None:
        self.jobs.ensemble(message.members, message.records)

    def on_results_panel_export_requested(self, message: ResultsPanel.ExportRequested) -> None:
        self.jobs.export(message.records)

    def on_results_panel_predict_requested(self, message: ResultsPanel.PredictRequested) -> None:
        self.notify(f"Predicting {message.embeddings} + {message.tabular} with {message.record.approach} …")
        self.jobs.predict(message.record, message.embeddings, message.tabular)

    def _show_sweep(self, new: SweepScreen | None = None) -> None:
        """Push the sweep's view; installed, so Esc hides it and s shows it again with everything it was told."""
        if new is not None:
            if self.sweep_screen is not None:
                self.app.uninstall_screen(self.sweep_screen)
                self.sweep_screen.remove()  # an installed screen stays mounted off the stack until removed
            self.sweep_screen = new
            self.app.install_screen(new, name=SWEEP_SCREEN)
        self.app.push_screen(SWEEP_SCREEN)

    # -- configuration -----------------------------------------------------------------------------------
    def _set_config(self, config: RunConfig) -> None:
        if model_settings(config) != model_settings(self.config):
            self.lr_panel.forget_curve()
        self.config = config
        self._show_config()

    def _show_config(self) -> None:
        self.lr_panel.show_lr(self.config.lr, self.config.lr_suggestion)
        self.training_panel.show_next_run(self.config)

    # -- keys of the whole screen ------------------------------------------------------------------------
    def action_show_panel(self, name: str) -> None:
        if self.maximized is not None and self.maximized.id != name:
            self.maximize(self.query_one(f"#{name}"), container=False)  # zoomed stays zoomed, on the new panel
        self.active_panel = name
        # Focus now, not after the repaint: keys typed ahead ("3p") must reach the panel they follow.
        self.set_focus(self.query_one(FOCUS_TARGETS[name]))

    def action_toggle_zoom(self) -> None:
        if self.maximized is not None:
            self.minimize()
        else:
            self.maximize(self.query_one(f"#{self.active_panel}"), container=False)

    def action_find_lr(self) -> None:
        if self.lr_panel.finder is not None and self.job != PREPARE:
            self.action_show_panel("lr")
            self.notify("This curve is for the current data and model settings: the finder would give the same "
                        "one. Change the features, layers, batch size, dropout, weight decay or seed to run it again.")
            return
        self.jobs.find_lr(self.config)

    def action_train(self) -> None:
        self.jobs.train(self.config)

    def action_cancel_run(self) -> None:
        if self.jobs.cancel():
            self.notify("Cancelling after the current batch …")
        elif self.job:
            self.notify(f"Nothing to cancel: c stops a training run or the ablation, and {self.job} is running.")
        else:
            self.notify("Nothing to cancel: no run is going.")

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
        await self.main_screen.jobs.stop()
        self.exit()

    def notify(self, message: str, *, title: str = "", severity="information", timeout: float | None = None,
               markup: bool = False) -> None:
        """As Textual's, and also on the main screen's status line (which replaces its toasts); plain text by
        default: engine messages hold brackets that are not markup."""
        timeout = self.NOTIFICATION_TIMEOUT if timeout is None else timeout
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)
        if self.screen_stack:
            self.main_screen.status_line.post_message(StatusLine.Show(title, message, severity, timeout))


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
