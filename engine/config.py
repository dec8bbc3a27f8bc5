"""One frozen config per run, and its schema. Defaults are the notebook's choices; a recorded config reruns a
run exactly.

Each run setting is declared once, as a `RunConfig` field made by `setting(...)`: its default, its allowed
values or range and one line of help. Validation, the CLI options, the app's form, the "differences from the
default" view and the results table's columns are all derived from `SETTINGS`.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

from engine.errors import ConfigError
from engine.text import layers_text

DEMO_DIR = Path("data/demo")
DEMO_EMBEDDINGS = str(DEMO_DIR / "embeddings.csv")
DEMO_TABULAR = str(DEMO_DIR / "tabular.csv")
DEMO_TEST_EMBEDDINGS = str(DEMO_DIR / "test_embeddings.csv")
DEMO_TEST_TABULAR = str(DEMO_DIR / "test_tabular.csv")

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
# The steps whose results a session caches, in order: each depends on its settings and every earlier step's.
STEPS = ("data", "split", "features", "model")
MODELS = ("mlp", "logreg", "linear_svm", "random_forest")
PRECISIONS = ("auto", "bf16", "fp32")
MAX_LR = 10.0
DEFAULT_WD = 0.01


@dataclass(frozen=True)
class Setting:
    """What one run setting may hold, declared next to its field; `name` and `default` come from the field."""

    help: str
    group: str  # data | split | features | model | training | run: where the CLI and the form list it
    choices: tuple = ()
    low: float | None = None  # inclusive bounds; `above` makes `low` exclusive
    high: float | None = None
    above: bool = False
    none: str = ""  # what None means ("auto", "off"); empty: None is not allowed
    parse_text: Callable[[str], object] | None = None  # text → value, for values that are not plain numbers
    check_value: Callable[[object], None] | None = None  # extra check that raises ConfigError
    editable: bool = True  # False: set by the engine (lr_source) or by the front end's own widgets (paths)
    # The first cached step whose result the setting changes (one of STEPS); by default the step its group
    # names, and none (only the fit) for the training and run groups.
    step: str = ""
    name: str = ""
    default: object = None
    kind: type = str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def format(self, value) -> str:
        if value is None:
            return self.none
        if isinstance(value, (tuple, list)):
            return ",".join(map(str, value))
        return f"{value:g}" if isinstance(value, float) else str(value)

    def parse(self, text) -> object:
        """A value typed by a user (CLI, form) → a checked value; a ConfigError names the setting."""
        if not isinstance(text, str):
            return self.check(text)
        text = text.strip()
        if self.none and text.lower() in (self.none, "none", ""):
            return None
        if self.parse_text is not None:
            return self.check(self.parse_text(text))
        if self.kind is str:
            return self.check(text)
        try:
            value = self.kind(text) if self.kind is float else int(text)
        except ValueError:
            kind = "whole number" if self.kind is int else "number"
            raise ConfigError(f"Setting {self.name}={text!r} is not a {kind}.", hint=self.hint()) from None
        return self.check(value)

    def check(self, value):
        if value is None and self.none:
            return None
        if self.choices and value not in self.choices:
            self._refuse(value)
        if self.kind in (int, float) and not self.choices:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                    self.kind is int and not isinstance(value, int)) or not math.isfinite(value):
                self._refuse(value)
            if self.low is not None and (value <= self.low if self.above else value < self.low):
                self._refuse(value)
            if self.high is not None and value > self.high:
                self._refuse(value)
        elif self.kind is str and not isinstance(value, str):
            self._refuse(value)
        if self.check_value is not None:
            self.check_value(value)
        return value

    def _refuse(self, value):
        raise ConfigError(f"Setting {self.name}={value!r} is not valid.", hint=self.hint())

    def hint(self) -> str:
        if self.choices:
            allowed = f"Use one of {', '.join(map(str, self.choices))}"
        elif self.kind in (int, float):
            kind = "a whole number" if self.kind is int else "a number"
            if self.low is not None and self.high is not None:
                allowed = f"Use {kind} {'above' if self.above else 'from'} {self.low:g} up to {self.high:g}"
            elif self.low is not None:
                allowed = f"Use {kind} {'above' if self.above else 'of'} {self.low:g}{'' if self.above else ' or more'}"
            else:
                allowed = f"Use {kind}"
        else:
            allowed = f"Use {self.help[0].lower()}{self.help[1:]}"
        return allowed + (f", or {self.none}" if self.none else "") + "."

    def describe(self) -> str:
        """One line of help with the allowed values and the default, for the CLI and the form."""
        if self.choices:
            allowed = f" ({' | '.join(map(str, self.choices))})"
        elif self.low is not None and self.high is not None:
            allowed = f" ({'>' if self.above else ''}{self.low:g} to {self.high:g})"
        else:
            allowed = ""
        return f"{self.help}{allowed} (default: {self.format(self.default) or 'none'})"


def setting(default, help: str, group: str, **schema):
    """A RunConfig field and its schema in one declaration."""
    return field(default=default, metadata={"setting": Setting(help=help, group=group, **schema)})


def parse_layers(text: str) -> tuple[int, ...]:
    """'200,100' or '200, 100' → (200, 100); anything else is a ConfigError naming the bad item."""
    return parse_counts(text, "Layers", "Layer size", "200,100")


def parse_counts(text: str, what: str = "Counts", item_name: str = "Count", example: str = "5,10,20"
                 ) -> tuple[int, ...]:
    """'5,10,20' → (5, 10, 20): positive whole numbers separated by commas, or a ConfigError naming the bad item."""
    items = str(text).replace(" ", "").split(",")
    hint = f"Write {item_name.lower()}s separated by commas, e.g. {example}."
    if any(not t for t in items):
        raise ConfigError(f"{what} {text!r} have an empty item.", hint=hint)
    sizes = []
    for item in items:
        if not item.isdigit() or int(item) <= 0:
            raise ConfigError(f"{item_name} {item!r} in {text!r} is not a positive whole number.", hint=hint)
        sizes.append(int(item))
    return tuple(sizes)


def _check_layers(layers) -> None:
    if not (isinstance(layers, tuple) and layers and all(isinstance(n, int) and n > 0 for n in layers)):
        raise ConfigError(f"Setting layers={layers!r} is not valid.",
                          hint="Use positive layer sizes such as 200,100.")


def feature_prefixes(features: str) -> tuple[str, ...]:
    """Column-name prefixes of a feature set: a FEATURE_SETS name or comma-separated groups/prefixes."""
    if features in FEATURE_SETS:
        return FEATURE_SETS[features]
    parts = [p.strip() for p in str(features).split(",")]
    if not features or any(not p for p in parts):
        raise ConfigError(f"Feature set {features!r} is empty or has an empty item.",
                          hint=f"Use one of {', '.join(FEATURE_SETS)} or prefixes such as emb_,mel_.")
    return tuple(FEATURE_GROUPS.get(p, p) for p in parts)


def check_lr(lr: float) -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0 or lr > MAX_LR:
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


@dataclass(frozen=True)
class RunConfig:
    # data
    embeddings: str = setting(DEMO_EMBEDDINGS, "Embeddings CSV/Parquet: fname, labels, emb_0..emb_127", "data",
                              editable=False)
    tabular: str = setting(DEMO_TABULAR, "Tabular CSV/Parquet: file, stft_*, mel_*, cqt_*", "data", editable=False)
    key: str | None = setting(None, "Key column, in one or both files", "data", none="auto")
    key_normalise: str = setting("off", "Match keys as written (off), or ignoring case, folders and extension (on)",
                                 "data", choices=("off", "on"))
    bad_rows: str = setting("drop", "Rows with NaN/inf features: drop them, or impute the train median", "data",
                            choices=("drop", "impute"))
    label_mode: str = setting("single", "single: one-label clips, softmax; multi: all clips, sigmoid", "data",
                              choices=("single", "multi"))
    # split
    valid_pct: float = setting(0.2, "Fraction of clips held out for validation (stratified)", "split",
                               low=0, above=True, high=0.9)
    split_seed: int = setting(42, "Seed of the train/valid split", "split", low=0, high=2**32 - 1)
    fold: int | None = setting(None, "Use fold K of a stratified k-fold split instead of the holdout", "split",
                               low=0, none="off")
    n_folds: int = setting(5, "Folds of the k-fold split", "split", low=2)
    # Set aside (seeded by split_seed) before train/valid, so no valid score ever sees these clips.
    test_pct: float = setting(0.0, "Fraction of clips set aside as a stratified test split; 0: none", "split",
                              low=0, high=0.9)
    score_on: str = setting("valid", "valid, or test: train on train+valid and score the held-out test clips",
                            "split", choices=("valid", "test"))
    # features
    features: str = setting("both", "Feature set: both, embeddings, tabular, or groups/prefixes such as emb,mel_",
                            "features", check_value=feature_prefixes)
    select_k: int | None = setting(None, "Keep the top K tabular columns, scored on train rows only", "features",
                                   low=1, none="off")
    select_method: str = setting("anova", "How top-K scores columns", "features", choices=("anova", "mutual_info"))
    pca: int | None = setting(None, "Project the tabular block on N components fitted on train rows", "features",
                              low=1, none="off")
    # model and training
    model: str = setting("mlp", "Model: fastai MLP or a scikit-learn baseline", "model", choices=MODELS)
    layers: tuple[int, ...] = setting((200, 100), "Hidden layer sizes, e.g. 200,100", "model", kind=tuple,
                                      parse_text=parse_layers, check_value=_check_layers)
    ps: float = setting(0.0, "Dropout probability", "model", low=0, high=0.95)
    # fastai Adam's default decoupled weight decay, which the notebook used implicitly
    wd: float = setting(DEFAULT_WD, "Weight decay", "model", low=0, high=10)
    label_smoothing: float = setting(0.0, "Label smoothing of the single-label loss (fastai's, e.g. 0.1)", "model",
                                     low=0, high=0.5)
    # A training batch of one row breaks BatchNorm ("Expected more than 1 value per channel").
    bs: int = setting(64, "Batch size", "training", low=2, step="model")
    epochs: int = setting(20, "Epochs of one-cycle training", "training", low=1)
    lr: float | None = setting(None, "Learning rate", "training", low=0, above=True, high=MAX_LR, none="auto",
                               parse_text=parse_lr)
    lr_suggestion: str = setting("valley", "Which LR finder suggestion 'auto' takes", "training",
                                 choices=LR_SUGGESTIONS)
    # How `lr` was chosen: the engine resolves an 'auto' LR once, and the run records the result.
    lr_source: str = setting("", "Where the LR came from: user, or the LR finder's suggestion", "training",
                             editable=False)
    seed: int = setting(42, "Training seed (weights, batch order)", "training", low=0, high=2**32 - 1,
                        step="model")
    sampling: str = setting("shuffle", "Train rows per epoch: each once, or drawn with replacement (stock fastai)",
                            "training", choices=("shuffle", "replacement"), step="model")
    threads: int | None = setting(None, "Torch threads; auto is one, which is fastest on a shared 2-core box",
                                  "training", low=1, high=256, none="auto")
    # A run records what auto resolved to on its CPU (engine.model.resolve_precision), as it records its LR.
    precision: str = setting("auto", "Training compute: bf16 with float32 weights, or float32; auto takes bf16 "
                             "where the CPU computes it natively", "training", choices=PRECISIONS,
                             step="model")
    name: str = setting("", "Approach name in the results table; empty derives one", "run")
    sweep: str = setting("", "The sweep (Optuna study) this run is a trial of; empty for a hand-made run", "run",
                         editable=False)

    def __post_init__(self):
        if isinstance(self.layers, list):
            object.__setattr__(self, "layers", tuple(self.layers))
        self.validate()

    def validate(self) -> None:
        for item in SETTINGS:
            item.check(getattr(self, item.name))
        if self.fold is not None and self.fold >= self.n_folds:
            raise ConfigError(f"Setting fold={self.fold!r} is not valid.",
                              hint=f"Use a fold number from 0 to {self.n_folds - 1}.")
        if self.score_on == "test" and not self.test_pct:
            raise ConfigError("Setting score_on='test' needs a test split.",
                              hint="Set test_pct above 0, e.g. test_pct=0.2.")

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

    def differences(self) -> dict[str, object]:
        """The settings that differ from the notebook's defaults, in declaration order."""
        return {s.name: getattr(self, s.name) for s in SETTINGS if getattr(self, s.name) != s.default}


def _settings(config_class) -> tuple[Setting, ...]:
    declared = []
    for item in fields(config_class):
        kind = item.metadata["setting"].kind
        if kind is str:  # the annotation names the type: "int | None" → int
            annotation = str(item.type)
            kind = int if annotation.startswith("int") else float if annotation.startswith("float") else str
        default = item.default if item.default is not MISSING else None
        step = item.metadata["setting"].step or (group if (group := item.metadata["setting"].group) in STEPS else "")
        declared.append(replace(item.metadata["setting"], name=item.name, default=default, kind=kind, step=step))
    return tuple(declared)


SETTINGS: tuple[Setting, ...] = _settings(RunConfig)
SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


# ------------------------------------------------------------------------------------------------ sweeps

SEARCH_MODELS = ("mlp", "logreg", "linear_svm")  # a random forest takes minutes a fit: not searched by default
PRUNERS = ("median", "off")


def parse_names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in str(text).split(","))


def _check_model_choices(models) -> None:
    if not (isinstance(models, tuple) and models and set(models) <= set(SEARCH_MODELS)):
        raise ConfigError(f"Setting model_choices={models!r} is not valid.",
                          hint=f"Use some of {', '.join(SEARCH_MODELS)}, separated by commas.")


def _check_epoch_choices(epochs) -> None:
    if not (isinstance(epochs, tuple) and epochs and all(isinstance(n, int) and n > 0 for n in epochs)):
        raise ConfigError(f"Setting epoch_choices={epochs!r} is not valid.",
                          hint="Use positive epoch counts separated by commas, such as 5,10,20.")


def _check_study_name(name: str) -> None:
    if not all(c.isalnum() or c in "-_." for c in name):
        raise ConfigError(f"Setting study={name!r} is not valid.",
                          hint="Use letters, digits, '-', '_' or '.' in a study name.")


@dataclass(frozen=True)
class SweepConfig:
    """How a sweep searches; what it searches on (data, split, test_pct) is its base RunConfig. Declared like the
    run settings, so the CLI options and the app's form come from `SWEEP_SETTINGS`."""

    trials: int = setting(30, "Trials this command fits, shared by its workers (other machines add their own); "
                              "a repeat of tried settings costs no fit and does not count", "sweep", low=1)
    timeout: float | None = setting(None, "Seconds after which no worker starts a new trial", "sweep", low=0,
                                    above=True, none="off")
    workers: int = setting(1, "Worker processes on this machine, one torch thread each", "sweep", low=1, high=64)
    storage: str = setting("", "Optuna storage URL shared by many machines (postgresql://…, any SQLAlchemy URL); "
                               "empty: a journal file under results/sweeps/", "sweep")
    study: str = setting("", "Study name: the same name joins a study; empty starts sweep_<timestamp>", "sweep",
                         check_value=_check_study_name)
    cv: int | None = setting(None, "Score each trial on K inner folds of the non-test clips instead of the valid "
                                   "split", "sweep", low=2, none="off")
    top_n: int = setting(3, "Best trials whose configs the final ensemble averages", "sweep", low=1)
    model_choices: tuple[str, ...] = setting(SEARCH_MODELS, "Models the search may pick", "sweep", kind=tuple,
                                             parse_text=parse_names, check_value=_check_model_choices)
    epoch_choices: tuple[int, ...] = setting((5, 10, 20), "Epoch counts the search may pick for the MLP", "sweep",
                                             kind=tuple, parse_text=parse_counts, check_value=_check_epoch_choices)
    pruner: str = setting("median", "Stop a trial whose valid loss is worse than the median of earlier trials at the "
                                    "same epoch, or never", "sweep", choices=PRUNERS)
    prune_startup: int = setting(5, "Trials that finish before the pruner starts comparing", "sweep", low=0)
    sampler_seed: int = setting(42, "Seed of the TPE sampler (mixed with the worker number and the host name)",
                                "sweep", low=0, high=2**32 - 1)

    def __post_init__(self):
        for name in ("model_choices", "epoch_choices"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        for item in SWEEP_SETTINGS:
            item.check(getattr(self, item.name))

    def with_(self, **changes) -> SweepConfig:
        return replace(self, **changes)


SWEEP_SETTINGS: tuple[Setting, ...] = _settings(SweepConfig)


def lr_warning(lr: float) -> str:
    """The user's rule of thumb: outside 1e-4..1e-2 is allowed but worth a second look."""
    if lr < 1e-4:
        return f"LR {lr:.2g} is below 1e-4: the model may barely learn (accuracy stuck near random)."
    if lr > 1e-2:
        return f"LR {lr:.2g} is above 1e-2: training may diverge to NaN."
    return ""
