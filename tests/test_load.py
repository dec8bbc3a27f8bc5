import os
import pickle

import numpy as np
import pandas as pd
import pytest

from engine.errors import InputError
from engine.load import fingerprint, load_table, wait_for_cache_writes
from engine.store.files import temp_name
from tests.conftest import edit_keeping_size_and_mtime


def write_csv(path, text: str):
    path.write_text(text)
    return path


@pytest.fixture
def csv_file(tmp_path):
    return write_csv(tmp_path / "emb.csv", "fname,labels,emb_0,emb_1\n00044347.wav,Bark,1,2.5\nb.wav,\"Bark,Growl\",3,\n")


def test_csv_keeps_keys_and_labels_as_text_and_parses_numbers(csv_file, tmp_path):
    table = load_table(csv_file, cache_dir=tmp_path / "cache")
    frame = table.frame
    assert list(frame.columns) == ["fname", "labels", "emb_0", "emb_1"]
    assert list(frame["fname"]) == ["00044347.wav", "b.wav"]
    assert list(frame["labels"]) == ["Bark", "Bark,Growl"]
    assert frame["emb_0"].tolist() == [1, 3]
    assert frame["emb_1"].iloc[0] == 2.5 and np.isnan(frame["emb_1"].iloc[1])
    assert table.path == str(csv_file) and not table.from_cache


def test_numeric_looking_keys_keep_their_leading_zeros(tmp_path):
    path = write_csv(tmp_path / "t.csv", "file,stft_mean_0\n00012,1.0\n00013,2.0\n")
    assert list(load_table(path, cache_dir=tmp_path / "c").frame["file"]) == ["00012", "00013"]


def test_second_load_comes_from_cache_with_equal_frame(csv_file, tmp_path):
    cache = tmp_path / "cache"
    first = load_table(csv_file, cache_dir=cache)
    second = load_table(csv_file, cache_dir=cache)
    assert second.from_cache
    pd.testing.assert_frame_equal(first.frame, second.frame)
    assert len(list(cache.glob("*.arrow"))) == 1
    assert not list(cache.glob("*.tmp"))


def test_cache_dir_defaults_to_environment_variable(csv_file, tmp_path, monkeypatch):
    monkeypatch.setenv("VGGTAB_CACHE_DIR", str(tmp_path / "envcache"))
    load_table(csv_file)
    assert load_table(csv_file).from_cache
    assert len(list((tmp_path / "envcache").glob("*.arrow"))) == 1


def test_changed_file_misses_cache_and_replaces_stale_entry(csv_file, tmp_path):
    cache = tmp_path / "cache"
    load_table(csv_file, cache_dir=cache)
    write_csv(csv_file, "fname,labels,emb_0\nz.wav,Purr,9\n")
    reloaded = load_table(csv_file, cache_dir=cache)
    assert not reloaded.from_cache
    assert list(reloaded.frame["fname"]) == ["z.wav"]
    wait_for_cache_writes()  # the cache copy is written in the background
    assert len(list(cache.glob("*.arrow"))) == 1


def test_an_edit_keeping_size_and_mtime_reloads_the_new_labels(tmp_path):
    path = write_csv(tmp_path / "emb.csv", "fname,labels,emb_0\na.wav,Yell,1\nb.wav,Bark,2\n")
    cache = tmp_path / "cache"
    load_table(path, cache_dir=cache)
    wait_for_cache_writes()
    assert load_table(path, cache_dir=cache).from_cache
    before = path.stat()

    edit_keeping_size_and_mtime(path, ",Yell,", ",Yelp,")

    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    reloaded = load_table(path, cache_dir=cache)
    assert not reloaded.from_cache and list(reloaded.frame["labels"]) == ["Yelp", "Bark"]


def test_the_fingerprint_follows_content_not_path_or_mtime(tmp_path):
    one = write_csv(tmp_path / "one.csv", "fname,emb_0\na.wav,1\n")
    two = write_csv(tmp_path / "two.csv", "fname,emb_0\na.wav,1\n")
    os.utime(two, ns=(1, 1))
    assert fingerprint(one) == fingerprint(two)
    write_csv(two, "fname,emb_0\na.wav,2\n")
    assert fingerprint(one) != fingerprint(two)


def test_a_killed_writers_temp_file_is_removed_but_a_fresh_one_is_not(csv_file, tmp_path):
    cache = tmp_path / "cache"
    load_table(csv_file, cache_dir=cache)
    wait_for_cache_writes()
    (cached_file,) = cache.glob("*.arrow")
    abandoned, in_progress = temp_name(cached_file), temp_name(cached_file)
    abandoned.write_bytes(b"half a table")
    in_progress.write_bytes(b"being written")
    os.utime(abandoned, (1, 1))
    write_csv(csv_file, csv_file.read_text() + "c.wav,Purr,5,6\n")  # a new version: its cache is written again
    load_table(csv_file, cache_dir=cache)
    wait_for_cache_writes()
    assert not abandoned.exists() and in_progress.exists()
    assert len(list(cache.glob("*.arrow"))) == 1


def test_corrupt_cache_is_ignored_and_rewritten(csv_file, tmp_path):
    cache = tmp_path / "cache"
    expected = load_table(csv_file, cache_dir=cache).frame
    wait_for_cache_writes()
    (cached_file,) = cache.glob("*.arrow")
    cached_file.write_bytes(b"ARROW1 not really Arrow")
    again = load_table(csv_file, cache_dir=cache)
    assert not again.from_cache
    pd.testing.assert_frame_equal(again.frame, expected)
    assert load_table(csv_file, cache_dir=cache).from_cache


def test_unwritable_cache_dir_still_loads(csv_file, tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    assert len(load_table(csv_file, cache_dir=blocker / "cache").frame) == 2


def test_parquet_by_content_even_with_csv_extension(tmp_path):
    frame = pd.DataFrame({"file": ["a.wav", "b.wav"], "mel_mean_0": [0.5, 1.5]})
    path = tmp_path / "tabular.csv"
    frame.to_parquet(path)
    table = load_table(path, cache_dir=tmp_path / "c")
    assert list(table.frame["file"]) == ["a.wav", "b.wav"]
    assert table.frame["mel_mean_0"].tolist() == [0.5, 1.5]


def test_parquet_key_saved_as_index_becomes_a_column(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"fname": ["a.wav"], "emb_0": [3.0]}).set_index("fname").to_parquet(path)
    assert list(load_table(path).frame.columns) == ["fname", "emb_0"]


def test_semicolon_and_tab_separated_files_are_read(tmp_path):
    semi = write_csv(tmp_path / "semi.csv", "fname;emb_0\na.wav;1\n")
    tab = write_csv(tmp_path / "tab.tsv", "fname\temb_0\na.wav\t1\n")
    for path in (semi, tab):
        assert list(load_table(path, cache_dir=tmp_path / "c").frame.columns) == ["fname", "emb_0"]


def error_for(path, tmp_path) -> str:
    with pytest.raises(InputError) as caught:
        load_table(path, cache_dir=tmp_path / "cache")
    return str(caught.value)


def test_missing_path(tmp_path):
    message = error_for(tmp_path / "nope.csv", tmp_path)
    assert "nope.csv does not exist" in message


def test_directory(tmp_path):
    assert "is a directory" in error_for(tmp_path, tmp_path)


def test_empty_and_blank_files(tmp_path):
    assert "is empty" in error_for(write_csv(tmp_path / "e.csv", ""), tmp_path)
    assert "is empty" in error_for(write_csv(tmp_path / "b.csv", "\n  \n"), tmp_path)


def test_header_without_rows(tmp_path):
    assert "column names but no rows" in error_for(write_csv(tmp_path / "h.csv", "fname,emb_0\n"), tmp_path)


def test_pickle_is_named_with_what_to_do(tmp_path):
    path = tmp_path / "features.csv"
    path.write_bytes(pickle.dumps(pd.DataFrame({"a": [1]})))
    message = error_for(path, tmp_path)
    assert "features.csv" in message and "pickle" in message and "to_csv" in message


def test_other_binary_files(tmp_path):
    gz = tmp_path / "a.csv"
    gz.write_bytes(b"\x1f\x8b\x08\x00rest")
    assert "gunzip" in error_for(gz, tmp_path)
    blob = tmp_path / "b.csv"
    blob.write_bytes(b"abc\x00\x01\x02def")
    assert "binary data" in error_for(blob, tmp_path)


def test_parquet_extension_without_parquet_content(tmp_path):
    assert "not one" in error_for(write_csv(tmp_path / "x.parquet", "a,b\n1,2\n"), tmp_path)


def test_damaged_parquet(tmp_path):
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1" + b"garbage" * 10)
    assert "damaged Parquet" in error_for(path, tmp_path)


def test_broken_line_is_named_counting_blank_lines(tmp_path):
    text = "fname,labels,emb_0\na.wav,Bark,1\n\nb.wav,Bark\nc.wav,Bark,3\n"
    message = error_for(write_csv(tmp_path / "broken.csv", text), tmp_path)
    assert "broken.csv line 4" in message and "expected 3 columns, got 2" in message


def test_broken_line_deep_in_a_multi_block_file(tmp_path):
    rows = "".join(f"k{i}.wav,{i}\n" for i in range(50_000))
    text = "fname,emb_0\n" + rows + "bad.wav,1,2\n"
    message = error_for(write_csv(tmp_path / "big.csv", text), tmp_path)
    assert "line 50002" in message and "expected 2 columns, got 3" in message


def test_repeated_column_names(tmp_path):
    message = error_for(write_csv(tmp_path / "d.csv", "fname,emb_0,emb_0\na,1,2\n"), tmp_path)
    assert "more than once: emb_0" in message


def test_non_utf8_text(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("fname,labels\nabc.wav,Caf\u00e9\n".encode("latin-1"))
    assert "latin.csv line 2 is not UTF-8" in error_for(path, tmp_path)


def test_a_later_launch_reuses_the_fingerprint_until_the_file_is_written(tmp_path, monkeypatch):
    """A warm start must not read 1.2 GB to learn the files are unchanged, nor miss an edit that puts the mtime
    back: the fingerprint is kept under the stat stamp, whose ctime any write changes."""
    from engine import load
    monkeypatch.setattr(load, "SETTLED_NS", 0)  # the file is seconds old in real use, milliseconds here
    cache = tmp_path / "cache"
    path = write_csv(tmp_path / "emb.csv", "fname,emb_0\na.wav,1\n")
    first = fingerprint(path, cache)
    assert (cache / load.FINGERPRINTS_FILE).is_file()

    monkeypatch.setattr(load, "_fingerprints", {})  # a new process
    monkeypatch.setattr(load, "_sha1", lambda *args: pytest.fail("an unchanged file was read again"))
    assert fingerprint(path, cache) == first

    monkeypatch.undo()
    monkeypatch.setattr(load, "SETTLED_NS", 0)
    monkeypatch.setattr(load, "_fingerprints", {})
    before = path.stat()
    probe = tmp_path / "clock-probe"
    probe.touch()
    while probe.stat().st_ctime_ns <= before.st_ctime_ns:  # ctime comes from a coarse kernel clock: the edit must
        probe.touch()                                       # fall in a later tick, as a user's does
    with open(path, "r+b") as handle:  # in place: same inode and size; then the mtime is put back
        handle.seek(len("fname,emb_0\na.wav,"))
        handle.write(b"2")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert fingerprint(path, cache) != first


def test_floats_are_parsed_as_float32_and_integer_ids_keep_every_digit(tmp_path):
    path = write_csv(tmp_path / "t.csv", "fname,clip_id,emb_0,mel_mean_0,stft_mean_0\n"
                                         "a.wav,123456789,3,0.25,0.5\nb.wav,123456788,4,0.75,1e39\n")
    frame = load_table(path, cache_dir=tmp_path / "cache").frame
    assert str(frame["mel_mean_0"].dtype) == "float32"
    assert str(frame["emb_0"].dtype) == "int64" and list(frame["clip_id"]) == [123456789, 123456788]
    assert frame["stft_mean_0"].iloc[1] == 1e39  # beyond float32: re-read as float64, so the audit can name it
