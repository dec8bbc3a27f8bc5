"""The engine's fast training path against fastai's stock pieces: same maths, same events, same kind of model."""

import sys
from pathlib import Path

import numpy as np
import torch
from fastai.callback.core import Callback, _events
from fastai.learner import Learner
from fastai.optimizer import Adam

from engine.config import RunConfig
from engine.model import FusedAdam, build_learner, predict_proba
from engine.pipeline import Session
from engine.train import fit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from stock import stock_learner  # noqa: E402  (the notebook's path, kept runnable for the benchmark)


def test_fused_adam_steps_exactly_as_fastai_adam_including_no_decay_on_marked_params():
    torch.manual_seed(0)
    start = [torch.randn(5, 3), torch.randn(3)]
    ours = [p.clone().requires_grad_() for p in start]
    theirs = [p.clone().requires_grad_() for p in start]
    fused, stock = FusedAdam(ours, lr=1e-2, wd=0.1), Adam(theirs, lr=1e-2, wd=0.1)
    fused.state[ours[1]]["do_wd"] = False  # what fastai's Learner marks for BatchNorm and bias parameters
    stock.state[theirs[1]]["do_wd"] = False
    for step in range(6):
        fused.set_hyper("lr", 1e-2 * (step + 1))  # as ParamScheduler changes lr and mom every batch
        stock.set_hyper("lr", 1e-2 * (step + 1))
        gradients = [torch.randn_like(p) for p in start]
        for params, optimizer in ((ours, fused), (theirs, stock)):
            for param, gradient in zip(params, gradients):
                param.grad = gradient.clone()
            optimizer.step()
            optimizer.zero_grad()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert not torch.equal(ours[0], start[0])


def recording_callback(log: list):
    """A callback with a handler for every fastai event, logging each call in order."""
    handlers = {name: (lambda self, name=name: log.append((name, self.training))) for name in _events}
    return type("RecordEverything", (Callback,), handlers)()


def test_quick_dispatch_learner_sends_every_event_in_stock_order_and_learns_the_same_weights():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12)).astype(np.float32)
    y = rng.integers(0, 3, 200)
    runs = []
    for stock_dispatch in (False, True):
        learner = build_learner(x[:160], y[:160], x[160:], y[160:], n_classes=3, layers=(8,), ps=0.1, wd=0.01,
                                bs=32, seed=3)
        if stock_dispatch:
            learner.__class__ = Learner  # the same learner with fastai's own event dispatch
        log = []
        with learner.no_logging():
            learner.fit_one_cycle(2, 1e-2, cbs=[recording_callback(log)])
        runs.append((learner, log))
    (quick, quick_log), (stock, stock_log) = runs
    assert quick_log == stock_log
    assert ("after_step", True) in quick_log and ("after_batch", False) in quick_log
    for a, b in zip(quick.model.parameters(), stock.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert quick.recorder.values == stock.recorder.values


def test_engine_and_stock_fastai_paths_agree_on_small_data(small_demo, tmp_path):
    """The stock path is the notebook's TabularDataLoaders + tabular_learner on the engine's rows and split."""
    config = RunConfig(embeddings=str(small_demo.embeddings), tabular=str(small_demo.tabular))
    session = Session(cache_dir=tmp_path)
    prepared = session.prepare(config)
    frame = session.clean_data(config).labelled.frame
    columns = list(prepared.feature_columns)

    stock = stock_learner(frame[columns + ["labels"]], columns, prepared.valid_idx, seed=0)
    with stock.no_bar(), stock.no_logging():
        stock.fit_one_cycle(8, 3e-3)
        stock_probs, stock_targets = stock.get_preds()

    ours = build_learner(prepared.x_train, prepared.y_train, prepared.x_valid, prepared.y_valid,
                         n_classes=len(prepared.classes), layers=(200, 100), ps=0.0, wd=0.01, bs=64, seed=0)
    fit(ours, epochs=8, lr=3e-3, report=lambda event: None)
    our_probs = predict_proba(ours.model, prepared.x_valid, multi_label=False)

    assert tuple(stock.dls.vocab) == prepared.classes  # the same class order: column k is the same class
    assert our_probs.shape == tuple(stock_probs.shape) == (len(prepared.valid_idx), len(prepared.classes))
    assert np.array_equal(stock_targets.flatten().numpy(), prepared.y_valid)
    np.testing.assert_allclose(our_probs.sum(axis=1), 1, rtol=1e-5)
    stock_accuracy = float((stock_probs.argmax(dim=1).numpy() == prepared.y_valid).mean())
    our_accuracy = float((our_probs.argmax(axis=1) == prepared.y_valid).mean())
    chance = 1 / len(prepared.classes)
    assert stock_accuracy > 3 * chance and our_accuracy > 3 * chance
    assert abs(our_accuracy - stock_accuracy) < 0.1, (our_accuracy, stock_accuracy)
