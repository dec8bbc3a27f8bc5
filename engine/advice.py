"""Advice that checks itself: run what the diagnosis suggests on the same split, and say whether each change helped.

The diagnosis (engine.evaluate) reads a run's train and valid accuracy; here each of its suggestions becomes a
variant config that differs in that one setting. Each variant is an ordinary run of the history on the same clips,
paired with the original run by McNemar's test, and the sentence follows the evidence ("ps 0.5 did not help here:
67.8 % vs 75.5 %, McNemar mid-p < 0.001"). The check is saved as results/advice/<run id>.json.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from engine import approaches, stats
from engine.config import RunConfig
from engine.errors import Cancelled, VggtabError
from engine.evaluate import BARELY_LEARNED, OVERFITTING, findings
from engine.events import RunRecord
from engine.store.files import atomic_write, make_folder

ADVICE_DIR = "advice"
ADVICE_PS, ADVICE_WD = 0.5, 0.1  # the diagnosis's own numbers (evaluate.OVERFIT_ADVICE)
TOP_K_SHARE = 4  # "fewer features": keep a quarter of the tabular columns
LR_STEP = 10
LOW_LR = 1e-4  # evaluate.BARELY_LEARNED_ADVICE's threshold


@dataclass(frozen=True)
class Variant:
    change: str  # what differs from the run, as the diagnosis says it: "ps 0.5", "wd 0.1", "10 epochs" …
    config: RunConfig


def suggested_variants(record: RunRecord) -> list[Variant]:
    """The variants the diagnosis of a finished run suggests; [] for a healthy run."""
    m = record.metrics
    config = RunConfig.from_dict(record.config)
    if record.status != "finished" or m.get("train_accuracy") is None:
        return []
    found = findings(m["val_accuracy"], m["train_accuracy"], m["random_baseline"], m["majority_baseline"],
                     model=config.model)
    changes: list[tuple[str, dict]] = []
    tabular = int(m.get("tabular_features") or 0)
    fewer_features = ([(f"top {tabular // TOP_K_SHARE} tabular columns", dict(select_k=tabular // TOP_K_SHARE))]
                      if tabular >= TOP_K_SHARE and config.select_k is None and config.pca is None else [])
    if OVERFITTING in found and config.model == "mlp":
        changes += [(f"ps {ADVICE_PS:g}", dict(ps=ADVICE_PS)), (f"wd {ADVICE_WD:g}", dict(wd=ADVICE_WD))]
        if config.epochs >= 2:
            changes.append((f"{config.epochs // 2} epochs", dict(epochs=config.epochs // 2)))
        changes += fewer_features
    elif OVERFITTING in found:
        changes += fewer_features
    if BARELY_LEARNED in found and config.model == "mlp":
        lr = float(record.config.get("lr") or 0) or None
        # The diagnosis: below 1e-4 raise the LR (or take the finder's valley); otherwise the LR was too high.
        if lr is not None and lr < LOW_LR:
            changes.append(("the LR finder's valley", dict(lr=None, lr_suggestion="valley")))
            changes.append((f"LR {lr * LR_STEP:.2g}", dict(lr=lr * LR_STEP)))
        elif lr is not None:
            changes.append((f"LR {lr / LR_STEP:.2g}", dict(lr=lr / LR_STEP)))
    elif BARELY_LEARNED in found:
        changes.append(("the MLP", dict(model="mlp")))
    return [Variant(change, config.with_(**settings, name="")) for change, settings in changes]


@dataclass(frozen=True)
class AdviceResult:
    change: str
    run_id: str
    accuracy: float
    base_accuracy: float
    a_only: int  # clips the variant alone got right
    b_only: int  # clips the original run alone got right
    mid_p: float
    verdict: str  # helped | did not help | within noise
    sentence: str


@dataclass(frozen=True)
class AdviceCheck:
    run_id: str
    approach: str
    results: tuple[AdviceResult, ...]
    failed: tuple[str, ...]  # "ps 0.5: <why>" for a variant that did not finish
    path: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def judged(change: str, comparison: approaches.Comparison) -> AdviceResult:
    """The paired test's verdict in the diagnosis's words, e.g. "ps 0.5 did not help here: 67.8 % vs 75.5 %"."""
    test = comparison.test
    numbers = (f"{comparison.accuracy_a:.1%} vs {comparison.accuracy_b:.1%} on the same {comparison.n_clips} clips, "
               f"McNemar mid-{stats.format_p(test.mid_p)}")
    if test.mid_p >= stats.SIGNIFICANCE:
        verdict, sentence = "within noise", f"{change} made no clear difference: {numbers}"
    elif test.a_only > test.b_only:
        verdict, sentence = "helped", f"{change} helped: {numbers}"
    else:
        verdict, sentence = "did not help", f"{change} did not help here: {numbers}"
    return AdviceResult(change=change, run_id=comparison.run_a.run_id, accuracy=comparison.accuracy_a,
                        base_accuracy=comparison.accuracy_b, a_only=test.a_only, b_only=test.b_only,
                        mid_p=test.mid_p, verdict=verdict, sentence=sentence)


def check_advice(session, record: RunRecord, cancel: threading.Event | None = None) -> AdviceCheck:
    """Run each suggested variant of a finished run on its split and pair it with the run; saved and returned.
    A run the diagnosis calls healthy has no variants: the check comes back empty."""
    variants = suggested_variants(record)
    if not variants:  # a healthy run: nothing to check, nothing saved
        return AdviceCheck(run_id=record.run_id, approach=record.approach, results=(), failed=())
    checked, failed = [], []
    for variant in variants:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        try:
            run = session.train(variant.config, cancel=cancel)
        except VggtabError as error:  # recorded by the Session; the other variants still say something
            failed.append(f"{variant.change}: {error.message}")
            continue
        checked.append(judged(variant.change, approaches.compare(session.results_dir, run.run_id, record.run_id)))
    check = AdviceCheck(run_id=record.run_id, approach=record.approach, results=tuple(checked), failed=tuple(failed))
    path = make_folder(Path(session.results_dir) / ADVICE_DIR) / f"{record.run_id}.json"
    text = json.dumps(check.to_dict(), indent=2)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return AdviceCheck(**{**check.__dict__, "path": str(path)})
