"""The engine's path end to end in a fresh process (run by bench/bench.py and bench/scale.py):

    python bench/engine_run.py EMBEDDINGS TABULAR OUT_DIR JSON_PATH [EPOCHS]

What `vggtab run` does: import the pipeline, start the warm-up thread (scikit-learn, fastai, torch), then one
`Session.train` with the default config (LR finder valley, 20 epochs unless EPOCHS); stage times come from its
StageDone events (`imports` is the wait for the warm-up thread), and each stage's peak resident memory from a
thread sampling /proc/self/statm every 10 ms. The load cache is whatever VGGTAB_CACHE_DIR names (the bench
passes an empty folder for a cold run); the process ends once the cache copy is written.
"""

from __future__ import annotations

import time

START = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class RssSampler(threading.Thread):
    """This process's resident memory every 10 ms; `peak` over a time window."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[tuple[float, int]] = []
        self.page = os.sysconf("SC_PAGE_SIZE")

    def rss(self) -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * self.page

    def run(self) -> None:
        while True:
            self.samples.append((time.perf_counter(), self.rss()))
            time.sleep(0.01)

    def peak_mb(self, start: float, end: float) -> float:
        window = [rss for at, rss in self.samples if start <= at <= end] or [self.rss()]
        return max(window) / 2**20  # MiB, as the bench reports ru_maxrss


def main(embeddings: str, tabular: str, out_dir: str, json_path: str, epochs: str = "20") -> None:
    sampler = RssSampler()
    sampler.start()
    from engine.config import RunConfig
    from engine.events import RunFinished, StageDone
    from engine.pipeline import Session, warm_up
    threading.Thread(target=warm_up, daemon=True).start()
    times = {"import": time.perf_counter() - START}
    peaks: dict[str, float] = {}
    finished = []

    def report(event) -> None:
        if isinstance(event, StageDone):
            times[event.stage] = times.get(event.stage, 0.0) + event.seconds  # `load` comes once per file
            now = time.perf_counter()
            peaks[event.stage] = max(peaks.get(event.stage, 0.0), sampler.peak_mb(now - event.seconds, now))
        elif isinstance(event, RunFinished):
            finished.append(event)

    out = Path(out_dir)
    session = Session(report, models_dir=out / "models", results_dir=out / "results")
    record = session.train(RunConfig(embeddings=embeddings, tabular=tabular, epochs=int(epochs)))
    total = time.perf_counter() - START
    Path(json_path).write_text(json.dumps({
        "stages": times, "peak_mb": peaks, "total_in_process": total, "accuracy": record.metrics["val_accuracy"],
        "lr": record.config["lr"], "train_rows": record.metrics["train_samples"],
        "valid_rows": record.metrics["val_samples"], "features": record.metrics["n_features"]}))


if __name__ == "__main__":
    main(*sys.argv[1:6])
