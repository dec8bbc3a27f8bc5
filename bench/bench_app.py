"""The app's responsiveness, measured from bench code only (no hooks in the product). Run by bench/bench.py:

    python bench/bench_app.py start T0 EMBEDDINGS TABULAR OUT_DIR JSON_PATH
        Time from process start (T0 = the parent's time.time() just before it spawned this process) to the
        app's first frame, and to "ready". First frame: Textual posts `Ready` right after the first screen
        refresh has been rendered and written to the driver. Ready: the dataset summary has been shown and the
        status line says ready (the prepare job ended), so every key works; fastai may still be importing in
        the warm-up thread, as the next LR finder or run waits for it. Headless driver, so the terminal's own
        drawing is not counted; everything in the app's startup is. The process then waits for the engine's
        cache copies to be written (so a next launch is warm) and exits.

    python bench/bench_app.py lag THREADS EMBEDDINGS TABULAR OUT_DIR JSON_PATH
        The app at 120×40 prepares the data, then the bench presses t: a 20-epoch run (LR 3e-3, THREADS torch
        threads; cancelled with c after RUN_CAP seconds) in the app's worker while a 10 ms interval timer records how late each tick fires (the event
        loop's lag) and, every 0.5 s, the pilot presses 2 or 3 (show a panel: a cheap action) and records the
        time from the key being sent to the action running and to the next screen refresh. Every garbage
        collection is timed too: full (generation 2) collections over the millions of objects torch, fastai and
        pandas create held the GIL for ~0.2-0.9 s here, until the app's warm-up froze the imported objects
        (engine.warmup: gc.freeze()); the pauses left are reported.
"""

from __future__ import annotations

import time

START_WALL = time.time()

import asyncio  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import traceback  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

IMPORTING = time.time()

from engine.config import RunConfig  # noqa: E402
from engine.events import DatasetSummarised  # noqa: E402
import tui.app  # noqa: E402
from tui.app import TRAIN, MainScreen, VggtabApp  # noqa: E402

IMPORTED = time.time()

# Textual resolves CSS_PATH beside the module of the class that sets it: subclasses here point at the app's.
APP_CSS = str(Path(tui.app.__file__).with_name(VggtabApp.CSS_PATH))
TICK = 0.01
KEY_EVERY = 0.5
RUN_CAP = 60.0  # seconds; a slower run (2 torch threads on shared cores can be 30× slower) is cancelled with c


class StartScreen(MainScreen):
    """The main screen noting when the dataset summary arrived and when the prepare job after it ended."""

    summarised = False

    def on_engine_reported(self, message) -> None:
        # Textual also runs MainScreen's handler for this message: this one only notes it.
        self.summarised = self.summarised or isinstance(message.event, DatasetSummarised)

    def on_job_runner_job_changed(self, message) -> None:
        if self.summarised and not message.job:
            self.call_after_refresh(self.app.record_ready)


class StartApp(VggtabApp):
    """Writes out the first frame's and the ready time, then ends the process."""

    CSS_PATH = APP_CSS

    def __init__(self, *args, t0: float, json_path: Path, **kwargs):
        super().__init__(*args, **kwargs)
        self.t0, self.json_path, self.first_paint = t0, json_path, None

    def get_default_screen(self) -> StartScreen:
        return StartScreen(self.initial_config, results_dir=self.results_dir, models_dir=self.models_dir)

    def on_ready(self) -> None:
        self.first_paint = time.time() - self.t0

    def record_ready(self) -> None:
        ready = time.time() - self.t0
        self.json_path.write_text(json.dumps({"first_paint": self.first_paint, "ready": ready,
                                              "interpreter": IMPORTING - self.t0, "imports": IMPORTED - IMPORTING}))
        from engine.load import wait_for_cache_writes  # bench code: the next launch must find the caches
        wait_for_cache_writes()
        os._exit(0)


class TimedScreen(MainScreen):
    """The main screen with a stopwatch on its cheapest key-bound action."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.key_sent: float | None = None
        self.key_handled: list[float] = []
        self.key_painted: list[float] = []
        self.events: list[tuple[float, str]] = []  # (perf_counter, engine event type) to explain stalls

    def on_engine_reported(self, message) -> None:
        # Textual also runs MainScreen's handler for this message: this one only notes the time.
        self.events.append((time.perf_counter(), type(message.event).__name__))

    def action_show_panel(self, name: str) -> None:
        super().action_show_panel(name)
        if self.key_sent is not None:
            sent, now = self.key_sent, time.perf_counter()
            self.key_handled.append(now - sent)
            self.call_after_refresh(lambda: self.key_painted.append(time.perf_counter() - sent))
            self.key_sent = None


class LagApp(VggtabApp):
    CSS_PATH = APP_CSS

    def get_default_screen(self) -> TimedScreen:
        return TimedScreen(self.initial_config, results_dir=self.results_dir, models_dir=self.models_dir)


class GcWatch:
    """Times every garbage collection (gc.callbacks): a full collection holds the GIL throughout, stalling
    the event loop whichever thread triggered it."""

    def __init__(self):
        self.started: float | None = None
        self.pauses: list[tuple[int, float, float, str]] = []  # (generation, seconds, when it ended, phase)
        self.probe: LagProbe | None = None
        gc.callbacks.append(self.callback)

    def callback(self, phase: str, info: dict) -> None:
        now = time.perf_counter()
        if phase == "start":
            self.started = now
        elif self.started is not None:
            phase = self.probe.phase if self.probe else "startup"
            self.pauses.append((info["generation"], now - self.started, now, phase))
            self.started = None

    def summary(self, phase: str) -> dict:
        """Per generation: count, longest and total pause in that phase."""
        by_generation = {}
        for generation in (0, 1, 2):
            times = [seconds for gen, seconds, _, when in self.pauses if gen == generation and when == phase]
            by_generation[generation] = {"n": len(times), "max": max(times, default=0.0),
                                         "total": sum(times)}
        return by_generation


class LagProbe:
    """A 10 ms interval timer; each tick's lateness is the gap since the previous tick minus 10 ms."""

    def __init__(self, app: VggtabApp):
        self.app, self.last = app, None
        self.samples: list[tuple[str, float, float]] = []  # (phase, lateness in seconds, when)
        self.phase = "startup"
        self.timer = app.set_interval(TICK, self.tick)

    def tick(self) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.samples.append((self.phase, max(0.0, now - self.last - TICK), now))
        self.last = now

    def lateness(self, phase: str) -> list[float]:
        return [late for name, late, _ in self.samples if name == phase]

    def worst(self, events: list[tuple[float, str]], count: int = 5) -> list[dict]:
        """The longest stalls, each with the last engine event the screen handled before it ended."""
        found = []
        for phase, late, when in sorted(self.samples, key=lambda s: -s[1])[:count]:
            before = [name for at, name in events if at <= when]
            found.append({"phase": phase, "lateness": late, "after_event": before[-1] if before else "",
                          "events_before": len(before), "when": when})
        return found


class StallWatch(threading.Thread):
    """Samples the event loop thread's stack whenever the probe has not ticked for STALL seconds, to name what
    the loop was doing during a stall (Python code in the loop; a C call holding the GIL elsewhere shows as
    the loop waiting)."""

    STALL = 0.1

    def __init__(self, probe: LagProbe):
        super().__init__(daemon=True)
        self.probe, self.loop_thread = probe, threading.get_ident()
        self.stacks: Counter[str] = Counter()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.02):
            last = self.probe.last
            if last is None or time.perf_counter() - last < self.STALL or self.probe.phase != "training":
                continue
            frame = sys._current_frames().get(self.loop_thread)
            if frame is not None:
                self.stacks[self.describe(frame)] += 1

    @staticmethod
    def describe(frame) -> str:
        """The innermost frames that are the project's or the libraries' work, not asyncio's plumbing."""
        frames = [f for f in traceback.extract_stack(frame) if "asyncio" not in f.filename]
        return " < ".join(f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.name}"
                          for f in reversed(frames[-6:]))

    def top(self, count: int = 5) -> list[tuple[str, int]]:
        """Most sampled stacks; each sample is ~20 ms of stall."""
        return self.stacks.most_common(count)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50": percentile(values, 0.5), "p95": percentile(values, 0.95),
            "max": max(values, default=float("nan"))}


def start(t0: float, embeddings: str, tabular: str, out_dir: str, json_path: Path) -> None:
    out = Path(out_dir)
    app = StartApp(RunConfig(embeddings=embeddings, tabular=tabular), results_dir=str(out / "results"),
                   models_dir=str(out / "models"), t0=t0, json_path=json_path)
    app.run(headless=True, size=(120, 40))


async def lag(threads: int, embeddings: str, tabular: str, out_dir: str) -> dict:
    out = Path(out_dir)
    config = RunConfig(embeddings=embeddings, tabular=tabular, lr=3e-3, epochs=20, threads=threads)
    app = LagApp(config, results_dir=str(out / "results"), models_dir=str(out / "models"))
    async with asyncio.timeout(600):
        async with app.run_test(size=(120, 40)) as pilot:
            screen: TimedScreen = app.main_screen
            gc_watch = GcWatch()
            probe = gc_watch.probe = LagProbe(app)
            watch = StallWatch(probe)
            watch.start()
            await pilot.pause()  # the screen's on_mount starts preparing the data
            while screen.job:  # preparing the data (fastai is imported meanwhile in another worker)
                await asyncio.sleep(0.05)
            await app.workers.wait_for_complete()
            probe.phase = "idle"
            await asyncio.sleep(1.0)
            probe.phase = "training"
            started = time.perf_counter()
            await pilot.press("t")
            presses, key, capped = 0, "2", False
            while screen.job == TRAIN:
                await asyncio.sleep(KEY_EVERY)
                if screen.job != TRAIN:
                    break
                if not capped and time.perf_counter() - started > RUN_CAP:
                    capped = True
                    await pilot.press("c")
                screen.key_sent = time.perf_counter()
                await pilot.press(key)
                presses += 1
                key = "3" if key == "2" else "2"
            trained = time.perf_counter() - started
            probe.phase = "after"
            await app.workers.wait_for_complete()
            probe.timer.stop()
            watch.stopped.set()
    from engine.store.history import load_history  # not at the top: the paint timing must import only the app's

    history = load_history(out / "results").records
    finished = bool(history) and history[-1].status == "finished"
    return {"threads": threads, "train_seconds": trained, "capped": capped, "run_finished": finished, "presses": presses,
            "startup": summary(probe.lateness("startup")), "idle": summary(probe.lateness("idle")),
            "training": summary(probe.lateness("training")), "key_handled": summary(screen.key_handled),
            "key_painted": summary(screen.key_painted), "worst": probe.worst(screen.events),
            "stall_stacks": watch.top(), "gc": {phase: gc_watch.summary(phase) for phase in ("startup", "training")},
            "gc_during_worst": [max((p[1] for p in gc_watch.pauses if w["when"] - w["lateness"] <= p[2] <= w["when"]),
                                    default=0.0) for w in probe.worst(screen.events)]}


def main() -> None:
    mode, *args = sys.argv[1:]
    json_path = Path([arg for arg in args if not arg.startswith("--")][-1])
    if mode == "start":
        start(float(args[0]), *args[1:4], json_path=json_path)
    else:
        json_path.write_text(json.dumps(asyncio.run(lag(int(args[0]), *args[1:4]))))


if __name__ == "__main__":
    main()
