"""How numbers read in every panel: one place, so the same value never shows two ways."""

from __future__ import annotations

import math


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def percent(value, digits: int = 1) -> str:
    return f"{value * 100:.{digits}f} %" if is_number(value) else "–"


def interval(low, high) -> str:
    """A 95 % interval as 'a–b %' (one unit sign, so it fits a table cell)."""
    if not (is_number(low) and is_number(high)):
        return ""
    return f"{low * 100:.1f}–{high * 100:.1f} %"


def lr_text(lr) -> str:
    return f"{lr:.1e}" if is_number(lr) else "auto"


def loss_text(value) -> str:
    return f"{value:.4f}" if is_number(value) else "NaN"


def duration(seconds) -> str:
    if not is_number(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m"


def count(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "–"


def layers_text(layers) -> str:
    return "-".join(str(size) for size in layers)


def sentence(text: str) -> str:
    """'the LR finder failed' → 'The LR finder failed' (str.capitalize would lower the 'LR')."""
    return text[:1].upper() + text[1:]


def short_date(created: str) -> str:
    """'2026-12-02T14:30:05' → '12-02 14:30'."""
    return created.replace("T", " ")[5:16]


def gap_verb(points: float) -> str:
    """How a sweep's best valid score relates to its test score, from their gap in (rounded) points."""
    return "overstates" if points > 0 else "understates" if points < 0 else "matches"
