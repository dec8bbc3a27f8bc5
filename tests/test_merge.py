import numpy as np
import pandas as pd
import pytest

from engine.errors import InputError
from engine.merge import merge_tables


def embeddings(keys, labels=None, key="fname"):
    frame = pd.DataFrame({key: keys, "emb_0": np.arange(len(keys), dtype=float)})
    if labels is not None:
        frame.insert(1, "labels", labels)
    return frame


def tabular(keys, key="file", labels=None):
    frame = pd.DataFrame({key: keys, "stft_mean_0": np.arange(len(keys), dtype=float) * 10})
    if labels is not None:
        frame["labels"] = labels
    return frame


def merge(emb, tab, **kw):
    return merge_tables(emb, tab, embeddings_path="emb.csv", tabular_path="tab.csv", **kw)


def test_inner_join_on_fname_and_file_keeps_embeddings_order():
    emb = embeddings(["c.wav", "a.wav", "b.wav", "x.wav"], ["Bark", "Purr", "Bark,Growl", "Hiss"])
    tab = tabular(["a.wav", "b.wav", "c.wav", "y.wav", "z.wav"])
    merged = merge(emb, tab)
    frame = merged.frame
    assert list(frame.columns) == ["fname", "labels", "emb_0", "stft_mean_0"]
    assert list(frame["fname"]) == ["c.wav", "a.wav", "b.wav"]
    assert list(frame["labels"]) == ["Bark", "Purr", "Bark,Growl"]
    assert frame["emb_0"].tolist() == [0.0, 1.0, 2.0]
    assert frame["stft_mean_0"].tolist() == [20.0, 0.0, 10.0]  # each row got its own tabular features
    assert (merged.key, merged.source_keys) == ("fname", ("fname", "file"))
    assert (merged.rows_embeddings, merged.rows_tabular, merged.matched) == (4, 5, 3)
    assert (merged.unmatched_embeddings, merged.unmatched_tabular) == (1, 2)
    assert merged.unmatched_examples == ("x.wav", "y.wav", "z.wav")
    assert any("1 clips of emb.csv have no row in tab.csv (e.g. x.wav)" in w for w in merged.warnings)


def test_labels_may_come_from_the_tabular_file_and_keys_are_stripped():
    merged = merge(embeddings(["a.wav ", "b.wav"]), tabular([" a.wav", "b.wav"], labels=["Purr", "Hiss"]))
    assert list(merged.frame["fname"]) == ["a.wav", "b.wav"]
    assert list(merged.frame["labels"]) == ["Purr", "Hiss"]
    assert merged.warnings == ()


def test_labels_in_both_files_use_embeddings_and_warn_on_disagreement():
    emb = embeddings(["a.wav", "b.wav"], ["Purr", "Bark"])
    tab = tabular(["a.wav", "b.wav"], labels=["Purr", "Growl"])
    merged = merge(emb, tab)
    assert list(merged.frame["labels"]) == ["Purr", "Bark"]
    assert merged.frame.columns.tolist().count("labels") == 1
    assert any("Labels differ for 1 clips" in w and "b.wav" in w for w in merged.warnings)


def test_duplicate_keys_keep_first_row_and_are_reported():
    emb = embeddings(["a.wav", "a.wav", "b.wav"], ["Purr", "Bark", "Hiss"])
    tab = tabular(["b.wav", "a.wav", "b.wav"])
    merged = merge(emb, tab)
    assert list(merged.frame["labels"]) == ["Purr", "Hiss"]
    assert merged.frame["stft_mean_0"].tolist() == [10.0, 0.0]
    assert merged.duplicate_keys == ("a.wav", "b.wav")
    assert sum("appear more than once" in w for w in merged.warnings) == 2


def test_user_key_and_blank_keys():
    emb = embeddings(["a", "b", None, ""], ["Purr", "Bark", "Hiss", "Hiss"], key="clip")
    tab = tabular(["a", "b"], key="clip")
    merged = merge(emb, tab, key="clip")
    assert list(merged.frame["fname"]) == ["a", "b"]
    assert merged.source_keys == ("clip", "clip")
    assert any("2 rows of emb.csv have no clip" in w for w in merged.warnings)


def test_keys_differing_by_folder_or_extension_match_on_stems_with_warning():
    emb = embeddings(["001.wav", "002.wav"], ["Purr", "Bark"])
    tab = tabular(["audio_train/002.wav", "audio_train/001.wav"])
    merged = merge(emb, tab)
    assert merged.matched == 2
    assert merged.frame["stft_mean_0"].tolist() == [10.0, 0.0]
    assert any("without folders, extensions or case" in w for w in merged.warnings)


def test_columns_in_both_files_keep_the_embeddings_copy():
    emb = embeddings(["a"], ["Purr"]).assign(manually_verified=1)
    tab = tabular(["a"]).assign(manually_verified=0)
    merged = merge(emb, tab)
    assert merged.frame["manually_verified"].tolist() == [1]
    assert any("manually_verified are in both files" in w for w in merged.warnings)


def error(emb, tab, **kw) -> str:
    with pytest.raises(InputError) as caught:
        merge(emb, tab, **kw)
    return str(caught.value)


def test_no_key_column_lists_columns_and_suggests_key_option():
    message = error(embeddings(["a"], ["x"], key="clip_id"), tabular(["a"]))
    assert "emb.csv has no key column" in message and "clip_id, labels, emb_0" in message
    assert "Set `key` to the column" in message


def test_named_key_missing():
    message = error(embeddings(["a"], ["x"]), tabular(["a"]), key="clip")
    assert "emb.csv has no column 'clip'" in message and "fname" in message


def test_keys_that_do_not_overlap_show_examples_from_both_sides():
    message = error(embeddings(["a.wav", "b.wav"], ["x", "y"]), tabular(["q.wav", "r.wav"]))
    assert "a.wav, b.wav" in message and "q.wav, r.wav" in message


def test_no_labels_column_in_either_file():
    message = error(embeddings(["a"]), tabular(["a"]))
    assert "Neither emb.csv nor tab.csv has a 'labels' column" in message


def test_keys_in_another_case_are_counted_with_real_pairs_and_normalising_matches_them():
    names = [f"clip_{i}.wav" for i in range(10)]
    emb = embeddings(names, ["Bark"] * 10)
    tab = tabular(names[:6] + [f"Audio/{n.upper()}" for n in names[6:9]] + ["other.wav"])
    merged = merge(emb, tab)
    assert merged.matched == 6
    [offer] = [w for w in merged.warnings if "key_normalise=on" in w]
    assert offer.startswith("3 of the 4 clips of emb.csv without a row in tab.csv match one when case, folders")
    assert "clip_6.wav ~ Audio/CLIP_6.WAV; clip_7.wav ~ Audio/CLIP_7.WAV; clip_8.wav ~ Audio/CLIP_8.WAV" in offer

    normalised = merge(emb, tab, normalise_keys=True)
    assert normalised.matched == 9 and normalised.unmatched_embeddings == 1
    assert list(normalised.frame["stft_mean_0"]) == [i * 10.0 for i in range(9)]
    assert not any("key_normalise" in w for w in normalised.warnings)


def test_most_keys_matching_only_once_normalised_is_an_error_not_a_small_run():
    names = [f"clip_{i}.wav" for i in range(10)]
    tab = tabular(names[:3] + [n.upper() for n in names[3:]])
    message = error(embeddings(names, ["Bark"] * 10), tab)
    assert message.startswith("Only 3 clips matched as written, but 7 of the 7 clips of emb.csv without a row")
    assert "key_normalise=on" in message


def test_keys_that_collide_once_normalised_are_refused_by_name():
    emb = embeddings(["a.wav", "A.WAV", "b.wav"], ["Bark", "Purr", "Hiss"])
    with pytest.raises(InputError, match=r"key_normalise=on, 1 fname values of emb.csv .* a\.wav, A\.WAV"):
        merge(emb, tabular(["a.wav", "b.wav"]), normalise_keys=True)


def test_the_re_match_on_file_names_names_a_pair_that_matched():
    emb = embeddings(["x/zzz.wav", "a/b.wav"], ["Bark", "Purr"])
    merged = merge(emb, tabular(["b", "q"]))
    assert any("(e.g. a/b.wav ~ b)" in w for w in merged.warnings)
