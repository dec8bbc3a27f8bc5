"""The engine's path end to end in a fresh process (run by bench/bench.py):

    python bench/engine_run.py EMBEDDINGS TABULAR OUT_DIR JSON_PATH

What `vggtab run` does: import the pipeline, start the warm-up thread (scikit-learn, fastai, torch), then one
`Session.train` with the default config (LR finder valley, 20 epochs); stage times come from its StageDone
events (`imports` is the wait for the warm-up thread). The load cache is whatever VGGTAB_CACHE_DIR names
(the bench passes an empty folder, so this is a cold run); the process ends once the cache copy is written.
"""

from __future__ import annotations

import time

START = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(embeddings: str, tabular: str, out_dir: str, json_path: str) -> None:
    import threading

    from engine.config import RunConfig
    from engine.events import RunFinished, StageDone
    from engine.pipeline import Session, warm_up
    threading.Thread(target=warm_up, daemon=True).start()
    times = {"import": time.perf_counter() - START}
    finished = []

    def report(event) -> None:
        if isinstance(event, StageDone):
            times[event.stage] = times.get(event.stage, 0.0) + event.seconds  # `load` comes once per file
        elif isinstance(event, RunFinished):
            finished.append(event)

    out = Path(out_dir)
    session = Session(report, models_dir=out / "models", results_dir=out / "results")
    record = session.train(RunConfig(embeddings=embeddings, tabular=tabular))
    total = time.perf_counter() - START
    Path(json_path).write_text(json.dumps({
        "stages": times, "total_in_process": total, "accuracy": record.metrics["val_accuracy"],
        "lr": record.config["lr"], "train_rows": record.metrics["train_samples"],
        "valid_rows": record.metrics["val_samples"], "features": record.metrics["n_features"]}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
