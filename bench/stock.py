"""The user's notebook, kept runnable for the benchmark only (never imported by the product).

As a script it is the stock path end to end in a fresh process, timing every stage:
    python bench/stock.py EMBEDDINGS TABULAR OUT_DIR JSON_PATH [THREADS]
import fastai → pandas.read_csv both files → merge on fname/file → drop multi-label rows → drop NaN rows (the
fix the notebook lacked) → train_test_split(stratify, 0.2, seed 42) → TabularDataLoaders.from_df(Normalize,
bs 64) → tabular_learner([200, 100], accuracy) → lr_find → fit_one_cycle(20, valley) → get_preds → export.

`stock_learner` is also used by bench/fit.py to time the stock fit on the engine's split.
"""

from __future__ import annotations

import time

START = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def stock_learner(frame, feature_columns: list[str], valid_idx, *, bs: int = 64, seed: int | None = None):
    """TabularDataLoaders.from_df + tabular_learner exactly as the notebook built them."""
    from fastai.tabular.all import Normalize, TabularDataLoaders, accuracy, set_seed, tabular_learner

    if seed is not None:
        set_seed(seed)  # python, numpy and torch RNGs: weights and fastai's batch order
    dls = TabularDataLoaders.from_df(frame, procs=[Normalize], cont_names=list(feature_columns),
                                     y_names="labels", valid_idx=list(valid_idx), bs=bs)
    return tabular_learner(dls, layers=[200, 100], metrics=accuracy)


def main(embeddings: str, tabular: str, out_dir: str, json_path: str, threads: str = "") -> None:
    times: dict[str, float] = {}
    mark = [START]

    def stage(name: str) -> None:
        now = time.perf_counter()
        times[name] = now - mark[0]
        mark[0] = now

    from fastai.tabular.all import tabular_learner  # noqa: F401  (the notebook's `from fastai.tabular.all import *`)
    import pandas as pd
    from sklearn.model_selection import train_test_split
    if threads:  # the bench runs both paths at the same torch thread count, so the ratio is about the code
        import torch
        torch.set_num_threads(int(threads))
    stage("import")

    emb = pd.read_csv(embeddings)
    tab = pd.read_csv(tabular)
    stage("load")
    df = emb.merge(tab, left_on="fname", right_on="file").drop(columns=["file"])
    stage("merge")
    features = [c for c in df.columns if c.startswith(("emb_", "stft_", "mel_", "cqt_"))]
    df = df.dropna(subset=features).reset_index(drop=True)  # the fix: one merged row held NaN features
    stage("audit")
    df = df[~df["labels"].str.contains(",")].reset_index(drop=True)
    stage("labels")
    _, valid_idx = train_test_split(range(len(df)), test_size=0.2, stratify=df["labels"], random_state=42)
    stage("split")
    learn = stock_learner(df, features, valid_idx)
    stage("features")  # TabularPandas + Normalize + DataLoaders + the model
    with learn.no_bar():
        suggestion = learn.lr_find(show_plot=False)
    stage("lr_find")
    learn.fit_one_cycle(20, suggestion.valley)
    stage("fit")
    preds, targets = learn.get_preds()
    valid_accuracy = float((preds.argmax(dim=1) == targets.flatten()).float().mean())
    stage("evaluate")
    out = Path(out_dir)
    learn.export(out / "stock_model.pkl")
    pd.DataFrame([{"approach": "stock", "val_accuracy": valid_accuracy, "lr": suggestion.valley,
                   "train_samples": len(df) - len(valid_idx), "val_samples": len(valid_idx)}]
                 ).to_csv(out / "stock_results.csv", index=False)
    stage("save")
    Path(json_path).write_text(json.dumps({"stages": times, "accuracy": valid_accuracy, "lr": suggestion.valley,
                                           "train_rows": len(df) - len(valid_idx), "valid_rows": len(valid_idx),
                                           "features": len(features)}))


if __name__ == "__main__":
    main(*sys.argv[1:6])
