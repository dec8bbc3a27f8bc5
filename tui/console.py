"""What the command line prints: each engine event as lines (ConsolePrinter and its variants per command), and the
tables and reports the commands end with. The CLI's commands (tui.cli) choose which printer and report to use."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TYPE_CHECKING

from engine.events import (DatasetSummarised, EpochEnded, Event, LRFinderReady, RunCancelled, RunFailed,
                           RunFinished, StageDone, TrialEnded)
from engine.workbench import format_p, interval_text
from tui.format import gap_verb

if TYPE_CHECKING:
    from tui.cli import Interrupts


class ConsolePrinter:
    """Prints each event as it arrives; the CLI's whole view of a run. With `interrupts`, a closed stdout stops
    the run the way a signal does."""

    def __init__(self, out=None, interrupts: Interrupts | None = None):
        self.out = out or sys.stdout  # looked up per printer, so redirected output (tests, callers) is followed
        self.interrupts = interrupts

    def __call__(self, event: Event) -> None:
        if self.interrupts is not None:
            self.interrupts.observe(event)
        handler = getattr(self, f"on_{type(event).__name__}", None)
        if handler is None or self.out is None:
            return
        try:
            handler(event)
            self.out.flush()
        except BrokenPipeError:
            self.out = None
            if self.interrupts is not None:
                self.interrupts.output_closed()

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    def on_StageDone(self, event: StageDone) -> None:
        self.print(f"  {event.stage:<9} {event.seconds:6.2f} s  {event.detail}")

    def on_DatasetSummarised(self, event: DatasetSummarised) -> None:
        s = event.summary
        self.print(f"Dataset  embeddings {s.rows_embeddings:,} rows · tabular {s.rows_tabular:,} rows · "
                   f"matched {s.matched:,} (unmatched {s.unmatched_embeddings:,} / {s.unmatched_tabular:,})")
        for fname, why in s.dropped:
            self.print(f"  dropped {fname}: {why}")
        for fname, why in s.imputed:
            self.print(f"  imputed {fname}: {why}")
        for warning in s.warnings:
            self.print(f"  warning: {warning}")
        for note in s.feature_notes:
            self.print(f"  note: {note}")
        counts = ", ".join(f"{n} label{'s' if n > 1 else ''}: {c:,}" for n, c in sorted(s.label_counts.items()))
        self.print(f"  labels per clip: {counts}")
        self.print(f"  {s.n_classes} classes ({s.label_mode}-label), clips per class min {s.class_size_min} / "
                   f"median {s.class_size_median:g} / max {s.class_size_max}")
        self.print_features(s)
        self.print(f"  train {s.train_rows:,} / valid {s.valid_rows:,}")

    def print_features(self, s) -> None:
        groups = ", ".join(f"{g} {n:,}" for g, n in s.feature_groups.items())
        self.print(f"  features: {groups}; set '{s.feature_set}' → {s.n_features:,} inputs")

    def on_LRFinderReady(self, event: LRFinderReady) -> None:
        listed = "  ".join(f"{name} {lr:.2e}" for name, lr in event.suggestions.items())
        self.print(f"LR finder ({len(event.lrs)} points): {listed}")

    def on_EpochEnded(self, event: EpochEnded) -> None:
        if event.epoch == 1:
            self.print(f"{'epoch':>5} {'train_loss':>10} {'valid_loss':>10} {'accuracy':>9} {'error':>7} {'lwlrap':>7} "
                       f"{'time':>6}")
        lwlrap = "" if event.lwlrap is None else f"{event.lwlrap:.4f}"
        self.print(f"{event.epoch:>5} {event.train_loss:>10.4f} {event.valid_loss:>10.4f} {event.accuracy:>9.4f} "
                   f"{event.error_rate:>7.4f} {lwlrap:>7} {event.seconds:>5.1f}s")

    def on_RunFinished(self, event: RunFinished) -> None:
        e, r = event.evaluation, event.record
        self.print(f"Valid accuracy {e.accuracy:.2%} (95% CI {interval_text(e.ci_low, e.ci_high)}, n={e.n_valid}), "
                   f"error rate {e.error_rate:.2%}, lwlrap {e.lwlrap:.3f}, mAP {e.mean_average_precision:.3f}")
        self.print(f"  random {e.random_baseline:.2%} · majority class {e.majority_baseline:.2%} · "
                   f"{e.improvement_over_random:.0f}× random · train accuracy {e.train_accuracy:.2%}")
        for note in e.diagnosis:
            self.print(f"  {note}")
        if e.confused_pairs:
            pairs = "; ".join(f"{t} → {p} ×{n}" for t, p, n in e.confused_pairs[:5])
            self.print(f"  most confused: {pairs}")
        for fname, true, predicted, confidence in e.misclassified[:5]:
            self.print(f"  {fname}: {true} predicted as {predicted} ({confidence:.0%})")
        saved = r.model_path or "not saved (a random forest refits from its recorded config)"
        self.print(f"Saved model {saved}\n      results {r.results_csv} ({r.num_params:,} parameters, "
                   f"fit {r.train_seconds:.1f} s)")

    def on_RunFailed(self, event: RunFailed) -> None:
        self.print(f"Run failed ({recorded(event.record)}).")

    def on_RunCancelled(self, event: RunCancelled) -> None:
        self.print(f"Run cancelled after {event.epochs_done} epochs ({recorded(event.record)}).")


def recorded(record) -> str:
    return "recorded in the history" if record is not None else "not recorded: the history could not be written"


def print_advice(check) -> None:
    if not check.results and not check.failed:
        print("\nAdvice: the diagnosis suggests no change to check.")
        return
    print(f"\nAdvice checked on the same valid clips as {check.approach} ({check.run_id}):")
    for result in check.results:
        print(f"  {result.sentence}")
    for failure in check.failed:
        print(f"  failed: {failure}")
    print(f"  saved in {check.path}")


class ApproachPrinter(ConsolePrinter):
    """ConsolePrinter for commands that train several runs: a header per run, and each run's wall time (data,
    LR finder, fit, save) and failure kept for the closing table."""

    def __init__(self, out=None, interrupts: Interrupts | None = None):
        super().__init__(out, interrupts)
        self.wall_seconds: dict[str, float] = {}
        self.failures: list[str] = []
        self.run_started = time.perf_counter()
        self.summarised = None  # the data whose summary was printed: each run of a queue shares it

    def on_DatasetSummarised(self, event: DatasetSummarised) -> None:
        s = event.summary
        data = (s.embeddings_path, s.tabular_path, s.kept_rows, s.train_rows, s.valid_rows)
        if data == self.summarised:
            self.print_features(s)
            return
        self.summarised = data
        super().on_DatasetSummarised(event)

    def on_StageDone(self, event: StageDone) -> None:
        if event.stage in ("queue", "kfold"):
            self.run_started = time.perf_counter()
            self.print(f"\n== {event.detail}")
        else:
            super().on_StageDone(event)

    def on_RunFinished(self, event: RunFinished) -> None:
        super().on_RunFinished(event)
        self.wall_seconds[event.record.run_id] = time.perf_counter() - self.run_started

    def on_RunFailed(self, event: RunFailed) -> None:
        super().on_RunFailed(event)
        self.failures.append(event.message)


def print_runs(records, wall_seconds: dict[str, float] | None = None) -> None:
    """The runs as a table: accuracy with its Wilson 95 % interval, fit time and (if known) wall time."""
    wall_seconds = wall_seconds or {}
    width = max([28] + [len(r.approach) for r in records])
    print(f"\n{'approach':<{width}} {'accuracy':>9} {'95% CI':>13} {'fit s':>7} {'wall s':>7}  run")
    for r in records:
        m = r.metrics
        wall = f"{wall_seconds[r.run_id]:.1f}" if r.run_id in wall_seconds else ""
        print(f"{r.approach:<{width}} {m['val_accuracy']:>9.2%} {interval_text(m['ci_low'], m['ci_high']):>13} "
              f"{r.train_seconds:>7.1f} {wall:>7}  {r.short_id}")


def print_comparison(comparison) -> None:
    c = comparison
    print_runs([c.run_a, c.run_b])
    print(f"McNemar's test on the {c.n_clips} shared valid clips: {c.run_a.approach} alone right on "
          f"{c.test.a_only}, {c.run_b.approach} alone right on {c.test.b_only}, mid-{format_p(c.test.mid_p)} "
          f"(exact {format_p(c.test.p_value)})")
    print(c.verdict)


class SweepPrinter(ConsolePrinter):
    """A sweep's progress: the dataset summary once, one line per trial, the final retrains' stage; the runs'
    own epochs and summaries stay quiet (each is a row of the results table)."""

    QUIET = (LRFinderReady, EpochEnded, RunFinished, RunFailed, RunCancelled)

    def __init__(self, out=None, interrupts: Interrupts | None = None):
        super().__init__(out, interrupts)
        self.summarised = False

    def __call__(self, event: Event) -> None:
        if not isinstance(event, self.QUIET):
            super().__call__(event)

    def on_DatasetSummarised(self, event: DatasetSummarised) -> None:
        # Once, from the first trial here; the final retrains' summary would call the test clips "valid".
        if not self.summarised:
            self.summarised = True
            super().on_DatasetSummarised(event)

    def on_StageDone(self, event: StageDone) -> None:
        if event.stage == "sweep":
            super().on_StageDone(event)

    def on_TrialEnded(self, event: TrialEnded) -> None:
        self.summarised = True
        accuracy = "-" if event.accuracy is None else f"{event.accuracy:.2%}"
        why = f"  ({event.message.splitlines()[0]})" if event.message else ""
        self.print(f"trial {event.number:>3} {event.state:<8} {accuracy:>7}  {event.approach}{why}")


def score_text(score, clips: str) -> str:
    return f"{score.accuracy:.2%} (95% CI {interval_text(score.low, score.high)}, n={score.n} {clips})"


def importance_lines(title: str, importances: dict[str, float]) -> list[str]:
    if not importances:
        return []
    width = max(len(name) for name in importances)
    return [title] + [f"  {name:<{width}} {value:5.2f} {'█' * round(30 * value)}"
                      for name, value in importances.items()]


def print_sweep_report(report) -> None:
    fitted = [row for row in report.trials if row.same_as is None]
    counts = ", ".join(f"{n} {state}" for state, n in Counter(row.state for row in fitted).items())
    reused = len(report.trials) - len(fitted)
    again = f"; {reused} proposed settings already tried and reused their score" if reused else ""
    print(f"\nSweep {report.study}: {len(fitted)} trials fitted ({counts}){again}; study in {report.storage}; "
          f"{report.test_pct:.0%} of the clips held out as test")
    print(f"best trial {report.best_trial}: {report.best_valid.approach}")
    print(f"  valid            {score_text(report.best_valid, 'valid clips')}")
    print(f"  test             {score_text(report.best_test, 'test clips')}, retrained on train + valid")
    gap = round(100 * report.optimism_gap, 1) + 0.0  # + 0.0: a gap that rounds to zero reads 0.0, not -0.0
    print(f"  optimism gap     {gap:+.1f} points: the best valid score {gap_verb(gap)} what the "
          "winner does on clips no trial saw")
    if report.ensemble_test is not None:
        members = ", ".join(map(str, report.ensemble_members))
        print(f"top-{len(report.ensemble_members)} ensemble (trials {members}) on test: "
              f"{score_text(report.ensemble_test, 'test clips')}")
    print(f"default config on test: {score_text(report.default_test, 'test clips')}")
    print(f"winner vs default on the test clips: {report.winner_vs_default}")
    for line in (importance_lines("setting importances (fANOVA, all finished trials):", report.importances)
                 + importance_lines("MLP setting importances (finished MLP trials):", report.mlp_importances)):
        print(line)
    if report.best_test.model_path:
        print(f"predict with the winner: vggtab predict --model {report.best_test.run_id}")
    print(f"summary: {report.summary_path}")
