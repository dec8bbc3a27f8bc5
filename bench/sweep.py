"""Sweep throughput: trials per minute with 1 and 2 worker processes, against the same fits back to back.

    .venv/bin/python bench/sweep.py [--trials 8] [--rounds 2] [--epochs 20] [--storages]
    (also part of `make bench`, through `measure`)

Every mode runs the same fixed trials (enqueued into a fresh study, pruning off), on the full demo data
(data/demo, `vggtab demo`), so only the machinery differs:
- fits: one Session trains the trials' configs one after another: no Optuna, no storage (the floor);
- workers 1: one Worker in this process on a journal-file study;
- workers 2: two spawned worker processes sharing the journal file (their start-up and imports included);
- with --storages, workers 2 on SQLite as well (Optuna's docs advise against it for parallel writers).
Modes are interleaved per round (fits, w1, w2, …) so load from other processes on a shared box falls on all of
them; the load average is printed. A worker's data are prepared once and shared by its trials: the single-process
modes prepare every trial's features before timing, spawned workers inside it (their real cost, helped by the
prepared-data cache on disk).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import DEMO_EMBEDDINGS, DEMO_TABULAR, RunConfig, SweepConfig  # noqa: E402
from engine.events import TrialEnded  # noqa: E402
from engine.pipeline import Session  # noqa: E402
from engine.sweep import SearchSpace, Worker, count_tabular, open_study, run_workers  # noqa: E402


def fixed_trials(epochs: int, n: int) -> list[dict]:
    """A mix like a sweep's: MLPs of each preset on each feature set, and the two linear baselines. All distinct: a
    repeated setting would be reused by a worker (no fit) and replaced by a trial of its own choosing."""
    shapes = [dict(model="mlp", features="embeddings", layers="2 layers"),
              dict(model="mlp", features="both", reduce="top_k", layers="3 layers"),
              dict(model="logreg", features="both", reduce="pca"),
              dict(model="mlp", features="tabular", reduce="pca", layers="2 layers"),
              dict(model="linear_svm", features="embeddings"),
              dict(model="mlp", features="both", reduce="none", layers="4 layers"),
              dict(model="logreg", features="embeddings"),
              dict(model="mlp", features="tabular", reduce="top_k", layers="3 layers")]
    if n > len(shapes):
        raise SystemExit(f"--trials {n}: the bench has {len(shapes)} distinct fixed trials.")
    mlp = dict(ps=0.2, wd=0.01, bs=64, epochs=epochs, lr_source="range", lr=2e-3)
    return [shape | (mlp if shape["model"] == "mlp" else {}) for shape in shapes[:n]]


def space_params(space: SearchSpace, params: dict) -> dict:
    """Fill the data-dependent choices (top-K, PCA) with the space's first value."""
    params = dict(params)
    if params.get("reduce") == "top_k":
        params["select_k"] = space.select_k[-1]
    if params.get("reduce") == "pca":
        params["pca"] = space.pca[0]
    return params


def timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def measure(trials: int = 8, rounds: int = 2, epochs: int = 20, storages: bool = False) -> dict:
    """Every mode's seconds per round and trials per minute (whole run, and after each worker's first trial)."""
    if not Path(DEMO_EMBEDDINGS).is_file():
        raise SystemExit("No demo data: run `.venv/bin/vggtab demo` first.")
    os.chdir(ROOT)
    work = Path(tempfile.mkdtemp(prefix="vggtab-bench-sweep-"))
    base = RunConfig(embeddings=DEMO_EMBEDDINGS, tabular=DEMO_TABULAR, test_pct=0.2)
    sweep = SweepConfig(trials=trials, pruner="off", epoch_choices=(epochs,))
    session = Session(results_dir=work / "fits", models_dir=work / "models")
    space = SearchSpace.for_data(sweep, *count_tabular(session, base))
    params = [space_params(space, p) for p in fixed_trials(epochs, trials)]
    import optuna
    configs = [space.suggest(optuna.trial.FixedTrial(p), base) for p in params]
    in_process = Worker(None, sweep, base, models_dir=work / "models", results_dir=work / "w1")
    in_process.space = space
    for config in configs:  # both sessions hold every trial's features before the clock starts
        session.prepare(config)
        in_process.session.prepare(config)
    counter = iter(range(10**6))
    ended: dict[str, list[tuple[int, float]]] = {}  # mode → (worker, time) of each TrialEnded, this round

    def recorder(mode: str):
        ended[mode] = []
        # TrialEnded only: TrialStarted has a worker too, and counting it would double the trials.
        return lambda event: ended[mode].append((event.worker, time.perf_counter())) \
            if isinstance(event, TrialEnded) else None

    def fresh_study(storage: str = ""):
        name = f"bench{next(counter)}"
        study_sweep = SweepConfig(**{**sweep.__dict__, "storage": storage, "study": name})
        study = open_study(study_sweep, base, work / "studies", name)
        for p in params:
            study.enqueue_trial(p)
        return study_sweep, study

    def fits():
        for config in configs:
            session.train(config)

    def workers_1():
        study_sweep, study = fresh_study()
        in_process.study, in_process.sweep, in_process.report = study, study_sweep, recorder("workers 1 (journal)")
        in_process.run(trials)

    def workers_2(storage: str = ""):
        study_sweep, study = fresh_study(storage)
        mode = f"workers 2 ({'SQLite' if storage else 'journal'})"
        run_workers(study_sweep.__class__(**{**study_sweep.__dict__, "workers": 2}), base, study.study_name,
                    results_dir=work / "studies", models_dir=work / "models", report=recorder(mode),
                    cancel=threading.Event())

    def after_start_up(mode: str) -> float | None:
        """Trials per minute after each worker's first trial ended: start-up (spawn, imports, data) left out."""
        per_worker: dict[int, list[float]] = {}
        for worker, at in ended.get(mode, []):
            per_worker.setdefault(worker, []).append(at)
        rates = [60 * (len(t) - 1) / (t[-1] - t[0]) for t in per_worker.values() if len(t) > 1 and t[-1] > t[0]]
        return sum(rates) if rates else None
    steady: dict[str, list[float]] = {}

    modes = {"fits back to back": fits, "workers 1 (journal)": workers_1, "workers 2 (journal)": workers_2}
    if storages:
        modes["workers 2 (SQLite)"] = lambda: workers_2(f"sqlite:///{work / 'studies' / 'bench.db'}")
    seconds: dict[str, list[float]] = {name: [] for name in modes}
    for round_number in range(rounds):
        for name, run in modes.items():
            seconds[name].append(timed(run))
            if after_start_up(name) is not None:
                steady.setdefault(name, []).append(after_start_up(name))
            print(f"round {round_number + 1} {name:<22} {seconds[name][-1]:7.1f} s", file=sys.stderr)
    return {"trials": trials, "rounds": rounds, "epochs": epochs, "load": os.getloadavg(), "seconds": seconds,
            "per_minute": {name: 60 * trials / statistics.median(values) for name, values in seconds.items()},
            "steady": {name: statistics.median(values) for name, values in steady.items()}}


def ratios(result: dict) -> dict[str, float]:
    """A worker against back-to-back fits (goal ≥ 0.9), and two workers against one (goal ≥ 1.7)."""
    rate, steady = result["per_minute"], result["steady"]
    found = {"workers 1 / fits back to back": rate["workers 1 (journal)"] / rate["fits back to back"],
             "workers 2 / workers 1": rate["workers 2 (journal)"] / rate["workers 1 (journal)"]}
    if "workers 2 (journal)" in steady and "workers 1 (journal)" in steady:
        found["workers 2 / workers 1 after start-up"] = steady["workers 2 (journal)"] / steady["workers 1 (journal)"]
    if "workers 2 (SQLite)" in rate:
        found["SQLite / journal (2 workers)"] = rate["workers 2 (SQLite)"] / rate["workers 2 (journal)"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--storages", action="store_true", help="also two workers on SQLite")
    args = parser.parse_args()
    result = measure(args.trials, args.rounds, args.epochs, args.storages)
    load = result["load"]
    print(f"\n{args.trials} trials per mode ({args.epochs}-epoch MLPs and linear baselines, full demo data), "
          f"{args.rounds} rounds; load average {load[0]:.1f} / {load[1]:.1f} (2 cores, shared)")
    for name, per_minute in result["per_minute"].items():
        print(f"{name:<22} {per_minute:6.2f} trials/min  (median {statistics.median(result['seconds'][name]):.1f} s)")
    for name, per_minute in result["steady"].items():
        print(f"{name:<22} {per_minute:6.2f} trials/min after each worker's first trial")
    for name, value in ratios(result).items():
        print(f"{name + ':':<38} {value:.2f}")


if __name__ == "__main__":
    main()
