"""Time a launch's data preparation on the demo files: cold (empty cache dir) against warm (second launch).

Each measurement is a fresh `python` process, as a launch of the app or the CLI is, timed from the call of
Session.prepare (after `import engine.pipeline`, printed apart): "ready" is the moment it reports
DatasetSummarised, "returned" the moment it returns (after fastai and torch are imported). Two variants:
- imports included: the warm-up thread starts importing scikit-learn, fastai and torch then, as the app does;
- imports excluded: the warm-up finished before the clock starts (the data work alone).
Rounds interleave cold and warm runs (cold, warm, cold, warm ...) so load from other processes hits both alike.

Usage: .venv/bin/python bench/bench_prepare.py [rounds] [embeddings.csv tabular.csv]  (default 5, data/demo)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = r"""
import json, sys, threading, time
launched = time.perf_counter()
embeddings, tabular, cache_dir, variant = sys.argv[1:5]
from engine.config import RunConfig
from engine.events import DatasetSummarised, StageDone
from engine.pipeline import Session
from engine.warmup import warm_up
if variant == "excluded":
    warm_up()
started = time.perf_counter()
if variant == "included":
    threading.Thread(target=warm_up, daemon=True).start()
marks, stages = {"engine imported": started - launched}, []
def report(event):
    if isinstance(event, DatasetSummarised):
        marks["ready"] = time.perf_counter() - started
    elif isinstance(event, StageDone):
        stages.append(f"{event.stage} {event.seconds:.2f}")
Session(report, cache_dir=cache_dir).prepare(RunConfig(embeddings=embeddings, tabular=tabular))
marks["prepared"] = time.perf_counter() - started
from engine.load import wait_for_cache_writes
wait_for_cache_writes()
print(json.dumps(marks | {"stages": stages}))
"""


def launch(embeddings: str, tabular: str, cache_dir: str, variant: str) -> dict:
    out = subprocess.run([sys.executable, "-c", LAUNCH, embeddings, tabular, cache_dir, variant], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    embeddings, tabular = sys.argv[2:4] if len(sys.argv) > 3 else ("data/demo/embeddings.csv",
                                                                   "data/demo/tabular.csv")
    runs: dict[tuple[str, str], list[dict]] = {}
    for _ in range(rounds):
        for variant in ("included", "excluded"):
            with tempfile.TemporaryDirectory() as cache_dir:
                for start in ("cold", "warm"):
                    runs.setdefault((variant, start), []).append(launch(embeddings, tabular, cache_dir, variant))
    print(f"{tabular}: median of {rounds} launches each (seconds)")
    for (variant, start), marks in runs.items():
        ready = statistics.median(m["ready"] for m in marks)
        prepared = statistics.median(m["prepared"] for m in marks)
        imported = statistics.median(m["engine imported"] for m in marks)
        print(f"  imports {variant:<8} {start}: ready {ready:5.2f}  returned {prepared:5.2f}  "
              f"(import engine.pipeline {imported:4.2f})  "
              f"e.g. {', '.join(marks[-1]['stages'])}")


if __name__ == "__main__":
    main()
