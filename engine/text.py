"""How the engine words lists, intervals and layer sizes in its messages and tables, in one place."""

from __future__ import annotations

from typing import Iterable

NAMED = 5  # items named in a message before "+N more"


def name_list(items: Iterable, limit: int = NAMED) -> str:
    """'a, b, c … (+4 more)': the first `limit` items, and how many were left out."""
    items = [str(item) for item in items]
    more = f" … (+{len(items) - limit:,} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def interval_text(low, high) -> str:
    """A 95 % interval as '78.0%–84.0%'; empty when either end is unknown."""
    return f"{low:.1%}–{high:.1%}" if low is not None and high is not None else ""


def layers_text(layers: Iterable[int]) -> str:
    """Hidden layer sizes as in names and tables: (200, 100) → '200-100'."""
    return "-".join(str(size) for size in layers)
