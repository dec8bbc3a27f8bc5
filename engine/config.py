"""One frozen config per run. Defaults are the notebook's choices; a recorded config reruns a run exactly."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from engine.errors import ConfigError
from engine.text import layers_text

DEMO_DIR = Path("data/demo")
DEMO_EMBEDDINGS = str(DEMO_DIR / "embeddings.csv")
DEMO_TABULAR = str(DEMO_DIR / "tabular.csv")

# Column-name prefixes of each feature group in the user's files.
FEATURE_GROUPS: dict[str, str] = {"emb": "emb_", "stft": "stft_", "mel": "mel_", "cqt": "cqt_"}
# Named feature sets; any comma-separated list of prefixes or group names works too.
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "both": ("emb_", "stft_", "mel_", "cqt_"),
    "embeddings": ("emb_",),
    "tabular": ("stft_", "mel_", "cqt_"),
}
ARCHITECTURE_PRESETS: dict[str, tuple[int, ...]] = {
    "2 layers": (200, 100),
    "3 layers": (400, 200, 100),
    "4 layers": (512, 256, 128, 64),
}
LR_SUGGESTIONS = ("valley", "slide", "minimum", "steep")
MODELS = ("mlp", "logreg", "linear_svm", "random_forest")
MAX_LR = 10.0
DEFAULT_WD = 0.01


@dataclass(frozen=True)
class RunConfig:
    # data
    embeddings: str = DEMO_EMBEDDINGS
    tabular: str = DEMO_TABULAR
    key: str | None = None  # key column; None finds `fname` or `file`
    bad_rows: str = "drop"  # drop | impute (with the train median)
    label_mode: str = "single"  # single (one label per clip, softmax) | multi (all clips, sigmoid)
    valid_pct: float = 0.2
    split_seed: int = 42
    fold: int | None = None  # None: one stratified holdout split; k: fold k of a stratified k-fold
    n_folds: int = 5
    # A stratified test split set aside (seeded by split_seed) before train/valid: no valid score ever sees it.
    test_pct: float = 0.0
    score_on: str = "valid"  # valid | test: train on train+valid and score the held-out test clips
    # features
    features: str = "both"  # a FEATURE_SETS name, or comma-separated groups/prefixes ("emb,mel_")
    select_k: int | None = None  # keep the top K tabular columns, scored on train rows only
    select_method: str = "anova"  # anova | mutual_info
    pca: int | None = None  # project the tabular block on N components fitted on train rows only
    # model and training
    model: str = "mlp"
    layers: tuple[int, ...] = (200, 100)
    ps: float = 0.0
    wd: float = DEFAULT_WD  # fastai Adam's default decoupled weight decay, which the notebook used implicitly
    bs: int = 64
    epochs: int = 20
    lr: float | None = None  # None: the LR finder's `lr_suggestion`
    lr_suggestion: str = "valley"
    seed: int = 42  # training seed (weights, batch order)
    sampling: str = "shuffle"  # shuffle: every train row once per epoch | replacement: fastai's stock loader
    threads: int | None = None  # torch threads; None: the engine's measured default
    name: str = ""  # the approach's name in the results table; empty derives one
    sweep: str = ""  # the sweep (Optuna study) this run is a trial of; empty for a hand-made run

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        self.validate()

    def validate(self) -> None:
        _check(self.bad_rows in ("drop", "impute"), "bad_rows", self.bad_rows, "use 'drop' or 'impute'")
        _check(self.label_mode in ("single", "multi"), "label_mode", self.label_mode, "use 'single' or 'multi'")
        _check(0 < self.valid_pct < 1, "valid_pct", self.valid_pct, "use a fraction such as 0.2")
        _check(self.n_folds >= 2, "n_folds", self.n_folds, "use 2 or more folds")
        _check(self.fold is None or 0 <= self.fold < self.n_folds, "fold", self.fold,
               f"use a fold number from 0 to {self.n_folds - 1}")
        _check(0 <= self.test_pct < 1, "test_pct", self.test_pct,
               "use a fraction such as 0.2, or 0 for no test split")
        _check(self.score_on in ("valid", "test"), "score_on", self.score_on, "use 'valid' or 'test'")
        _check(self.score_on == "valid" or self.test_pct > 0, "score_on", self.score_on,
               "set test_pct above 0 to score on a test split")
        feature_prefixes(self.features)
        _check(self.select_k is None or self.select_k > 0, "select_k", self.select_k, "use a positive count")
        _check(self.select_method in ("anova", "mutual_info"), "select_method", self.select_method,
               "use 'anova' or 'mutual_info'")
        _check(self.pca is None or self.pca > 0, "pca", self.pca, "use a positive number of components")
        _check(self.model in MODELS, "model", self.model, f"use one of {', '.join(MODELS)}")
        _check(len(self.layers) > 0 and all(isinstance(n, int) and n > 0 for n in self.layers),
               "layers", self.layers, "use positive layer sizes such as 200,100")
        _check(0 <= self.ps < 1, "ps", self.ps, "use a dropout probability in [0, 1)")
        _check(self.wd >= 0, "wd", self.wd, "use a weight decay of 0 or more")
        # A training batch of one row breaks BatchNorm ("Expected more than 1 value per channel").
        _check(self.bs >= 2, "bs", self.bs, "use a batch size of 2 or more")
        _check(self.epochs > 0, "epochs", self.epochs, "use 1 or more epochs")
        if self.lr is not None:
            check_lr(self.lr)
        _check(self.lr_suggestion in LR_SUGGESTIONS, "lr_suggestion", self.lr_suggestion,
               f"use one of {', '.join(LR_SUGGESTIONS)}")
        _check(self.sampling in ("shuffle", "replacement"), "sampling", self.sampling,
               "use 'shuffle' or 'replacement'")
        _check(self.threads is None or self.threads > 0, "threads", self.threads, "use 1 or more threads")

    @property
    def prefixes(self) -> tuple[str, ...]:
        return feature_prefixes(self.features)

    @property
    def approach(self) -> str:
        """The name shown in the results table: the user's, or one derived from what differs."""
        if self.name:
            return self.name
        parts = [self.features.replace(",", "+")]
        if self.select_k:
            parts.append(f"top{self.select_k}")
        if self.pca:
            parts.append(f"pca{self.pca}")
        parts.append(layers_text(self.layers) if self.model == "mlp" else self.model)
        if self.model == "mlp" and self.ps:
            parts.append(f"ps{self.ps:g}")
        if self.model == "mlp" and self.wd != DEFAULT_WD:
            parts.append(f"wd{self.wd:g}")
        if self.label_mode == "multi":
            parts.append("multilabel")
        if self.score_on == "test":
            parts.append("test")
        return "_".join(parts)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["layers"] = list(self.layers)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        """Rebuild a recorded config; keys from other versions are ignored, missing ones take defaults."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_(self, **changes) -> RunConfig:
        return replace(self, **changes)


def _check(ok: bool, field: str, value, hint: str) -> None:
    if not ok:
        raise ConfigError(f"Setting {field}={value!r} is not valid.", hint=hint[0].upper() + hint[1:] + ".")


def feature_prefixes(features: str) -> tuple[str, ...]:
    """Column-name prefixes of a feature set: a FEATURE_SETS name or comma-separated groups/prefixes."""
    if features in FEATURE_SETS:
        return FEATURE_SETS[features]
    parts = [p.strip() for p in str(features).split(",")]
    if not features or any(not p for p in parts):
        raise ConfigError(f"Feature set {features!r} is empty or has an empty item.",
                          hint=f"Use one of {', '.join(FEATURE_SETS)} or prefixes such as emb_,mel_.")
    return tuple(FEATURE_GROUPS.get(p, p) for p in parts)


def parse_layers(text: str) -> tuple[int, ...]:
    """'200,100' or '200, 100' → (200, 100); anything else is a ConfigError naming the bad item."""
    items = str(text).replace(" ", "").split(",")
    if any(not t for t in items):
        raise ConfigError(f"Layers {text!r} have an empty item.", hint="Write sizes separated by commas, e.g. 200,100.")
    sizes = []
    for item in items:
        if not item.isdigit() or int(item) <= 0:
            raise ConfigError(f"Layer size {item!r} in {text!r} is not a positive whole number.",
                              hint="Write sizes separated by commas, e.g. 200,100.")
        sizes.append(int(item))
    return tuple(sizes)


def check_lr(lr: float) -> float:
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0 or lr > MAX_LR:
        raise ConfigError(f"Learning rate {lr!r} is not usable.",
                          hint=f"Use a number above 0 and at most {MAX_LR:g}; 1e-3 to 5e-3 usually works.")
    return float(lr)


def parse_lr(text: str) -> float | None:
    """'auto' → None (use the LR finder); a number → that LR; anything else is a ConfigError."""
    text = str(text).strip()
    if text.lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"Learning rate {text!r} is not a number.",
                          hint="Type a number such as 3e-3, or 'auto' to use the LR finder.") from None
    return check_lr(value)


def lr_warning(lr: float) -> str:
    """The user's rule of thumb: outside 1e-4..1e-2 is allowed but worth a second look."""
    if lr < 1e-4:
        return f"LR {lr:.2g} is below 1e-4: the model may barely learn (accuracy stuck near random)."
    if lr > 1e-2:
        return f"LR {lr:.2g} is above 1e-2: training may diverge to NaN."
    return ""
