"""Candidate content fingerprints for the load caches: cost on a big CSV, and whether each one notices an
in-place edit that keeps the file's size and mtime: `sed -i` of one character on the middle line (as
`sed -i 's/,Yell,/,Yelp,/'` edits a label), then `touch -r` to put the mtime back.

Rounds interleave the candidates (A B C … A B C …) so load from other processes hits all alike; the file is
read once first so every candidate hashes from the page cache, as a warm start does.

Usage: .venv/bin/python bench/bench_fingerprint.py [file.csv] [rounds]   (default data/demo/tabular.csv, 5)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHUNK = 1 << 20
SAMPLES, SAMPLE_BYTES = 64, 64 << 10


def whole_file(make_hash):
    def digest(path: Path) -> str:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, make_hash).hexdigest()
    return digest


def sampled_blocks(path: Path) -> str:
    """Size plus SAMPLES evenly spaced blocks: reads 4 MB whatever the file's size."""
    size = path.stat().st_size
    digest = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, "rb") as handle:
        for i in range(SAMPLES):
            handle.seek(i * max(0, size - SAMPLE_BYTES) // (SAMPLES - 1))
            digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()


def candidates() -> dict:
    found = {"sha1 (engine.load)": whole_file(hashlib.sha1),
             "blake2b": whole_file(lambda: hashlib.blake2b(digest_size=16)), "md5": whole_file(hashlib.md5),
             f"sampled {SAMPLES}x{SAMPLE_BYTES >> 10} KB + size": sampled_blocks}
    try:
        import xxhash
    except ImportError:
        print("(xxhash not installed: `pip install xxhash` to compare it)")
    else:
        found["xxh3_128"] = whole_file(xxhash.xxh3_128)
    return found


def edit_keeping_size_and_mtime(path: Path) -> None:
    reference = path.with_name("reference")
    shutil.copy2(path, reference)
    with open(path, "rb") as handle:
        middle = sum(1 for _ in handle) // 2
    subprocess.run(["sed", "-i", f"{middle}s/1/2/", str(path)], check=True)
    subprocess.run(["touch", "-r", str(reference), str(path)], check=True)


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "data/demo/tabular.csv")
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    found = candidates()
    path.read_bytes()
    seconds = {name: [] for name in found}
    for _ in range(rounds):
        for name, digest in found.items():
            started = time.perf_counter()
            digest(path)
            seconds[name].append(time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as folder:
        edited = Path(folder) / path.name
        shutil.copy2(path, edited)
        before = {name: digest(edited) for name, digest in found.items()}
        edit_keeping_size_and_mtime(edited)
        noticed = {name: digest(edited) != before[name] for name, digest in found.items()}

    size = os.path.getsize(path)
    print(f"{path}: {size / 1e6:.0f} MB; median of {rounds} interleaved rounds")
    for name, times in seconds.items():
        median = statistics.median(times)
        print(f"  {name:<26} {median * 1000:7.1f} ms  {size / 1e6 / median:7,.0f} MB/s   "
              f"catches sed -i + touch -r: {'yes' if noticed[name] else 'NO'}")


if __name__ == "__main__":
    main()
