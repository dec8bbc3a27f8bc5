"""Time reading a full-size tabular CSV: pandas vs pyarrow vs the Arrow cache of engine.load.

Usage: .venv/bin/python bench/bench_load.py [rows]   (default 9,473 rows x 2,475 columns, ~240 MB)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.load import load_table, wait_for_cache_writes  # noqa: E402


def tabular_columns() -> list[str]:
    groups = [("stft_mean", 1025), ("stft_std", 1025), ("mel_mean", 128), ("mel_std", 128),
              ("cqt_mean", 84), ("cqt_std", 84)]
    return [f"{name}_{i}" for name, count in groups for i in range(count)]


def write_big_csv(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    names = tabular_columns()
    arrays = [pa.array([f"{i:08d}.wav" for i in range(rows)])]
    for start in range(0, len(names), 256):
        block = np.round(rng.lognormal(0, 2, size=(rows, min(256, len(names) - start))), 6)
        arrays.extend(pa.array(block[:, j]) for j in range(block.shape[1]))
    pa_csv.write_csv(pa.Table.from_arrays(arrays, names=["file", *names]), path)


def timed(label: str, action) -> float:
    start = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - start
    print(f"{label:<40} {seconds:7.2f} s")
    return seconds, result


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 9473
    with tempfile.TemporaryDirectory() as folder:
        csv = Path(folder) / "tabular.csv"
        write_big_csv(csv, rows)
        print(f"{csv.stat().st_size / 1e6:.0f} MB, {rows} rows x {len(tabular_columns()) + 1} columns")
        pandas_s, _ = timed("pandas.read_csv", lambda: pd.read_csv(csv))
        arrow_s, _ = timed("pyarrow.csv.read_csv, default blocks", lambda: pa_csv.read_csv(csv))
        first_s, first = timed("load_table, first read", lambda: load_table(csv, cache_dir=folder))
        wait_for_cache_writes()  # the cache copy is written in the background
        cached_s, cached = timed("load_table, cached", lambda: load_table(csv, cache_dir=folder))
        again_s, _ = timed("load_table, cached again", lambda: load_table(csv, cache_dir=folder))
        assert not first.from_cache and cached.from_cache and cached.frame.equals(first.frame)
        print(f"first read vs pandas: {pandas_s / first_s:.1f}x; "
              f"cached vs first read: {first_s / min(cached_s, again_s):.1f}x faster")


if __name__ == "__main__":
    main()
