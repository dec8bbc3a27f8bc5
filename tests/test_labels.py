import numpy as np
import pandas as pd
import pytest

from engine.errors import InputError
from engine.labels import filter_labels, label_count_distribution, split_labels


def frame(labels) -> pd.DataFrame:
    return pd.DataFrame({"fname": [f"{i}.wav" for i in range(len(labels))], "labels": labels,
                         "emb_0": np.arange(len(labels), dtype=float)})


@pytest.mark.parametrize("text, expected", [
    ("Bark", ["Bark"]),
    ("Bark,Growl", ["Bark", "Growl"]),
    (" Bark , Growl ,", ["Bark", "Growl"]),
    ("Bark,Bark", ["Bark"]),
    ("", []),
    ("  ", []),
    (None, []),
    (np.nan, []),
    (pd.NA, []),
])
def test_split_labels(text, expected):
    assert split_labels(text) == expected


def test_label_count_distribution():
    labels = pd.Series(["Bark", "Bark,Growl", "", None, "Purr", "A,B,C"])
    assert label_count_distribution(labels) == {0: 2, 1: 2, 2: 1, 3: 1}


def test_single_mode_keeps_one_label_clips_like_the_notebook():
    data = frame(["Bark", "Bark,Growl", " Purr ", "", None, "Bark"])
    labelled = filter_labels(data)
    assert list(labelled.frame["fname"]) == ["0.wav", "2.wav", "5.wav"]
    assert list(labelled.frame["labels"]) == ["Bark", "Purr", "Bark"]
    assert labelled.frame["emb_0"].tolist() == [0.0, 2.0, 5.0]
    assert labelled.classes == ("Bark", "Purr")
    assert labelled.class_sizes == {"Bark": 2, "Purr": 1}
    assert labelled.label_counts == {0: 2, 1: 3, 2: 1}
    assert labelled.dropped_empty == ("3.wav", "4.wav")
    assert any("1 clips with 2+ labels are left out" in w for w in labelled.warnings)
    assert any("2 clips have no label" in w for w in labelled.warnings)
    assert any("2 classes have fewer than 5 clips: Bark (2), Purr (1)" in w for w in labelled.warnings)


def test_multi_mode_keeps_every_labeled_clip_and_counts_each_label():
    labelled = filter_labels(frame(["Bark", "Growl, Bark", "", "Purr"]), mode="multi")
    assert list(labelled.frame["labels"]) == ["Bark", "Growl,Bark", "Purr"]
    assert labelled.classes == ("Bark", "Growl", "Purr")
    assert labelled.class_sizes == {"Bark": 2, "Growl": 1, "Purr": 1}
    assert labelled.dropped_empty == ("2.wav",)


def test_filter_does_not_modify_the_input_frame():
    data = frame([" Bark", "Purr"])
    filter_labels(data)
    assert list(data["labels"]) == [" Bark", "Purr"]


def test_one_class_left_is_named():
    with pytest.raises(InputError) as caught:
        filter_labels(frame(["Bark", "Bark,Growl", "Bark"]))
    assert "only 'Bark' (2 clips) is left" in str(caught.value) and "label_mode=multi" in str(caught.value)


def test_no_class_left():
    with pytest.raises(InputError, match="none is left"):
        filter_labels(frame(["", None]), mode="multi")


def test_missing_labels_column():
    with pytest.raises(InputError, match="no 'labels' column"):
        filter_labels(frame(["a", "b"]).drop(columns="labels"))


def test_labels_that_differ_only_in_case_or_spacing_are_reported():
    frame = pd.DataFrame({"fname": [f"{i}.wav" for i in range(7)],
                          "labels": ["Bark", "Bark", "bark", "Acoustic_guitar", "Acoustic  guitar", "Purr", "Purr"]})
    warnings = filter_labels(frame).warnings
    [alike] = [w for w in warnings if "case or spacing" in w]
    assert alike.startswith("2 labels differ from another only in case or spacing")
    assert "'Acoustic  guitar' (1) vs 'Acoustic_guitar' (1)" in alike and "'Bark' (2) vs 'bark' (1)" in alike
    assert not [w for w in filter_labels(frame[frame.labels.isin(["Bark", "Purr"])]).warnings if "case" in w]
