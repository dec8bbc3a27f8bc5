"""The door between the engine and its consumers (TUI, CLI): plain, immutable event objects.

The engine calls a `Reporter` (any callable taking one event) from whatever thread runs it; consumers
decide how to show each event. Nothing here imports fastai, torch or Textual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union


@dataclass(frozen=True)
class StageDone:
    """One step of the workflow finished (load, merge, audit, labels, split, features, model, save …)."""

    stage: str
    seconds: float
    detail: str


@dataclass(frozen=True)
class DatasetSummary:
    embeddings_path: str
    tabular_path: str
    key: str  # the key column as named in the merged table
    rows_embeddings: int
    rows_tabular: int
    matched: int
    unmatched_embeddings: int
    unmatched_tabular: int
    unmatched_examples: tuple[str, ...]  # a few keys present on one side only
    dropped: tuple[tuple[str, str], ...]  # (fname, why) for every row the audit removed
    imputed: tuple[tuple[str, str], ...]  # (fname, which columns) when bad_rows='impute'
    warnings: tuple[str, ...]  # constant columns, absurd magnitudes, small classes …
    label_counts: dict[int, int]  # labels per clip → number of clips
    label_mode: str
    kept_rows: int  # rows used for training after audit and label filtering
    n_classes: int
    class_sizes: dict[str, int]
    feature_groups: dict[str, int]  # emb/stft/mel/cqt → column count in the merged table
    feature_set: str
    n_features: int  # inputs of the model after selection/PCA
    feature_notes: tuple[str, ...]  # what the features step adjusted, e.g. a PCA larger than the data allows
    train_rows: int
    valid_rows: int

    @property
    def class_size_min(self) -> int:
        return min(self.class_sizes.values(), default=0)

    @property
    def class_size_max(self) -> int:
        return max(self.class_sizes.values(), default=0)

    @property
    def class_size_median(self) -> float:
        sizes = sorted(self.class_sizes.values())
        if not sizes:
            return 0.0
        mid = len(sizes) // 2
        return float(sizes[mid]) if len(sizes) % 2 else (sizes[mid - 1] + sizes[mid]) / 2


@dataclass(frozen=True)
class DatasetSummarised:
    summary: DatasetSummary


@dataclass(frozen=True)
class LRFinderReady:
    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    suggestions: dict[str, float]  # valley, slide, minimum, steep → LR


@dataclass(frozen=True)
class BatchEnded:
    """Progress inside a run; sent for every batch, consumers throttle as they like."""

    epoch: int  # 0-based
    n_epochs: int
    batch: int  # 1-based within the epoch
    n_batches: int
    elapsed: float  # seconds since training started


@dataclass(frozen=True)
class EpochEnded:
    epoch: int  # 1-based
    n_epochs: int
    train_loss: float
    valid_loss: float
    accuracy: float
    error_rate: float
    seconds: float
    lwlrap: float | None = None  # valid lwlrap, both label modes


@dataclass(frozen=True)
class RunRecord:
    """Everything one run did, as stored in the history; `config` reruns it exactly."""

    run_id: str
    created: str  # ISO timestamp
    status: str  # finished | failed | cancelled
    approach: str
    config: dict
    metrics: dict = field(default_factory=dict)  # val_accuracy, error_rate, ci_low, ci_high, lwlrap …
    history: tuple[dict, ...] = ()  # one dict per epoch
    train_seconds: float = 0.0
    num_params: int = 0
    model_path: str = ""
    results_csv: str = ""
    message: str = ""  # why it failed or where it was cancelled
    split_id: str = ""  # fingerprint of the valid rows: runs with the same one can be paired
    per_class_accuracy: dict = field(default_factory=dict)  # class → accuracy on the valid clips labelled with it

    @property
    def short_id(self) -> str:
        """The random end of the run id: six hex digits that tell re-runs apart in tables."""
        return self.run_id.rsplit("_", 1)[-1]


@dataclass(frozen=True)
class RunFinished:
    record: RunRecord
    evaluation: object  # engine.evaluate.Evaluation


@dataclass(frozen=True)
class RunFailed:
    message: str
    record: RunRecord | None = None


@dataclass(frozen=True)
class RunCancelled:
    epochs_done: int
    record: RunRecord | None = None


@dataclass(frozen=True)
class TrialStarted:
    """A trial of a sweep starts its fit (in this process or in a worker process); a trial that repeats an earlier
    one's settings fits nothing and only ends."""

    sweep: str
    number: int  # Optuna's trial number, unique in the study
    approach: str
    params: dict
    changes: dict  # the run settings in which the trial's config differs from the sweep's base config
    worker: int = 0


@dataclass(frozen=True)
class TrialEnded:
    """One trial of a sweep ended (in this process or in a worker process)."""

    sweep: str
    number: int  # Optuna's trial number, unique in the study
    state: str  # complete | pruned | failed
    accuracy: float | None  # valid accuracy (mean over folds with cv); the last epoch's for a pruned trial
    approach: str
    params: dict
    run_ids: tuple[str, ...]  # the trial's runs in the history (one per fold)
    message: str = ""  # why it failed or was pruned
    worker: int = 0
    same_as: int | None = None  # the earlier trial whose settings it proposed again: its score, no new run
    changes: dict = field(default_factory=dict)  # as TrialStarted's


Event = Union[StageDone, DatasetSummarised, LRFinderReady, BatchEnded, EpochEnded, RunFinished, RunFailed,
              RunCancelled, TrialStarted, TrialEnded]
Reporter = Callable[[Event], None]


def ignore(event: Event) -> None:
    """A reporter for callers that want no progress."""
