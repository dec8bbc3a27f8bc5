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

from engine.config import RunConfig
from engine.errors import Cancelled, ConfigError, VggtabError
from engine.events import BatchEnded, Event, RunRecord
from tui.format import sentence

PREPARE, FIND_LR, TRAIN, ABLATION = "preparing the data", "the LR finder", "training", "the ablation"
RUNS = (TRAIN, ABLATION)  # jobs that train, so c cancels them and quitting waits for them
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
    config: RunConfig  # what the job runs on, for the panel that shows it starting
    step: Callable[[object], None]  # runs on the engine session in a worker thread


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
        config: RunConfig

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
        prediction: object  # engine Prediction
        path: Path

    def __init__(self, *, results_dir: str, models_dir: str) -> None:
        super().__init__()
        self.results_dir, self.models_dir = results_dir, models_dir
        self._session = None  # engine.pipeline.Session, made in the first engine worker (importing it takes seconds)
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
        self.post_message(self.JobStarted(job.name, job.config))
        self._run_engine_job(job)

    def prepare(self, config: RunConfig) -> None:
        self._start(EngineJob(PREPARE, config, lambda session: session.prepare(config)))

    def find_lr(self, config: RunConfig) -> None:
        self._start(EngineJob(FIND_LR, config, lambda session: session.find_lr(config)))

    def train(self, config: RunConfig) -> None:
        cancel = self._new_cancel()
        self._start(EngineJob(TRAIN, config, lambda session: session.train(config, cancel)))

    def ablation(self, config: RunConfig) -> None:
        """embeddings-only, tabular-only and both on the config's split and seed, queued in one job."""
        cancel = self._new_cancel()

        def step(session) -> None:
            from engine.approaches import ablation_configs, run_queue  # in the worker: it imports numpy
            configs = ablation_configs(config)
            self.post_message(self.AblationPlanned(configs))  # before run_queue reports its first queue event
            finished = run_queue(session, configs, cancel)
            self.post_message(self.AblationDone(len(finished), len(configs)))
        self._start(EngineJob(ABLATION, config, step))

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

    def _engine(self):
        if self._session is None:
            from engine.pipeline import Session
            self._session = Session(self._report, models_dir=self.models_dir, results_dir=self.results_dir)
        return self._session

    def _report(self, event: Event) -> None:
        """The engine's reporter, called on its thread; post_message is thread-safe."""
        self.post_message(EngineReported(event))

    @work(thread=True, exclusive=True, group=ENGINE_GROUP, exit_on_error=False)
    def _run_engine_job(self, job: EngineJob) -> None:
        try:
            job.step(self._engine())
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
        from engine.pipeline import warm_up
        warm_up()

    @work(thread=True, group=HISTORY_GROUP, exit_on_error=False)
    def load_history(self) -> None:
        from engine.store.history import load_history
        history = load_history(self.results_dir)
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
        results_dir = self.results_dir

        def step() -> Message:
            from engine.approaches import compare
            return self.Compared(compare(results_dir, first.run_id, second.run_id))
        self._read(COMPARE, step)

    def ensemble(self, members: list[str], records: list[RunRecord]) -> None:
        """Average `members` (run ids); none given: the latest embeddings-only and tabular-only pair in `records`."""
        results_dir = self.results_dir

        def step() -> Message:
            from engine.approaches import default_ensemble_members, ensemble
            chosen = members or default_ensemble_members(records)
            if not chosen:
                raise ConfigError("No runs marked, and no finished embeddings-only and tabular-only pair on one "
                                  "split to average.", hint="Mark two or more runs with space, or press a in the "
                                  "Training panel for the ablation.")
            return self.Ensembled(ensemble(results_dir, chosen))
        self._read(ENSEMBLE, step)

    def export(self, records: list[RunRecord]) -> None:
        folder = Path(self.results_dir)

        def step() -> Message:
            from engine.store.export import export_table
            # The app's own names: each export replaces the previous one.
            return self.Exported([export_table(records, folder / name, fmt, force=True) for name, fmt in
                                  (("table.csv", "csv"), ("table.md", "markdown"))], len(records))
        self._read(EXPORT, step)

    def predict(self, record: RunRecord, embeddings: str, tabular: str) -> None:
        results_dir, models_dir = Path(self.results_dir), self.models_dir

        def step() -> Message:
            from engine.predict import predict_files, write_submission
            from engine.store.names import safe_name
            out = results_dir / f"submission_{safe_name(record.approach)}.csv"  # a named run may hold spaces
            prediction = predict_files(record.model_path, embeddings, tabular, models_dir=models_dir)
            return self.Predicted(prediction, write_submission(prediction, out, force=True))
        self._read(PREDICT, step)
