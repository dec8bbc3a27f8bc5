"""Labels: a comma-separated string per clip ("Bark,Growl"). The notebook kept single-label clips only."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pandas as pd

from engine.errors import InputError
from engine.text import name_list

LABELS = "labels"
SMALL_CLASS = 5  # fewer clips than this make a class's validation accuracy mostly noise


@dataclass(frozen=True)
class Labelled:
    frame: pd.DataFrame  # rows kept; `labels` rewritten as clean "A,B" strings
    classes: tuple[str, ...]  # sorted
    class_sizes: dict[str, int]  # class → clips carrying it, among the rows kept
    label_counts: dict[int, int]  # labels per clip → clips, before filtering
    dropped_empty: tuple[str, ...]  # keys of clips with no label at all
    warnings: tuple[str, ...]


def split_labels(text) -> list[str]:
    """'Bark, Growl' → ['Bark', 'Growl']; missing or blank → []; repeats and empty items are dropped."""
    if text is None or (not isinstance(text, str) and pd.isna(text)):
        return []
    return list(dict.fromkeys(item.strip() for item in str(text).split(",") if item.strip()))


def label_count_distribution(labels: pd.Series) -> dict[int, int]:
    """Number of labels per clip → number of clips, e.g. {0: 2, 1: 3100, 2: 540}."""
    return dict(sorted(Counter(len(split_labels(text)) for text in labels).items()))


def filter_labels(frame: pd.DataFrame, mode: str = "single", *, key: str = "fname") -> Labelled:
    """Keep the clips a run can learn from: exactly one label ('single') or at least one ('multi')."""
    if LABELS not in frame.columns:
        raise InputError(f"The table has no {LABELS!r} column.",
                         hint="Add the clips' labels (comma-separated, e.g. \"Bark,Growl\") to one of the files.")
    per_row = [split_labels(text) for text in frame[LABELS]]
    counts = pd.Series([len(names) for names in per_row], index=frame.index)
    keep = counts == 1 if mode == "single" else counts >= 1
    keys = frame[key] if key in frame.columns else pd.Series(frame.index, index=frame.index)

    kept = (frame if keep.all() else frame[keep.to_numpy()]).reset_index(drop=True)
    kept[LABELS] = [",".join(names) for names, k in zip(per_row, keep) if k]
    class_sizes = Counter(name for names, k in zip(per_row, keep) if k for name in names)
    classes = tuple(sorted(class_sizes))
    if len(classes) < 2:
        left = f"only {classes[0]!r} ({class_sizes[classes[0]]:,} clips) is left" if classes else "none is left"
        raise InputError(f"Training needs at least 2 classes, but {left} after keeping "
                         f"{'single-label' if mode == 'single' else 'labeled'} clips.",
                         hint="Check the labels column" + (", or try label_mode=multi." if mode == "single" else "."))

    warnings = []
    empty = counts == 0
    if empty.any():
        warnings.append(f"{int(empty.sum()):,} clips have no label; they are left out.")
    multi = int((counts > 1).sum())
    if mode == "single" and multi:
        warnings.append(f"{multi:,} clips with 2+ labels are left out (label_mode=single).")
    warnings.extend(_same_but_for_case_or_spacing(Counter(name for names in per_row for name in names)))
    small = sorted(name for name in classes if class_sizes[name] < SMALL_CLASS)
    if small:
        listed = name_list(f"{name} ({class_sizes[name]})" for name in small)
        warnings.append(f"{classes_have(len(small))} fewer than {SMALL_CLASS} clips: {listed}.")
    return Labelled(frame=kept, classes=classes, class_sizes={name: class_sizes[name] for name in classes},
                    label_counts=label_count_distribution(frame[LABELS]),
                    dropped_empty=tuple(keys[empty].astype(str)), warnings=tuple(warnings))


def _same_but_for_case_or_spacing(clips: Counter) -> list[str]:
    """'Bark' and 'bark ', 'Acoustic_guitar' and 'Acoustic guitar': separate classes a user most likely meant as one."""
    groups: dict[str, list[str]] = {}
    for name in sorted(clips):
        groups.setdefault(" ".join(name.replace("_", " ").split()).casefold(), []).append(name)
    alike = [names for names in groups.values() if len(names) > 1]
    if not alike:
        return []
    listed = "; ".join(" vs ".join(f"{name!r} ({clips[name]:,})" for name in names) for names in alike[:5])
    more = f" … (+{len(alike) - 5} more)" if len(alike) > 5 else ""
    return [f"{len(alike):,} labels differ from another only in case or spacing, so they are separate classes: "
            f"{listed}{more}. Fix the labels column if each pair is one class."]


def classes_have(count: int) -> str:
    """'1 class has' / '3 classes have', for messages about small classes."""
    return "1 class has" if count == 1 else f"{count} classes have"
