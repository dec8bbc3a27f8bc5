"""Approaches and an honest comparison: ablations, queues, ensembles, paired tests, k-fold and group importance.

Every function here is safe to call from a UI worker thread: progress goes to the Session's reporter as the
usual events, and long ones take a `threading.Event` that cancels them at the next batch.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Iterable

import numpy as np

from engine import stats
from engine.config import FEATURE_GROUPS, RunConfig
from engine.errors import Cancelled, ConfigError, StorageError, VggtabError
from engine.evaluate import correct_per_clip, evaluate
from engine.events import RunRecord, StageDone
from engine.store.history import append_record, load_history
from engine.store.models import load_model
from engine.store.names import new_run_id
from engine.store.predictions import load_predictions, save_predictions
from engine.store.tables import write_run_csvs
from engine.text import name_list

ABLATION_SETS = ("embeddings", "tabular", "both")
ENSEMBLE_MODEL = "ensemble"
IMPORTANCE_REPEATS = 5
PCA_GROUP = "pca"  # PCA components (pca0, pca1 …) mix the tabular groups: permuted as one group


# ----------------------------------------------------------------------------------------- ablation

def ablation_configs(base: RunConfig, *, groups: bool = False) -> list[RunConfig]:
    """embeddings-only, tabular-only and both (with `groups`, also emb, stft, mel, cqt alone), all on the base
    config's split and seeds. A named base keeps its name as a prefix so the rows stay apart."""
    feature_sets = ABLATION_SETS + (tuple(FEATURE_GROUPS) if groups else ())
    return [base.with_(features=features, name=f"{base.name} {features}" if base.name else "")
            for features in feature_sets]


def run_queue(session, configs, cancel: threading.Event | None = None) -> list[RunRecord]:
    """Train `configs` one after another; returns the records of the runs that finished.

    A run that fails is recorded and reported (RunFailed) by the Session and the queue goes on to the next;
    cancelling stops the current run (recorded as cancelled) and the queue.
    """
    cancel = cancel or threading.Event()
    configs, finished = list(configs), []
    started = time.perf_counter()
    for number, config in enumerate(configs, start=1):
        if cancel.is_set():
            break
        session.report(StageDone(stage="queue", seconds=time.perf_counter() - started,
                                 detail=f"run {number} of {len(configs)}: {config.approach}"))
        try:
            finished.append(session.train(config, cancel=cancel))
        except Cancelled:
            break
        except VggtabError:
            continue
    return finished


# ------------------------------------------------------------------------------------ finding runs

def find_run(records, wanted: str) -> RunRecord:
    """A finished run by its id, a unique start of its id, or an approach name: its latest finished holdout run
    (k-fold folds share the approach name but not the split; name them by id)."""
    finished = [r for r in records if r.status == "finished"]
    named = [r for r in finished if r.approach == wanted]
    for match in ([r for r in finished if r.run_id == wanted], [r for r in finished if r.run_id.startswith(wanted)],
                  [r for r in finished if r.short_id == wanted],
                  ([r for r in named if r.config.get("fold") is None] or named)[-1:]):
        if len(match) == 1:
            return match[0]
        if len(match) > 1:
            raise ConfigError(f"{wanted!r} starts {len(match)} run ids: "
                              f"{name_list(r.run_id for r in match)}.", hint="Give more of the run id.")
    unfinished = [r for r in records if wanted in (r.run_id, r.approach)]
    if unfinished:
        raise ConfigError(f"Run {wanted!r} did not finish ({unfinished[-1].status}): it has no predictions.",
                          hint="Pick a finished run from the results table.")
    raise ConfigError(f"No finished run has the id or approach name {wanted!r}.",
                      hint="Pick a run id or approach name from the results table.")


def load_runs(results_dir, wanted) -> list[RunRecord]:
    history = load_history(results_dir)
    return [find_run(history.records, name) for name in wanted]


def run_label(record: RunRecord) -> str:
    return f"{record.approach} ({record.run_id})"


def _check_same_split(runs: list[RunRecord], doing: str) -> None:
    if len({r.run_id for r in runs}) < len(runs):
        raise ConfigError(f"The same run was given twice to {doing}.", hint="Pick different runs.")
    split_ids = {r.split_id for r in runs}
    if len(split_ids) > 1 or "" in split_ids:
        listed = "; ".join(f"{run_label(r)}: split {r.split_id or 'unknown'}" for r in runs)
        raise ConfigError(f"Cannot {doing} runs validated on different clips ({listed}).",
                          hint="Pick runs with the same data, valid_pct, split seed and fold (the split column).")


@dataclass(frozen=True)
class AlignedPredictions:
    keys: np.ndarray
    classes: tuple[str, ...]
    targets: np.ndarray
    probs: tuple[np.ndarray, ...]  # one array per run, rows in `keys` order


def aligned_predictions(results_dir, runs: list[RunRecord]) -> AlignedPredictions:
    """Each run's saved valid probabilities, rows aligned by clip name; refuses runs that disagree on clips,
    classes or labels (same split_id but different data files, say)."""
    saved = [load_predictions(results_dir, r.run_id) for r in runs]
    first, first_run = saved[0], runs[0]
    order = np.argsort(first.keys, kind="stable")
    keys, targets = first.keys[order], first.targets[order]
    probs = [first.probs[order]]
    for run, other in zip(runs[1:], saved[1:]):
        if other.classes != first.classes:
            raise ConfigError(f"{run_label(run)} and {run_label(first_run)} predict different classes.",
                              hint="Combine runs trained on the same data and label mode.")
        other_order = np.argsort(other.keys, kind="stable")
        if not np.array_equal(other.keys[other_order], keys):
            raise ConfigError(f"{run_label(run)} and {run_label(first_run)} were validated on different clips.",
                              hint="Pick runs with the same split.")
        if not np.array_equal(other.targets[other_order], targets):
            raise ConfigError(f"{run_label(run)} and {run_label(first_run)} disagree on the labels of the same "
                              "clips.", hint="Combine runs trained on the same data files.")
        probs.append(other.probs[other_order])
    return AlignedPredictions(keys=keys, classes=first.classes, targets=targets, probs=tuple(probs))


# ----------------------------------------------------------------------------------------- ensemble

def ensemble(results_dir, run_ids, *, name: str | None = None) -> RunRecord:
    """Average the saved valid probabilities of 2+ finished runs on one split, evaluate the average like any
    run, save its predictions and CSVs and append it to the history."""
    run_ids = list(run_ids)
    if len(run_ids) < 2:
        raise ConfigError(f"An ensemble needs at least two runs, got {len(run_ids)}.",
                          hint="Pick two or more finished runs, e.g. embeddings-only and tabular-only.")
    runs = load_runs(results_dir, run_ids)
    _check_same_split(runs, "average")
    aligned = aligned_predictions(results_dir, runs)
    probs = np.mean(aligned.probs, axis=0)
    n_classes = len(aligned.classes)
    # No train predictions are saved: train accuracy is unknown; the majority baseline is the members'.
    evaluation = evaluate(probs, aligned.targets, np.zeros((0, n_classes)), aligned.targets[:0],
                          classes=aligned.classes, valid_keys=aligned.keys)
    metrics = evaluation.metrics() | {
        "train_accuracy": None, "majority_baseline": runs[0].metrics.get("majority_baseline"),
        "num_classes": n_classes, "val_samples": len(aligned.keys)}
    now = datetime.now()
    record = RunRecord(
        run_id=new_run_id(), created=now.isoformat(timespec="seconds"), status="finished",
        approach=name or f"ensemble({' + '.join(r.approach for r in runs)})",
        config={"model": ENSEMBLE_MODEL, "members": [r.run_id for r in runs],
                "features": "+".join(str(r.config.get("features", "")) for r in runs),
                "epochs": None, "lr": None} | same_sweep(runs),
        metrics=metrics, train_seconds=0.0, num_params=sum(r.num_params for r in runs), split_id=runs[0].split_id,
        per_class_accuracy=evaluation.per_class_accuracy)
    save_predictions(results_dir, record.run_id, aligned.keys, aligned.classes, probs, aligned.targets)
    results_csv, _ = write_run_csvs(results_dir, record)
    record = replace(record, results_csv=str(results_csv))
    append_record(results_dir, record)
    return record


def same_sweep(runs: list[RunRecord]) -> dict:
    """{"sweep": name} when every member is a run of one sweep, so the ensemble is listed with it."""
    sweeps = {r.config.get("sweep", "") for r in runs}
    return {"sweep": sweeps.pop()} if len(sweeps) == 1 and "" not in sweeps else {}


def default_ensemble_members(records) -> list[str]:
    """The latest finished embeddings-only and tabular-only MLP runs on one split, or [] if there is no pair."""
    finished = [r for r in records if r.status == "finished" and r.config.get("model") == "mlp"]
    for tabular in reversed([r for r in finished if r.config.get("features") == "tabular"]):
        partners = [r for r in finished if r.config.get("features") == "embeddings" and r.split_id == tabular.split_id]
        if partners:
            return [partners[-1].run_id, tabular.run_id]
    return []


def ensemble_members(results_dir, record: RunRecord) -> list[RunRecord]:
    """The finished runs an ensemble record averaged, as the history of `results_dir` holds them."""
    finished = {r.run_id: r for r in load_history(results_dir).records if r.status == "finished"}
    missing = [run_id for run_id in record.config["members"] if run_id not in finished]
    if missing:
        raise StorageError(f"{run_label(record)} averages runs the history in {results_dir} does not hold as "
                           f"finished: {name_list(missing)}.",
                           hint="Use the results folder the ensemble was made in.")
    return [finished[run_id] for run_id in record.config["members"]]


def rerun(session, record: RunRecord, *, reuse: Iterable[str] = (), cancel: threading.Event | None = None
          ) -> RunRecord:
    """Run a recorded run again with its exact config: a new row in the history.

    An ensemble re-runs each member (recursively: a member may be an ensemble), except the members whose run ids
    are in `reuse`, which it takes as they are, and averages them into a new ensemble row of the same name.
    """
    if not is_ensemble(record):
        return session.train(RunConfig.from_dict(record.config), cancel=cancel)
    reuse = set(reuse)
    members = [member if member.run_id in reuse else rerun(session, member, reuse=reuse, cancel=cancel)
               for member in ensemble_members(session.results_dir, record)]
    started = time.perf_counter()
    again = ensemble(session.results_dir, [m.run_id for m in members], name=record.approach)
    session.report(StageDone(stage="ensemble", seconds=time.perf_counter() - started,
                             detail=f"{again.approach}: valid accuracy {again.metrics['val_accuracy']:.1%}"))
    return again


def is_ensemble(record: RunRecord) -> bool:
    return record.config.get("model") == ENSEMBLE_MODEL


def saved_model_path(record: RunRecord, doing: str) -> str:
    """The run's model file, or a ConfigError saying that `doing` needs one."""
    if record.status != "finished" or not record.model_path:
        raise ConfigError(f"{doing} needs a finished run with a saved model; {run_label(record)} is "
                          f"{record.status}, model {record.config.get('model')} (random forests are not saved).",
                          hint="Pick a finished mlp, logreg or linear_svm run from the results table.")
    return record.model_path


# ---------------------------------------------------------------------------------------- paired test

@dataclass(frozen=True)
class Comparison:
    run_a: RunRecord
    run_b: RunRecord
    n_clips: int
    accuracy_a: float
    accuracy_b: float
    interval_a: tuple[float, float]  # Wilson 95 %
    interval_b: tuple[float, float]
    test: stats.McNemar
    verdict: str


def compare(results_dir, run_a: str, run_b: str) -> Comparison:
    """McNemar's test (exact and mid-p) on the per-clip right/wrong of two runs on the same valid clips, with a
    verdict judged on the mid-p."""
    first, second = load_runs(results_dir, [run_a, run_b])
    _check_same_split([first, second], "compare")
    aligned = aligned_predictions(results_dir, [first, second])
    correct_a, correct_b = (correct_per_clip(p, aligned.targets) for p in aligned.probs)
    test = stats.mcnemar(correct_a, correct_b)
    name_a, name_b = first.approach, second.approach
    if name_a == name_b:
        name_a, name_b = run_label(first), run_label(second)
    n = len(aligned.keys)
    return Comparison(run_a=first, run_b=second, n_clips=n,
                      accuracy_a=float(correct_a.mean()), accuracy_b=float(correct_b.mean()),
                      interval_a=stats.wilson_interval(int(correct_a.sum()), n),
                      interval_b=stats.wilson_interval(int(correct_b.sum()), n),
                      test=test, verdict=stats.paired_verdict(test, name_a, name_b))


def ablation_comparison(results_dir, records) -> Comparison | None:
    """The paired test between the "both" and "embeddings" runs of an ablation, if both finished."""
    by_features = {r.config.get("features"): r for r in records if r.status == "finished"}
    if "both" not in by_features or "embeddings" not in by_features:
        return None
    return compare(results_dir, by_features["both"].run_id, by_features["embeddings"].run_id)


# ------------------------------------------------------------------------------------------- k-fold

@dataclass(frozen=True)
class KFoldResult:
    approach: str
    records: tuple[RunRecord, ...]  # fold 0 .. k-1
    accuracies: tuple[float, ...]
    mean: float
    sd: float  # sample SD across folds


def kfold(session, config: RunConfig, *, n_folds: int = 5, cancel: threading.Event | None = None) -> KFoldResult:
    """Train the config on each fold of a stratified k-fold split (config.fold = 0 .. n_folds-1).

    Each fold is an ordinary run in the history. A failing fold raises (a mean over fewer folds would not be the
    k-fold estimate asked for), and so does a cancel (Cancelled).
    """
    cancel = cancel or threading.Event()
    folds = [config.with_(fold=fold, n_folds=n_folds) for fold in range(n_folds)]
    records = []
    for number, fold_config in enumerate(folds, start=1):
        if cancel.is_set():
            raise Cancelled(0, ())
        session.report(StageDone(stage="kfold", seconds=0.0, detail=f"fold {number} of {n_folds}"))
        records.append(session.train(fold_config, cancel=cancel))
    accuracies = tuple(float(r.metrics["val_accuracy"]) for r in records)
    mean, sd = stats.mean_sd(accuracies)
    return KFoldResult(approach=config.approach, records=tuple(records), accuracies=accuracies, mean=mean, sd=sd)


# --------------------------------------------------------------------------------- group importance

def input_groups(names) -> dict[str, np.ndarray]:
    """Model-input positions of each feature group, in FEATURE_GROUPS order; PCA components form one group."""
    names = list(names)
    positions: dict[str, list[int]] = {}
    for group, prefix in list(FEATURE_GROUPS.items()) + [(PCA_GROUP, PCA_GROUP)]:
        for i, name in enumerate(names):
            if name.startswith(prefix):
                positions.setdefault(group, []).append(i)
    return {group: np.asarray(found) for group, found in positions.items()}


def group_importance(session, record: RunRecord, *, repeats: int = IMPORTANCE_REPEATS,
                     allow_outside: bool = False) -> dict[str, float]:
    """Permutation importance of each feature group on the valid rows of a finished, saved run: the drop in
    accuracy when the group's columns are shuffled across clips together (rows kept whole within the group),
    averaged over `repeats` seeded shuffles. Uses the run's own saved model and feature transform."""
    from engine.predict import probabilities

    model_path = saved_model_path(record, "Group importance")
    started = time.perf_counter()
    config = RunConfig.from_dict(record.config)
    saved = load_model(model_path, models_dir=session.models_dir, allow_outside=allow_outside)
    info = saved.vggtab
    prepared = session.prepare(config)
    if prepared.split_id != record.split_id:
        raise StorageError(f"The valid clips of {config.embeddings} / {config.tabular} are not the ones "
                           f"{run_label(record)} was validated on: the data files changed since.",
                           hint="Rerun the approach on the current files, then ask for its importance.")
    frame = session.clean_data(config).labelled.frame.iloc[prepared.valid_idx]
    x_valid = info.transform.transform(frame)

    def accuracy(x: np.ndarray) -> float:
        probs = probabilities(saved, x)
        return float(correct_per_clip(probs, prepared.y_valid).mean())

    reference = accuracy(x_valid)
    rng = np.random.default_rng(config.seed)
    drops = {}
    for group, columns in input_groups(info.transform.get_feature_names_out()).items():
        shuffled = []
        for _ in range(repeats):
            permuted = x_valid.copy()
            permuted[:, columns] = x_valid[rng.permutation(len(x_valid))][:, columns]
            shuffled.append(accuracy(permuted))
        drops[group] = reference - float(np.mean(shuffled))
    session.report(StageDone(stage="importance", seconds=time.perf_counter() - started,
                             detail=", ".join(f"{g} −{d:.1%}" for g, d in drops.items())))
    return drops
