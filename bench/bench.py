"""vggtab's speed benchmark (`make bench`): the engine and the app against the user's stock fastai notebook.

    .venv/bin/python bench/bench.py [--quick] [--json PATH] [--seeds 3] [--no-app] [--no-scale] [--proposals]

Data of the workload's shape (4,970 tabular rows × 2,474 columns, 3,524 embedding rows, 74 classes) is generated
once with engine.demo.generate_demo into data/bench/, plus the same tabular table written at full float
precision (~244 MB, the size of the user's file; the demo writes 6 significant digits, ~115 MB). Every
measure runs in a fresh child process (bench/stock.py, engine_run.py, fit.py, bench_app.py) and reports JSON;
this script prints one table, then bench/scale.py's scaling table (5k / 20k / 50k clips, 1,000-run history).
The machine is shared: the load average is printed with the table, fits are interleaved (stock, then each
engine variant, per seed) and CPU seconds are shown beside wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
DATA = ROOT / "data" / "bench"
EMBEDDINGS = DATA / "embeddings.csv"
TABULAR = DATA / "tabular.csv"  # the demo's 6 significant digits
TABULAR_FULL = DATA / "tabular_full.csv"  # same table, full float precision: the user's file size
WARM_CACHE = DATA / "cache"  # load cache for the children that time steps after loading

sys.path.insert(0, str(ROOT))


# -- data ---------------------------------------------------------------------------------------------------
def ensure_data() -> None:
    if not (EMBEDDINGS.is_file() and TABULAR.is_file()):
        from engine.demo import generate_demo
        print(f"Generating the workload into {DATA.relative_to(ROOT)}/ (once) …", file=sys.stderr)
        generate_demo(DATA)
    if not TABULAR_FULL.is_file():
        write_full_precision(TABULAR, TABULAR_FULL)


def write_full_precision(source: Path, target: Path) -> None:
    """The demo's table with float32 values printed as float64 (17 significant digits), like a pandas export
    of features computed in float32: ~244 MB, the size of the user's file."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    table = pa_csv.read_csv(source, read_options=pa_csv.ReadOptions(block_size=16 << 20),
                            convert_options=pa_csv.ConvertOptions(column_types={"file": pa.string()}))
    columns = [column.cast(pa.float32()).cast(pa.float64()) if pa.types.is_floating(column.type) else column
               for column in table.columns]
    temp = target.with_name(f".{target.name}.tmp")
    pa_csv.write_csv(pa.table(columns, names=table.column_names), temp,
                     write_options=pa_csv.WriteOptions(quoting_style="needed"))
    os.replace(temp, target)


# -- children -----------------------------------------------------------------------------------------------
def child(args: list[str], *, json_path: Path | None = None, env: dict | None = None,
          log: Path | None = None) -> tuple[dict, float, float]:
    """Run `python args…`, which writes JSON to json_path (default: its last argument); returns (that JSON,
    wall seconds from spawn to exit, peak RSS in MB of that process alone)."""
    json_path = Path(json_path or args[-1])
    json_path.unlink(missing_ok=True)
    out = open(log, "w") if log else subprocess.DEVNULL
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT if log else None,
                               env={**os.environ, **(env or {})}, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if log:
        out.close()
    if process.returncode != 0 or not json_path.is_file():
        where = f"; its output is in {log}" if log else ""
        raise RuntimeError(f"{' '.join(args[:2])} failed with exit code {process.returncode}{where}")
    return json.loads(json_path.read_text()), wall, usage.ru_maxrss / 1024  # ru_maxrss is in KB on Linux


def default_threads() -> int:
    import ast
    source = (ROOT / "engine" / "model.py").read_text()
    for node in ast.parse(source).body:  # without importing torch into this process
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DEFAULT_THREADS":
            return int(ast.literal_eval(node.value))
    return 1


# -- measures -----------------------------------------------------------------------------------------------
def measure_reload(quick: bool) -> dict:
    """engine.load.load_table with an empty cache (the CSV parse; the cache copy is written in the background),
    then again once that copy is on disk (a cache hit)."""
    from engine.load import load_table, wait_for_cache_writes

    result = {}
    for name, path in (("demo", TABULAR), ("full", TABULAR_FULL)):
        if quick and name == "full":
            continue
        with tempfile.TemporaryDirectory(prefix="vggtab-bench-cache-") as cache:
            started = time.perf_counter()
            first = load_table(path, cache_dir=cache)
            first_s = time.perf_counter() - started
            del first
            wait_for_cache_writes()
            again = []
            for _ in range(2):
                started = time.perf_counter()
                table = load_table(path, cache_dir=cache)
                again.append(time.perf_counter() - started)
                assert table.from_cache, "the second load missed the cache"
                del table
        result[name] = {"mb": path.stat().st_size / 1e6, "first": first_s, "cached": min(again)}
    return result


def measure_e2e(scratch: Path, threads: int) -> dict:
    tabular = str(TABULAR_FULL)
    stock_dir, engine_dir = scratch / "stock", scratch / "engine"
    stock_dir.mkdir()
    engine_dir.mkdir()
    stock, stock_wall, stock_rss = child(
        [str(BENCH / "stock.py"), str(EMBEDDINGS), tabular, str(stock_dir), str(scratch / "stock.json"),
         str(threads)], json_path=scratch / "stock.json", log=scratch / "stock.log")
    engine, engine_wall, engine_rss = child(
        [str(BENCH / "engine_run.py"), str(EMBEDDINGS), tabular, str(engine_dir), str(scratch / "engine.json")],
        json_path=scratch / "engine.json", env={"VGGTAB_CACHE_DIR": str(scratch / "empty-cache")}, log=scratch / "engine.log")
    result = {"stock": stock | {"wall": stock_wall, "rss_mb": stock_rss},
              "engine": engine | {"wall": engine_wall, "rss_mb": engine_rss}}
    return result


def measure_fit(scratch: Path, *, seeds: int, epochs: int, profile: bool, proposals: bool) -> dict:
    args = [str(BENCH / "fit.py"), "compare", str(EMBEDDINGS), str(TABULAR_FULL), "--seeds", str(seeds),
            "--epochs", str(epochs), "--cache-dir", str(WARM_CACHE)]
    if profile:
        args.append("--profile")
    if proposals:
        args.append("--proposals")
    result, _, _ = child(args + [str(scratch / "fit.json")], log=scratch / "fit.log")
    return result


def measure_threads(scratch: Path, *, epochs: int) -> dict:
    result, _, _ = child([str(BENCH / "fit.py"), "threads", str(EMBEDDINGS), str(TABULAR_FULL), "--epochs",
                          str(epochs), "--cache-dir", str(WARM_CACHE), str(scratch / "threads.json")],
                         log=scratch / "threads.log")
    return result


def launch_app(embeddings: Path, tabular: Path, cache: Path, scratch: Path, name: str) -> dict:
    """One launch of the app (bench_app.py start): seconds from process start to first paint and to ready."""
    out = scratch / name
    out.mkdir()
    result, _, _ = child([str(BENCH / "bench_app.py"), "start", repr(time.time()), str(embeddings), str(tabular),
                          str(out), str(scratch / f"{name}.json")], json_path=scratch / f"{name}.json",
                         env={"VGGTAB_CACHE_DIR": str(cache)}, log=scratch / f"{name}.log")
    return result


def measure_start(scratch: Path, runs: int, embeddings: Path = EMBEDDINGS, tabular: Path = TABULAR_FULL) -> dict:
    """Cold (an empty cache: parse, merge, audit, features) and warm (a launch before this one on the same files)
    launches, interleaved so that load from other processes hits both alike."""
    warm_cache = scratch / "warm-cache"
    launch_app(embeddings, tabular, warm_cache, scratch, "fill")  # fills the warm cache
    launches: dict[str, list[dict]] = {"cold": [], "warm": []}
    for run in range(runs):
        launches["cold"].append(launch_app(embeddings, tabular, scratch / f"cold-cache{run}", scratch, f"cold{run}"))
        launches["warm"].append(launch_app(embeddings, tabular, warm_cache, scratch, f"warm{run}"))
    return {kind: {"runs": results, "first_paint": statistics.median(r["first_paint"] for r in results),
                   "ready": statistics.median(r["ready"] for r in results)} for kind, results in launches.items()}


def measure_lag(scratch: Path, threads: int, embeddings: Path = EMBEDDINGS, tabular: Path = TABULAR_FULL,
                cache: Path = WARM_CACHE) -> dict:
    name = f"lag{threads}"
    out = scratch / name
    out.mkdir()
    result, _, _ = child([str(BENCH / "bench_app.py"), "lag", str(threads), str(embeddings), str(tabular),
                          str(out), str(scratch / f"{name}.json")],
                         json_path=scratch / f"{name}.json", env={"VGGTAB_CACHE_DIR": str(cache)},
                         log=scratch / f"{name}.log")
    return result


PROPOSAL_NAMES = {"frozen_bn": "input BatchNorm scale/shift frozen", "no_bn": "no input BatchNorm",
                  "fused_bn_fp32": "fused input BatchNorm+Linear backward, fp32",
                  "fused_bn_bf16": "fused input BatchNorm+Linear backward, bf16",
                  "plain_floor": "(floor) bare PyTorch loop, same model"}


# -- the table ----------------------------------------------------------------------------------------------
class Table:
    HEAD = ("measure", "stock", "engine", "ratio", "goal", "met?")

    def __init__(self, head: tuple[str, ...] = HEAD):
        self.head = head
        self.rows: list[tuple[str, ...]] = []

    def add(self, measure: str, stock: str = "", engine: str = "", ratio: str = "", goal: str = "",
            met: bool | None = None) -> None:
        self.add_row(measure, stock, engine, ratio, goal, "" if met is None else "yes" if met else "NO")

    def add_row(self, *cells: str) -> None:
        self.rows.append(cells + ("",) * (len(self.head) - len(cells)))

    def section(self, title: str) -> None:
        self.rows.append((f"-- {title}",) + ("",) * (len(self.head) - 1))

    def render(self) -> str:
        measures = [row for row in self.rows if not row[0].startswith("-- ")]  # titles span the whole line
        widths = [max(len(row[i]) for row in (self.head, *measures)) for i in range(len(self.head))]
        line = "  ".join("-" * w for w in widths)
        text = ["  ".join(h.ljust(w) for h, w in zip(self.head, widths)), line]
        for row in self.rows:
            if row[0].startswith("-- "):
                text.append(row[0])
                continue
            text.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                                  for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
        return "\n".join(text)


def load_note(before: tuple[float, ...], after: tuple[float, ...], took: float) -> str:
    """The shared box's load around a bench run: the numbers above are only as steady as this."""
    return (f"load average (1/5/15 min) before {'/'.join(f'{x:.1f}' for x in before)}, after "
            f"{'/'.join(f'{x:.1f}' for x in after)} on {os.cpu_count()} cores; bench took {took:.0f} s")


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def ratio(before: float, after: float) -> float:
    return before / after if after > 0 else float("inf")


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1%} ± {sd:.1%}"


def fill_table(table: Table, raw: dict) -> None:
    fit = raw.get("fit")
    if fit:
        runs = fit["runs"]
        stock = statistics.mean(r["fit"] for r in runs["stock"])
        table.section(f"fit: {fit['epochs']} epochs, LR {fit['lr']:g}, {fit['train_rows']:,} train / "
                      f"{fit['valid_rows']:,} valid × {fit['features']:,} features, {fit['threads']} torch "
                      f"thread(s), {len(runs['stock'])} seeds, same split; precision auto → {fit['precision']}")
        labels = {"engine": f"engine (shuffle, {fit['precision']})", "fp32": "engine fp32 (shuffle)",
                  "replacement": f"engine sampling=replacement ({fit['precision']})"}
        for name in [name for name in labels if name in runs]:
            engine = statistics.mean(r["fit"] for r in runs[name])
            goal = name == "engine"
            table.add(f"fit wall, {labels[name]}", seconds(stock), seconds(engine), f"{ratio(stock, engine):.1f}×",
                      "≥ 3×" if goal else "", ratio(stock, engine) >= 3 if goal else None)
        stock_cpu = statistics.mean(r["fit_cpu"] for r in runs["stock"])
        for name in [name for name in ("engine", "fp32") if name in runs]:
            engine_cpu = statistics.mean(r["fit_cpu"] for r in runs[name])
            table.add(f"fit CPU seconds, {labels[name]} (less load-sensitive)", seconds(stock_cpu),
                      seconds(engine_cpu), f"{ratio(stock_cpu, engine_cpu):.1f}×")
        extra = fit.get("first_fit_extra", {})
        if extra:
            table.add("one-time cost of the first fit in a process", seconds(extra["stock"]),
                      seconds(extra["engine"]))
        table.add("stock DataLoaders build / engine learner build",
                  seconds(statistics.mean(r["build"] for r in runs["stock"])),
                  seconds(statistics.mean(r["build"] for r in runs["engine"])))
        for name in [name for name in labels if name in runs]:
            table.add(f"valid accuracy (epoch {fit['epochs']}), {labels[name]}",
                      mean_sd([r["accuracy"] for r in runs["stock"]]),
                      mean_sd([r["accuracy"] for r in runs[name]]))
        for name in [name for name in runs if name not in ("stock", *labels)]:
            engine = statistics.mean(r["fit"] for r in runs[name])
            table.add(f"proposal {PROPOSAL_NAMES.get(name, name)}: fit wall", seconds(stock), seconds(engine),
                      f"{ratio(stock, engine):.1f}×")
            table.add(f"proposal {PROPOSAL_NAMES.get(name, name)}: valid accuracy",
                      mean_sd([r["accuracy"] for r in runs["stock"]]), mean_sd([r["accuracy"] for r in runs[name]]))
    e2e = raw.get("e2e")
    if e2e:
        stock, engine = e2e["stock"], e2e["engine"]
        table.section(f"end to end, cold, new process, {TABULAR_FULL.stat().st_size / 1e6:.0f} MB tabular CSV, "
                      f"LR finder + 20 epochs, {raw['threads']} torch thread(s) both")
        for stage in ("import", "load", "merge", "audit", "labels", "imports", "split", "features", "lr_find", "fit",
                      "evaluate", "save"):
            a, b = stock["stages"].get(stage, 0.0), engine["stages"].get(stage, 0.0)
            table.add(f"  {stage}", seconds(a), seconds(b), f"{ratio(a, b):.1f}×" if b > 0.05 else "")
        table.add("end to end total (process wall)", seconds(stock["wall"]), seconds(engine["wall"]),
                  f"{ratio(stock['wall'], engine['wall']):.1f}×", "≥ 2×", ratio(stock["wall"], engine["wall"]) >= 2)
        table.add("valid accuracy of that run (LR from the finder)", f"{stock['accuracy']:.1%}",
                  f"{engine['accuracy']:.1%}", f"LR {stock['lr']:.2g} / {engine['lr']:.2g}")
        table.add("peak memory of the run (max RSS)", f"{stock['rss_mb']:,.0f} MB", f"{engine['rss_mb']:,.0f} MB",
                  "", "< 1.5 GB", engine["rss_mb"] < 1536)
    reload = raw.get("reload")
    if reload:
        table.section("reload: engine.load.load_table, first (CSV parse) → again (Arrow cache)")
        for name, label in (("full", "full precision, the user's size"), ("demo", "demo's 6 digits")):
            if name in reload:
                r = reload[name]
                table.add(f"tabular CSV {r['mb']:.0f} MB ({label})", seconds(r["first"]), seconds(r["cached"]),
                          f"{ratio(r['first'], r['cached']):.1f}×", "≥ 5×" if name == "full" else "",
                          ratio(r["first"], r["cached"]) >= 5 if name == "full" else None)
    threads = raw.get("threads_fit")
    if threads:
        fits = threads["fit"]
        table.section(f"threads: engine fit, {threads['epochs']} epochs, 1 vs 2 torch threads "
                      f"(stock column = 1 thread, engine column = 2 threads)")
        for where, label in (("alone", "nothing else of ours running"),
                             ("busy", "plus one busy single-threaded process")):
            one, two = fits[f"1_{where}"], fits[f"2_{where}"]
            capped = [f"{n} thread{'s' if n > 1 else ''}" for n in (1, 2) if fits.get(f"{n}_{where}_capped")]
            note = f" ({' and '.join(capped)} stopped at {threads.get('cap', 10):g} s, extrapolated)" if capped else ""
            table.add(f"fit, {label}{note}", seconds(one), seconds(two), f"{ratio(one, two):.2f}×")
    sweep = raw.get("sweep")
    if sweep:
        from sweep import ratios as sweep_ratios
        table.section(f"sweep throughput ({sweep['trials']} fixed trials of {sweep['epochs']} epochs, full demo, "
                      f"median of {sweep['rounds']} rounds)")
        for mode, per_minute in sweep["per_minute"].items():
            table.add(f"{mode}: trials per minute", "", f"{per_minute:.2f}")
        # Throughput is the rate once each worker runs: its start-up (spawn, imports, data) is a fixed few seconds.
        goals = {"workers 1 / fits back to back": 0.9, "workers 2 / workers 1 after start-up": 1.7}
        for name, value in sweep_ratios(sweep).items():
            goal = goals.get(name)
            table.add(name, "", "", f"{value:.2f}×", f"≥ {goal}×" if goal else "", value >= goal if goal else None)
    start = raw.get("start")
    if start:
        table.section("app (Textual, headless 120×40)")
        runs = len(start["warm"]["runs"])
        for kind in ("warm", "cold"):
            table.add(f"first paint from process start, {kind} (median of {runs})", "",
                      seconds(start[kind]["first_paint"]), "", "< 1 s", start[kind]["first_paint"] < 1)
        table.add(f"ready from process start, warm: files launched before (median of {runs})", "",
                  seconds(start["warm"]["ready"]), "", "< 2 s", start["warm"]["ready"] < 2)
        table.add(f"ready from process start, cold: an empty cache (median of {runs})", "",
                  seconds(start["cold"]["ready"]))
    for key, label in (("lag1", "1 thread"), ("lag2", "2 threads")):
        lag = raw.get(key)
        if not lag:
            continue
        training, gen2 = lag["training"], lag["gc"]["training"]["2"]
        table.add(f"loop lag during a 20-epoch run, p95 ({label})", "", f"{training['p95'] * 1000:.0f} ms",
                  "", "< 50 ms", training["p95"] < 0.05)
        table.add(f"loop lag during the run, max ({label})", "", f"{training['max'] * 1000:.0f} ms", "",
                  "< 250 ms", training["max"] < 0.25)
        keys = lag["key_handled"]
        table.add(f"key → action during the run, max of {keys['n']} ({label})", "",
                  f"{keys['max'] * 1000:.0f} ms", "", "< 250 ms", keys["max"] < 0.25)
        table.add(f"key → next screen refresh, max ({label})", "", f"{lag['key_painted']['max'] * 1000:.0f} ms")
        table.add(f"full GC pauses during the run: count, longest ({label})", "",
                  f"{gen2['n']}, {gen2['max'] * 1000:.0f} ms")
        table.add(f"loop lag max while preparing + importing ({label})", "", f"{lag['startup']['max'] * 1000:.0f} ms")
        ended = "cancelled at the cap" if lag.get("capped") else f"finished: {lag['run_finished']}"
        table.add(f"run length in the app ({label}); {ended}", "", seconds(lag["train_seconds"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: no end-to-end or app-lag runs, 1 seed × 2 epochs, the small CSV only")
    parser.add_argument("--json", metavar="PATH", help="save the raw numbers as JSON")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per fit variant (default 3)")
    parser.add_argument("--no-app", action="store_true", help="skip the app measures")
    parser.add_argument("--profile", action="store_true", help="cProfile one engine and one stock fit (in JSON)")
    parser.add_argument("--no-scale", action="store_true", help="skip the scaling table (bench/scale.py)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the sweep throughput (bench/sweep.py)")
    parser.add_argument("--proposals", action="store_true",
                        help="also time engine changes proposed in bench/fit.py PROPOSALS (frozen input BatchNorm, …)")
    args = parser.parse_args()

    ensure_data()
    threads = default_threads()
    raw: dict = {"threads": threads, "load_before": os.getloadavg(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    began = time.perf_counter()
    steps = [("reload", lambda scratch: measure_reload(args.quick))]
    if not args.quick:
        steps.append(("e2e", lambda scratch: measure_e2e(scratch, threads)))
    steps += [("fit", lambda scratch: measure_fit(scratch, seeds=1 if args.quick else args.seeds,
                                                  epochs=2 if args.quick else 20, profile=args.profile,
                                                  proposals=args.proposals)),
              ("threads_fit", lambda scratch: measure_threads(scratch, epochs=1 if args.quick else 3))]
    if not args.no_app:
        steps.append(("start", lambda scratch: measure_start(scratch, 1 if args.quick else 5)))
        if not args.quick:
            steps += [("lag1", lambda scratch: measure_lag(scratch, 1)),
                      ("lag2", lambda scratch: measure_lag(scratch, 2))]
    if not args.no_sweep:
        from sweep import measure as measure_sweep
        steps.append(("sweep", lambda scratch: measure_sweep(trials=2 if args.quick else 8,
                                                             rounds=1 if args.quick else 2,
                                                             epochs=1 if args.quick else 20)))
    if not args.no_scale:
        from scale import run as run_scale
        steps.append(("scale", lambda scratch: run_scale([1000, 2000] if args.quick else [5000, 20000, 50000],
                                                         100 if args.quick else 1000, scratch)))
    with tempfile.TemporaryDirectory(prefix="vggtab-bench-") as folder:
        for name, step in steps:
            print(f"[{time.perf_counter() - began:5.0f} s] {name} …", file=sys.stderr)
            scratch = Path(folder) / name
            scratch.mkdir()
            raw[name] = step(scratch)
            if args.json:  # after every step: a late failure keeps the numbers measured so far
                Path(args.json).write_text(json.dumps(raw, indent=1))
    raw["load_after"] = os.getloadavg()
    raw["bench_seconds"] = time.perf_counter() - began

    table = Table()
    fill_table(table, raw)
    print(table.render())
    if raw.get("scale"):
        from scale import scale_table
        print("\n" + scale_table(raw["scale"]).render())
    print("\n" + load_note(raw["load_before"], raw["load_after"], raw["bench_seconds"]))
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
