import numpy as np
import pandas as pd
import pytest

from engine.audit import audit_features
from engine.errors import InputError
from engine.load import load_table

COLUMNS = ["emb_0", "stft_mean_3", "mel_std_7", "cqt_std_0"]


def table(rows: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(COLUMNS))), columns=COLUMNS)
    frame.insert(0, "fname", [f"{i:03d}.wav" for i in range(rows)])
    frame.insert(1, "labels", ["Bark"] * rows)
    return frame


def test_clean_table_passes_unchanged():
    frame = table()
    audit = audit_features(frame, COLUMNS)
    pd.testing.assert_frame_equal(audit.frame, frame)
    assert audit.bad_rows == () and audit.warnings == ()
    assert audit.feature_columns == tuple(COLUMNS)


def test_notebook_bug_nan_row_is_named_and_dropped():
    frame = table()
    frame.loc[2, ["stft_mean_3", "mel_std_7"]] = np.nan
    audit = audit_features(frame, COLUMNS)
    assert audit.bad_rows == (("002.wav", "NaN in stft_mean_3, mel_std_7"),)
    assert list(audit.frame["fname"]) == ["000.wav", "001.wav", "003.wav", "004.wav", "005.wav"]
    assert np.isfinite(audit.frame[COLUMNS].to_numpy()).all()


def test_inf_rows_are_named_and_impute_turns_inf_into_nan():
    frame = table()
    frame.loc[1, "emb_0"] = np.inf
    frame.loc[1, "cqt_std_0"] = np.nan
    frame.loc[4, "mel_std_7"] = -np.inf
    audit = audit_features(frame, COLUMNS, policy="impute")
    assert audit.bad_rows == (("001.wav", "NaN in cqt_std_0; inf in emb_0"), ("004.wav", "inf in mel_std_7"))
    assert len(audit.frame) == 6
    assert np.isnan(audit.frame.loc[1, "emb_0"]) and np.isnan(audit.frame.loc[4, "mel_std_7"])
    assert not np.isinf(audit.frame[COLUMNS].to_numpy()).any()


@pytest.mark.parametrize("policy", ["drop", "impute"])
def test_values_beyond_float32_are_named_with_row_column_and_value(policy):
    frame = table()
    frame.loc[1, "stft_mean_3"] = 1e39
    frame.loc[3, "mel_std_7"] = -1e308
    frame.loc[3, "emb_0"] = np.nan
    frame.loc[5, "cqt_std_0"] = 3e38  # within float32's range: kept as is
    audit = audit_features(frame, COLUMNS, policy=policy)

    assert audit.bad_rows == (("001.wav", "beyond float32 (±3.4e38) in stft_mean_3 = 1e+39"),
                              ("003.wav", "NaN in emb_0; beyond float32 (±3.4e38) in mel_std_7 = -1e+308"))
    if policy == "drop":
        assert list(audit.frame["fname"]) == ["000.wav", "002.wav", "004.wav", "005.wav"]
    else:
        assert len(audit.frame) == 6
        assert np.isnan(audit.frame.loc[1, "stft_mean_3"]) and np.isnan(audit.frame.loc[3, "mel_std_7"])
    assert np.isfinite(audit.frame[COLUMNS].dropna().to_numpy(dtype=np.float32)).all()
    assert audit.frame.loc[audit.frame["fname"] == "005.wav", "cqt_std_0"].item() == 3e38


def test_long_column_lists_are_cut_with_a_count():
    columns = [f"stft_mean_{i}" for i in range(10)]
    frame = pd.DataFrame(np.nan, index=range(2), columns=columns).assign(fname=["a", "b"])
    frame.loc[1, columns] = 1.0
    frame.loc[0, "stft_mean_9"] = 2.0  # keeps that column from being all-NaN
    audit = audit_features(frame, columns, policy="impute")
    assert audit.bad_rows == (("a", "NaN in stft_mean_0, stft_mean_1, stft_mean_2, stft_mean_3 … (+5 more)"),)


def test_all_nan_column_is_dropped_with_warning_not_blamed_on_rows():
    frame = table().assign(mel_std_7=np.nan)
    audit = audit_features(frame, COLUMNS)
    assert audit.dropped_columns == ("mel_std_7",)
    assert "mel_std_7" not in audit.frame.columns and len(audit.frame) == 6
    assert audit.bad_rows == ()
    assert audit.feature_columns == ("emb_0", "stft_mean_3", "cqt_std_0")
    assert any("mel_std_7 hold no values" in w for w in audit.warnings)


def test_constant_and_absurd_columns_are_warned_about():
    frame = table().assign(emb_0=5.0)
    frame.loc[3, "cqt_std_0"] = 3e7
    audit = audit_features(frame, COLUMNS)
    assert audit.constant_columns == ("emb_0",)
    assert audit.absurd_columns == ("cqt_std_0",)
    assert any("emb_0 have one value" in w for w in audit.warnings)
    assert any("cqt_std_0 hold values beyond" in w for w in audit.warnings)


def test_constant_is_judged_on_rows_that_stay():
    frame = table().assign(emb_0=1.0)
    frame.loc[0, ["emb_0", "mel_std_7"]] = [9.0, np.nan]  # the one differing value sits in a dropped row
    assert audit_features(frame, COLUMNS).constant_columns == ("emb_0",)
    assert audit_features(frame, COLUMNS, policy="impute").constant_columns == ()


def test_dropping_many_rows_suggests_impute():
    frame = table(rows=10)
    frame.loc[:2, "stft_mean_3"] = np.nan
    audit = audit_features(frame, COLUMNS)
    assert any("Dropped 3 of 10 rows" in w and "impute" in w for w in audit.warnings)


def test_every_row_bad_is_an_input_error_naming_the_worst_column():
    frame = table().assign(mel_std_7=np.nan)
    frame.loc[0, "mel_std_7"] = 1.0
    frame.loc[0, "emb_0"] = np.nan
    with pytest.raises(InputError, match="most often in mel_std_7"):
        audit_features(frame, COLUMNS)


def test_numeric_text_column_is_converted(tmp_path):
    frame = table().astype({"stft_mean_3": str})
    frame.loc[2, "stft_mean_3"] = "NaN"
    audit = audit_features(frame, COLUMNS)
    assert audit.frame["stft_mean_3"].dtype == np.float64
    assert audit.bad_rows == (("002.wav", "NaN in stft_mean_3"),)


def test_non_numeric_column_from_a_csv_names_column_key_and_value(tmp_path):
    path = tmp_path / "tab.csv"
    path.write_text("fname,stft_mean_0,mel_mean_1\na.wav,1.5,2\nb.wav,oops,3\nc.wav,,4\nd.wav,x,5\n")
    frame = load_table(path, cache_dir=tmp_path / "c").frame
    with pytest.raises(InputError) as caught:
        audit_features(frame, ["stft_mean_0", "mel_mean_1"])
    message = str(caught.value)
    assert "stft_mean_0" in message and "fname b.wav has 'oops'" in message and "1 more rows" in message


def test_missing_feature_column_and_no_rows():
    with pytest.raises(InputError, match="lacks feature columns zcr_0"):
        audit_features(table(), ["emb_0", "zcr_0"])
    with pytest.raises(InputError, match="no rows"):
        audit_features(table().iloc[:0], COLUMNS)


def test_demo_files_nan_row_is_found_through_load_and_merge(tmp_path):
    """The notebook's bug end to end: the demo plants NaN in one matched tabular row; pandas finds it
    independently, and the audit must name exactly that clip."""
    from engine.demo import generate_demo
    from engine.merge import merge_tables

    files = generate_demo(tmp_path, n_tabular=400, n_embeddings=300, n_classes=6, n_test=5,
                          bins={"stft": 4, "mel": 3, "cqt": 2})
    raw_tabular = pd.read_csv(files.tabular)
    nan_keys = set(raw_tabular.loc[raw_tabular.isna().any(axis=1), "file"])
    emb = load_table(files.embeddings, cache_dir=tmp_path / "c").frame
    tab = load_table(files.tabular, cache_dir=tmp_path / "c").frame
    merged = merge_tables(emb, tab, embeddings_path="e", tabular_path="t").frame
    expected = nan_keys & set(merged["fname"])
    assert len(expected) >= 1
    columns = [c for c in merged.columns if c not in ("fname", "labels")]
    audit = audit_features(merged, columns)
    assert {key for key, _ in audit.bad_rows} == expected
    assert all(why.startswith("NaN in ") for _, why in audit.bad_rows)
    assert not set(audit.frame["fname"]) & expected
