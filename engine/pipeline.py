"""The notebook's workflow end to end, as a Session that both the TUI and the CLI drive.

A Session remembers each step's result under the config fields that step depends on, so the user's loop
(edit LR → train → compare) reruns only training, and changing the feature set reruns only the features step.
Every step reports a StageDone event; the run reports progress, then RunFinished / RunFailed / RunCancelled.
"""

from __future__ import annotations

import pickle
import threading
import time
from dataclasses import asdict, dataclass, fields, replace
from functools import cached_property
from datetime import datetime
from pathlib import Path

import numpy as np

from engine import clean as cleaning, features, labels, load, merge, split
from engine.audit import audit_features
from engine.clean import CleanData
from engine.baselines import SAVED_BASELINES
from engine.config import FEATURE_GROUPS, FEATURE_SETS, SETTINGS, STEPS, RunConfig
from engine.errors import Cancelled, ConfigError, StorageError, VggtabError
from engine.events import (DatasetSummarised, DatasetSummary, LRFinderReady, Reporter, RunCancelled, RunFailed,
                           RunFinished, RunRecord, StageDone, ignore)
from engine.text import interval_text, name_list
from engine.warmup import is_importing, is_warm, wait_for_scikit_learn, warm_up


@dataclass(frozen=True)
class Prepared:
    summary: DatasetSummary
    keys: np.ndarray
    classes: tuple[str, ...]
    targets: np.ndarray  # class index per row, or a 0/1 matrix for multi-label
    train_idx: np.ndarray
    valid_idx: np.ndarray
    split_id: str
    x_train: np.ndarray
    x_valid: np.ndarray
    fitted_transform: object  # a features.FeatureTransform, or its pickle (bytes) as kept in the disk cache
    feature_columns: tuple[str, ...]
    key_names: tuple[str, ...]

    @cached_property
    def transform(self) -> features.FeatureTransform:
        """Unpickled on first use: a launch from the cache needs no scikit-learn until a model is saved."""
        if isinstance(self.fitted_transform, bytes):
            return pickle.loads(self.fitted_transform)
        return self.fitted_transform

    def for_cache(self) -> Prepared:
        return replace(self, fitted_transform=pickle.dumps(self.transform, protocol=pickle.HIGHEST_PROTOCOL))

    @property
    def multi_label(self) -> bool:
        return self.targets.ndim == 2

    @property
    def y_train(self) -> np.ndarray:
        return self.targets[self.train_idx]

    @property
    def y_valid(self) -> np.ndarray:
        return self.targets[self.valid_idx]


def audited_prefixes(config: RunConfig) -> tuple[str, ...]:
    """Every known group is audited whatever the feature set, so all feature sets share rows and split."""
    return tuple(sorted(set(FEATURE_GROUPS.values()) | set(config.prefixes)))


def step_key(config: RunConfig, step: str) -> tuple:
    """What a cached step's result depends on: the settings each declares for it or an earlier step (its
    `step` in engine.config), and the audited column groups."""
    steps = STEPS[:STEPS.index(step) + 1]
    return (audited_prefixes(config),) + tuple(getattr(config, s.name) for s in SETTINGS if s.step in steps)


def data_key(config: RunConfig) -> tuple:
    return step_key(config, "data")


def input_identity(config: RunConfig, cache_dir=None) -> tuple[str, str]:
    """Both files' content fingerprints: an edit that keeps a file's size and mtime still changes them."""
    return load.fingerprint(config.embeddings, cache_dir), load.fingerprint(config.tabular, cache_dir)


def features_key(config: RunConfig) -> tuple:
    return step_key(config, "features")


def model_key(config: RunConfig) -> tuple:
    return step_key(config, "model")


class Session:
    def __init__(self, report: Reporter = ignore, *, models_dir: str | Path = "models",
                 results_dir: str | Path = "results", cache_dir: str | Path | None = None):
        self.report = report
        self.models_dir, self.results_dir = Path(models_dir), Path(results_dir)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._clean: dict[tuple, CleanData] = {}
        self._prepared: dict[tuple, Prepared] = {}
        self._lr: dict[tuple, LRFinderReady] = {}
        self._lock = threading.Lock()  # one step at a time: the caches are shared by UI workers

    # -- data ---------------------------------------------------------------------------------------------
    def _wait_for_imports(self, *, only_scikit_learn: bool = False) -> None:
        """Import scikit-learn (and fastai and torch), or wait for the background warm-up doing it: a stage of
        its own. The split needs only scikit-learn, so the features step can run while fastai still imports."""
        if is_warm():
            return
        started = time.perf_counter()
        if only_scikit_learn:
            wait_for_scikit_learn()
            self._stage("imports", started, "scikit-learn")
        else:
            warm_up()
            self._stage("imports", started, "fastai and torch")

    def _stage(self, stage: str, started: float, detail: str) -> None:
        self.report(StageDone(stage=stage, seconds=time.perf_counter() - started, detail=detail))

    def _load(self, path: str, role: str) -> load.Table:
        started = time.perf_counter()
        # While the warm-up thread imports (one core, ~4.5 s), a parse on both cores only slows both down.
        table = load.load_table(path, cache_dir=self.cache_dir, parse_threads=not is_importing())
        source = "cache" if table.from_cache else "CSV" if str(path).lower().endswith(".csv") else "file"
        self._stage("load", started, f"{role}: {len(table.frame):,} rows × {table.frame.shape[1]:,} columns "
                                     f"from {source}")
        return table

    def clean_data(self, config: RunConfig) -> CleanData:
        key = data_key(config) + input_identity(config, self.cache_dir)
        if key not in self._clean:
            self._clean = {key: self._cached_clean(config, key)}  # keep one dataset in memory, not every one seen
        return self._clean[key]

    def _cached_clean(self, config: RunConfig, key: tuple) -> CleanData:
        started = time.perf_counter()
        cache = cleaning.cache_file(self.cache_dir, (config.embeddings, config.tabular), key)
        clean = cleaning.read_cache(cache)
        if clean is not None:
            self._stage("load", started, f"merged, audited and labelled rows from cache: "
                                         f"{len(clean.labelled.frame):,} rows × {clean.labelled.frame.shape[1]:,} "
                                         f"columns")
            return clean
        clean = self._build_clean(config)
        cleaning.write_cache(clean, cache)
        return clean

    def _build_clean(self, config: RunConfig) -> CleanData:
        merged = self._merge(config)
        merge_facts = cleaning.MergeFacts.of(merged)
        started = time.perf_counter()
        prefixes = audited_prefixes(config)
        columns = [c for c in merged.frame.columns if c.startswith(prefixes)]
        ignored = [c for c in merged.frame.columns if c not in ("fname", "labels") and not c.startswith(prefixes)]
        audit = audit_features(merged.frame, columns, key="fname", policy=config.bad_rows)
        del merged  # at 50,000 clips a 0.5 GB table: free it before the label filter's copy
        verb = "dropped" if config.bad_rows == "drop" else "to impute"
        self._stage("audit", started, f"{len(audit.bad_rows)} rows with NaN/inf {verb}; "
                                      f"{len(audit.constant_columns)} constant columns")
        started = time.perf_counter()
        labelled = labels.filter_labels(audit.frame, mode=config.label_mode)
        self._stage("labels", started, f"{len(labelled.frame):,} rows kept ({config.label_mode}-label), "
                                       f"{len(labelled.classes)} classes")
        return cleaning.from_steps(merge_facts, audit, labelled, ignored)

    def _merge(self, config: RunConfig) -> merge.Merged:
        """Both files loaded and joined; the loaded tables are freed on return, the merged one is a copy."""
        embeddings = self._load(config.embeddings, "embeddings")
        tabular = self._load(config.tabular, "tabular")
        started = time.perf_counter()
        merged = merge.merge_tables(embeddings.frame, tabular.frame, embeddings_path=config.embeddings,
                                    tabular_path=config.tabular, key=config.key,
                                    normalise_keys=config.key_normalise == "on")
        self._stage("merge", started, f"{merged.matched:,} matched; {merged.unmatched_embeddings:,} embeddings "
                                      f"and {merged.unmatched_tabular:,} tabular rows unmatched")
        return merged

    def prepare(self, config: RunConfig, *, announce: bool = True, wait_for_imports: bool = True) -> Prepared:
        """Load → merge → audit → labels → split → features, each step cached; reports DatasetSummarised
        (with announce=False only when the data was not prepared before, so a run prints its summary once).
        Then waits for fastai and torch, which every later step needs, unless `wait_for_imports` is False."""
        with self._lock:
            key = features_key(config) + input_identity(config, self.cache_dir)
            announce = announce or key not in self._prepared
            if key not in self._prepared:
                # Keep the prepared feature sets of this dataset only: each holds a copy of the features.
                same_data = len(data_key(config))
                self._prepared = {k: v for k, v in self._prepared.items() if k[:same_data] == key[:same_data]}
                self._prepared[key] = self._cached_prepared(config, key)
            prepared = self._prepared[key]
        if announce:
            self.report(DatasetSummarised(prepared.summary))
        if wait_for_imports:  # after the summary: every user of prepared data goes on to fastai, torch or models
            self._wait_for_imports()
        return prepared

    def _cached_prepared(self, config: RunConfig, key: tuple) -> Prepared:
        started = time.perf_counter()
        layout = tuple(f.name for f in fields(Prepared)) + tuple(f.name for f in fields(DatasetSummary))
        cache = cleaning.prepared_cache_file(self.cache_dir, (config.embeddings, config.tabular), (layout, key))
        prepared = cleaning.read_prepared(cache)
        if prepared is not None:
            # The same files, perhaps named by another path this time.
            summary = replace(prepared.summary, embeddings_path=config.embeddings, tabular_path=config.tabular)
            prepared = replace(prepared, summary=summary)
            self._stage("load", started, f"split and model inputs from cache: {len(prepared.x_train):,} train × "
                                         f"{prepared.x_train.shape[1]:,} inputs")
            return prepared
        prepared = self._build_prepared(config)
        cleaning.write_prepared(prepared.for_cache(), cache)
        return prepared

    def _build_prepared(self, config: RunConfig) -> Prepared:
        clean = self.clean_data(config)
        frame = clean.labelled.frame
        classes = clean.labelled.classes
        keys = frame["fname"].to_numpy(dtype=str)
        row_labels = [labels.split_labels(text) for text in frame["labels"]]
        index = {name: i for i, name in enumerate(classes)}
        if config.label_mode == "multi":
            targets = np.zeros((len(frame), len(classes)), np.float32)
            for row, names in enumerate(row_labels):
                targets[row, [index[n] for n in names]] = 1.0
            stratify_on = row_labels
        else:
            targets = np.array([index[names[0]] for names in row_labels], np.int64)
            stratify_on = np.array([names[0] for names in row_labels])

        self._wait_for_imports(only_scikit_learn=True)
        started = time.perf_counter()
        chosen = split.nested_split(stratify_on, test_pct=config.test_pct, score_on=config.score_on,
                                    valid_pct=config.valid_pct, seed=config.split_seed, fold=config.fold,
                                    n_folds=config.n_folds)
        split_note = f"; {'; '.join(chosen.notes)}" if chosen.notes else ""
        scored = "test" if config.score_on == "test" else "valid"
        held_out = (f", {len(frame) - len(chosen.train_idx) - len(chosen.valid_idx):,} test set aside"
                    if config.test_pct and config.score_on == "valid" else "")
        self._stage("split", started, f"{len(chosen.train_idx):,} train / {len(chosen.valid_idx):,} {scored}"
                                      f"{held_out}{split_note}")

        started = time.perf_counter()
        columns = features.select_columns(clean.feature_columns, present_prefixes(config, clean.feature_columns))
        first_label = np.array([index[names[0]] for names in row_labels], np.int64)
        transform = features.FeatureTransform(columns, impute=config.bad_rows == "impute",
                                              select_k=config.select_k, select_method=config.select_method,
                                              pca=config.pca, seed=config.split_seed)
        x_train = transform.fit_transform(frame, first_label[chosen.train_idx], rows=chosen.train_idx)
        x_valid = transform.transform(frame, rows=chosen.valid_idx)
        self._stage("features", started, f"{config.features}: {len(columns):,} columns → "
                                         f"{x_train.shape[1]:,} model inputs")
        summary = self._summary(config, clean, chosen, columns, x_train.shape[1], transform.notes_)
        return Prepared(summary=summary, keys=keys, classes=classes, targets=targets,
                        train_idx=np.asarray(chosen.train_idx), valid_idx=np.asarray(chosen.valid_idx),
                        split_id=split.split_id(keys[chosen.valid_idx]), x_train=x_train, x_valid=x_valid,
                        fitted_transform=transform, feature_columns=tuple(columns),
                        key_names=clean.matching.source_keys)

    def _summary(self, config: RunConfig, clean: CleanData, chosen, columns, n_inputs: int,
                 feature_notes: tuple[str, ...]) -> DatasetSummary:
        labelled = clean.labelled
        dropped = clean.bad_rows if config.bad_rows == "drop" else ()
        imputed = clean.bad_rows if config.bad_rows == "impute" else ()
        empty = tuple((k, "no labels") for k in labelled.dropped_empty)
        matching = asdict(clean.matching)
        del matching["source_keys"]
        return DatasetSummary(
            embeddings_path=config.embeddings, tabular_path=config.tabular, **matching,
            dropped=dropped + empty, imputed=imputed,
            warnings=clean.warnings + tuple(labelled.warnings) + tuple(chosen.notes)
            + ignored_note(clean.ignored_columns),
            label_counts=clean.label_counts, label_mode=config.label_mode,
            kept_rows=len(labelled.frame), n_classes=len(labelled.classes),
            class_sizes=dict(labelled.class_sizes), feature_groups=features.group_counts(clean.feature_columns),
            feature_set=config.features, n_features=n_inputs, feature_notes=feature_notes,
            train_rows=len(chosen.train_idx), valid_rows=len(chosen.valid_idx))

    # -- model --------------------------------------------------------------------------------------------
    def _learner(self, config: RunConfig, prepared: Prepared):
        from engine import model
        model.set_threads(config.threads)
        return model.build_learner(
            prepared.x_train, prepared.y_train, prepared.x_valid, prepared.y_valid,
            n_classes=len(prepared.classes), layers=config.layers, ps=config.ps, wd=config.wd, bs=config.bs,
            seed=config.seed, sampling=config.sampling, multi_label=prepared.multi_label,
            label_smoothing=config.label_smoothing,
            precision=model.resolve_precision(config.precision))

    def find_lr(self, config: RunConfig) -> LRFinderReady:
        """fastai's LR finder on this config's data and model; cached until either changes."""
        from engine.lr_find import find_lr
        prepared = self.prepare(config, announce=False)
        key = model_key(config)
        if key not in self._lr:
            if config.model != "mlp":
                raise ConfigError(f"The LR finder applies to the neural network, not to model={config.model}.")
            check_batch_size(config, prepared)
            started = time.perf_counter()
            self._lr[key] = find_lr(self._learner(config, prepared))
            self._stage("lr_find", started, ", ".join(f"{k} {v:.2g}" for k, v in self._lr[key].suggestions.items()))
        self.report(self._lr[key])
        return self._lr[key]

    def train(self, config: RunConfig, cancel: threading.Event | None = None) -> RunRecord:
        """One full run; reports progress and exactly one of RunFinished / RunFailed / RunCancelled.

        A run that fails or is cancelled is recorded in the history before its event is reported; an
        unexpected exception (a bug) is reported and recorded like any failure, then re-raised.
        """
        from engine.preflight import check_before_fit
        run = RunStarted(config)
        try:
            if config.model != "mlp":
                from engine.baselines import check_config
                check_config(config)
            prepared = self.prepare(config)
            # Fail in seconds, not after the last epoch, when the results cannot be saved or recorded.
            saves_model = config.model == "mlp" or config.model in SAVED_BASELINES
            check_before_fit(config, prepared.x_train.shape[1], len(prepared.classes), results_dir=self.results_dir,
                             models_dir=self.models_dir if saves_model else None)
            if config.model == "mlp":
                check_batch_size(config, prepared)
                from engine.model import resolve_precision
                config = run.config = self._resolve_lr(config).with_(precision=resolve_precision(config.precision))
                record, evaluation = self._fit_and_save(config, prepared, run, cancel)
            else:
                record, evaluation = self._fit_baseline_and_save(config, prepared, run, cancel)
        except Cancelled as stop:
            epochs_done = stop.args[0] if stop.args else 0
            stopped = (f"after {epochs_done} of {config.epochs} epochs" if config.model == "mlp"
                       else f"before the {config.model} fit finished")
            why = cancel.reason if isinstance(cancel, StopRequest) and cancel.reason else "Cancelled"
            record = run.record("cancelled", history=stop.args[1] if len(stop.args) > 1 else (),
                                message=f"{why} {stopped}.")
            self.report(RunCancelled(epochs_done=epochs_done, record=self._record_unfinished(record)))
            raise
        except VggtabError as error:
            self._fail(run, str(error))
            raise
        except Exception as error:
            self._fail(run, unexpected_error_message(error))
            raise
        self.report(RunFinished(record=record, evaluation=evaluation))
        return record

    def _resolve_lr(self, config: RunConfig) -> RunConfig:
        """The config with its LR chosen once (the finder's suggestion for 'auto'): what the run records."""
        if config.lr is not None:
            return config if config.lr_source else config.with_(lr_source="user")
        from engine.lr_find import pick_lr
        lr, source = pick_lr(self.find_lr(config), config.lr_suggestion)
        return config.with_(lr=lr, lr_source=source)

    def _fail(self, run: RunStarted, message: str) -> None:
        record = self._record_unfinished(run.record("failed", message=message))
        self.report(RunFailed(message=message, record=record))

    def _record_unfinished(self, record: RunRecord) -> RunRecord | None:
        """Append a failed or cancelled run; None when the history cannot be written (its event is still due)."""
        try:
            self._append(record)
        except StorageError:
            return None
        return record

    def _fit_and_save(self, config: RunConfig, prepared: Prepared, run: RunStarted,
                      cancel: threading.Event | None) -> tuple[RunRecord, object]:
        from engine import model
        from engine.store.models import export_model
        from engine.store.names import run_suffix
        from engine.train import fit

        check_finite_inputs(prepared)
        learner = self._learner(config, prepared)
        started = time.perf_counter()
        history = fit(learner, epochs=config.epochs, lr=config.lr, report=self.report, cancel=cancel)
        train_seconds = time.perf_counter() - started
        self._stage("fit", started, f"{config.epochs} epochs at LR {config.lr:.3g}")

        started = time.perf_counter()
        valid_probs = model.predict_proba(learner.model, prepared.x_valid, multi_label=prepared.multi_label)
        train_probs = model.predict_proba(learner.model, prepared.x_train, multi_label=prepared.multi_label)
        evaluation = self._evaluate(prepared, valid_probs, train_probs, started, config.model, history=history,
                                    lr=config.lr)

        started = time.perf_counter()
        learner.vggtab = self._model_info(config, prepared)
        model_path = export_model(learner, self._model_path(config, run), fallback_suffix=run_suffix(run.run_id))
        record = self._save_run(prepared, run, evaluation, valid_probs, started,
                                history=history,
                                train_seconds=train_seconds, num_params=model.count_params(learner),
                                model_path=str(model_path))
        return record, evaluation

    def _fit_baseline_and_save(self, config: RunConfig, prepared: Prepared, run: RunStarted,
                               cancel: threading.Event | None) -> tuple[RunRecord, object]:
        """A scikit-learn baseline on the same inputs, saved to models/ unless it is a random forest (see
        baselines.SAVED_BASELINES)."""
        from engine import baselines
        from engine.store.models import save_baseline
        from engine.store.names import run_suffix

        check_finite_inputs(prepared)
        started = time.perf_counter()
        fitted = baselines.fit_baseline(config.model, prepared.x_train, prepared.y_train, seed=config.seed,
                                        threads=config.threads, report=self.report, cancel=cancel)
        train_seconds = time.perf_counter() - started
        self._stage("fit", started, f"{baselines.BASELINE_NAMES[config.model]} on "
                                    f"{prepared.x_train.shape[1]:,} inputs")

        started = time.perf_counter()
        n_classes = len(prepared.classes)
        valid_probs = baselines.predict_proba(fitted.estimator, prepared.x_valid, n_classes)
        train_probs = baselines.predict_proba(fitted.estimator, prepared.x_train, n_classes)
        evaluation = self._evaluate(prepared, valid_probs, train_probs, started, config.model)
        evaluation = replace(evaluation, diagnosis=list(fitted.notes) + evaluation.diagnosis)

        started = time.perf_counter()
        model_path = ""
        if config.model in baselines.SAVED_BASELINES:
            saved = baselines.SavedBaseline(fitted.estimator, self._model_info(config, prepared))
            model_path = str(save_baseline(saved, self._model_path(config, run),
                                           fallback_suffix=run_suffix(run.run_id)))
        record = self._save_run(prepared, run, evaluation, valid_probs, started,
                                train_seconds=train_seconds, num_params=baselines.count_params(fitted.estimator),
                                model_path=model_path)
        return record, evaluation

    def _model_path(self, config: RunConfig, run: RunStarted) -> Path:
        from engine.store.names import safe_name
        return self.models_dir / f"{safe_name(config.approach)}_{run.stamp}.pkl"

    @staticmethod
    def _model_info(config: RunConfig, prepared: Prepared):
        """What a saved model needs to rebuild its inputs in `predict`."""
        from engine import model
        return model.ModelInfo(classes=prepared.classes, feature_columns=prepared.feature_columns,
                               transform=prepared.transform, label_mode=config.label_mode,
                               key_names=prepared.key_names, config=config.to_dict())

    def _evaluate(self, prepared: Prepared, valid_probs: np.ndarray, train_probs: np.ndarray, started: float,
                  model: str, history=(), lr: float | None = None):
        from engine.evaluate import evaluate
        evaluation = evaluate(valid_probs, prepared.y_valid, train_probs, prepared.y_train,
                              classes=prepared.classes, valid_keys=prepared.keys[prepared.valid_idx], model=model,
                              history=history, lr=lr)
        self._stage("evaluate", started, f"valid accuracy {evaluation.accuracy:.1%} "
                                         f"[{interval_text(evaluation.ci_low, evaluation.ci_high)}]")
        return evaluation

    def _save_run(self, prepared: Prepared, run: RunStarted, evaluation, valid_probs: np.ndarray, started: float,
                  *, model_path: str = "", **fields) -> RunRecord:
        """Predictions, the run's CSVs and its history line; `started` times the save stage."""
        from engine.store.predictions import save_predictions
        from engine.store.tables import write_run_csvs
        save_predictions(self.results_dir, run.run_id, prepared.keys[prepared.valid_idx], prepared.classes,
                         valid_probs, prepared.y_valid)
        metrics = evaluation.metrics() | dataset_metrics(prepared)
        record = run.record("finished", metrics=metrics, model_path=model_path, split_id=prepared.split_id,
                            per_class_accuracy=evaluation.per_class_accuracy, **fields)
        results_csv, _ = write_run_csvs(self.results_dir, record)
        record = replace(record, results_csv=str(results_csv))
        saved = f"model {model_path}" if model_path else "model not saved (refit from the recorded config)"
        self._stage("save", started, f"{saved}; results {results_csv}")
        self._append(record)  # last: once the run is in the history, nothing here can fail it
        return record

    def _append(self, record: RunRecord) -> None:
        from engine.store.history import append_record
        append_record(self.results_dir, record)


class StopRequest(threading.Event):
    """A cancel flag that says why the run is stopped (a sweep's pruner, say): the record keeps the reason."""

    reason = ""

    def stop(self, reason: str) -> None:
        self.reason = reason
        self.set()


class RunStarted:
    """What is known about a run from its start: id, timestamps, and its config (LR and precision once
    resolved)."""

    def __init__(self, config: RunConfig):
        from engine.store.names import TIMESTAMP_FORMAT, new_run_id
        now = datetime.now()
        self.config, self.run_id = config, new_run_id()
        self.created, self.stamp = now.isoformat(timespec="seconds"), now.strftime(TIMESTAMP_FORMAT)

    def record(self, status: str, **fields) -> RunRecord:
        return RunRecord(run_id=self.run_id, created=self.created, status=status, approach=self.config.approach,
                         config=self.config.to_dict(),
                         **{k: tuple(v) if k == "history" else v for k, v in fields.items()})


def present_prefixes(config: RunConfig, columns: tuple[str, ...]) -> tuple[str, ...]:
    """A named set ('both', 'tabular') takes the groups the files have; explicit prefixes must all match."""
    if config.features not in FEATURE_SETS:
        return config.prefixes
    return tuple(p for p in config.prefixes if any(c.startswith(p) for c in columns)) or config.prefixes


def ignored_note(columns: tuple[str, ...]) -> tuple[str, ...]:
    if not columns:
        return ()
    return (f"Columns not used as features (no known prefix): {name_list(columns)}.",)


def dataset_metrics(prepared: Prepared) -> dict:
    columns = prepared.feature_columns
    return dict(num_classes=len(prepared.classes), train_samples=len(prepared.train_idx),
                val_samples=len(prepared.valid_idx),
                vggish_features=sum(c.startswith(FEATURE_GROUPS["emb"]) for c in columns),
                tabular_features=sum(not c.startswith(FEATURE_GROUPS["emb"]) for c in columns),
                n_features=int(prepared.x_train.shape[1]))


def unexpected_error_message(error: Exception) -> str:
    return f"Unexpected {type(error).__name__}: {error}"


def check_finite_inputs(prepared: Prepared) -> None:
    """Defence in depth behind the audit, before any fit: no NaN/inf feature may reach a model."""
    from engine import train
    train.check_finite_inputs(prepared.x_train, prepared.keys[prepared.train_idx], "train")
    train.check_finite_inputs(prepared.x_valid, prepared.keys[prepared.valid_idx], "valid")


def check_batch_size(config: RunConfig, prepared: Prepared) -> None:
    if config.bs > len(prepared.train_idx):
        raise ConfigError(f"Batch size {config.bs} is larger than the {len(prepared.train_idx)} train rows.",
                          hint=f"Use a batch size of at most {len(prepared.train_idx)} (64 is the default).")
