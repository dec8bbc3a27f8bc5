"""Messages between the engine's worker threads, the panels and the main screen."""

from __future__ import annotations

import time

from textual.message import Message
from textual.message_pump import MessagePump

from engine.events import BatchEnded, Event


class EngineReported(Message):
    """One engine event, carried from a worker thread to the UI thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class JobFailed(Message):
    """An engine job stopped with an error the user can act on (or an unexpected one)."""

    def __init__(self, job: str, message: str) -> None:
        super().__init__()
        self.job = job
        self.message = message


class LearningRateChosen(Message):
    """The user typed a valid learning rate for the next run (None: the finder's suggestion)."""

    def __init__(self, lr: float | None) -> None:
        super().__init__()
        self.lr = lr


class EngineReporter:
    """The engine's reporter: posts each event as a message; batch progress at most every `interval` s.

    Called from the engine's thread only, so it needs no lock; `post_message` is thread-safe.
    """

    def __init__(self, target: MessagePump, interval: float = 0.1) -> None:
        self.target = target
        self.interval = interval
        self._last_batch = 0.0

    def __call__(self, event: Event) -> None:
        if isinstance(event, BatchEnded) and event.batch < event.n_batches:
            now = time.monotonic()
            if now - self._last_batch < self.interval:
                return
            self._last_batch = now
        self.target.post_message(EngineReported(event))
