"""The `vggtab` command line: a front end like the app, on the same façade and events, printed as lines.

`vggtab` alone (or with only data options) opens the app; the commands run headless. Run settings become
options from `engine.config.SETTINGS`, so every setting the app's form offers is an option here, with the same
default, allowed values and help. argparse (not click): the standard library does all this needs, and a default
command is three lines here, not a dependency.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

from engine.config import (DEMO_DIR, DEMO_EMBEDDINGS, DEMO_TABULAR, DEMO_TEST_EMBEDDINGS, DEMO_TEST_TABULAR,
                           SETTINGS, SWEEP_SETTINGS, RunConfig, SweepConfig, lr_warning)
from engine.errors import Cancelled, VggtabError
from engine.events import BatchEnded, Event, StageDone
from engine.workbench import Workbench, generate_demo, interval_text, start_warm_up
from tui.console import (ApproachPrinter, ConsolePrinter, SweepPrinter, print_advice, print_comparison, print_runs,
                         print_sweep_report)

EXIT_ERROR, EXIT_BUG, EXIT_CANCELLED = 2, 3, 130
# What the user types here for each setting or command an engine message names by its field.
CLI_WORDS = {"results_dir": "--results-dir", "models_dir": "--models-dir", "out": "--out", "export": "--export",
             "allow_outside": "--allow-outside-models", "demo": "vggtab demo"} | {
    s.name: s.flag for s in SETTINGS + SWEEP_SETTINGS}
# The switches among them: the engine says `force=true`, the user types `--force`.
SWITCHES = {"force": "--force", "allow_outside": "--allow-outside-models"}


def add_data_arguments(parser: argparse.ArgumentParser, *, to_predict: bool = False) -> None:
    """The two files (the training files, or with `to_predict` new clips without labels), their key and the
    folders runs are kept in."""
    group = parser.add_argument_group("data")
    clips, demo = ("clips to predict, no labels needed", "test clips") if to_predict else ("fname, labels", "data")
    group.add_argument("--embeddings", default=DEMO_TEST_EMBEDDINGS if to_predict else DEMO_EMBEDDINGS,
                       metavar="PATH", help=f"embeddings CSV/Parquet: {clips}, emb_0..emb_127 (default: the demo {demo})")
    group.add_argument("--tabular", default=DEMO_TEST_TABULAR if to_predict else DEMO_TABULAR, metavar="PATH",
                       help=f"tabular CSV/Parquet: file, stft_*, mel_*, cqt_* (default: the demo {demo})")
    group.add_argument("--key", default=None, metavar="NAME", help="key column, in one or both files (default: "
                       + ("the model's, else " if to_predict else "finds ") + "fname or file)")
    add_folder_arguments(group)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per editable run setting, grouped as the schema groups them; values are parsed by the schema
    (so '--lr auto' and '--layers 400,200' mean what they mean in the app's form)."""
    parser.add_argument("--detach", action="store_true",
                        help="run in the background, on after you log out; output to a log in the results folder")
    add_setting_arguments(parser, SETTINGS, "run settings")


def add_setting_arguments(parser: argparse.ArgumentParser, settings, title: str) -> None:
    groups: dict[str, argparse._ArgumentGroup] = {}
    for item in settings:
        if not item.editable:
            continue
        group = groups.setdefault(item.group, parser.add_argument_group(f"{title}: {item.group}"))
        if item.name == "key":
            continue  # a data option already (add_data_arguments)
        group.add_argument(item.flag, dest=item.name, default=item.default,
                           metavar=metavar(item), help=item.describe().replace("%", "%%"))


def metavar(item) -> str:
    if item.choices:
        return "{" + ",".join(map(str, item.choices)) + "}"
    return {int: "N", float: "X"}.get(item.kind, item.name.upper())


def config_from_args(args: argparse.Namespace, config_class=RunConfig, settings=SETTINGS):
    """Option text → values by the schema (a ConfigError names the setting, shown as one paragraph)."""
    given = vars(args)
    return config_class(**{s.name: s.parse(given[s.name]) for s in settings if s.name in given})


class Interrupts:
    """How a remote user stops a headless run: Ctrl-C (SIGINT), SIGTERM, SIGHUP (the SSH session closed) or a
    closed stdout (`| head`). Each is recorded as a cancelled run, never as a bug, and nothing is half-written.

    Before the fit starts nothing is written yet, so the run stops at once, even inside a blocking read (a FIFO,
    a CSV parse); during the fit it stops at the next batch, keeping its epochs; once the fit is over, the run is
    saved and recorded as finished, and further signals wait for that (see `observe`). A sweep stops only at
    the next batch (`at_once=False`): its study storage must never be cut mid-write.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, *, at_once: bool = True):
        self.cancel = threading.Event()
        # "preparing" → "fitting" at the first batch → "recording" when the fit is done
        self.phase = "preparing" if at_once else "fitting"
        self.at_once = at_once

    def install(self) -> Interrupts:
        for signum in self.SIGNALS:
            signal.signal(signum, self.handle)
        return self

    def handle(self, signum=None, frame=None) -> None:
        self.cancel.set()
        if self.phase == "preparing":
            raise Cancelled(0, ())

    def observe(self, event: Event) -> None:
        if not self.at_once:
            return
        if isinstance(event, BatchEnded):
            self.phase = "fitting"
        elif isinstance(event, StageDone) and event.stage in ("fit", "queue", "kfold"):
            # A queue's next run prepares again: stoppable at once; the fit's end starts the recording.
            self.phase = "recording" if event.stage == "fit" else "preparing"

    def output_closed(self) -> None:
        """stdout went away (the SSH session or the reader of a pipe): stop as a signal would, printing nothing
        more (also not Python's own complaint about the closed pipe at exit)."""
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        self.handle()


def workbench(args: argparse.Namespace, report=None) -> Workbench:
    return Workbench(report or (lambda event: None), models_dir=args.models_dir, results_dir=args.results_dir)


def detach(argv: list[str], args: argparse.Namespace) -> int:
    """The same command again in a session of its own, so closing the terminal or the SSH connection does not
    stop it; its output goes to a log under the results folder."""
    folder = Path(args.results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    log_path = (folder / f"{args.command}_{time.strftime('%Y%m%d_%H%M%S')}.log").resolve()
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "tui", *(a for a in argv if a != "--detach")],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    print(f"Running in the background as process {process.pid}; it goes on after you log out.\n"
          f"  follow it: tail -f {log_path}\n  stop it:   kill {process.pid}   (recorded as cancelled)")
    return 0


def command_run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    interrupts = Interrupts().install()
    printer = ConsolePrinter(interrupts=interrupts)
    if config.lr is not None and lr_warning(config.lr):
        printer.print(f"warning: {lr_warning(config.lr)}")
    start_warm_up()
    bench = workbench(args, printer)
    record = bench.train(config, cancel=interrupts.cancel)
    if args.try_advice:
        print_advice(bench.check_advice(record, cancel=interrupts.cancel))
    return 0


def command_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if (out / "embeddings.csv").exists() and not args.force:
        print(f"Demo data already in {out}/ (use --force to write it again).")
        return 0
    files = generate_demo(out, seed=args.seed, clips=args.clips)
    print(f"Wrote demo data: {files.embeddings}, {files.tabular}, {files.test_embeddings}, {files.test_tabular}")
    return 0


def command_results(args: argparse.Namespace) -> int:
    history = workbench(args).history()
    for warning in history.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.export:
        path = workbench(args).export(history.records, args.export, force=args.force)
        print(f"Wrote {len(history.records)} runs to {path}")
        return 0
    print(f"{'run':<6} {'date':<19} {'status':<9} {'approach':<28} {'lr':>8} {'ep':>3} {'accuracy':>9} "
          f"{'95% CI':>13} {'lwlrap':>6}")
    for r in history.records:
        m = r.metrics
        accuracy = f"{m['val_accuracy']:.2%}" if m.get("val_accuracy") is not None else "-"
        lwlrap = f"{m['lwlrap']:.3f}" if m.get("lwlrap") is not None else "-"
        lr = r.config.get("lr")
        print(f"{r.short_id:<6} {r.created:<19} {r.status:<9} {r.approach:<28} "
              f"{'' if lr is None else format(lr, '.2e'):>8} {r.config.get('epochs') or '':>3} {accuracy:>9} "
              f"{interval_text(m.get('ci_low'), m.get('ci_high')):>13} {lwlrap:>6}")
    return 0


def command_ablate(args: argparse.Namespace) -> int:
    interrupts = Interrupts().install()
    printer, cancel = ApproachPrinter(interrupts=interrupts), interrupts.cancel
    start_warm_up()
    ablation = workbench(args, printer).ablate(config_from_args(args), groups=args.groups, cancel=cancel)
    print_runs(ablation.records, printer.wall_seconds)
    for failure in printer.failures:
        print(f"failed: {failure}")
    if cancel.is_set():
        raise Cancelled()
    comparison = ablation.comparison
    if comparison is not None:
        print(f"McNemar exact, both vs embeddings on {comparison.n_clips} clips: {comparison.verdict}")
    return EXIT_ERROR if printer.failures or comparison is None else 0


def command_kfold(args: argparse.Namespace) -> int:
    interrupts = Interrupts().install()
    printer = ApproachPrinter(interrupts=interrupts)
    start_warm_up()
    config = config_from_args(args)
    result = workbench(args, printer).kfold(config, n_folds=config.n_folds, cancel=interrupts.cancel)
    print_runs(result.records, printer.wall_seconds)
    for number, (record, accuracy) in enumerate(zip(result.records, result.accuracies)):
        m = record.metrics
        print(f"fold {number}: {accuracy:.2%} ({interval_text(m['ci_low'], m['ci_high'])}, n={m['val_samples']})")
    print(f"{result.approach}: {result.mean:.2%} ± {result.sd:.2%} (mean ± sd over {len(result.records)} folds)")
    return 0


def command_compare(args: argparse.Namespace) -> int:
    print_comparison(workbench(args).compare(args.run_a, args.run_b))
    return 0


def command_ensemble(args: argparse.Namespace) -> int:
    record = workbench(args).ensemble(args.runs, name=args.name or None)
    print_runs([record])
    print(f"Averaged the valid probabilities of {', '.join(record.config['members'])}; "
          f"recorded in {Path(args.results_dir) / 'history.jsonl'}.")
    return 0


def command_importance(args: argparse.Namespace) -> int:
    record, drops = workbench(args).importance(args.run, allow_outside=args.allow_outside_models)
    print(f"Accuracy drop on the valid clips when each feature group of {record.approach} is shuffled across clips "
          f"(accuracy {record.metrics['val_accuracy']:.2%}):")
    scale = max([abs(d) for d in drops.values()] + [1e-9])
    for group, drop in drops.items():
        print(f"{group:<5} {drop:>7.2%} {'█' * round(30 * max(drop, 0) / scale)}")
    return 0


def command_predict(args: argparse.Namespace) -> int:
    submission = workbench(args).predict(args.model, args.embeddings, args.tabular, key=args.key, out=args.out,
                                         force=args.force, allow_outside=args.allow_outside_models)
    prediction = submission.prediction
    for warning in prediction.warnings:
        print(f"  warning: {warning}")
    for fname, why in prediction.dropped:
        print(f"  dropped {fname}: {why}")
    classes = prediction.frame.shape[1] - 1
    print(f"Wrote {len(prediction.frame):,} clips × {classes} class probabilities ({prediction.label_mode}-label "
          f"model) to {submission.path}; {len(prediction.dropped):,} clip{'' if len(prediction.dropped) == 1 else 's'} "
          "dropped.")
    return 0


def command_sweep(args: argparse.Namespace) -> int:
    base = config_from_args(args)
    search = config_from_args(args, SweepConfig, SWEEP_SETTINGS)
    interrupts = Interrupts(at_once=False).install()
    printer = SweepPrinter(sys.stderr if args.json else None, interrupts=interrupts)
    start_warm_up()
    report = workbench(args, printer).sweep(base, search, cancel=interrupts.cancel)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print_sweep_report(report)
    return 0


def add_folder_arguments(parser) -> None:
    parser.add_argument("--results-dir", default="results", metavar="DIR",
                        help="run history, results CSVs and submissions (default: results)")
    parser.add_argument("--models-dir", default="models", metavar="DIR", help="saved models (default: models)")


def add_outside_models_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-outside-models", action="store_true",
                        help="load a model file outside --models-dir (it runs code from the file: trust it)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vggtab", description="Train and compare audio classifiers on VGGish embeddings + spectral "
        "feature tables. With no command (or with only the app's options), opens the terminal app.",
        epilog="The app's options: vggtab [--embeddings PATH] [--tabular PATH] [--key NAME] [--results-dir DIR] "
               "[--models-dir DIR] (`vggtab app --help`). Every command's options: vggtab COMMAND --help.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    app = commands.add_parser("app", help="open the terminal app (the default)")
    add_data_arguments(app)
    run = commands.add_parser("run", help="headless run: dataset summary, LR finder, training, evaluation, save")
    add_data_arguments(run)
    add_run_arguments(run)
    run.add_argument("--try-advice", action="store_true",
                     help="then run each change the diagnosis suggests on the same split, judged by the paired test")
    demo = commands.add_parser("demo", help=f"write the built-in synthetic demo data to {DEMO_DIR}/")
    demo.add_argument("--out", default=str(DEMO_DIR), help=f"folder (default: {DEMO_DIR})")
    demo.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    demo.add_argument("--clips", type=int, default=4970,
                      help="tabular clips, any size; the embeddings file keeps the default's share (default: 4970)")
    demo.add_argument("--force", action="store_true",
                      help="write the demo again over the files it wrote before (never over files it did not write)")
    predict = commands.add_parser("predict", help="class probabilities for new clips from a run's saved model, "
                                                  "written as a submission CSV (fname + one column per class)")
    predict.add_argument("--model", required=True, metavar="RUN",
                         help="run id (or its start or end), approach name (its latest run), or a .pkl vggtab saved")
    add_data_arguments(predict, to_predict=True)
    predict.add_argument("--out", default=None, metavar="PATH",
                         help="default: RESULTS_DIR/submission_<approach>.csv")
    predict.add_argument("--force", action="store_true", help="replace an earlier submission at --out")
    add_outside_models_argument(predict)
    ablate = commands.add_parser("ablate", help="run embeddings-only, tabular-only and both on one split, then "
                                                "the paired test between both and embeddings")
    add_data_arguments(ablate)
    add_run_arguments(ablate)
    ablate.add_argument("--groups", action="store_true", help="also each group alone: emb, stft, mel, cqt")
    sweep = commands.add_parser("sweep", help="search the run settings with Optuna, then score the winner once on "
                                              "a held-out test split (--test-pct, default 0.2)")
    add_data_arguments(sweep)
    add_run_arguments(sweep)
    add_setting_arguments(sweep, SWEEP_SETTINGS, "search settings")
    sweep.add_argument("--json", action="store_true", help="print the summary as JSON (progress goes to stderr)")
    kfold = commands.add_parser("kfold", help="run the approach on each fold of a stratified k-fold split "
                                              "(--n-folds): mean ± sd accuracy")
    add_data_arguments(kfold)
    add_run_arguments(kfold)
    compare = commands.add_parser("compare", help="McNemar's exact test between two runs on the same valid clips")
    compare.add_argument("run_a", metavar="RUN_A", help="run id (or its start or end) or approach name (latest run)")
    compare.add_argument("run_b", metavar="RUN_B")
    add_folder_arguments(compare)
    ensemble = commands.add_parser("ensemble", help="average the valid probabilities of 2+ runs on one split")
    ensemble.add_argument("runs", nargs="+", metavar="RUN", help="run ids (or their start or end) or approach names")
    ensemble.add_argument("--name", default="", help="approach name (default: ensemble(A + B))")
    add_folder_arguments(ensemble)
    importance = commands.add_parser("importance", help="permutation importance of each feature group of a "
                                                        "saved run (mlp, logreg, linear_svm) on its valid clips")
    importance.add_argument("run", metavar="RUN", help="run id (or its start or end) or approach name (latest run)")
    add_folder_arguments(importance)
    add_outside_models_argument(importance)
    results = commands.add_parser("results", help="list every recorded run, or export the table")
    add_folder_arguments(results)
    results.add_argument("--export", metavar="PATH", help="write the table to PATH (.csv or .md)")
    results.add_argument("--force", action="store_true", help="replace an earlier exported table at --export")
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": command_run, "demo": command_demo, "predict": command_predict, "results": command_results,
    "ablate": command_ablate, "kfold": command_kfold, "compare": command_compare, "ensemble": command_ensemble,
    "importance": command_importance, "sweep": command_sweep}


def command_app(args: argparse.Namespace) -> int:
    from tui.app import launch_app  # Textual is imported only when the app is wanted
    return launch_app(args.embeddings, args.tabular, key=args.key, results_dir=args.results_dir,
                      models_dir=args.models_dir) or 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["app", *argv]
    args = build_parser().parse_args(argv)
    try:
        if args.command == "app":
            return command_app(args)
        if getattr(args, "detach", False):
            return detach(argv, args)
        return COMMANDS[args.command](args)
    except Cancelled:
        return EXIT_CANCELLED
    except VggtabError as error:
        print(f"vggtab: {in_flags(str(error))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("vggtab: interrupted.", file=sys.stderr)
        return EXIT_CANCELLED
    except BrokenPipeError:  # the reader of stdout went away (`vggtab results | head`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:
        log = log_traceback(error, argv)
        details = f"the details in {log}" if log else "the command you ran (the details could not be saved)"
        print(f"vggtab: unexpected {type(error).__name__}: {error}\nThis is a bug in vggtab, not a problem with "
              f"your data or settings: please report it with {details}.", file=sys.stderr)
        return EXIT_BUG


def in_flags(message: str) -> str:
    """An engine message names a setting as field=value (bad_rows=drop) or as `field`; here the user types an
    option."""
    message = re.sub(r"(?<![\w-])([a-z_]+)=true\b", lambda m: SWITCHES.get(m[1], m[0]), message)
    message = re.sub(r"`([a-z_]+)`", lambda m: CLI_WORDS.get(m[1], m[1]), message)
    return re.sub(r"(?<![\w-])([a-z_]+)=", lambda m: f"{CLI_WORDS[m[1]]}=" if m[1] in CLI_WORDS else m[0], message)


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
