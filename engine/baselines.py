"""Classical baselines from scikit-learn, on the same split and model inputs as the neural network.

The inputs are the FeatureTransform's output (train-median imputation, top-K / PCA, standardized with train
statistics), so logistic regression and the linear SVM see scaled features, as in the user's earlier baselines.
Every estimator is seeded and runs on `threads` BLAS/joblib threads (default 1, as the MLP: the cores are shared).

The linear SVM is the hinge loss with an L2 penalty fitted by averaged SGD (`SGDClassifier`), one-vs-rest: on
the demo's 2,381 x 2,602 inputs liblinear's `LinearSVC` took 100 s (C=0.001, 46 %) to 12 minutes (C=1, 31 %,
not converged) or did not finish in 2.5 minutes; averaged SGD takes about a minute and reaches 64 %. It has no
probabilities of its own: its `probs` are the softmax of the decision function, which keeps the SVM's ranking
(so accuracy and McNemar are exact) but is not calibrated. CalibratedClassifierCV would refit it on 3+ folds
and needs 3+ clips of every class in each, which the rarest Freesound classes do not have.
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from engine.errors import Cancelled, ConfigError
from engine.events import BatchEnded, Reporter, ignore

BASELINE_NAMES = {"logreg": "logistic regression", "linear_svm": "linear SVM", "random_forest": "random forest"}
# Saved to models/ like the MLP (a few MB); a random forest pickles to ~250 MB, and a seeded refit from the
# recorded config gives the same forest, so it is not saved.
SAVED_BASELINES = ("logreg", "linear_svm")
MAX_ITER = 1000
SVM_ALPHA = 1e-3  # L2 strength; on the demo 1e-3 gave 64 %, 1e-2 60 % (59 % without averaging)
FOREST_TREES = 200
FOREST_CHUNK = 25  # trees grown between cancel checks and progress events


@dataclass(frozen=True)
class SavedBaseline:
    """What a baseline run saves in models/: the estimator and, as a fastai export's `vggtab`, how to rebuild
    its inputs (engine.model.ModelInfo)."""

    estimator: object
    vggtab: object

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return predict_proba(self.estimator, x, len(self.vggtab.classes))


@dataclass(frozen=True)
class FittedBaseline:
    estimator: object
    notes: tuple[str, ...]  # e.g. "did not converge in 1000 iterations"


def check_config(config) -> None:
    """Refuse settings a classical baseline cannot honour, before any data is loaded."""
    if config.label_mode != "single":
        raise ConfigError(f"The {BASELINE_NAMES[config.model]} baseline needs one label per clip "
                          f"(label_mode={config.label_mode!r}).",
                          hint="Use label_mode=single, or model=mlp for multi-label runs.")


def fit_baseline(model: str, x_train: np.ndarray, y_train: np.ndarray, *, seed: int, threads: int | None = None,
                 report: Reporter = ignore, cancel: threading.Event | None = None) -> FittedBaseline:
    """Fit one baseline on class indices `y_train`. Raises Cancelled (0 epochs) if `cancel` is set in time."""
    if model not in BASELINE_NAMES:
        raise ConfigError(f"Model {model!r} is not a classical baseline.",
                          hint=f"Use one of {', '.join(BASELINE_NAMES)}.")
    from sklearn.exceptions import ConvergenceWarning  # on use: ~1.5 s to import
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    cancel = cancel or threading.Event()
    n_threads = threads or 1
    if cancel.is_set():
        raise Cancelled(0, ())
    with threadpool_limits(n_threads), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if model == "random_forest":
            estimator = _fit_forest(x_train, y_train, seed=seed, n_jobs=n_threads, report=report, cancel=cancel)
        elif model == "logreg":
            estimator = LogisticRegression(max_iter=MAX_ITER).fit(x_train, y_train)
        else:
            estimator = SGDClassifier(loss="hinge", alpha=SVM_ALPHA, average=True, max_iter=MAX_ITER,
                                      random_state=seed, n_jobs=n_threads).fit(x_train, y_train)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    notes = () if converged else (f"The {BASELINE_NAMES[model]} did not converge in {MAX_ITER} iterations; "
                                  "its accuracy may be a little low.",)
    return FittedBaseline(estimator, notes)


def _fit_forest(x_train, y_train, *, seed: int, n_jobs: int, report: Reporter, cancel: threading.Event):
    """Grown in chunks with warm_start: the same trees as one fit (sklearn draws the same tree seeds), with a
    cancel check and a progress event between chunks."""
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(warm_start=True, random_state=seed, n_jobs=n_jobs)
    started = time.perf_counter()
    n_chunks = -(-FOREST_TREES // FOREST_CHUNK)
    for chunk in range(1, n_chunks + 1):
        if cancel.is_set():
            raise Cancelled(0, ())
        forest.set_params(n_estimators=min(chunk * FOREST_CHUNK, FOREST_TREES)).fit(x_train, y_train)
        report(BatchEnded(epoch=0, n_epochs=1, batch=chunk, n_batches=n_chunks,
                          elapsed=time.perf_counter() - started))
    return forest


def predict_proba(estimator, x: np.ndarray, n_classes: int) -> np.ndarray:
    """(rows, n_classes) probabilities; classes missing from train get 0 (their column stays empty)."""
    if hasattr(estimator, "predict_proba"):
        scores = estimator.predict_proba(x)
    else:
        decision = estimator.decision_function(x)
        if decision.ndim == 1:  # two classes: one margin for the second class
            decision = np.column_stack([-decision, decision]) / 2
        scores = np.exp(decision - decision.max(axis=1, keepdims=True))
        scores /= scores.sum(axis=1, keepdims=True)
    probs = np.zeros((len(x), n_classes), np.float32)
    probs[:, np.asarray(estimator.classes_, dtype=np.int64)] = scores
    return probs


def count_params(estimator) -> int:
    """Learned numbers: weights and intercepts of a linear model, or the nodes of a forest's trees."""
    if hasattr(estimator, "estimators_"):
        return int(sum(tree.tree_.node_count for tree in estimator.estimators_))
    return int(estimator.coef_.size + estimator.intercept_.size)
