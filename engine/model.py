"""The model: fastai's `TabularModel` in a fastai `Learner`, fed from tensors instead of a DataFrame.

Where the fit's time goes against the stock path (bench/): stock `TabularDataLoaders` builds every batch with
`df.iloc` on a 2,602-column frame, here a batch is one `index_select` on a float32 tensor; fastai's Adam runs
~10 ops per parameter tensor, `FusedAdam` one fused kernel; fastai calls every callback for every event,
`QuickDispatchLearner` only the ones that handle it. What is left is the model's own matmuls and BatchNorms.
"""

from __future__ import annotations

import functools
import math
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import torch
from fastai.data.core import DataLoaders
from fastai.callback.core import Callback, event
from fastai.learner import Learner
from fastai.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat, LabelSmoothingCrossEntropyFlat
from fastai.optimizer import Optimizer
from fastai.tabular.model import TabularModel

from engine.errors import ConfigError

# Measured on the 2-core box with the app running (bench/threads): 1 thread is steadier than 2 when anything
# else shares the cores, and loses little when nothing does.
DEFAULT_THREADS = 1


EVAL_BATCH = 1024  # rows per validation batch: no gradients kept, so large batches only save per-batch overhead
# A bf16 matmul must beat fp32 by this much in the probe for "auto" to pick bf16. Native bf16 (AVX512-BF16, AMX)
# measured ~1.9x on the first layer's shape; oneDNN's emulation on older AVX512 is slower than fp32.
BF16_MIN_SPEEDUP = 1.3


class TensorLoader:
    """Batches of (x_cat, x_cont, y) from in-memory tensors; the minimal loader a fastai Learner needs."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, bs: int, train: bool, sampling: str = "shuffle",
                 seed: int = 42):
        self.x, self.y, self.bs, self.train, self.sampling = x, y, bs, train, sampling
        self.generator = torch.Generator().manual_seed(seed)
        self.no_cat = torch.empty(len(x), 0, dtype=torch.long)
        self.device = torch.device("cpu")

    @property
    def n(self) -> int:
        return len(self.x)

    def __len__(self) -> int:
        # Training drops the ragged last batch, as fastai does: a batch of one breaks BatchNorm.
        if self.train:
            return max(self.n // self.bs, 1)
        return math.ceil(self.n / self.bs)

    def order(self) -> torch.Tensor:
        if not self.train:
            return torch.arange(self.n)
        if self.sampling == "replacement":
            return torch.randint(self.n, (self.n,), generator=self.generator)
        return torch.randperm(self.n, generator=self.generator)

    def __iter__(self):
        order = self.order()
        for i in range(len(self)):
            rows = order[i * self.bs:(i + 1) * self.bs]
            # index_select copies whole rows; `x[rows]` goes through the generic indexing kernel, ~10x slower.
            yield self.no_cat[: len(rows)], self.x.index_select(0, rows), self.y.index_select(0, rows)

    def to(self, device):
        self.device = device
        return self

    def empty(self) -> TensorLoader:
        return TensorLoader(self.x[:0], self.y[:0], bs=self.bs, train=self.train, sampling=self.sampling)


class PlainTensorLoss:
    """fastai's flattened losses wrap their inputs in fastai's TensorBase, whose Python `__torch_function__` then
    runs for every op on the loss (~14 a batch, ~0.3 ms); the same maths on plain tensors."""

    def _contiguous(self, x):
        return x.transpose(self.axis, -1).contiguous() if isinstance(x, torch.Tensor) else x


class CrossEntropyLoss(PlainTensorLoss, CrossEntropyLossFlat):
    pass


class BCEWithLogitsLoss(PlainTensorLoss, BCEWithLogitsLossFlat):
    pass


class LabelSmoothingCrossEntropy(PlainTensorLoss, LabelSmoothingCrossEntropyFlat):
    pass


class TensorDataLoaders(DataLoaders):
    n_inp = 2

    def new_empty(self) -> TensorDataLoaders:
        """What `Learner.export` pickles: the loaders without their data."""
        return TensorDataLoaders(*(dl.empty() for dl in self.loaders), path=self.path)


class FusedAdam(Optimizer):
    """fastai's Adam (decoupled weight decay, skipped where fastai marks `do_wd` False: BatchNorm and biases),
    stepped by torch's fused AdamW kernel. One kernel call per step instead of fastai's ops per parameter (0.5 ms
    against 5.3 ms a step), and no torch.optim, whose first step imports torch._dynamo (~2.3 s of start-up)."""

    def __init__(self, params, lr, mom: float = 0.9, sqr_mom: float = 0.99, eps: float = 1e-5, wd: float = 0.01):
        super().__init__(params, cbs=[], lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd)

    def zero_grad(self):
        for group in self.param_lists:
            for param in group:
                param.grad = None  # cheaper than zeroing: backward then writes the gradient instead of adding it

    def step(self, closure=None):
        if closure is not None:
            raise NotImplementedError("FusedAdam does not take a closure")
        for group, hyper in zip(self.param_lists, self.hypers):
            with_grad = [param for param in group if param.grad is not None]
            for decayed in (True, False):
                params = [param for param in with_grad if self.state[param].get("do_wd", True) == decayed]
                if params:
                    self._fused_step(params, hyper, hyper["wd"] if decayed else 0.0)

    def _fused_step(self, params: list, hyper: dict, wd: float) -> None:
        states = [self._moments(param) for param in params]
        steps = [state["step"] for state in states]
        torch._foreach_add_(steps, 1)
        torch._fused_adamw_(params, [param.grad for param in params], [state["grad_avg"] for state in states],
                            [state["sqr_avg"] for state in states], [], steps, lr=float(hyper["lr"]),
                            beta1=float(hyper["mom"]), beta2=float(hyper["sqr_mom"]), weight_decay=float(wd),
                            eps=float(hyper["eps"]), amsgrad=False, maximize=False)

    def _moments(self, param: torch.Tensor) -> dict:
        state = self.state[param]
        if "step" not in state:
            state.update(grad_avg=torch.zeros_like(param), sqr_avg=torch.zeros_like(param),
                         step=torch.zeros((), dtype=torch.float32))
        return state


class QuickDispatchLearner(Learner):
    """fastai's Learner, events and callbacks unchanged, with a cheaper event dispatch: stock fastai calls every
    callback for every event, and most of those calls end in a no-op found through two delegating `getattr`s
    (~26 of 32 calls per batch, ~1 ms). Here an event goes only to the callbacks that handle it."""

    def __call__(self, event_name):
        if not isinstance(event_name, str):
            return super().__call__(event_name)
        callbacks = tuple(self.cbs.items)
        cached = getattr(self, "_dispatch", None)
        if cached is None or cached[0] != callbacks:
            cached = self._dispatch = (callbacks, {})
        handlers = cached[1].get(event_name)
        if handlers is None:
            handlers = cached[1][event_name] = self._handlers(event_name)
        for cb in handlers:
            cb(event_name)

    def _handlers(self, event_name: str) -> list:
        if not hasattr(event, event_name):
            raise ValueError(f"missing {event_name}")
        ordered = self.cbs.sorted("order")
        if event_name == "after_fit":  # Callback.__call__ resets each callback's `run` flag on after_fit
            return list(ordered)
        return [cb for cb in ordered if event_name in vars(cb) or hasattr(type(cb), event_name)]

    def __getstate__(self):
        # The cache holds this fit's callbacks (e.g. engine.train's progress callback and its reporter): never pickle it.
        return {k: v for k, v in super().__getstate__().items() if k != "_dispatch"}


class BF16Compute(Callback):
    """Mixed precision for training batches: the forward pass and its backward compute in bfloat16, the weights,
    their gradients and the optimizer's state stay float32 (fp32 master weights). The way fastai's MixedPrecision
    does it (autocast from before_batch to after_loss, the prediction back to float32), on the CPU and without a
    loss scaler, which bf16's float32 range makes unnecessary. autocast casts each weight once per batch (its cast
    cache lives until after_loss). Validation and prediction stay float32, so an epoch's scores and the final
    evaluation agree."""

    order = 10  # after engine.train's cancel check (0), which must not leave autocast entered; before its NaN guard

    def __init__(self):
        self.autocast = None

    def before_batch(self):
        if self.training:
            self.autocast = torch.autocast("cpu", dtype=torch.bfloat16)
            self.autocast.__enter__()

    def after_pred(self):
        if self.autocast is not None:
            self.learn.pred = self.pred.float()

    def after_loss(self):
        if self.autocast is not None:
            self.autocast.__exit__(None, None, None)
            self.autocast = None


def resolve_precision(precision: str) -> str:
    """'auto' becomes 'bf16' where this CPU computes bf16 matmuls natively and fast, else 'fp32'."""
    if precision != "auto":
        return precision
    return "bf16" if bf16_is_fast() else "fp32"


@functools.cache
def bf16_is_fast() -> bool:
    """oneDNN must offer bf16 on this CPU, and a probe of a first-layer-like matmul (~20 ms in all) must run at
    least BF16_MIN_SPEEDUP times faster in bf16 than in fp32: that separates native bf16 from emulation."""
    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return False
    except (AttributeError, RuntimeError):  # a torch build without that check
        return False
    return bf16_matmul_speedup() >= BF16_MIN_SPEEDUP


def bf16_matmul_speedup(repeats: int = 5) -> float:
    """fp32 over bf16 time of a 64×1024 by 1024×256 matmul, best of `repeats` alternating rounds (so load from
    other processes hits both alike)."""
    generator = torch.Generator().manual_seed(0)
    operands = {dtype: (torch.randn(64, 1024, generator=generator).to(dtype),
                        torch.randn(1024, 256, generator=generator).to(dtype))
                for dtype in (torch.float32, torch.bfloat16)}
    best = dict.fromkeys(operands, math.inf)
    for _ in range(repeats):
        for dtype, (a, b) in operands.items():
            started = time.perf_counter()
            for _ in range(8):
                torch.mm(a, b)
            best[dtype] = min(best[dtype], time.perf_counter() - started)
    return best[torch.float32] / best[torch.bfloat16]


@dataclass(frozen=True)
class ModelInfo:
    """Saved with the exported learner so `predict` rebuilds the inputs exactly as in training."""

    classes: tuple[str, ...]
    feature_columns: tuple[str, ...]
    transform: object  # engine.features.FeatureTransform fitted on the train rows
    label_mode: str
    key_names: tuple[str, ...]  # key column names seen in training (embeddings file, tabular file)
    config: dict


def targets_tensor(targets: np.ndarray, multi_label: bool) -> torch.Tensor:
    return torch.as_tensor(targets, dtype=torch.float32 if multi_label else torch.long)


def build_learner(x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray, *,
                  n_classes: int, layers: tuple[int, ...], ps: float, wd: float, bs: int, seed: int,
                  sampling: str = "shuffle", multi_label: bool = False, label_smoothing: float = 0.0,
                  precision: str = "fp32") -> Learner:
    """A fresh Learner with weights seeded by `seed`; y is class indices, or a 0/1 matrix for multi-label.
    `precision` is a resolved one (see resolve_precision): bf16 trains with BF16Compute."""
    torch.manual_seed(seed)
    train = TensorLoader(torch.from_numpy(np.ascontiguousarray(x_train, np.float32)),
                         targets_tensor(y_train, multi_label), bs=bs, train=True, sampling=sampling, seed=seed)
    valid = TensorLoader(torch.from_numpy(np.ascontiguousarray(x_valid, np.float32)),
                         targets_tensor(y_valid, multi_label), bs=max(bs, EVAL_BATCH), train=False)
    # A private path: lr_find checkpoints to path/models/_tmp.pth, which must not land in the user's models/.
    dls = TensorDataLoaders(train, valid, path=tempfile.gettempdir())
    model = TabularModel(emb_szs=[], n_cont=x_train.shape[1], out_sz=n_classes, layers=list(layers),
                         ps=[ps] * len(layers) if ps else None)
    if multi_label and label_smoothing:
        raise ConfigError("Label smoothing applies to single-label runs (softmax).",
                          hint="Use label_smoothing=0 with label_mode=multi.")
    loss_func = (BCEWithLogitsLoss() if multi_label else LabelSmoothingCrossEntropy(eps=label_smoothing)
                 if label_smoothing else CrossEntropyLoss())
    # No fastai metrics: engine.train scores each epoch the way engine.evaluate scores the run.
    learner = QuickDispatchLearner(dls, model, loss_func=loss_func, opt_func=FusedAdam, wd=wd,
                      path=tempfile.gettempdir())
    # The batches are tensors already and progress is reported by engine.train: drop those per-batch costs.
    learner.remove_cbs([cb for cb in learner.cbs if type(cb).__name__ in ("ProgressCallback", "CastToTensor")])
    if resolve_precision(precision) == "bf16":
        learner.add_cb(BF16Compute())  # on the learner, not the fit: the LR finder trains in bf16 too
    return learner


def count_params(learner: Learner) -> int:
    return sum(p.numel() for p in learner.model.parameters())


def predict_proba(model: torch.nn.Module, x: np.ndarray, *, multi_label: bool, chunk: int = 4096) -> np.ndarray:
    """Class probabilities for feature rows, in eval mode, without fastai's per-batch machinery."""
    model.eval()
    x_tensor = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    no_cat = torch.empty(len(x_tensor), 0, dtype=torch.long)
    outputs = []
    with torch.no_grad():
        for start in range(0, len(x_tensor), chunk):
            logits = model(no_cat[start:start + chunk], x_tensor[start:start + chunk])
            outputs.append(torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=1))
    if not outputs:
        return np.zeros((0, 0), np.float32)
    return torch.cat(outputs).numpy()


def set_threads(threads: int | None) -> int:
    count = threads or DEFAULT_THREADS
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count
