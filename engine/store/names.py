"""Names of what a run leaves behind: run ids, timestamps, and approach names fit for a file name."""

from __future__ import annotations

import re
import secrets
from datetime import datetime

TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S"


def new_run_id() -> str:
    """Sorts by creation time; the random suffix keeps two runs started in the same second apart."""
    return f"{timestamp()}_{secrets.token_hex(3)}"


def run_suffix(run_id: str) -> str:
    """The random part of a run id: tells apart the files of two runs started in the same second."""
    return run_id.rsplit("_", 1)[-1]


def timestamp() -> str:
    return datetime.now().strftime(TIMESTAMP_FORMAT)


def safe_name(text: str) -> str:
    """An approach name usable in a file name: 'my run/v2' → 'my-run-v2'."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"
