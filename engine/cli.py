"""The headless CLI: the same Session and events as the app, printed as lines.

`vggtab` alone opens the app; the app is handed in by `tui.__main__` so the engine never imports Textual.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

from engine.config import (DEMO_DIR, DEMO_EMBEDDINGS, DEMO_TABULAR, FEATURE_SETS, LR_SUGGESTIONS, MODELS,
                           RunConfig, lr_warning, parse_layers, parse_lr)
from engine.errors import Cancelled, VggtabError
from engine.events import (DatasetSummarised, EpochEnded, Event, LRFinderReady, RunCancelled, RunFailed,
                           RunFinished, StageDone)
from engine.text import interval_text

EXIT_ERROR, EXIT_BUG, EXIT_CANCELLED = 2, 3, 130
DEMO_TEST_EMBEDDINGS, DEMO_TEST_TABULAR = str(DEMO_DIR / "test_embeddings.csv"), str(DEMO_DIR / "test_tabular.csv")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--embeddings", default=DEMO_EMBEDDINGS, metavar="PATH",
                       help="embeddings CSV/Parquet: fname, labels, emb_0..emb_127 (default: the demo data)")
    group.add_argument("--tabular", default=DEMO_TABULAR, metavar="PATH",
                       help="tabular CSV/Parquet: file, stft_*, mel_*, cqt_* (default: the demo data)")
    group.add_argument("--key", default=None, metavar="NAME",
                       help="key column, in one or both files (default: finds fname or file)")
    group.add_argument("--results-dir", default="results", metavar="DIR", help="run history and CSVs")
    group.add_argument("--models-dir", default="models", metavar="DIR", help="exported models")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = RunConfig()
    group = parser.add_argument_group("run")
    group.add_argument("--features", default=defaults.features, metavar="SET",
                       help=f"{', '.join(FEATURE_SETS)}, or comma-separated groups/prefixes such as emb,mel_ "
                            f"(default: {defaults.features})")
    group.add_argument("--layers", default="200,100", help="hidden layer sizes (default: 200,100)")
    group.add_argument("--epochs", type=int, default=defaults.epochs, help=f"default: {defaults.epochs}")
    group.add_argument("--bs", type=int, default=defaults.bs, help=f"batch size (default: {defaults.bs})")
    group.add_argument("--lr", default="auto",
                       help="learning rate, or 'auto' for the LR finder's suggestion (default: auto)")
    group.add_argument("--lr-suggestion", default=defaults.lr_suggestion, choices=LR_SUGGESTIONS,
                       help="which LR finder suggestion 'auto' takes (default: valley)")
    group.add_argument("--ps", type=float, default=defaults.ps, help="dropout probability (default: 0)")
    group.add_argument("--wd", type=float, default=defaults.wd, help="weight decay (default: 0.01)")
    group.add_argument("--seed", type=int, default=defaults.seed, help="training seed (default: 42)")
    group.add_argument("--split-seed", type=int, default=defaults.split_seed, help="split seed (default: 42)")
    group.add_argument("--valid-pct", type=float, default=defaults.valid_pct, help="default: 0.2")
    group.add_argument("--fold", type=int, default=None, help="use fold K of a stratified k-fold split")
    group.add_argument("--n-folds", type=int, default=defaults.n_folds, help="folds for --fold (default: 5)")
    group.add_argument("--bad-rows", default=defaults.bad_rows, choices=("drop", "impute"),
                       help="rows with NaN/inf features: drop them (default) or impute the train median")
    group.add_argument("--label-mode", default=defaults.label_mode, choices=("single", "multi"),
                       help="single: one-label clips, softmax (default); multi: all clips, sigmoid")
    group.add_argument("--select-k", type=int, default=None, help="keep the top K tabular columns (train rows)")
    group.add_argument("--select-method", default=defaults.select_method, choices=("anova", "mutual_info"))
    group.add_argument("--pca", type=int, default=None, help="PCA of the tabular block to N components")
    group.add_argument("--model", default=defaults.model, choices=MODELS, help="default: mlp (fastai)")
    group.add_argument("--sampling", default=defaults.sampling, choices=("shuffle", "replacement"),
                       help="train rows per epoch: each once (default) or drawn with replacement (stock fastai)")
    group.add_argument("--threads", type=int, default=None, help="torch threads (default: measured best)")
    group.add_argument("--name", default="", help="approach name in the results table")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        embeddings=args.embeddings, tabular=args.tabular, key=args.key, features=args.features,
        layers=parse_layers(args.layers), epochs=args.epochs, bs=args.bs, lr=parse_lr(args.lr),
        lr_suggestion=args.lr_suggestion, ps=args.ps, wd=args.wd, seed=args.seed, split_seed=args.split_seed,
        valid_pct=args.valid_pct, fold=args.fold, n_folds=args.n_folds, bad_rows=args.bad_rows,
        label_mode=args.label_mode, select_k=args.select_k, select_method=args.select_method, pca=args.pca,
        model=args.model, sampling=args.sampling, threads=args.threads, name=args.name)


class ConsolePrinter:
    """Prints each event as it arrives; the CLI's whole view of a run."""

    def __init__(self, out=None):
        self.out = out or sys.stdout  # looked up per printer, so redirected output (tests, callers) is followed

    def __call__(self, event: Event) -> None:
        handler = getattr(self, f"on_{type(event).__name__}", None)
        if handler:
            handler(event)
            self.out.flush()

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
        counts = ", ".join(f"{n} label{'s' if n > 1 else ''}: {c:,}" for n, c in sorted(s.label_counts.items()))
        self.print(f"  labels per clip: {counts}")
        self.print(f"  {s.n_classes} classes ({s.label_mode}-label), clips per class min {s.class_size_min} / "
                   f"median {s.class_size_median:g} / max {s.class_size_max}")
        groups = ", ".join(f"{g} {n:,}" for g, n in s.feature_groups.items())
        self.print(f"  features: {groups}; set '{s.feature_set}' → {s.n_features:,} inputs")
        self.print(f"  train {s.train_rows:,} / valid {s.valid_rows:,}")

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


def cancel_on_signals(cancel: threading.Event) -> None:
    """First Ctrl-C / SIGTERM stops the run at the next batch and records it; a second one exits at once."""
    def handle(signum, frame):
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def start_warm_up() -> None:
    """Import scikit-learn, fastai and torch (~4.5 s) in a thread while the CSVs load, not after them."""
    from engine.warmup import warm_up
    threading.Thread(target=warm_up, daemon=True).start()


def command_run(args: argparse.Namespace) -> int:
    from engine.pipeline import Session
    config = config_from_args(args)
    printer = ConsolePrinter()
    if config.lr is not None and lr_warning(config.lr):
        printer.print(f"warning: {lr_warning(config.lr)}")
    cancel = threading.Event()
    cancel_on_signals(cancel)
    start_warm_up()
    session = Session(printer, models_dir=args.models_dir, results_dir=args.results_dir)
    session.train(config, cancel=cancel)
    return 0


def command_demo(args: argparse.Namespace) -> int:
    from engine.demo import generate_demo
    out = Path(args.out)
    if (out / "embeddings.csv").exists() and not args.force:
        print(f"Demo data already in {out}/ (use --force to write it again).")
        return 0
    files = generate_demo(out, seed=args.seed)
    print(f"Wrote demo data: {files.embeddings}, {files.tabular}, {files.test_embeddings}, {files.test_tabular}")
    return 0


def command_results(args: argparse.Namespace) -> int:
    from engine.store.export import export_table
    from engine.store.history import load_history
    history = load_history(args.results_dir)
    for warning in history.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.export:
        export_table(history.records, Path(args.export), "markdown" if args.export.endswith(".md") else "csv",
                     force=args.force)
        print(f"Wrote {len(history.records)} runs to {args.export}")
        return 0
    print(f"{'date':<19} {'status':<9} {'approach':<28} {'lr':>8} {'ep':>3} {'accuracy':>9} {'95% CI':>13} "
          f"{'lwlrap':>6}")
    for r in history.records:
        m = r.metrics
        ci = interval_text(m.get("ci_low"), m.get("ci_high"))
        accuracy = f"{m['val_accuracy']:.2%}" if m.get("val_accuracy") is not None else "-"
        lwlrap = f"{m['lwlrap']:.3f}" if m.get("lwlrap") is not None else "-"
        lr = r.config.get("lr")
        print(f"{r.created:<19} {r.status:<9} {r.approach:<28} {'' if lr is None else format(lr, '.2e'):>8} "
              f"{r.config.get('epochs') or '':>3} {accuracy:>9} {ci:>13} {lwlrap:>6}")
    return 0


class ApproachPrinter(ConsolePrinter):
    """ConsolePrinter for commands that train several runs: a header per run, and each run's wall time (data,
    LR finder, fit, save) and failure kept for the closing table."""

    def __init__(self, out=None):
        super().__init__(out)
        self.wall_seconds: dict[str, float] = {}
        self.failures: list[str] = []
        self.run_started = time.perf_counter()

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
    print(f"\n{'approach':<{width}} {'accuracy':>9} {'95% CI':>13} {'fit s':>7} {'wall s':>7}  run id")
    for r in records:
        m = r.metrics
        wall = f"{wall_seconds[r.run_id]:.1f}" if r.run_id in wall_seconds else ""
        print(f"{r.approach:<{width}} {m['val_accuracy']:>9.2%} {interval_text(m['ci_low'], m['ci_high']):>13} "
              f"{r.train_seconds:>7.1f} {wall:>7}  {r.run_id}")


def print_comparison(comparison) -> None:
    from engine.stats import format_p
    c = comparison
    print_runs([c.run_a, c.run_b])
    print(f"McNemar exact test on the {c.n_clips} shared valid clips: {c.run_a.approach} alone right on "
          f"{c.test.a_only}, {c.run_b.approach} alone right on {c.test.b_only}, {format_p(c.test.p_value)}")
    print(c.verdict)


def command_ablate(args: argparse.Namespace) -> int:
    from engine.approaches import ablation_comparison, ablation_configs, run_queue
    from engine.pipeline import Session
    printer, cancel = ApproachPrinter(), threading.Event()
    cancel_on_signals(cancel)
    start_warm_up()
    session = Session(printer, models_dir=args.models_dir, results_dir=args.results_dir)
    records = run_queue(session, ablation_configs(config_from_args(args), groups=args.groups), cancel=cancel)
    print_runs(records, printer.wall_seconds)
    for failure in printer.failures:
        print(f"failed: {failure}")
    if cancel.is_set():
        raise Cancelled()
    comparison = ablation_comparison(args.results_dir, records)
    if comparison is not None:
        print(f"McNemar exact, both vs embeddings on {comparison.n_clips} clips: {comparison.verdict}")
    return EXIT_ERROR if printer.failures or comparison is None else 0


def command_kfold(args: argparse.Namespace) -> int:
    from engine.approaches import kfold
    from engine.pipeline import Session
    printer, cancel = ApproachPrinter(), threading.Event()
    cancel_on_signals(cancel)
    start_warm_up()
    session = Session(printer, models_dir=args.models_dir, results_dir=args.results_dir)
    result = kfold(session, config_from_args(args), n_folds=args.n_folds, cancel=cancel)
    print_runs(result.records, printer.wall_seconds)
    for number, (record, accuracy) in enumerate(zip(result.records, result.accuracies)):
        m = record.metrics
        print(f"fold {number}: {accuracy:.2%} ({interval_text(m['ci_low'], m['ci_high'])}, n={m['val_samples']})")
    print(f"{result.approach}: {result.mean:.2%} ± {result.sd:.2%} (mean ± sd over {len(result.records)} folds)")
    return 0


def command_compare(args: argparse.Namespace) -> int:
    from engine.approaches import compare
    print_comparison(compare(args.results_dir, args.run_a, args.run_b))
    return 0


def command_ensemble(args: argparse.Namespace) -> int:
    from engine.approaches import ensemble
    record = ensemble(args.results_dir, args.runs, name=args.name or None)
    print_runs([record])
    print(f"Averaged the valid probabilities of {', '.join(record.config['members'])}; "
          f"recorded in {Path(args.results_dir) / 'history.jsonl'}.")
    return 0


def command_importance(args: argparse.Namespace) -> int:
    from engine.approaches import group_importance, load_runs
    from engine.pipeline import Session
    record, = load_runs(args.results_dir, [args.run])
    drops = group_importance(Session(models_dir=args.models_dir, results_dir=args.results_dir), record)
    print(f"Accuracy drop on the valid clips when each feature group of {record.approach} is shuffled across clips "
          f"(accuracy {record.metrics['val_accuracy']:.2%}):")
    scale = max([abs(d) for d in drops.values()] + [1e-9])
    for group, drop in drops.items():
        print(f"{group:<5} {drop:>7.2%} {'█' * round(30 * max(drop, 0) / scale)}")
    return 0


def command_predict(args: argparse.Namespace) -> int:
    from engine.predict import predict_files, write_submission
    prediction = predict_files(args.model, args.embeddings, args.tabular, key=args.key, models_dir=args.models_dir,
                               allow_outside=args.allow_outside_models)
    for warning in prediction.warnings:
        print(f"  warning: {warning}")
    for fname, why in prediction.dropped:
        print(f"  dropped {fname}: {why}")
    path = write_submission(prediction, args.out, force=args.force)
    classes = prediction.frame.shape[1] - 1
    print(f"Wrote {len(prediction.frame):,} clips × {classes} class probabilities ({prediction.label_mode}-label "
          f"model) to {path}; {len(prediction.dropped):,} clip{'' if len(prediction.dropped) == 1 else 's'} dropped.")
    return 0


def build_parser(with_app: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vggtab", description="Train and compare audio classifiers on VGGish embeddings + spectral "
        "feature tables. With no command, opens the terminal app on the demo data or the given files.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    if with_app:
        app = commands.add_parser("app", help="open the terminal app (the default)")
        add_data_arguments(app)
    run = commands.add_parser("run", help="headless run: dataset summary, LR finder, training, evaluation, save")
    add_data_arguments(run)
    add_run_arguments(run)
    demo = commands.add_parser("demo", help=f"write the built-in synthetic demo data to {DEMO_DIR}/")
    demo.add_argument("--out", default=str(DEMO_DIR), help=f"folder (default: {DEMO_DIR})")
    demo.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    demo.add_argument("--force", action="store_true", help="overwrite existing demo files")
    predict = commands.add_parser("predict", help="class probabilities for new clips from a saved model, "
                                                  "written as a submission CSV (fname + one column per class)")
    predict.add_argument("--model", required=True, metavar="PATH", help="a .pkl that vggtab saved under models/")
    predict.add_argument("--embeddings", default=DEMO_TEST_EMBEDDINGS, metavar="PATH",
                         help="embeddings of the clips to predict; no labels needed (default: the demo test clips)")
    predict.add_argument("--tabular", default=DEMO_TEST_TABULAR, metavar="PATH",
                         help="tabular features of the same clips (default: the demo test clips)")
    predict.add_argument("--key", default=None, metavar="NAME",
                         help="key column (default: the model's, else fname or file)")
    predict.add_argument("--out", default="submission.csv", metavar="PATH", help="default: submission.csv")
    predict.add_argument("--force", action="store_true", help="replace an earlier submission at --out")
    predict.add_argument("--models-dir", default="models", metavar="DIR",
                         help="the folder models are loaded from (default: models)")
    predict.add_argument("--allow-outside-models", action="store_true",
                         help="load a model file outside --models-dir (it runs code from the file: trust it)")
    ablate = commands.add_parser("ablate", help="run embeddings-only, tabular-only and both on one split, then "
                                                "the paired test between both and embeddings")
    add_data_arguments(ablate)
    add_run_arguments(ablate)
    ablate.add_argument("--groups", action="store_true", help="also each group alone: emb, stft, mel, cqt")
    kfold = commands.add_parser("kfold", help="run the approach on each fold of a stratified k-fold split "
                                              "(--n-folds, default 5): mean ± sd accuracy")
    add_data_arguments(kfold)
    add_run_arguments(kfold)
    compare = commands.add_parser("compare", help="McNemar's exact test between two runs on the same valid clips")
    compare.add_argument("run_a", metavar="RUN_A", help="run id (or its start) or approach name (latest run)")
    compare.add_argument("run_b", metavar="RUN_B")
    compare.add_argument("--results-dir", default="results", metavar="DIR")
    ensemble = commands.add_parser("ensemble", help="average the valid probabilities of 2+ runs on one split")
    ensemble.add_argument("runs", nargs="+", metavar="RUN", help="run ids (or their start) or approach names")
    ensemble.add_argument("--name", default="", help="approach name (default: ensemble(A + B))")
    ensemble.add_argument("--results-dir", default="results", metavar="DIR")
    importance = commands.add_parser("importance", help="permutation importance of each feature group of a "
                                                        "saved run (mlp, logreg, linear_svm) on its valid clips")
    importance.add_argument("run", metavar="RUN", help="run id (or its start) or approach name (latest run)")
    importance.add_argument("--results-dir", default="results", metavar="DIR")
    importance.add_argument("--models-dir", default="models", metavar="DIR")
    results = commands.add_parser("results", help="list every recorded run, or export the table")
    results.add_argument("--results-dir", default="results", metavar="DIR")
    results.add_argument("--export", metavar="PATH", help="write the table to PATH (.csv or .md)")
    results.add_argument("--force", action="store_true", help="replace an earlier exported table at --export")
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": command_run, "demo": command_demo, "predict": command_predict, "results": command_results,
    "ablate": command_ablate, "kfold": command_kfold, "compare": command_compare, "ensemble": command_ensemble,
    "importance": command_importance}


def main(argv: list[str] | None = None, launch_app: Callable[[argparse.Namespace], int] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(with_app=launch_app is not None)
    if launch_app is not None and (not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["app", *argv]
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    try:
        if args.command == "app":
            return launch_app(args)
        return COMMANDS[args.command](args)
    except Cancelled:
        return EXIT_CANCELLED
    except VggtabError as error:
        print(f"vggtab: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("vggtab: interrupted.", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as error:
        log = log_traceback(error, argv)
        details = f"the details in {log}" if log else "the command you ran (the details could not be saved)"
        print(f"vggtab: unexpected {type(error).__name__}: {error}\nThis is a bug in vggtab, not a problem with "
              f"your data or settings: please report it with {details}.", file=sys.stderr)
        return EXIT_BUG


def log_traceback(error: Exception, argv: list[str]) -> str | None:
    """Write the traceback to a file of its own, so the terminal gets one paragraph; its path, or None."""
    try:
        handle, path = tempfile.mkstemp(prefix="vggtab-error-", suffix=".log")
        with os.fdopen(handle, "w", encoding="utf-8") as log:
            log.write(f"vggtab {' '.join(argv)}\n\n")
            traceback.print_exception(error, file=log)
    except OSError:
        return None
    return path


if __name__ == "__main__":
    sys.exit(main())
