"""The work behind the main screen, in named worker groups (as harlequin runs its queries).

Engine jobs (data preparation, the LR finder, training, the ablation) run one at a time in the `engine` group;
reading saved runs (history, compare, ensemble, export, predict) runs in the `results` group. Workers share
nothing with the UI thread: they receive immutable inputs (a RunConfig, records, paths, a cancel Event) and
hand everything back as messages posted on the runner, which bubble to the screen.
"""

from __future__ import annotations

import threading
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

from textual import work
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.worker import Worker, WorkerFailed, WorkerState

from engine.config import RunConfig, SweepConfig
from engine.errors import Cancelled, ConfigError, VggtabError
from engine.events import BatchEnded, Event, RunRecord
from engine.workbench import Workbench, ablation_configs, default_ensemble_members
from tui.format import sentence

PREPARE, FIND_LR, TRAIN, ABLATION = "preparing the data", "the LR finder", "training", "the ablation"
RERUN = "the re-run"  # of a recorded run; an ensemble's re-runs its members
SWEEP = "the sweep"
RUNS = (TRAIN, ABLATION, RERUN, SWEEP)  # jobs that train, so c cancels them and quitting waits for them
COMPARE, ENSEMBLE, EXPORT, PREDICT = "the comparison", "the ensemble", "the export", "the prediction"
ENGINE_GROUP, RESULTS_GROUP, HISTORY_GROUP, WARM_UP_GROUP = "engine", "results", "history", "warm-up"


class EngineReported(Message):
    """One engine event, carried from a worker thread to the UI thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        """Batch progress still queued is superseded by newer batch progress: a fast run collapses to its latest
        batch instead of redrawing the bar thousands of times."""
        return (isinstance(self.event, BatchEnded) and isinstance(message, EngineReported)
                and isinstance(message.event, BatchEnded))


class EngineJob(NamedTuple):
    name: str
    config: RunConfig | None  # what the job runs on, for the panel that shows it starting (None: an ensemble)
    title: str  # the approach it runs
    step: Callable[[Workbench], None]  # runs in a worker thread


class JobRunner(Widget):
    """Starts the engine's work in threads and reports it back; the screen only wires the messages to panels."""

    DEFAULT_CSS = "JobRunner { display: none; }"

    job = reactive("", init=False)  # the engine job running now (UI thread only)

    @dataclass
    class JobChanged(Message):
        job: str  # "" when nothing runs

    @dataclass
    class JobStarted(Message):
        job: str
        config: RunConfig | None
        title: str  # what runs, as the training panel names it

    @dataclass
    class JobFailed(Message):
        job: str
        message: str

    @dataclass
    class AblationPlanned(Message):
        """Posted before the first run of the ablation: the configs its queue events refer to, in order."""
        configs: list[RunConfig]

    @dataclass
    class AblationDone(Message):
        finished: int
        total: int

    @dataclass
    class SweepEnded(Message):
        report: object | None  # engine.sweep.SweepReport; None when the sweep was cancelled

    @dataclass
    class HistoryLoaded(Message):
        records: list[RunRecord]
        warnings: list[str]

    @dataclass
    class Compared(Message):
        comparison: object  # engine Comparison

    @dataclass
    class Ensembled(Message):
        record: RunRecord

    @dataclass
    class Exported(Message):
        paths: list[Path]
        n_records: int

    @dataclass
    class Predicted(Message):
        submission: object  # engine.workbench.Submission

    def __init__(self, *, results_dir: str, models_dir: str) -> None:
        super().__init__()
        self.results_dir = results_dir
        self.workbench = Workbench(self._report, models_dir=models_dir, results_dir=results_dir)
        self._cancel = threading.Event()
        self._queued: EngineJob | None = None  # waits for the data preparation that is running

    def watch_job(self, job: str) -> None:
        self.post_message(self.JobChanged(job))

    # -- engine jobs: one at a time ------------------------------------------------------------------------
    def refuse_if_busy(self) -> bool:
        """The LR finder and training cannot be interrupted by another job; data preparation can be queued
        behind (see `_start`)."""
        if self.job not in (FIND_LR, *RUNS):
            return False
        hint = " Press c to cancel it." if self.job in RUNS else ""
        self.notify(f"Still busy with {self.job}: one job at a time.{hint}", title="Refused", severity="warning")
        return True

    def _start(self, job: EngineJob) -> None:
        """Run `job` now; while the data is being prepared, run it right after (the latest request wins)."""
        if self.refuse_if_busy():
            return
        if self.job == PREPARE:
            self._queued = job
            self.notify(f"{sentence(job.name)} starts as soon as the data is ready.")
            return
        self.job = job.name
        self.post_message(self.JobStarted(job.name, job.config, job.title))
        self._run_engine_job(job)

    def prepare(self, config: RunConfig) -> None:
        self._start(EngineJob(PREPARE, config, config.approach, lambda bench: bench.prepare(config)))

    def find_lr(self, config: RunConfig) -> None:
        self._start(EngineJob(FIND_LR, config, config.approach, lambda bench: bench.find_lr(config)))

    def train(self, config: RunConfig) -> None:
        cancel = self._new_cancel()
        self._start(EngineJob(TRAIN, config, config.approach, lambda bench: bench.train(config, cancel)))

    def rerun(self, record: RunRecord) -> None:
        """An ensemble row again: each member re-trained with its recorded config, then averaged anew."""
        cancel = self._new_cancel()
        def step(bench: Workbench) -> None:
            self.post_message(self.Ensembled(bench.rerun(record, cancel)))  # its members were reported as runs
        self._start(EngineJob(RERUN, None, record.approach, step))

    def ablation(self, config: RunConfig) -> None:
        """embeddings-only, tabular-only and both on the config's split and seed, queued in one job."""
        cancel = self._new_cancel()

        def step(bench: Workbench) -> None:
            configs = ablation_configs(config)
            self.post_message(self.AblationPlanned(configs))  # before run_queue reports its first queue event
            finished = bench.run_queue(configs, cancel)
            self.post_message(self.AblationDone(len(finished), len(configs)))
        self._start(EngineJob(ABLATION, config, config.approach, step))

    def sweep(self, config: RunConfig, search: SweepConfig) -> None:
        """An Optuna sweep on `config` as its base: trials, then the winner, top-N and default scored on test."""
        cancel = self._new_cancel()

        def step(bench: Workbench) -> None:
            try:
                self.post_message(self.SweepEnded(bench.sweep(config, search, cancel)))
            except Cancelled:
                self.post_message(self.SweepEnded(None))  # its trials so far stay in the history
                raise
        self._start(EngineJob(SWEEP, config, config.approach, step))

    def _new_cancel(self) -> threading.Event:
        """A fresh cancel flag for a run that is about to start; a refused run's flag is never set."""
        if self.job in RUNS:
            return threading.Event()
        self._cancel = threading.Event()
        return self._cancel

    def cancel(self) -> bool:
        """Ask the running run to stop after its current batch; False when no run is going."""
        if self.job not in RUNS:
            return False
        self._cancel.set()
        return True

    def _report(self, event: Event) -> None:
        """The engine's reporter, called on its thread; post_message is thread-safe."""
        self.post_message(EngineReported(event))

    @work(thread=True, exclusive=True, group=ENGINE_GROUP, exit_on_error=False)
    def _run_engine_job(self, job: EngineJob) -> None:
        try:
            job.step(self.workbench)
        except Cancelled:
            pass  # the engine has reported RunCancelled
        except VggtabError as error:
            self.post_message(self.JobFailed(job.name, str(error)))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state == WorkerState.ERROR:
            error = worker.error
            job = self.job if worker.group == ENGINE_GROUP else worker.name
            self.post_message(self.JobFailed(job, f"Unexpected {type(error).__name__}: {error}"))
        if worker.group == ENGINE_GROUP and event.state in (WorkerState.SUCCESS, WorkerState.ERROR,
                                                             WorkerState.CANCELLED):
            failed_preparing = self.job == PREPARE and event.state != WorkerState.SUCCESS
            self.job = ""
            queued, self._queued = self._queued, None
            if queued is not None and failed_preparing:
                self.notify(f"{sentence(queued.name)} was not started.", severity="warning")
            elif queued is not None:
                self._start(queued)

    def on_job_runner_job_failed(self, message: JobFailed) -> None:
        if message.job == PREPARE and self._queued is not None:
            self.notify(f"{sentence(self._queued.name)} was not started.", severity="warning")
            self._queued = None

    async def stop(self) -> None:
        """Before quitting: drop a queued job; cancel a run and wait until it is recorded as cancelled.
        Data preparation and the LR finder write nothing worth waiting for."""
        self._queued = None
        running = [w for w in self.workers if w.group == ENGINE_GROUP and not w.is_finished]
        if not self.cancel() or not running:
            return
        self.notify("Cancelling the run before quitting …")
        with suppress(WorkerFailed):
            await self.app.workers.wait_for_complete(running)

    # -- background reads ------------------------------------------------------------------------------
    @work(thread=True, group=WARM_UP_GROUP, exit_on_error=False)
    def warm_up(self) -> None:
        import plotext  # noqa: F401  (its import stalls ~0.4 s: here, not on the first chart in the UI thread)
        from engine.workbench import warm_up
        warm_up()

    @work(thread=True, group=HISTORY_GROUP, exit_on_error=False)
    def load_history(self) -> None:
        history = self.workbench.history()
        self.post_message(self.HistoryLoaded(list(history.records), list(history.warnings)))

    def _read(self, job: str, step: Callable[[], Message]) -> None:
        """`step()` in a `results` worker, its message posted back; an engine error becomes JobFailed."""
        def run() -> None:
            try:
                self.post_message(step())
            except VggtabError as error:
                self.post_message(self.JobFailed(job, str(error)))
        self.run_worker(run, name=job, group=RESULTS_GROUP, thread=True, exit_on_error=False)

    def compare(self, first: RunRecord, second: RunRecord) -> None:
        self._read(COMPARE, lambda: self.Compared(self.workbench.compare(first.run_id, second.run_id)))

    def ensemble(self, members: list[str], records: list[RunRecord]) -> None:
        """Average `members` (run ids); none given: the latest embeddings-only and tabular-only pair in `records`."""
        def step() -> Message:
            chosen = members or default_ensemble_members(records)
            if not chosen:
                raise ConfigError("No runs marked, and no finished embeddings-only and tabular-only pair on one "
                                  "split to average.", hint="Mark two or more runs with space, or press a in the "
                                  "Training panel for the ablation.")
            return self.Ensembled(self.workbench.ensemble(chosen))
        self._read(ENSEMBLE, step)

    def export(self, records: list[RunRecord]) -> None:
        folder = Path(self.results_dir)
        # The app's own names: each export replaces the previous one.
        self._read(EXPORT, lambda: self.Exported([self.workbench.export(records, folder / name, force=True)
                                                  for name in ("table.csv", "table.md")], len(records)))

    def predict(self, record: RunRecord, embeddings: str, tabular: str) -> None:
        """Into results/submission_<approach>.csv, replacing the approach's earlier one (as the CLI does)."""
        self._read(PREDICT, lambda: self.Predicted(self.workbench.predict(record.run_id, embeddings, tabular)))
