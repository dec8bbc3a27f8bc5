"""Sweep: an Optuna study over the run settings that matter, with an honest final score.

A sweep sets aside a stratified test split first (`test_pct` of the base config, seeded by its split seed) that no
trial sees; each trial is an ordinary run of the history (its config names the sweep) scored on the valid split or,
with `cv`, on inner folds of the non-test rows. At the end the best config, an ensemble of the top-N configs and the
default config are retrained on train + valid and scored once on the test clips: the report sets the best valid
score beside its test score (the optimism gap, each with its Wilson 95 % interval), the paired test between the
winner and the default on the test clips, and Optuna's setting importances.

Scaling out is Optuna's: the study lives in a storage that many processes share. The default is Optuna's journal
file under results/sweeps/ (measured against SQLite in bench/sweep.py); any SQLAlchemy URL (postgresql://…) lets
machines share one study. `workers` runs that many local processes, one torch thread each. Each worker prepares
the data once (its Session caches every step) and its trials cost their fit.

Pruning: the engine already reports every epoch's valid loss (EpochEnded) to the Session's reporter, and cancels
a run at the next batch through its cancel flag, recording it. So a trial reports each valid loss to Optuna and,
when `should_prune()` says so, sets its run's StopRequest: the run stops and is recorded as cancelled with the
pruner's reason. Optuna's FastAIV2PruningCallback would need a second fastai callback threaded through the
engine's fit, and it raises TrialPruned out of `after_fit`, which the Session would record as a failure.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import signal
import socket
import threading
import time
import traceback
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine.config import ARCHITECTURE_PRESETS, FEATURE_GROUPS, RunConfig, SweepConfig
from engine.errors import Cancelled, ConfigError, StorageError, VggtabError
from engine.events import EpochEnded, Reporter, RunCancelled, StageDone, TrialEnded, TrialStarted, ignore
from engine.pipeline import Session, StopRequest
from engine.store.files import atomic_write, check_writable, make_folder
from engine.store.names import timestamp

FEATURE_CHOICES = ("both", "embeddings", "tabular")
REDUCTIONS = ("none", "top_k", "pca")
SELECT_FRACTIONS = (16, 4)  # top-K keeps 1/16 or 1/4 of the tabular columns
PCA_COMPONENTS = (32, 128)
BATCH_SIZES = (32, 64, 128)
PS_RANGE = (0.0, 0.6)  # in steps of PS_STEP
PS_STEP = 0.05
WD_RANGE = (1e-4, 0.3)  # log-uniform
LR_RANGE = (1e-4, 1e-2)  # log-uniform; the other choice is the LR finder's suggestion
# One-cycle's first epoch is noisy: a trial can be pruned from its second epoch on. Steps are 1-based epochs,
# and Optuna's MedianPruner compares once step >= n_warmup_steps.
PRUNE_FROM_EPOCH = 2
SWEEPS_DIR = "sweeps"
SAME_AS = "same_as"  # user attribute of a trial that proposed an earlier trial's settings again
MAX_REPEATS_IN_A_ROW = 10
TEST_PCT = 0.2


# ------------------------------------------------------------------------------------- storage and study

def journal_path(results_dir, study: str) -> Path:
    return Path(results_dir) / SWEEPS_DIR / f"{study}.journal"


def open_storage(sweep: SweepConfig, results_dir, study: str):
    """Optuna's journal file under results/sweeps/ by default (several local processes share it safely), or the
    RDB storage at the `storage` URL."""
    import optuna
    if not sweep.storage:
        path = journal_path(results_dir, study)
        make_folder(path.parent)
        from optuna.storages.journal import JournalFileBackend
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    try:
        return optuna.storages.RDBStorage(sweep.storage)
    except Exception as exc:  # a missing driver, a bad URL, a server that refuses: each library its own type
        cause = exc.__cause__ or exc  # Optuna wraps a missing driver in an ImportError that does not name it
        raise StorageError(f"Could not open the sweep storage {redacted(sweep.storage)}: {type(cause).__name__}: "
                           f"{cause}.", hint="Give an SQLAlchemy URL such as postgresql://user:password@host/db "
                                             "(PostgreSQL needs the psycopg driver: pip install 'psycopg[binary]'), "
                                             "or leave storage empty for the journal file under results/sweeps/."
                           ) from exc


def redacted(url: str) -> str:
    """The URL with its password masked, for messages and reports."""
    head, at, host = url.rpartition("@")
    scheme, sep, credentials = head.partition("://")
    if not at or not sep or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':')[0]}:***@{host}"


def shared_settings(base: RunConfig) -> dict:
    """What every worker of a study must agree on (the data's place may differ between machines)."""
    return {k: v for k, v in base.to_dict().items() if k not in ("embeddings", "tabular", "threads", "sweep")}


def open_study(sweep: SweepConfig, base: RunConfig, results_dir, study_name: str, *, worker: int = 0):
    """Create or load the study; refuse to join one started on other settings (its test split would differ)."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(sweep, results_dir, study_name)
    seed = zlib.crc32(f"{sweep.sampler_seed}-{worker}-{socket.gethostname()}".encode())
    study = optuna.create_study(
        storage=storage, study_name=study_name, direction="minimize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=(optuna.pruners.MedianPruner(n_startup_trials=sweep.prune_startup,
                                            n_warmup_steps=PRUNE_FROM_EPOCH)
                if sweep.pruner == "median" else optuna.pruners.NopPruner()))
    wanted = {"base": shared_settings(base), "cv": sweep.cv, "models": list(sweep.model_choices),
              "epochs": list(sweep.epoch_choices)}
    recorded = {key: study.user_attrs.get(key) for key in wanted}
    if all(value is None for value in recorded.values()):
        for key, value in wanted.items():
            study.set_user_attr(key, value)
    elif json.loads(json.dumps(recorded)) != json.loads(json.dumps(wanted)):
        differ = sorted(k for k in wanted if json.loads(json.dumps(recorded[k])) != json.loads(json.dumps(wanted[k])))
        raise ConfigError(f"Study {study_name} was started with other settings ({', '.join(differ)}): its trials "
                          "and test split would not be comparable with these.",
                          hint="Use the study's settings, or another study name.")
    return study


# ------------------------------------------------------------------------------------------- search space

@dataclass(frozen=True)
class SearchSpace:
    models: tuple[str, ...]
    epochs: tuple[int, ...]
    select_k: tuple[int, ...]  # derived from the data's tabular column count
    pca: tuple[int, ...]

    @classmethod
    def for_data(cls, sweep: SweepConfig, n_tabular: int, n_train: int) -> SearchSpace:
        select_k = tuple(sorted({max(1, n_tabular // d) for d in SELECT_FRACTIONS}))
        pca = tuple(sorted({min(c, n_tabular, max(1, n_train - 1)) for c in PCA_COMPONENTS}))
        return cls(models=sweep.model_choices, epochs=sweep.epoch_choices, select_k=select_k, pca=pca)

    def suggest(self, trial, base: RunConfig) -> RunConfig:
        """One trial's config: Optuna's define-by-run, so the MLP's settings exist only for MLP trials."""
        model = trial.suggest_categorical("model", self.models)
        features = trial.suggest_categorical("features", FEATURE_CHOICES)
        changes: dict = dict(model=model, features=features, select_k=None, pca=None)
        if features != "embeddings":
            reduce = trial.suggest_categorical("reduce", REDUCTIONS)
            if reduce == "top_k":
                changes["select_k"] = trial.suggest_categorical("select_k", self.select_k)
            elif reduce == "pca":
                changes["pca"] = trial.suggest_categorical("pca", self.pca)
        if model == "mlp":
            preset = trial.suggest_categorical("layers", tuple(ARCHITECTURE_PRESETS))
            changes.update(layers=ARCHITECTURE_PRESETS[preset],
                           ps=round(trial.suggest_float("ps", *PS_RANGE, step=PS_STEP), 2),
                           wd=two_digits(trial.suggest_float("wd", *WD_RANGE, log=True)),
                           bs=trial.suggest_categorical("bs", BATCH_SIZES),
                           epochs=trial.suggest_categorical("epochs", self.epochs), lr=None)
            if trial.suggest_categorical("lr_source", ("finder", "range")) == "range":
                changes["lr"] = two_digits(trial.suggest_float("lr", *LR_RANGE, log=True))
        return base.with_(**changes)


def changed_settings(config: RunConfig, base: RunConfig) -> dict:
    """The settings a trial changed from the sweep's base config (not the sweep's own name), as recorded."""
    trial, start = config.to_dict(), base.to_dict()
    return {name: value for name, value in trial.items() if value != start[name] and name != "sweep"}


def two_digits(value: float) -> float:
    """0.000228013 → 0.00023: names and tables stay readable; no search is that precise."""
    return float(f"{value:.2g}")


def count_tabular(session: Session, base: RunConfig) -> tuple[int, int]:
    """Tabular columns and train rows of the base data: the top-K and PCA choices depend on them."""
    prepared = session.prepare(base)
    n_tabular = sum(not c.startswith(FEATURE_GROUPS["emb"]) for c in session.clean_data(base).feature_columns)
    return n_tabular, len(prepared.train_idx)


# ----------------------------------------------------------------------------------------------- worker

class TrialStop(StopRequest):
    """A trial's cancel flag: set by its pruner, or by the sweep's own cancel."""

    def __init__(self, sweep_cancel):
        super().__init__()
        self.sweep_cancel = sweep_cancel

    def is_set(self) -> bool:
        return super().is_set() or self.sweep_cancel.is_set()

    @property
    def pruned(self) -> bool:
        return bool(self.reason)


class Worker:
    """Runs trials of one study in this process, one at a time, on one Session (data prepared once)."""

    def __init__(self, study, sweep: SweepConfig, base: RunConfig, *, models_dir, results_dir,
                 report: Reporter = ignore, cancel=None, number: int = 0, forward_runs: bool = True):
        self.study, self.sweep, self.base, self.number = study, sweep, base, number
        self.report, self.forward_runs = report, forward_runs
        self.cancel = cancel or threading.Event()
        self.session = Session(self._dispatch, models_dir=models_dir, results_dir=results_dir)
        self._trial = None  # the Optuna trial whose epochs are reported now, if pruning applies
        self._stop: TrialStop | None = None
        self._stopped_run = ""  # the run id of the last run the Session recorded as cancelled
        self.space: SearchSpace | None = None

    def _dispatch(self, event) -> None:
        if isinstance(event, EpochEnded) and self._trial is not None:
            self._trial.report(event.valid_loss, event.epoch)
            if self._trial.should_prune():
                self._stop.stop(f"Pruned by sweep {self.study.study_name} (valid loss {event.valid_loss:.4g} "
                                f"worse than the median of earlier trials at epoch {event.epoch})")
        if isinstance(event, RunCancelled) and event.record is not None:
            self._stopped_run = event.record.run_id
        if self.forward_runs:
            self.report(event)

    def run(self, n_trials: int, deadline: float | None = None) -> int:
        """Up to `n_trials` trials that fit something, none started after `deadline` (time.time()); returns how
        many ran. A trial that repeats an earlier one's settings costs no fit and does not count, but after
        MAX_REPEATS_IN_A_ROW of them the sampler has converged and the worker stops."""
        if self.space is None:
            self.space = SearchSpace.for_data(self.sweep, *count_tabular(self.session, self.base))
        done = repeats = 0
        while done < n_trials and not self.cancel.is_set() and (deadline is None or time.time() < deadline):
            if self.run_trial(self.study.ask()).same_as is None:
                done, repeats = done + 1, 0
            else:
                repeats += 1
                if repeats >= MAX_REPEATS_IN_A_ROW:
                    self.report(StageDone(stage="sweep", seconds=0.0, detail=(
                        f"worker {self.number} stops after {done} trials: the last {repeats} proposed settings "
                        "already tried, so the search has converged")))
                    break
        return done

    def run_trial(self, trial) -> TrialEnded:
        from optuna.trial import TrialState
        config = self.space.suggest(trial, self.base).with_(sweep=self.study.study_name)
        trial.set_user_attr("approach", config.approach)
        earlier = self._same_settings(trial)
        if earlier is not None:
            return self._reuse(trial, config, earlier)
        self.report(TrialStarted(sweep=self.study.study_name, number=trial.number, approach=config.approach,
                                 params=dict(trial.params), changes=changed_settings(config, self.base),
                                 worker=self.number))
        folds = [config] if self.sweep.cv is None else [config.with_(fold=k, n_folds=self.sweep.cv)
                                                       for k in range(self.sweep.cv)]
        stop = TrialStop(self.cancel)
        records, self._stopped_run = [], ""
        state, message = "complete", ""
        try:
            for number, fold_config in enumerate(folds):
                # Only the first fold reports to the pruner: later folds would repeat the same steps.
                self._trial, self._stop = (trial if number == 0 else None), stop
                records.append(self.session.train(fold_config, cancel=stop))
        except Cancelled:
            run_ids = tuple(r.run_id for r in records) + ((self._stopped_run,) if self._stopped_run else ())
            if not stop.pruned or self.cancel.is_set():
                self.study.tell(trial, state=TrialState.FAIL)
                self._announce(trial, config, "failed", None, run_ids, "cancelled")
                raise
            trial.set_user_attr("run_ids", list(run_ids))
            self.study.tell(trial, state=TrialState.PRUNED)
            return self._announce(trial, config, "pruned", None, run_ids, stop.reason)
        except VggtabError as error:
            state, message = "failed", str(error)
        except Exception as error:
            self.study.tell(trial, state=TrialState.FAIL)
            self._announce(trial, config, "failed", None, (), f"Unexpected {type(error).__name__}: {error}")
            raise
        finally:
            self._trial = self._stop = None
        run_ids = tuple(r.run_id for r in records)
        trial.set_user_attr("run_ids", list(run_ids))
        if state == "failed":
            trial.set_user_attr("error", message)
            self.study.tell(trial, state=TrialState.FAIL)
            return self._announce(trial, config, state, None, run_ids, message)
        accuracy = float(np.mean([r.metrics["val_accuracy"] for r in records]))
        # In the study itself, so a machine that reports on it needs no other machine's history.
        trial.set_user_attr("config", records[0].config)  # with the LR the run used
        trial.set_user_attr("valid", asdict(Score.of(records[0])))
        self.study.tell(trial, 1.0 - accuracy)
        return self._announce(trial, config, state, accuracy, run_ids, "")

    def _same_settings(self, trial):
        """A finished trial with exactly these settings: TPE proposes one again when the space is small (a baseline
        has few settings), and the same fit would give the same score."""
        from optuna.trial import TrialState
        for done in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if done.params == trial.params and SAME_AS not in done.user_attrs:
                return done
        return None

    def _reuse(self, trial, config: RunConfig, earlier) -> TrialEnded:
        """Tell the earlier trial's score again, with no new run: the study learns the same, the trial costs nothing."""
        for key in ("config", "valid"):
            trial.set_user_attr(key, earlier.user_attrs[key])
        trial.set_user_attr(SAME_AS, earlier.number)
        trial.set_user_attr("run_ids", [])
        self.study.tell(trial, earlier.value)
        return self._announce(trial, config, "complete", 1.0 - earlier.value, (),
                              f"same settings as trial {earlier.number}: its score is reused, no new run",
                              same_as=earlier.number)

    def _announce(self, trial, config: RunConfig, state: str, accuracy, run_ids, message: str,
                  same_as: int | None = None) -> TrialEnded:
        event = TrialEnded(sweep=self.study.study_name, number=trial.number, state=state, accuracy=accuracy,
                           approach=config.approach, params=dict(trial.params), run_ids=tuple(run_ids),
                           message=message, worker=self.number, same_as=same_as,
                           changes=changed_settings(config, self.base))
        self.report(event)
        return event


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs; plain data, so it pickles into a spawned process."""

    sweep: SweepConfig
    base: dict
    study: str
    results_dir: str
    models_dir: str
    n_trials: int
    deadline: float | None
    number: int


def _worker_main(spec: WorkerSpec, events, cancel) -> None:
    """A spawned worker: one torch thread (the base config's default), its own Session, the shared study. Sends
    TrialEnded events and, on an error, ("error", text) or ("bug", traceback) to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent owns Ctrl-C and tells workers through `cancel`
    try:
        base = RunConfig.from_dict(spec.base)
        study = open_study(spec.sweep, base, spec.results_dir, spec.study, worker=spec.number)
        worker = Worker(study, spec.sweep, base, models_dir=spec.models_dir, results_dir=spec.results_dir,
                        report=events.put, cancel=cancel, number=spec.number, forward_runs=False)
        worker.run(spec.n_trials, spec.deadline)
    except Cancelled:
        pass
    except VggtabError as error:
        events.put(("error", str(error)))
    except BaseException:
        events.put(("bug", traceback.format_exc()))


def trials_per_worker(trials: int, workers: int) -> list[int]:
    return [trials // workers + (i < trials % workers) for i in range(workers)]


def run_workers(sweep: SweepConfig, base: RunConfig, study_name: str, *, results_dir, models_dir,
                report: Reporter, cancel: threading.Event) -> None:
    """`sweep.workers` spawned processes on the shared study; their TrialEnded events are reported here."""
    context = multiprocessing.get_context("spawn")  # a fork would copy torch's thread pools and locks
    events, stop = context.Queue(), context.Event()
    deadline = time.time() + sweep.timeout if sweep.timeout else None
    processes = []
    for number, n_trials in enumerate(trials_per_worker(sweep.trials, sweep.workers)):
        if n_trials:
            spec = WorkerSpec(sweep=sweep, base=base.to_dict(), study=study_name, results_dir=str(results_dir),
                              models_dir=str(models_dir), n_trials=n_trials, deadline=deadline, number=number)
            processes.append(context.Process(target=_worker_main, args=(spec, events, stop), daemon=True))
    for process in processes:
        process.start()
    problems = []
    while any(p.is_alive() for p in processes) or not events.empty():
        if cancel.is_set():
            stop.set()
        try:
            message = events.get(timeout=0.2)
        except queue.Empty:
            continue
        if isinstance(message, tuple):
            problems.append(message)
        else:
            report(message)
    for process in processes:
        process.join()
    bugs = [text for kind, text in problems if kind == "bug"]
    if bugs:
        raise RuntimeError(f"A sweep worker failed:\n{bugs[0]}")
    if problems:
        raise VggtabError(problems[0][1])
    if cancel.is_set():
        raise Cancelled()


# ------------------------------------------------------------------------------------------ the report

@dataclass(frozen=True)
class Score:
    """An accuracy on n clips with its Wilson 95 % interval, and the run that scored it."""

    accuracy: float
    low: float
    high: float
    n: int
    run_id: str
    approach: str
    model_path: str = ""  # the run's saved model ('' for an ensemble or a random forest): predict with it

    @classmethod
    def of(cls, record) -> Score:
        m = record.metrics
        return cls(accuracy=float(m["val_accuracy"]), low=float(m["ci_low"]), high=float(m["ci_high"]),
                   n=int(m["val_samples"]), run_id=record.run_id, approach=record.approach,
                   model_path=record.model_path)


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # complete | pruned | failed | running
    accuracy: float | None
    approach: str
    params: dict
    run_ids: tuple[str, ...]
    same_as: int | None = None  # the earlier trial whose settings it proposed again: its score, no fit


@dataclass(frozen=True)
class SweepReport:
    study: str
    storage: str
    test_pct: float
    trials: tuple[TrialRow, ...]
    best_trial: int
    best_params: dict
    best_valid: Score  # the winner's run on the valid clips (with cv: its first fold's)
    best_test: Score  # the winner's config retrained on train + valid, scored once on the test clips
    default_test: Score  # the default config, retrained and scored the same way
    ensemble_test: Score | None  # the top-N configs retrained, probabilities averaged on the test clips
    ensemble_members: tuple[int, ...]  # their trial numbers
    winner_vs_default: str  # the paired test's verdict on the test clips
    winner_vs_default_p: float  # McNemar mid-p, as the verdict
    importances: dict[str, float]  # over every finished trial (settings every trial has)
    mlp_importances: dict[str, float]  # over the finished MLP trials
    best_valid_mean: float  # the trial's objective: valid accuracy, mean over folds with cv
    summary_path: str = ""

    @property
    def optimism_gap(self) -> float:
        """How much the winner's valid score overstates what it does on clips nobody selected on."""
        return self.best_valid_mean - self.best_test.accuracy

    def to_dict(self) -> dict:
        return asdict(self) | {"optimism_gap": self.optimism_gap}


def trial_rows(study) -> tuple[TrialRow, ...]:
    names = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
             "WAITING": "waiting"}
    return tuple(TrialRow(number=t.number, state=names.get(t.state.name, t.state.name.lower()),
                          accuracy=None if t.state.name != "COMPLETE" else 1.0 - float(t.value),
                          approach=str(t.user_attrs.get("approach", "")), params=dict(t.params),
                          run_ids=tuple(t.user_attrs.get("run_ids", ())), same_as=t.user_attrs.get(SAME_AS))
                 for t in study.get_trials(deepcopy=False))


def importances(study) -> tuple[dict[str, float], dict[str, float]]:
    """Optuna's fANOVA importances over all finished trials (the settings they all have), and over the MLP ones."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.trial import TrialState

    def of(trials) -> dict[str, float]:
        if len(trials) < 2:
            return {}
        study_copy = optuna.create_study(direction="minimize")
        study_copy.add_trials(trials)
        try:
            found = optuna.importance.get_param_importances(study_copy, evaluator=FanovaImportanceEvaluator(seed=0))
        except (ValueError, RuntimeError):  # e.g. every trial has the same value: nothing to apportion
            return {}
        varied = {name for name in found if len({repr(t.params.get(name)) for t in trials}) > 1}
        return {name: float(value) for name, value in found.items() if name in varied}  # a constant explains nothing

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return of(complete), of([t for t in complete if t.params.get("model") == "mlp"])


def finish(session: Session, sweep: SweepConfig, base: RunConfig, study, cancel=None) -> SweepReport:
    """Retrain the winner, the top-N and the default config on train + valid, score each once on the test clips."""
    from engine import approaches
    from optuna.trial import TrialState

    # A trial that reused an earlier trial's score is that trial: leave it out so the top N are N configs.
    complete = sorted((t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                       if SAME_AS not in t.user_attrs), key=lambda t: t.value)
    if not complete:
        raise VggtabError(f"No trial of sweep {study.study_name} finished, so there is no winner to test.",
                          hint="Check the failed trials' messages in the results table, or run more trials.")
    started = time.perf_counter()

    def on_test(trial_config: dict, label: str) -> object:
        config = RunConfig.from_dict(trial_config).with_(score_on="test", fold=None, name=label,
                                                         sweep=study.study_name)
        return session.train(config, cancel=cancel)

    best = complete[0]
    best_test = on_test(best.user_attrs["config"], f"{study.study_name} best (trial {best.number})")
    members, member_runs = [], []
    for trial in complete[:sweep.top_n]:
        members.append(trial.number)
        member_runs.append(best_test if trial is best else on_test(trial.user_attrs["config"],
                                                                   f"{study.study_name} top (trial {trial.number})"))
    ensemble_test = None
    if len(member_runs) >= 2:
        ensemble_test = approaches.ensemble(session.results_dir, [r.run_id for r in member_runs],
                                            name=f"{study.study_name} top-{len(member_runs)} ensemble (test)")
    default = base.with_(score_on="test", fold=None, name=f"{study.study_name} default config",
                         sweep=study.study_name)
    default_test = session.train(default, cancel=cancel)
    paired = approaches.compare(session.results_dir, best_test.run_id, default_test.run_id)
    overall, mlp_only = importances(study)
    session.report(StageDone(stage="sweep", seconds=time.perf_counter() - started,
                             detail=f"winner, top-{len(member_runs)} and default retrained on train + valid, "
                                    "scored on the test clips"))
    report = SweepReport(
        study=study.study_name, storage=redacted(sweep.storage) or str(journal_path(session.results_dir,
                                                                                     study.study_name)),
        test_pct=base.test_pct, trials=trial_rows(study), best_trial=best.number, best_params=dict(best.params),
        best_valid=Score(**best.user_attrs["valid"]), best_valid_mean=1.0 - float(best.value), best_test=Score.of(best_test),
        default_test=Score.of(default_test), ensemble_test=Score.of(ensemble_test) if ensemble_test else None,
        ensemble_members=tuple(members) if ensemble_test else (), winner_vs_default=paired.verdict,
        winner_vs_default_p=paired.test.mid_p, importances=overall, mlp_importances=mlp_only)
    path = save_summary(session.results_dir, report)
    return SweepReport(**{**report.__dict__, "summary_path": str(path)})


def save_summary(results_dir, report: SweepReport) -> Path:
    path = make_folder(Path(results_dir) / SWEEPS_DIR) / f"{report.study}.json"
    text = json.dumps(report.to_dict(), indent=2, default=str)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# ----------------------------------------------------------------------------------------- entry point

def new_study_name() -> str:
    return f"sweep_{timestamp()}"


def sweep_base(base: RunConfig) -> RunConfig:
    """The base config of a sweep: a test split set aside (the default 20 % unless the user chose one)."""
    if base.score_on != "valid":
        raise ConfigError("A sweep scores its trials on the valid split (score_on=valid); it tests the winner "
                          "itself.", hint="Leave score_on at valid.")
    return base if base.test_pct else base.with_(test_pct=TEST_PCT)


def run_sweep(base: RunConfig, sweep: SweepConfig, *, results_dir="results", models_dir="models",
              report: Reporter = ignore, cancel: threading.Event | None = None) -> SweepReport:
    """The whole sweep: trials (here, or in `workers` processes), then the honest final scores."""
    cancel = cancel or threading.Event()
    base = sweep_base(base)
    study_name = sweep.study or new_study_name()
    check_writable(results_dir)
    study = open_study(sweep, base, results_dir, study_name)  # creates it, and its settings, before any worker
    if sweep.workers == 1:
        worker = Worker(study, sweep, base, models_dir=models_dir, results_dir=results_dir, report=report,
                        cancel=cancel)
        worker.run(sweep.trials, time.time() + sweep.timeout if sweep.timeout else None)
        session = worker.session  # its data are prepared; with no trial running it reports every event as is
    else:
        run_workers(sweep, base, study_name, results_dir=results_dir, models_dir=models_dir, report=report,
                    cancel=cancel)
        session = Session(report, models_dir=models_dir, results_dir=results_dir)
    if cancel.is_set():
        raise Cancelled()
    return finish(session, sweep, base, study, cancel=cancel)
