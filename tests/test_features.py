import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import mutual_info_score

from engine.errors import ConfigError, InputError, StorageError
from engine.features import FeatureTransform, binned_mutual_info, group_counts, select_columns

EMB = [f"emb_{i}" for i in range(3)]
TAB = [f"stft_mean_{i}" for i in range(4)] + [f"mel_std_{i}" for i in range(3)] + ["cqt_mean_0"]
COLUMNS = EMB + TAB


def dataset(rows: int = 60, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Class 0/1/2; only stft_mean_1 and mel_std_2 carry the class, the rest is noise on mixed scales."""
    rng = np.random.default_rng(seed)
    y = np.arange(rows) % 3
    frame = pd.DataFrame(rng.normal(size=(rows, len(COLUMNS))) * np.linspace(1, 500, len(COLUMNS)),
                         columns=COLUMNS)
    frame["stft_mean_1"] += y * 2000.0
    frame["mel_std_2"] += y * 1500.0
    frame["emb_0"] = rng.integers(0, 256, rows).astype(float)
    frame.insert(0, "fname", [f"{i:03d}.wav" for i in range(rows)])
    return frame, y


def test_group_counts_and_select_columns_keep_table_order():
    columns = ["fname", "labels", *COLUMNS]
    assert group_counts(columns) == {"emb": 3, "stft": 4, "mel": 3, "cqt": 1}
    assert select_columns(columns, ("mel_", "emb_")) == EMB + ["mel_std_0", "mel_std_1", "mel_std_2"]
    assert select_columns(columns, "cqt_") == ["cqt_mean_0"]


def test_select_columns_names_unmatched_prefixes_and_groups_present():
    with pytest.raises(InputError) as caught:
        select_columns(EMB + ["mel_std_0"], ("emb_", "zcr_"))
    message = str(caught.value)
    assert "zcr_" in message and "emb (3), mel (1)" in message and "features=emb,mel" in message


def test_plain_transform_standardizes_with_train_statistics():
    frame, y = dataset()
    train, valid = frame.iloc[:45], frame.iloc[45:]
    transform = FeatureTransform(COLUMNS).fit(train, y[:45])
    x_train, x_valid = transform.transform(train), transform.transform(valid)
    assert x_train.dtype == np.float32 and x_train.shape == (45, len(COLUMNS))
    assert list(transform.get_feature_names_out()) == COLUMNS
    np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(x_train.std(axis=0), 1, atol=1e-4)
    expected = (valid[COLUMNS].to_numpy() - train[COLUMNS].mean().to_numpy()) / train[COLUMNS].std(ddof=0).to_numpy()
    np.testing.assert_allclose(x_valid, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("options", [{}, {"pca": 3}, {"impute": True}])
def test_rows_by_position_give_the_same_inputs_and_leave_the_table_untouched(options):
    frame, y = dataset(rows=90)
    frame.loc[3, "mel_std_1"] = np.nan if options.get("impute") else frame.loc[3, "mel_std_1"]
    before = frame.copy()
    train_rows, valid_rows = np.arange(0, 90, 2), np.arange(1, 90, 2)
    by_frame = FeatureTransform(COLUMNS, **options).fit(frame.iloc[train_rows], y[train_rows])
    by_rows = FeatureTransform(COLUMNS, **options)
    x_train = by_rows.fit_transform(frame, y[train_rows], rows=train_rows)
    np.testing.assert_allclose(x_train, by_frame.transform(frame.iloc[train_rows]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(by_rows.transform(frame, rows=valid_rows), by_frame.transform(frame.iloc[valid_rows]),
                               rtol=1e-5, atol=1e-5)
    pd.testing.assert_frame_equal(frame, before)  # the scaler works in place, on the transform's own copy


def test_constant_column_gets_scale_one_not_nan():
    frame, y = dataset()
    frame["cqt_mean_0"] = 7.0
    x = FeatureTransform(COLUMNS).fit(frame, y).transform(frame)
    assert np.isfinite(x).all() and (x[:, COLUMNS.index("cqt_mean_0")] == 0).all()


@pytest.mark.parametrize("method", ["anova", "mutual_info"])
def test_select_k_keeps_the_informative_tabular_columns_and_all_embeddings(method):
    frame, y = dataset(rows=90)
    transform = FeatureTransform(COLUMNS, select_k=2, select_method=method).fit(frame, y)
    assert list(transform.get_feature_names_out()) == EMB + ["stft_mean_1", "mel_std_2"]
    assert transform.transform(frame).shape == (90, 5)


def test_selection_accepts_multilabel_targets_using_the_first_label():
    frame, y = dataset()
    names = np.array(["Bark", "Purr", "Hiss"])
    multi = [[names[c], "Growl"] for c in y]
    transform = FeatureTransform(COLUMNS, select_k=2).fit(frame, multi)
    assert list(transform.get_feature_names_out()) == EMB + ["stft_mean_1", "mel_std_2"]


def test_select_k_beyond_the_tabular_count_keeps_everything_with_a_note():
    frame, y = dataset()
    transform = FeatureTransform(COLUMNS, select_k=50).fit(frame, y)
    assert list(transform.get_feature_names_out()) == COLUMNS
    assert "keeps all 8 tabular columns" in transform.notes_[0]


def test_pca_projects_only_the_tabular_block():
    frame, y = dataset()
    transform = FeatureTransform(COLUMNS, pca=3).fit(frame, y)
    x = transform.transform(frame)
    assert list(transform.get_feature_names_out()) == EMB + ["pca0", "pca1", "pca2"]
    assert x.shape == (60, 6)
    np.testing.assert_allclose(x.std(axis=0), 1, atol=1e-4)
    # the first component follows the two class-carrying columns, which dominate once standardized
    assert abs(np.corrcoef(x[:, 3], y)[0, 1]) > 0.9
    assert transform.notes_ == ()


def test_pca_larger_than_the_data_is_clipped_with_a_note():
    frame, y = dataset(rows=5)
    transform = FeatureTransform(COLUMNS, pca=20).fit(frame, y)
    assert len(list(transform.get_feature_names_out())) == 3 + 5
    assert "using 5 components" in transform.notes_[0]


def test_impute_fills_nan_and_inf_with_train_medians():
    frame, y = dataset()
    train = frame.iloc[:40].copy()
    valid = frame.iloc[40:].copy()
    median = train["mel_std_1"].median()
    valid.iloc[0, valid.columns.get_loc("mel_std_1")] = np.nan
    valid.iloc[1, valid.columns.get_loc("mel_std_1")] = np.inf
    transform = FeatureTransform(COLUMNS, impute=True).fit(train, y[:40])
    x = transform.transform(valid)
    column = COLUMNS.index("mel_std_1")
    reference = transform.transform(train.assign(mel_std_1=median).iloc[:1])[0, column]
    assert np.isfinite(x).all()
    assert x[0, column] == pytest.approx(reference) and x[1, column] == pytest.approx(reference)


def test_nan_without_impute_is_an_input_error_naming_column_and_clip():
    frame, y = dataset()
    transform = FeatureTransform(COLUMNS).fit(frame, y)
    frame.loc[4, "stft_mean_2"] = np.nan
    with pytest.raises(InputError) as caught:
        transform.transform(frame)
    assert "stft_mean_2 of 004.wav is nan" in str(caught.value) and "bad_rows=impute" in str(caught.value)


def test_transform_names_missing_columns():
    frame, y = dataset()
    transform = FeatureTransform(COLUMNS).fit(frame, y)
    with pytest.raises(InputError, match="lacks feature columns mel_std_0, cqt_mean_0"):
        transform.transform(frame.drop(columns=["mel_std_0", "cqt_mean_0"]))


def test_settings_are_checked_in_fit_and_transform_needs_a_fit():
    frame, y = dataset()
    transform = FeatureTransform(COLUMNS, select_method="chi2")  # an estimator's __init__ only stores
    assert transform.get_params()["select_method"] == "chi2"
    with pytest.raises(ConfigError, match="select_method='chi2'"):
        transform.fit(frame, y)
    with pytest.raises(NotFittedError):
        FeatureTransform(COLUMNS).transform(frame)
    fitted = FeatureTransform(COLUMNS, pca=2).fit(frame, y)
    with pytest.raises(NotFittedError):  # a clone has the settings, not the fit
        clone(fitted).transform(frame)


@pytest.mark.parametrize("options", [{}, {"select_k": 3}, {"pca": 2, "impute": True}])
def test_no_leakage_valid_rows_never_change_the_fit(options):
    frame, y = dataset(rows=90)
    train_idx, valid_idx = np.arange(0, 70), np.arange(70, 90)
    changed_valid = frame.copy()
    changed_valid.loc[valid_idx, TAB + EMB] *= 100.0
    changed_train = frame.copy()
    changed_train.loc[train_idx[:10], TAB] += 1000.0

    def fitted(data):
        transform = FeatureTransform(COLUMNS, **options).fit(data.iloc[train_idx], y[train_idx])
        return list(transform.get_feature_names_out()), transform.transform(frame.iloc[train_idx])

    names, x = fitted(frame)
    names_v, x_v = fitted(changed_valid)
    assert names == names_v
    np.testing.assert_array_equal(x, x_v)
    _, x_t = fitted(changed_train)
    assert not np.allclose(x, x_t)


def test_fitted_transform_pickles():
    frame, y = dataset()
    transform = FeatureTransform(COLUMNS, select_k=3, impute=True).fit(frame, y)
    restored = pickle.loads(pickle.dumps(transform))
    np.testing.assert_array_equal(restored.transform(frame), transform.transform(frame))
    assert list(restored.get_feature_names_out()) == list(transform.get_feature_names_out())


def test_a_model_pickled_with_the_former_hand_written_transform_says_to_rerun():
    # How the transform this one replaced pickled (protocol 0): engine.features.FeatureTransform with a _fitted flag.
    former = (b"ccopy_reg\n_reconstructor\n(cengine.features\nFeatureTransform\nc__builtin__\nobject\nNtR"
              b"(dV_fitted\nI01\nsVinput_columns\n(lVemb_0\nasb.")
    with pytest.raises(StorageError, match="earlier vggtab") as caught:
        pickle.loads(former)
    assert "Rerun its run" in str(caught.value)


def test_importing_the_features_module_does_not_import_scikit_learn():
    code = "import sys, engine.features; print(sorted(m for m in sys.modules if m.startswith('sklearn')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_binned_mutual_info_equals_sklearn_on_discrete_columns():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 200)
    x = np.column_stack([rng.integers(0, k, 200) for k in (2, 3, 5)] + [y, np.zeros(200)]).astype(np.float32)
    expected = [mutual_info_score(x[:, j], y) for j in range(x.shape[1])]
    np.testing.assert_allclose(binned_mutual_info(x, y), expected, atol=1e-9)
    assert binned_mutual_info(x, y)[-1] == 0.0
