"""Read one of the user's files (CSV or Parquet) into a DataFrame; a parsed CSV is cached as an Arrow file.

A 240 MB, 2,475-column CSV takes about a second to parse even with pyarrow's multi-threaded reader; the cached
copy is uncompressed Arrow IPC (Feather v2), memory-mapped on read: 0.11 s against 0.31 s for Parquet, and
written in 0.2 s against 0.6 s, for a file 100 MB instead of 73 MB. The cache key is the file's content
fingerprint, so any edit of the CSV misses the cache and it is parsed again, even one that keeps its size and
mtime.

Floating-point numbers are parsed straight to float32, the models' input type, so a 50,000-clip table takes
0.5 GB rather than 1 GB and no float64 copy of it ever exists. The column types come from pyarrow's inference on
the first block; a later row that does not fit them (text in a numeric column) falls back to inference over the
whole file, so the audit can name the value. Columns holding ±inf after the parse are parsed again as float64, so
a value beyond float32's range (which became inf) is told apart from a written inf. Integer columns stay int64.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.feather as feather
import pyarrow.parquet as pq

from engine.errors import InputError, StorageError
from engine.store.files import TEMP_SUFFIX, atomic_write
from engine.text import name_list

CACHE_DIR_ENV = "VGGTAB_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("data/.cache")
# Bump when parsing changes, so caches written by an older reader are not reused.
CACHE_FORMAT = 5
CACHE_SUFFIX = ".arrow"
PICKLE_SUFFIX = ".pickle"  # engine.clean's prepared features
# Keys and label strings stay text even when they look numeric ("00044347" must not become 44347).
TEXT_COLUMNS = ("fname", "file", "labels")
PARQUET_MAGIC = b"PAR1"
SNIFF_BYTES = 1 << 20
# Rows of these files are ~25 KB wide: pyarrow's default 1 MB blocks hold ~40 rows each, and per-block
# work on 2,475 columns then makes it slower than pandas. 16 MB blocks measured ~2x faster than 1 MB.
CSV_BLOCK_BYTES = 16 << 20
# A cache temp file untouched this long belongs to a killed process (a write takes ~0.2 s).
ABANDONED_TEMP_SECONDS = 600
# Cache copies still being written, by cache path: a second load of the same file waits for its copy.
_cache_writes: dict[Path, threading.Thread] = {}
# Content fingerprints computed in this process: resolved path → (stat stamp when hashed, fingerprint).
_fingerprints: dict[Path, tuple[list, str]] = {}
FINGERPRINTS_FILE = "fingerprints.json"  # the same, kept between launches in the cache folder
HASH_BLOCK_BYTES = 16 << 20
# A file changed this recently may change again within the same ctime tick: its fingerprint is not remembered.
SETTLED_NS = 1_000_000_000
DELIMITERS = (",", ";", "\t", "|")
# Leading bytes of binary formats users mistake for tables, with what to do about each.
BINARY_SIGNATURES = {
    b"\x80": ("a Python pickle", "Export the DataFrame with df.to_csv(...) or df.to_parquet(...)."),
    b"PK\x03\x04": ("a zip or Excel file", "Unzip it, or save the sheet as CSV."),
    b"\x1f\x8b": ("gzip-compressed", "Decompress it first (gunzip)."),
    b"\x93NUMPY": ("a NumPy array", "Save it as a table with column names (CSV or Parquet)."),
    b"\xff\xfe": ("UTF-16 text", "Re-save the file as UTF-8 CSV."),
    b"\xfe\xff": ("UTF-16 text", "Re-save the file as UTF-8 CSV."),
}


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame
    path: str
    from_cache: bool


def load_table(path, *, cache_dir=None, parse_threads: bool = True) -> Table:
    """Load a CSV or Parquet file (told apart by content, then extension) into a DataFrame.

    `parse_threads=False` parses a CSV on one thread, leaving the other core to work going on meanwhile."""
    source = _existing_file(path)
    with _open(source, path) as handle:
        head = handle.read(SNIFF_BYTES)
    if not head.strip():
        raise InputError(f"{path} is empty.", hint="Point to the CSV or Parquet file that holds the table.")
    if head.startswith(PARQUET_MAGIC):
        return Table(_read_parquet(source, path), str(path), from_cache=False)
    if source.suffix.lower() in (".parquet", ".pq"):
        raise InputError(f"{path} is named like a Parquet file but is not one (no PAR1 header).",
                         hint="Re-export it with df.to_parquet(...), or give the CSV instead.")
    _check_text(head, path)

    cache = cache_path(cache_dir, source.stem, str(source), f"{CACHE_FORMAT}|{fingerprint(path, cache_dir)}")
    cached = read_cached(cache)
    if cached is not None:
        return Table(to_frame(cached), str(path), from_cache=True)
    table = _read_csv(source, path, _delimiter(head), parse_threads)
    write_cached(table, cache)
    return Table(to_frame(table), str(path), from_cache=False)


def _existing_file(path) -> Path:
    source = Path(path).expanduser()
    if not source.exists():
        raise InputError(f"{path} does not exist.", hint="Check the path (the built-in demo data is written by `demo`).")
    if source.is_dir():
        raise InputError(f"{path} is a directory, not a file.",
                         hint="Point to the CSV or Parquet file inside it.")
    if not source.is_file():
        raise InputError(f"{path} is not a regular file (a pipe or a device): it can be read only once.",
                         hint="Save the table to a file first, then point to that file.")
    return source.resolve()


def _open(source: Path, path):
    try:
        return open(source, "rb")
    except PermissionError:
        raise InputError(f"{path} cannot be read: permission denied.",
                         hint="Fix the file's permissions (chmod u+r), or point to a copy you can read.") from None
    except OSError as error:
        raise InputError(f"{path} cannot be read: {error.strerror or error}.",
                         hint="Check the path, or point to a copy of the file on a local disk.") from None


def fingerprint(path, cache_dir=None) -> str:
    """The file's identity by content: SHA-1 of all its bytes, hardware-accelerated (0.09-0.28 s per 115-212 MB
    on the 2-core box, 1.3-2.4x faster than blake2b; sampled blocks miss an in-place edit: see
    bench/bench_fingerprint.py). Remembered under the file's stat stamp, whose ctime every write changes even when
    the mtime is put back, in this process and in the cache folder's fingerprints file: a repeated call on an
    unchanged file, in this launch or a later one, costs one stat instead of reading 1.2 GB at 50,000 clips."""
    source = _existing_file(path)
    state = source.stat()
    stamp = [state.st_dev, state.st_ino, state.st_size, state.st_mtime_ns, state.st_ctime_ns]
    known = _fingerprints.get(source)
    if known is not None and known[0] == stamp:
        return known[1]
    settled = time.time_ns() - state.st_ctime_ns > SETTLED_NS
    remembered = _remembered_fingerprints(cache_dir)
    if remembered.get(str(source), (None, None))[0] == stamp:
        digest = remembered[str(source)][1]
    else:
        digest = _sha1(source, path)
        if settled:
            _remember_fingerprint(cache_dir, remembered, source, stamp, digest)
    if settled:
        _fingerprints[source] = (stamp, digest)
    return digest


def _sha1(source: Path, path) -> str:
    """In 16 MB reads: hashing releases the GIL, and few reads mean few waits to take it back from the warm-up's
    imports (256 KB reads under them took 4-5 s for 1.2 GB instead of 1.2 s)."""
    digest = hashlib.sha1(usedforsecurity=False)
    buffer = bytearray(HASH_BLOCK_BYTES)
    view = memoryview(buffer)
    with _open(source, path) as handle:
        while read := handle.readinto(buffer):
            digest.update(view[:read])
    return digest.hexdigest()


def _fingerprints_file(cache_dir) -> Path:
    return cache_folder(cache_dir) / FINGERPRINTS_FILE


def _remembered_fingerprints(cache_dir) -> dict[str, list]:
    """resolved path → [stat stamp, digest], as earlier launches left them; {} when absent or unreadable."""
    try:
        remembered = json.loads(_fingerprints_file(cache_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return remembered if isinstance(remembered, dict) else {}


def _remember_fingerprint(cache_dir, remembered: dict, source: Path, stamp: list, digest: str) -> None:
    """Never fatal: the file only saves time. Files that are gone are forgotten, so it stays small."""
    kept = {name: entry for name, entry in remembered.items() if Path(name).exists()} | {str(source): [stamp, digest]}
    target = _fingerprints_file(cache_dir)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, lambda temp: temp.write_text(json.dumps(kept), encoding="utf-8"), durable=False)
    except (OSError, StorageError):
        pass


def _check_text(head: bytes, path) -> None:
    for signature, (what, todo) in BINARY_SIGNATURES.items():
        if head.startswith(signature):
            raise InputError(f"{path} is not a CSV or Parquet file: it looks like {what}.", hint=todo)
    if b"\x00" in head:
        raise InputError(f"{path} is not a CSV or Parquet file: it holds binary data.",
                         hint="Give a comma-separated text file with a header row, or a Parquet file.")


def _delimiter(head: bytes) -> str:
    header = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    return max(DELIMITERS, key=header.count)


def _read_csv(source: Path, path, delimiter: str, use_threads: bool = True) -> pa.Table:
    parse = pa_csv.ParseOptions(delimiter=delimiter)
    text = {name: pa.string() for name in TEXT_COLUMNS}
    inferred = pa_csv.ConvertOptions(column_types=text)
    read = pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=use_threads)
    try:
        floats = _float_columns(source, read, parse, inferred)
        as_float32 = pa_csv.ConvertOptions(column_types=text | {name: pa.float32() for name in floats})
        try:
            table = pa_csv.read_csv(source, read_options=read, parse_options=parse, convert_options=as_float32)
        except pa.ArrowInvalid as error:
            if "conversion error" not in str(error):
                raise
            # Text further down a column that looked numeric: infer over the whole file, the audit names it.
            table = pa_csv.read_csv(source, read_options=read, parse_options=parse, convert_options=inferred)
        else:
            table = _reparse_infinite(table, source, read, parse, inferred)
    except pa.ArrowInvalid as error:
        raise _parse_error(source, path, parse, inferred, error) from None
    _check_columns(table, path)
    return table


def _float_columns(source: Path, read, parse, convert) -> list[str]:
    """The columns pyarrow infers as floating point from the file's first block. Integer columns stay int64:
    an id column used as `key` must keep every digit (float32 holds integers exactly only up to 2**24)."""
    with pa_csv.open_csv(source, read_options=read, parse_options=parse, convert_options=convert) as reader:
        schema = reader.schema
    return [field.name for field in schema if pa.types.is_floating(field.type)]


def _reparse_infinite(table: pa.Table, source: Path, read, parse, convert) -> pa.Table:
    """Columns holding ±inf parsed again as float64: an inf may be a value float32 cannot hold (e.g. 1e39)."""
    infinite = [name for name, column in zip(table.column_names, table.columns)
                if pa.types.is_float32(column.type) and pc.any(pc.is_inf(column)).as_py()]
    if not infinite:
        return table
    wide_read = pa_csv.ConvertOptions(column_types={name: pa.float64() for name in infinite}, include_columns=infinite)
    wide = pa_csv.read_csv(source, read_options=read, parse_options=parse, convert_options=wide_read)
    for name in infinite:
        table = table.set_column(table.schema.get_field_index(name), name, wide.column(name))
    return table


def _parse_error(source: Path, path, parse, convert, error: Exception) -> InputError:
    message = str(error)
    if "Row #" not in message:
        # Only the single-threaded reader knows which row broke; re-read to name it.
        try:
            pa_csv.read_csv(source, read_options=pa_csv.ReadOptions(use_threads=False),
                            parse_options=parse, convert_options=convert)
        except pa.ArrowInvalid as detailed:
            message = str(detailed)
    row = re.search(r"Row #(\d+)", message)
    where = f"{path} line {_line_of_row(source, int(row.group(1)))}" if row else str(path)
    columns = re.search(r"Expected \d+ columns, got \d+", message)
    if columns:
        return InputError(f"{where}: {columns.group(0).lower()}.",
                          hint="Fix or delete that line (a stray comma or a cut-off row), then load again.")
    if "invalid UTF8" in message:
        return InputError(f"{where} is not UTF-8 text.", hint="Re-save the file as UTF-8 CSV.")
    return InputError(f"{where} could not be read as CSV: {_shorten(message)}",
                      hint="Check that it is a comma-separated text file with a header row.")


def _line_of_row(source: Path, row: int) -> int:
    """pyarrow counts rows without blank lines; editors count lines."""
    rows = 0
    with open(source, "rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            rows += bool(line.strip())
            if rows == row:
                return line_number
    return row


def _check_columns(table: pa.Table, path) -> None:
    names = table.column_names
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InputError(f"{path} has columns that appear more than once: {name_list(twice)}.",
                         hint="Rename or remove the repeated columns so each name is unique.")
    if table.num_rows == 0:
        raise InputError(f"{path} has column names but no rows.", hint="Point to the file that holds the data.")
    binary = [field.name for field in table.schema if pa.types.is_binary(field.type)]
    if binary:
        raise InputError(f"{path} is not UTF-8 text (column {binary[0]} holds other bytes).",
                         hint="Re-save the file as UTF-8 CSV.")


def to_frame(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    # A frame saved with df.set_index("fname").to_parquet() keeps its key in the index.
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()
    return frame


def _read_parquet(source: Path, path) -> pd.DataFrame:
    try:
        table = pq.read_table(source)
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"{path} is a damaged Parquet file: {_shorten(str(error))}",
                         hint="Export it again, or give the CSV instead.") from None
    _check_columns(table, path)
    return to_frame(table)


def cache_path(cache_dir, stem: str, source: str, identity: str, suffix: str = CACHE_SUFFIX) -> Path:
    """`stem-<digest of source>-<digest of identity>.arrow` in the cache folder: a new identity of the same source
    replaces the old file when written."""
    return cache_folder(cache_dir) / f"{stem}-{_digest(source)}-{_digest(identity)}{suffix}"


def cache_folder(cache_dir) -> Path:
    """cache_dir, else $VGGTAB_CACHE_DIR, else data/.cache."""
    return Path(cache_dir or os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_cached(cache: Path) -> pa.Table | None:
    """A cache file, once any write of it that this process started is done; None when absent or damaged (it is
    then built again and rewritten)."""
    if finished_cache(cache) is None:
        return None
    try:
        return feather.read_table(cache, memory_map=True)
    except (pa.ArrowException, OSError):
        return None


def finished_cache(cache: Path) -> Path | None:
    """`cache` once any write of it that this process started is done, or None when there is no such file."""
    writing = _cache_writes.pop(cache, None)
    if writing is not None:
        writing.join()
    return cache if cache.is_file() else None


def write_cached(table: pa.Table, cache: Path) -> None:
    """Write an Arrow cache file in the background; `read_cached` of the same file waits for it."""
    write_in_background(cache, lambda temp: feather.write_feather(table, temp, compression="uncompressed"))


def write_in_background(cache: Path, write) -> None:
    """`write(temp_path)` fills a cache file, atomically, in a background thread; never fatal. A write still
    going for an earlier version of the same source finishes first: it would otherwise remove this newer copy
    as stale."""
    for earlier in [other for other in _cache_writes if _same_source(other) == _same_source(cache)]:
        _cache_writes.pop(earlier).join()
    writing = _start_cache_write(write, cache)
    if writing is not None:
        _cache_writes[cache] = writing


def wait_for_cache_writes() -> None:
    """Block until every cache copy started by this process is on disk."""
    while _cache_writes:
        _cache_writes.popitem()[1].join()


def _start_cache_write(write, cache: Path) -> threading.Thread | None:
    """Write the cache copy (~0.2 s for 240 MB) in a low-priority thread, off the run's critical path: it runs
    on the core that the imports or the single-threaded training leave idle. Not a daemon thread, so the
    process waits for it at exit; the write is atomic either way."""
    try:
        # Made here, not in the thread: a folder removed meanwhile (a temporary one) must stay removed.
        cache.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # the cache only saves time
    thread = threading.Thread(target=_write_cache_niced, args=(write, cache), name="vggtab-cache-write")
    thread.start()
    return thread


def _write_cache_niced(write, cache: Path) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # Linux: this thread only
    except (AttributeError, OSError):
        pass
    _write_cache(write, cache)


def _write_cache(write, cache: Path) -> None:
    """Atomic, and never fatal: the cache only saves time. Not fsynced: a copy torn by a power cut reads as
    damaged and is built again."""
    try:
        atomic_write(cache, write, durable=False)
        _remove_stale(cache)
    except (OSError, StorageError, pa.ArrowException, pickle.PicklingError):
        pass


def _remove_stale(cache: Path) -> None:
    """Drop caches of earlier versions of the same file (same path digest, other state digest or format), and
    temp files of the same file that a killed process left (old enough not to be another process's write)."""
    same_source = _same_source(cache)
    for other in cache.parent.iterdir():
        if other == cache:
            continue
        if other.name.startswith(same_source) and other.suffix in (CACHE_SUFFIX, PICKLE_SUFFIX, ".parquet") or (
                other.name.startswith(f".{same_source}") and other.suffix == TEMP_SUFFIX
                and time.time() - other.stat().st_mtime > ABANDONED_TEMP_SECONDS):
            other.unlink(missing_ok=True)


def _same_source(cache: Path) -> str:
    """The part of a cache file's name that every version of the same source shares."""
    return cache.name.rsplit("-", 1)[0] + "-"


def _shorten(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + " …"
