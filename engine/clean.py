"""The merged, audited and label-filtered rows with what each step found, cached on disk between launches, and
the split and model inputs made from them.

Merge, audit and label filtering of the demo take seconds on every launch of unchanged files; their result is
kept as one Arrow file (the kept rows; everything else as JSON in its metadata) beside the load cache, keyed by
both files' content fingerprints and the settings the steps read (engine.pipeline.data_key), so an edit of
either file or a change of key, bad_rows, label_mode or the audited groups builds it again.

The split and the features step's output (engine.pipeline.Prepared) are kept too, one pickle per pair of files
for the last feature set prepared, keyed by engine.pipeline.features_key: a warm launch then shows its dataset
summary without pandas or scikit-learn. Its fitted transform stays a pickle inside it until a model is saved.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd
import pyarrow as pa

from engine import load
from engine.labels import Labelled, label_count_distribution
from engine.merge import Matching, Merged

# Bump when merge, audit, labels, split or features change what they produce, so results of older code are not
# reused (the prepared pickle also names its classes' fields, so a changed dataclass misses on its own).
CLEAN_FORMAT = 3
METADATA_KEY = b"vggtab.clean"


@dataclass(frozen=True)
class CleanData:
    """The same for every feature set, so splits are comparable."""

    labelled: Labelled  # the rows kept, with classes and label statistics
    matching: Matching
    label_counts: dict[int, int]  # labels per clip → clips, in the merged table before the audit
    bad_rows: tuple[tuple[str, str], ...]  # (key, what is wrong) for each row the audit dropped or imputes
    warnings: tuple[str, ...]  # the merge's and the audit's
    feature_columns: tuple[str, ...]
    ignored_columns: tuple[str, ...]  # neither key, labels nor a feature group (e.g. license)


@dataclass(frozen=True)
class MergeFacts:
    """What the clean data keeps of the merge, so the merged table itself can be freed before the audit's copy."""

    matching: Matching
    label_counts: dict[int, int]
    warnings: tuple[str, ...]

    @classmethod
    def of(cls, merged: Merged) -> MergeFacts:
        return cls(matching=merged.matching(), label_counts=label_count_distribution(merged.frame["labels"]),
                   warnings=tuple(merged.warnings))


def from_steps(merge_facts: MergeFacts, audit, labelled: Labelled, ignored_columns) -> CleanData:
    """What the summary and the later steps need from the merge, the audit (engine.audit.Audit) and labels."""
    return CleanData(
        labelled=labelled, matching=merge_facts.matching, label_counts=merge_facts.label_counts,
        bad_rows=tuple(audit.bad_rows), warnings=merge_facts.warnings + tuple(audit.warnings),
        feature_columns=tuple(audit.feature_columns), ignored_columns=tuple(ignored_columns))


def cache_file(cache_dir, paths: tuple[str, str], identity: tuple) -> Path:
    """The clean rows' Arrow file for this pair of inputs."""
    return _pair_file(cache_dir, "clean", paths, identity, load.CACHE_SUFFIX)


def prepared_cache_file(cache_dir, paths: tuple[str, str], identity: tuple) -> Path:
    """The prepared split and inputs' pickle for this pair of inputs; `identity` also names what the pickled
    classes look like."""
    return _pair_file(cache_dir, "prepared", paths, identity, load.PICKLE_SUFFIX)


def _pair_file(cache_dir, stem: str, paths: tuple[str, str], identity: tuple, suffix: str) -> Path:
    """One file per pair of inputs: a new version replaces the old (engine.load removes stale copies)."""
    pair = "|".join(str(Path(p).expanduser().resolve()) for p in paths)
    return load.cache_path(cache_dir, stem, pair, f"{CLEAN_FORMAT}|{load.CACHE_FORMAT}|{identity!r}", suffix=suffix)


def read_prepared(cache: Path):
    """The pickled engine.pipeline.Prepared, or None when there is none or it cannot be read."""
    if load.finished_cache(cache) is None:
        return None
    try:
        with open(cache, "rb") as handle:
            return pickle.load(handle)
    except Exception:  # noqa: BLE001 - a torn or outdated copy of any kind is only a cache miss
        return None


def write_prepared(prepared, cache: Path) -> None:
    """Start writing the pickle in the background; atomic, and never fatal."""
    def write(temp: Path) -> None:
        with open(temp, "wb") as handle:
            pickle.dump(prepared, handle, protocol=pickle.HIGHEST_PROTOCOL)
    load.write_in_background(cache, write)


def read_cache(cache: Path) -> CleanData | None:
    """The cached result, or None when there is none or it cannot be read (it is then built again)."""
    table = load.read_cached(cache)
    if table is None or METADATA_KEY not in (table.schema.metadata or {}):
        return None
    try:
        facts = json.loads(table.schema.metadata[METADATA_KEY])
        return _from_facts(load.to_frame(table), facts)
    except (ValueError, KeyError, TypeError, pa.ArrowException):
        return None


def write_cache(clean: CleanData, cache: Path) -> None:
    """Start writing the cache copy in the background; atomic, and never fatal."""
    table = pa.Table.from_pandas(clean.labelled.frame, preserve_index=False)
    facts = json.dumps(_facts(clean)).encode()
    load.write_cached(table.replace_schema_metadata((table.schema.metadata or {}) | {METADATA_KEY: facts}), cache)


def _facts(clean: CleanData) -> dict:
    facts = {f.name: getattr(clean, f.name) for f in fields(CleanData) if f.name not in ("labelled", "matching")}
    facts["labelled"] = {f.name: getattr(clean.labelled, f.name) for f in fields(Labelled) if f.name != "frame"}
    facts["matching"] = asdict(clean.matching)
    return facts


def _from_facts(frame: pd.DataFrame, facts: dict) -> CleanData:
    """JSON turned tuples into lists and int keys into strings: put both back."""
    labelled = _tuples(facts.pop("labelled"))
    labelled["label_counts"] = _int_keys(labelled["label_counts"])
    facts = _tuples(facts)
    facts["label_counts"] = _int_keys(facts["label_counts"])
    facts["bad_rows"] = tuple(tuple(row) for row in facts["bad_rows"])
    return CleanData(labelled=Labelled(frame=frame, **labelled), matching=Matching(**_tuples(facts.pop("matching"))),
                     **facts)


def _tuples(facts: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in facts.items()}


def _int_keys(counts: dict) -> dict[int, int]:
    return {int(k): v for k, v in counts.items()}
