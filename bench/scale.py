"""Scaling (`make bench-scale`; also part of `make bench`): each stage's seconds and peak memory at 5k, 20k and
50k clips, how they grow with rows, and the history / results table with 1,000 recorded runs.

    .venv/bin/python bench/scale.py [--clips 5000,20000,50000] [--runs 1000] [--json PATH]

Data: `vggtab demo --clips N` (engine.demo, 6 significant digits: ~115 MB of tabular CSV per 5k clips), written
once into data/bench-scale/N/. Each size runs bench/engine_run.py twice in fresh processes with 1 epoch: cold
(an empty load cache: the CSVs are parsed) and cached (the cache copies the first run wrote). Memory is the
resident set: each stage's peak from a 10 ms sampler in the child, and the whole process's peak from wait4. At the
largest size, the app's first paint and ready time, cold and warm (bench/bench_app.py start).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import BENCH, ROOT, Table, child, load_note, measure_lag, measure_start, seconds

DATA = ROOT / "data" / "bench-scale"
STAGES = ("import", "load", "merge", "audit", "labels", "imports", "split", "features", "lr_find", "fit",
          "evaluate", "save")


def ensure_data(clips: int) -> tuple[Path, Path]:
    from engine.demo import generate_demo, scaled_counts
    folder = DATA / str(clips)
    if not (folder / "tabular.csv").is_file():
        print(f"Generating {clips:,} clips into {folder.relative_to(ROOT)}/ (once) …", file=sys.stderr)
        generate_demo(folder, **scaled_counts(clips))
    return folder / "embeddings.csv", folder / "tabular.csv"


def measure_size(clips: int, scratch: Path) -> dict:
    embeddings, tabular = ensure_data(clips)
    result = {"clips": clips, "csv_mb": (embeddings.stat().st_size + tabular.stat().st_size) / 1e6}
    cache = scratch / "cache"
    for run in ("cold", "cached"):
        out = scratch / run
        out.mkdir()
        data, wall, rss = child([str(BENCH / "engine_run.py"), str(embeddings), str(tabular), str(out),
                                 str(scratch / f"{run}.json"), "1"], json_path=scratch / f"{run}.json",
                                env={"VGGTAB_CACHE_DIR": str(cache)}, log=scratch / f"{run}.log")
        result[run] = data | {"wall": wall, "rss_mb": rss}
    return result


def measure_history(runs: int, scratch: Path, history_line: str) -> dict:
    """`runs` copies of a real history line (new run ids): load_history, `vggtab results` and the CSV export."""
    from engine.store.export import export_table
    from engine.store.history import load_history

    template = json.loads(history_line)
    results = scratch / "results"
    results.mkdir()
    with open(results / "history.jsonl", "w") as history:
        for number in range(runs):
            history.write(json.dumps(template | {"run_id": f"{template['run_id']}-{number:05d}"}) + "\n")
    loads = []
    for _ in range(3):
        started = time.perf_counter()
        loaded = load_history(results)
        loads.append(time.perf_counter() - started)
    assert len(loaded.records) == runs, f"{len(loaded.records)} of {runs} runs loaded"
    started = time.perf_counter()
    export_table(loaded.records, scratch / "table.csv", "csv")
    export = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tui", "results", "--results-dir", str(results)], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)
    cli = time.perf_counter() - started
    return {"runs": runs, "mb": (results / "history.jsonl").stat().st_size / 1e6, "load": min(loads),
            "export": export, "cli": cli}


def growth(a: float, b: float) -> str:
    return f"{b / a:.1f}×" if a > 0.05 else ""


def size_name(clips: int) -> str:
    return f"{clips / 1000:g}k"


def scale_table(raw: dict) -> Table:
    sizes = raw["sizes"]
    names = [size_name(s["clips"]) for s in sizes]
    steps = [f"{size_name(a['clips'])}→{size_name(b['clips'])} (rows ×{b['clips'] / a['clips']:.1f})"
             for a, b in zip(sizes, sizes[1:])]
    table = Table(("stage: seconds, peak RSS in the stage", *names, *(f"growth {step}" for step in steps)))

    def row(label: str, values: list[float], peaks: list[float] | None = None) -> None:
        cells = [seconds(v) + (f", {p:,.0f} MB" if peaks else "") for v, p in zip(values, peaks or values)]
        table.add_row(label, *cells, *(growth(a, b) for a, b in zip(values, values[1:])))

    for stage in STAGES:
        label = {"load": "load, cold (CSV parse, both files)", "fit": "fit, one epoch",
                 "imports": "wait for the warm-up imports"}.get(stage, stage)
        row(label, [s["cold"]["stages"].get(stage, 0.0) for s in sizes],
            None if stage == "import" else [s["cold"]["peak_mb"].get(stage, 0.0) for s in sizes])
    row("load, cached (the split and model inputs kept)", [s["cached"]["stages"].get("load", 0.0) for s in sizes],
        [s["cached"]["peak_mb"].get("load", 0.0) for s in sizes])
    row("whole run, cold (process wall)", [s["cold"]["wall"] for s in sizes])
    row("whole run, cached (process wall)", [s["cached"]["wall"] for s in sizes])
    peaks = [s["cold"]["rss_mb"] for s in sizes]
    table.add_row("peak RSS of the whole cold run (goal < 4 GB at 50k)", *(f"{p:,.0f} MB" for p in peaks),
                  *(f"{b / a:.1f}×" for a, b in zip(peaks, peaks[1:])))
    table.add_row("CSV size, embeddings + tabular", *(f"{s['csv_mb']:,.0f} MB" for s in sizes))
    table.add_row(f"train rows (× {sizes[0]['cold']['features']:,} features)",
                  *(f"{s['cold']['train_rows']:,}" for s in sizes))
    start = raw.get("start")
    if start:
        table.section(f"the app at {size_name(sizes[-1]['clips'])} clips (headless 120×40, seconds from process "
                      f"start; median of {len(start['warm']['runs'])})")
        for kind, what in (("warm", "files launched before"), ("cold", "an empty cache")):
            table.add_row(f"first paint, {kind}", seconds(start[kind]["first_paint"]))
            table.add_row(f"ready, {kind}: {what}", seconds(start[kind]["ready"]))
    lag = raw.get("lag")
    if lag:
        training = lag["training"]
        ended = "cancelled at the cap" if lag.get("capped") else f"finished: {lag['run_finished']}"
        table.add_row("loop lag during a 20-epoch run, p95 / max (goal < 50 / 250 ms)",
                      f"{training['p95'] * 1000:.0f} / {training['max'] * 1000:.0f} ms")
        table.add_row(f"key → action during the run, max of {lag['key_handled']['n']} (goal < 250 ms)",
                      f"{lag['key_handled']['max'] * 1000:.0f} ms")
        table.add_row(f"run length in the app; {ended}", seconds(lag["train_seconds"]))
    history = raw.get("history")
    if history:
        table.section(f"history with {history['runs']:,} recorded runs ({history['mb']:.1f} MB of JSONL)")
        table.add_row("engine.store.history.load_history (best of 3)", seconds(history["load"]))
        table.add_row("results table exported to CSV", seconds(history["export"]))
        table.add_row("`vggtab results` in a new process", seconds(history["cli"]))
    return table


def run(clips: list[int], runs: int, folder: Path) -> dict:
    raw: dict = {"sizes": []}
    for count in clips:
        scratch = folder / f"scale{count}"
        scratch.mkdir()
        print(f"scale: {count:,} clips …", file=sys.stderr)
        raw["sizes"].append(measure_size(count, scratch))
    print(f"scale: the app's start at {clips[-1]:,} clips …", file=sys.stderr)
    (folder / "start").mkdir()
    raw["start"] = measure_start(folder / "start", 1, *ensure_data(clips[-1]))
    print(f"scale: the app's loop lag during a run at {clips[-1]:,} clips …", file=sys.stderr)
    raw["lag"] = measure_lag(folder / "start", 1, *ensure_data(clips[-1]), cache=folder / "start" / "warm-cache")
    line = (folder / f"scale{clips[0]}" / "cold" / "results" / "history.jsonl").read_text().splitlines()[0]
    (folder / "history").mkdir()
    raw["history"] = measure_history(runs, folder / "history", line) if runs else None
    return raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", default="5000,20000,50000", help="comma-separated sizes (default 5k, 20k, 50k)")
    parser.add_argument("--runs", type=int, default=1000, help="recorded runs in the history bench (default 1000)")
    parser.add_argument("--json", metavar="PATH", help="save the raw numbers as JSON")
    args = parser.parse_args()
    began, load_before = time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="vggtab-scale-") as folder:
        raw = run([int(c) for c in args.clips.split(",")], args.runs, Path(folder))
    print(scale_table(raw).render())
    print("\n" + load_note(load_before, os.getloadavg(), time.perf_counter() - began))
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
