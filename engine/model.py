"""The model: fastai's `TabularModel` in a fastai `Learner`, fed from tensors instead of a DataFrame.

Stock `TabularDataLoaders` builds every batch with `df.iloc` on a 2,602-column frame; here the features are one
float32 tensor and a batch is one index operation, which is most of the engine's speed-up (see bench/).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat
from fastai.optimizer import OptimWrapper
from fastai.tabular.model import TabularModel

# Measured on the 2-core box with the app running (bench/threads): 1 thread is steadier than 2 when anything
# else shares the cores, and loses little when nothing does.
DEFAULT_THREADS = 1


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
            yield self.no_cat[: len(rows)], self.x[rows], self.y[rows]

    def to(self, device):
        self.device = device
        return self

    def empty(self) -> TensorLoader:
        return TensorLoader(self.x[:0], self.y[:0], bs=self.bs, train=self.train, sampling=self.sampling)


class TensorDataLoaders(DataLoaders):
    n_inp = 2

    def new_empty(self) -> TensorDataLoaders:
        """What `Learner.export` pickles: the loaders without their data."""
        return TensorDataLoaders(*(dl.empty() for dl in self.loaders), path=self.path)


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
                  sampling: str = "shuffle", multi_label: bool = False) -> Learner:
    """A fresh Learner with weights seeded by `seed`; y is class indices, or a 0/1 matrix for multi-label."""
    torch.manual_seed(seed)
    train = TensorLoader(torch.from_numpy(np.ascontiguousarray(x_train, np.float32)),
                         targets_tensor(y_train, multi_label), bs=bs, train=True, sampling=sampling, seed=seed)
    valid = TensorLoader(torch.from_numpy(np.ascontiguousarray(x_valid, np.float32)),
                         targets_tensor(y_valid, multi_label), bs=bs * 2, train=False)
    # A private path: lr_find checkpoints to path/models/_tmp.pth, which must not land in the user's models/.
    dls = TensorDataLoaders(train, valid, path=tempfile.gettempdir())
    model = TabularModel(emb_szs=[], n_cont=x_train.shape[1], out_sz=n_classes, layers=list(layers),
                         ps=[ps] * len(layers) if ps else None)
    loss_func = BCEWithLogitsLossFlat() if multi_label else CrossEntropyLossFlat()
    # torch's fused AdamW does fastai Adam's maths (decoupled wd, eps 1e-5) in one kernel per step:
    # 0.5 ms against 1.4-2.1 ms for foreach and 5.3 ms for fastai's own Adam (bench/fit.py --proposals).
    opt_func = partial(OptimWrapper, opt=partial(torch.optim.AdamW, eps=1e-5, fused=True))
    # No fastai metrics: engine.train scores each epoch the way engine.evaluate scores the run.
    learner = Learner(dls, model, loss_func=loss_func, opt_func=opt_func, wd=wd,
                      path=tempfile.gettempdir())
    # The batches are tensors already and progress is reported by engine.train: drop those per-batch costs.
    learner.remove_cbs([cb for cb in learner.cbs if type(cb).__name__ in ("ProgressCallback", "CastToTensor")])
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
