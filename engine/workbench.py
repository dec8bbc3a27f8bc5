"""The engine's one door for front ends: everything the app and the CLI may ask of the engine.

A front end builds one `Workbench` with a reporter (any callable taking an `engine.events` event) and calls
these methods, from any thread; progress comes back as events, results as return values, user and environment
errors as `engine.errors.VggtabError`. Besides this module a front end imports only `engine.events`,
`engine.config` and `engine.errors`. Importing it is cheap: numpy, scikit-learn, fastai and torch are imported on
first use (or by `warm_up` in a background thread while the CSVs load).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from engine.config import DEMO_DIR, RunConfig, SweepConfig
from engine.events import DatasetSummary, LRFinderReady, Reporter, RunRecord, ignore
from engine.text import interval_text  # noqa: F401  (the engine's wording of an interval, for front ends too)


@dataclass(frozen=True)
class Ablation:
    records: tuple[RunRecord, ...]  # the runs that finished
    comparison: object | None  # engine.approaches.Comparison of both vs embeddings, when both finished


@dataclass(frozen=True)
class Submission:
    prediction: object  # engine.predict.Prediction
    path: Path
    run: RunRecord | None  # the run whose model predicted, when named by run id or approach


def warm_up() -> None:
    """Import scikit-learn, fastai and torch now (~4.5 s); call it in a thread while the data loads."""
    from engine.warmup import warm_up as import_all
    import_all()


def start_warm_up() -> None:
    threading.Thread(target=warm_up, daemon=True, name="vggtab-warm-up").start()


def generate_demo(out: str | Path = DEMO_DIR, *, seed: int = 0, clips: int = 4970):
    """Write the built-in synthetic demo data (train and test files) to `out`, `clips` tabular clips and the
    embeddings file in the default demo's proportion (any size: written in chunks); returns their paths."""
    from engine.demo import generate_demo as write_demo, scaled_counts
    return write_demo(Path(out), seed=seed, **scaled_counts(clips))


def ablation_configs(config: RunConfig, *, groups: bool = False) -> list[RunConfig]:
    from engine.approaches import ablation_configs as configs
    return configs(config, groups=groups)


def default_ensemble_members(records) -> list[str]:
    """Run ids of the latest embeddings-only and tabular-only pair on one split, or []."""
    from engine.approaches import default_ensemble_members as members
    return members(records)


def is_ensemble(record: RunRecord) -> bool:
    from engine.approaches import is_ensemble as check
    return check(record)


def can_predict(record: RunRecord) -> bool:
    """A finished run with a saved model, or an ensemble (its members' models are averaged)."""
    return record.status == "finished" and bool(record.model_path or is_ensemble(record))


def format_p(p: float) -> str:
    from engine.stats import format_p as text
    return text(p)


class Workbench:
    """One dataset session for a front end: caches what was prepared, writes runs under `results_dir` and
    models under `models_dir`."""

    def __init__(self, report: Reporter = ignore, *, models_dir: str | Path = "models",
                 results_dir: str | Path = "results", cache_dir: str | Path | None = None):
        self.report = report
        self.models_dir, self.results_dir = Path(models_dir), Path(results_dir)
        self._cache_dir = cache_dir
        self._session = None
        self._session_lock = threading.Lock()

    @property
    def session(self):
        """The pipeline session, made on first use (importing it takes a moment)."""
        with self._session_lock:
            if self._session is None:
                from engine.pipeline import Session
                self._session = Session(self.report, models_dir=self.models_dir, results_dir=self.results_dir,
                                        cache_dir=self._cache_dir)
            return self._session

    # -- one run --------------------------------------------------------------------------------------
    def prepare(self, config: RunConfig) -> DatasetSummary:
        """Load, merge, audit, label, split and build features; reports DatasetSummarised. Returns without waiting
        for the warm-up's fastai and torch: the data are ready, and the next run or LR finder waits for them."""
        return self.session.prepare(config, wait_for_imports=False).summary

    def find_lr(self, config: RunConfig) -> LRFinderReady:
        return self.session.find_lr(config)

    def train(self, config: RunConfig, cancel: threading.Event | None = None) -> RunRecord:
        """One full run, recorded in the history whatever its end; raises Cancelled or VggtabError."""
        return self.session.train(config, cancel=cancel)

    # -- several runs ---------------------------------------------------------------------------------
    def run_queue(self, configs, cancel: threading.Event | None = None) -> list[RunRecord]:
        from engine.approaches import run_queue
        return run_queue(self.session, configs, cancel=cancel)

    def ablate(self, config: RunConfig, *, groups: bool = False,
               cancel: threading.Event | None = None) -> Ablation:
        """embeddings-only, tabular-only and both on one split, then the paired test of both vs embeddings."""
        from engine.approaches import ablation_comparison
        records = self.run_queue(ablation_configs(config, groups=groups), cancel)
        comparison = None if cancel is not None and cancel.is_set() else ablation_comparison(self.results_dir,
                                                                                                 records)
        return Ablation(records=tuple(records), comparison=comparison)

    def kfold(self, config: RunConfig, *, n_folds: int, cancel: threading.Event | None = None):
        from engine.approaches import kfold
        return kfold(self.session, config, n_folds=n_folds, cancel=cancel)

    # -- search and advice ----------------------------------------------------------------------------
    def sweep(self, base: RunConfig, sweep: SweepConfig, cancel: threading.Event | None = None):
        """An Optuna search over the run settings on `base`'s data, with a test split no trial sees; reports
        TrialEnded per trial and returns engine.sweep.SweepReport (winner, top-N ensemble and default on test)."""
        from engine.sweep import run_sweep
        return run_sweep(base, sweep, results_dir=self.results_dir, models_dir=self.models_dir, report=self.report,
                         cancel=cancel)

    def check_advice(self, run: RunRecord | str, cancel: threading.Event | None = None):
        """Run each change a finished run's diagnosis suggests on its split, each judged against the run by the
        paired test; returns engine.advice.AdviceCheck (empty for a run diagnosed healthy)."""
        from engine.advice import check_advice
        record = run if isinstance(run, RunRecord) else self.find_run(run)
        return check_advice(self.session, record, cancel)

    # -- recorded runs --------------------------------------------------------------------------------
    def history(self):
        """Every recorded run (`records`) and what could not be read (`warnings`)."""
        from engine.store.history import load_history
        return load_history(self.results_dir)

    def find_run(self, wanted: str) -> RunRecord:
        """A finished run by id, a unique start of one, or approach name (its latest holdout run)."""
        from engine.approaches import find_run
        return find_run(self.history().records, wanted)

    def compare(self, run_a: str, run_b: str):
        """The paired test of two runs on their shared valid clips (engine.approaches.Comparison)."""
        from engine.approaches import compare
        return compare(self.results_dir, run_a, run_b)

    def ensemble(self, runs, *, name: str | None = None) -> RunRecord:
        from engine.approaches import ensemble
        return ensemble(self.results_dir, runs, name=name)

    def rerun(self, record: RunRecord, cancel: threading.Event | None = None, *, reuse=()) -> RunRecord:
        """A recorded run again with its exact config; an ensemble re-runs its members (except the run ids in
        `reuse`, taken as they are) and averages them anew."""
        from engine.approaches import rerun
        return rerun(self.session, record, reuse=reuse, cancel=cancel)

    def importance(self, run: str, *, allow_outside: bool = False) -> tuple[RunRecord, dict[str, float]]:
        """Permutation importance of each feature group of a saved run on its valid clips."""
        from engine.approaches import group_importance
        record = self.find_run(run)
        return record, group_importance(self.session, record, allow_outside=allow_outside)

    def export(self, records, path: str | Path, *, force: bool = False) -> Path:
        """The results table as CSV, or Markdown when `path` ends in .md; an earlier exported table at `path` is
        replaced only with `force`, and nothing else ever is."""
        from engine.store.export import export_table
        path = Path(path)
        return export_table(records, path, "markdown" if path.suffix.lower() == ".md" else "csv", force=force)

    def predict(self, run: str, embeddings: str, tabular: str, *, key: str | None = None,
                out: str | Path | None = None, force: bool = False, allow_outside: bool = False) -> Submission:
        """Class probabilities for new clips from a run's saved model, written as a submission CSV.

        `run` is a run id, an approach name or a model file; an ensemble's probabilities are the mean of its
        members' on the clips every member kept. `out` defaults to results_dir/submission_<approach>.csv, which
        replaces the approach's earlier submission. A file named by `out` is replaced only if it is an earlier
        submission and `force` is set."""
        from engine.predict import check_submission_target, predict_files, predict_run, write_submission
        from engine.store.names import safe_name
        model_file = Path(run).suffix == ".pkl" or Path(run).is_file()
        record = None if model_file else self.find_run(run)
        name = Path(run).stem if model_file else record.approach
        force = force or out is None  # the default name is the app's own: it replaces the approach's last one
        out = out or self.results_dir / f"submission_{safe_name(name)}.csv"
        sources = (run if model_file else record.model_path, embeddings, tabular)
        check_submission_target(out, force=force, sources=tuple(s for s in sources if s))  # before the work
        if model_file:
            prediction = predict_files(run, embeddings, tabular, key=key, models_dir=self.models_dir,
                                       allow_outside=allow_outside)
        else:
            prediction = predict_run(self.results_dir, record, embeddings, tabular, key=key,
                                     models_dir=self.models_dir, allow_outside=allow_outside)
        path = write_submission(prediction, out, force=force)
        return Submission(prediction=prediction, path=path, run=record)
