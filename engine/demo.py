"""Built-in demo data: a deterministic stand-in for the user's Freesound feature tables.

Nothing can be downloaded at run time, so `generate_demo` writes the two CSVs the user works with (plus an
unlabeled test pair) in exactly their format and with their quirks: keys unmatched on both sides, ~15 %
multi-label clips, single-label class sizes from 3 to ~73, and one matched clip whose tabular features hold NaN
(the bug that made the notebook's losses NaN).

Every clip has a latent "sound" vector: its classes' centres plus clip-level variation. The embeddings see one
part of that vector and the tabular block an overlapping part, so each block alone is useful and both together
are better, as in the user's data. Multi-label clips mix their classes' centres, so they are learnable too.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from engine.errors import ConfigError, StorageError
from engine.store.files import atomic_write

OUT = "out"  # the setting that picks the demo's folder
CLASS_NAMES = (
    "Accelerating_and_revving_and_vroom", "Accordion", "Acoustic_guitar", "Applause", "Bark", "Bass_drum",
    "Bass_guitar", "Bicycle_bell", "Burping_and_eructation", "Bus", "Buzz", "Car_passing_by", "Cheering",
    "Chewing_and_mastication", "Child_speech_and_kid_speaking", "Chirp_and_tweet", "Church_bell", "Clapping",
    "Computer_keyboard", "Crackle", "Cricket", "Crowd", "Cutlery_and_silverware", "Drawer_open_or_close", "Drip",
    "Electric_guitar", "Fart", "Female_singing", "Female_speech_and_woman_speaking", "Fill_(with_liquid)",
    "Finger_snapping", "Frying_(food)", "Gasp", "Glockenspiel", "Gong", "Growl", "Gurgling", "Harmonica", "Hi-hat",
    "Hiss", "Keys_jangling", "Knock", "Male_singing", "Male_speech_and_man_speaking", "Marimba_and_xylophone",
    "Meow", "Motorcycle", "Printer", "Purr", "Race_car_and_auto_racing", "Raindrop", "Run", "Scissors",
    "Screaming", "Shatter", "Sigh", "Skateboard", "Slam", "Sneeze", "Squeak", "Stream", "Strum", "Tap",
    "Tick-tock", "Toilet_flush", "Traffic_noise_and_roadway_noise", "Trickle_and_dribble", "Walk_and_footsteps",
    "Water_tap_and_faucet", "Waves_and_surf", "Whispering", "Writing", "Yell", "Zipper_(clothing)",
)
REAL_BINS = {"stft": 1025, "mel": 128, "cqt": 84}
DEFAULT_TABULAR, DEFAULT_EMBEDDINGS = 4970, 3524  # the user's row counts
MIN_CLIPS = 400  # scaled_counts: every one of the 74 classes still gets its 3+ single-label clips
# Written beside the demo files before them: a folder without it holds someone's own files, never replaced.
MARKER = ".vggtab-demo"
CHUNK_ROWS = 2048  # rows made and written at a time: 50,000 clips never hold a whole table (~0.5 GB) in memory
EMBEDDING_DIM = 128

MULTI_LABEL_SHARE = 0.15
# Among multi-label clips, how often each label count occurs: pairs dominate, as in Freesound.
LABEL_COUNT_SHARES = {2: 0.70, 3: 0.20, 4: 0.06, 5: 0.03, 6: 0.01}
EMBEDDING_ONLY_SHARE = 0.006  # embedding rows without a tabular row
SMALLEST_CLASS = 3  # single-label matched clips of the rarest class
CLASS_SIZE_SKEW = 0.88  # below 1 bends sizes towards the largest class: few tiny classes, many big ones
NAN_COLUMNS = 5

# The embeddings see latent dims [0, EMB_VIEW), the tabular block dims [TAB_VIEW, LATENT_DIM): the overlap makes
# the blocks partly redundant, the two ends make them complementary.
LATENT_DIM = 32
EMB_VIEW = 24
TAB_VIEW = 12
CLIP_SPREAD = 1.25  # clip-level variation around the class centre, seen by both blocks
EMB_NOISE = 1.0  # per-column noise of the embeddings, relative to their signal
TAB_SIGNAL = 0.22  # how strongly the latent bends the log spectra
TAB_NOISE = 0.35  # per-bin noise of the log spectra
LOUDNESS_SPREAD = 0.4  # per-clip gain on every bin: large, and no use for telling classes apart
BASIS_PER_GROUP = 8  # smooth spectral shapes per feature group
SIGNIFICANT_DIGITS = 6  # relative to each column's typical value, so files stay small and fast to write

# Typical log amplitude over the frequency axis p in [0, 1], and how each group is expressed.
_SPECTRAL_TILT = {"stft": (math.log(4.0), 6.0, 0.6), "mel": (math.log(6.0), 5.0, 0.7), "cqt": (-1.0, 3.0, 1.0)}
_STD_TO_MEAN = math.log(0.8)  # magnitudes over time vary about as much as their mean
_DB = 20 / math.log(10)
_CQT_FLOOR_DB = 90.0
_CQT_STD_DB = math.log(6.0)


@dataclass(frozen=True)
class DemoFiles:
    embeddings: Path
    tabular: Path
    test_embeddings: Path
    test_tabular: Path


def generate_demo(out_dir, *, n_tabular: int = DEFAULT_TABULAR, n_embeddings: int = DEFAULT_EMBEDDINGS,
                  n_classes: int = 74,
                  n_test: int = 200, bins: dict[str, int] | None = None, seed: int = 0) -> DemoFiles:
    """Write embeddings.csv, tabular.csv, test_embeddings.csv and test_tabular.csv into `out_dir`.

    `bins=None` gives the real column counts (stft 1025, mel 128, cqt 84); a smaller dict such as
    {"stft": 12, "mel": 8, "cqt": 6} keeps the naming with fewer bins. The same arguments write the same bytes.
    """
    bins = _checked_bins(bins)
    n_embedding_only = max(1, round(n_embeddings * EMBEDDING_ONLY_SHARE))
    n_matched = n_embeddings - n_embedding_only
    n_multi = round(n_matched * MULTI_LABEL_SHARE)
    _check_counts(n_tabular, n_embeddings, n_classes, n_test, n_matched, n_matched - n_multi)
    n_tabular_only = n_tabular - n_matched

    rng = np.random.default_rng(seed)
    # Clips in one row order: embedding-only, matched (single-label first), tabular-only, test.
    labels = (_random_labels(rng, n_classes, n_embedding_only)
              + _matched_labels(rng, n_classes, n_matched - n_multi, n_multi)
              + _random_labels(rng, n_classes, n_tabular_only + n_test))
    fnames = _fnames(rng, len(labels))
    latent = _latent(rng, n_classes, labels)
    clips = np.arange(len(labels))
    embedded = clips[: n_embedding_only + n_matched]
    tabulated = clips[n_embedding_only: n_embedding_only + n_tabular]
    test = clips[len(labels) - n_test:]

    embeddings = _EmbeddingModel(rng)
    spectra = _SpectrumModel(rng, bins)
    nan_clip = tabulated[_nan_row(rng, labels[n_embedding_only: n_embedding_only + n_tabular], n_matched - n_multi)]
    nan_columns = np.sort(rng.choice(len(spectra.column_names), NAN_COLUMNS, replace=False))
    label_strings = np.array([",".join(CLASS_NAMES[c] for c in labels[clip]) for clip in embedded])

    def embedding_rows(rows: np.ndarray, noise: np.random.Generator, with_labels: bool) -> dict:
        text = {"labels": label_strings[rows]} if with_labels else {}
        return {"fname": fnames[rows], **text, **embeddings.columns(embeddings.values(noise, latent[rows]))}

    def tabular_rows(rows: np.ndarray, noise: np.random.Generator) -> dict:
        values = spectra.values(noise, latent[rows])
        values[np.flatnonzero(rows == nan_clip)[:, None], nan_columns] = np.nan
        return {"file": fnames[rows], **spectra.columns(values)}

    out = Path(out_dir)
    files = DemoFiles(out / "embeddings.csv", out / "tabular.csv", out / "test_embeddings.csv",
                      out / "test_tabular.csv")
    test_rows = test[np.argsort(fnames[test])]
    # Tabular rows in extraction order, not sorted: a merge must match keys, not positions.
    writes = [(files.embeddings, embedded[np.argsort(fnames[embedded])],
               lambda rows, noise: embedding_rows(rows, noise, with_labels=True)),
              (files.tabular, tabulated[rng.permutation(n_tabular)], tabular_rows),
              (files.test_embeddings, test_rows, lambda rows, noise: embedding_rows(rows, noise, with_labels=False)),
              (files.test_tabular, test_rows, tabular_rows)]
    _check_replaceable(out, files)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text("Written by `vggtab demo`, which may replace the CSV files here.\n")
        for number, (path, rows, make) in enumerate(writes):
            # Each chunk's noise comes from its own seeded generator: the bytes depend on the arguments only.
            _write_csv(path, (make(rows[start: start + CHUNK_ROWS], np.random.default_rng([seed, number, start]))
                              for start in range(0, len(rows), CHUNK_ROWS)))
    except OSError as error:
        raise StorageError(f"Could not write the demo data to {out}: {error.strerror or error}.",
                           hint="Pick a writable folder with about 150 MB free per 5,000 clips.") from error
    return files


def _check_replaceable(out: Path, files: DemoFiles) -> None:
    """The demo writes over its own earlier files only: a user's embeddings.csv in `out` stays as it is."""
    existing = [path for path in astuple(files) if path.exists()]
    if existing and not (out / MARKER).is_file():
        raise StorageError(f"{existing[0]} already exists and was not written by the demo generator; it is left "
                           f"as it is.", hint="Pick another folder for the demo (`out`), or move that file away.")


def scaled_counts(clips: int) -> dict[str, int]:
    """Row counts for a demo of `clips` tabular clips, the embeddings file holding the default demo's share."""
    if clips < MIN_CLIPS:
        raise ConfigError(f"Demo clips={clips} is too few for {len(CLASS_NAMES)} classes.",
                          hint=f"Use {MIN_CLIPS} clips or more (the default is {DEFAULT_TABULAR}).")
    return {"n_tabular": clips, "n_embeddings": round(clips * DEFAULT_EMBEDDINGS / DEFAULT_TABULAR)}


def _checked_bins(bins: dict[str, int] | None) -> dict[str, int]:
    if bins is None:
        return dict(REAL_BINS)
    if set(bins) != set(REAL_BINS) or not all(isinstance(n, int) and n >= 2 for n in bins.values()):
        raise ConfigError(f"Demo bins {bins!r} are not usable.",
                          hint='Give 2 or more bins for each of stft, mel and cqt, e.g. {"stft": 12, "mel": 8, '
                               '"cqt": 6}, or None for the real counts.')
    return {group: bins[group] for group in REAL_BINS}


def _check_counts(n_tabular: int, n_embeddings: int, n_classes: int, n_test: int, n_matched: int,
                  n_single: int) -> None:
    if not 2 <= n_classes <= len(CLASS_NAMES):
        raise ConfigError(f"Demo n_classes={n_classes} is out of range.",
                          hint=f"Use 2 to {len(CLASS_NAMES)} classes.")
    if n_single < SMALLEST_CLASS * n_classes:
        usable = (1 - MULTI_LABEL_SHARE) * (1 - EMBEDDING_ONLY_SHARE)  # share of rows that are single-label matched
        raise ConfigError(f"Demo n_embeddings={n_embeddings} is too few for {n_classes} classes.",
                          hint=f"Use at least {math.ceil(SMALLEST_CLASS * n_classes / usable) + 2} embedding rows "
                               f"or fewer classes.")
    if n_tabular <= n_matched:
        raise ConfigError(f"Demo n_tabular={n_tabular} leaves no tabular-only clips.",
                          hint=f"Use more than {n_matched} tabular rows, so both files have unmatched keys.")
    if n_test < 1:
        raise ConfigError(f"Demo n_test={n_test} is not usable.", hint="Use 1 or more test clips.")


def _class_sizes(rng: np.random.Generator, n_classes: int, n_single: int) -> np.ndarray:
    """Single-label clips per class, summing to n_single: one class of SMALLEST_CLASS, the rest spread above."""
    weights = np.linspace(0, 1, n_classes) ** CLASS_SIZE_SKEW
    shares = SMALLEST_CLASS + (n_single - SMALLEST_CLASS * n_classes) * weights / weights.sum()
    sizes = np.floor(shares).astype(int)
    sizes[np.argsort(sizes - shares)[: n_single - sizes.sum()]] += 1  # hand out the remainder, largest first
    return sizes[rng.permutation(n_classes)]


def _label_counts(rng: np.random.Generator, n: int) -> np.ndarray:
    """Labels per clip for n clips: about MULTI_LABEL_SHARE of them carry 2-6."""
    counts = np.ones(n, dtype=int)
    multi = rng.random(n) < MULTI_LABEL_SHARE
    counts[multi] = rng.choice(list(LABEL_COUNT_SHARES), size=multi.sum(), p=list(LABEL_COUNT_SHARES.values()))
    return counts


def _multi_label_counts(n_multi: int) -> list[int]:
    """Exactly n_multi label counts in LABEL_COUNT_SHARES proportions; every count appears once there is room."""
    rare = {k: max(1, round(share * n_multi)) for k, share in LABEL_COUNT_SHARES.items() if k != 2}
    if sum(rare.values()) >= n_multi:
        rare = {}
    return [2] * (n_multi - sum(rare.values())) + [k for k, n in rare.items() for _ in range(n)]


def _draw_labels(rng: np.random.Generator, n_classes: int, count: int) -> tuple[int, ...]:
    return tuple(int(c) for c in rng.choice(n_classes, size=min(count, n_classes), replace=False))


def _matched_labels(rng: np.random.Generator, n_classes: int, n_single: int, n_multi: int) -> list[tuple[int, ...]]:
    """Label sets of the matched clips: single-label ones with exact class sizes, then the multi-label ones."""
    sizes = _class_sizes(rng, n_classes, n_single)
    single = [(c,) for c in range(n_classes) for _ in range(sizes[c])]
    return single + [_draw_labels(rng, n_classes, count) for count in _multi_label_counts(n_multi)]


def _random_labels(rng: np.random.Generator, n_classes: int, n: int) -> list[tuple[int, ...]]:
    return [_draw_labels(rng, n_classes, count) for count in _label_counts(rng, n)]


def _fnames(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct Freesound-style names such as 0006ae4e.wav."""
    return np.array([f"{value:08x}.wav" for value in rng.choice(16 ** 8, size=n, replace=False)])


def _latent(rng: np.random.Generator, n_classes: int, labels: list[tuple[int, ...]]) -> np.ndarray:
    """Each clip's sound: its classes' centres (scaled to keep the spread of one) plus clip-level variation."""
    centres = rng.standard_normal((n_classes, LATENT_DIM)).astype(np.float32)
    mix = np.zeros((len(labels), n_classes), dtype=np.float32)
    for row, clip_labels in enumerate(labels):
        mix[row, list(clip_labels)] = 1 / math.sqrt(len(clip_labels))
    return mix @ centres + CLIP_SPREAD * rng.standard_normal((len(labels), LATENT_DIM), dtype=np.float32)


def _nan_row(rng: np.random.Generator, tabulated_labels: list[tuple[int, ...]], n_single: int) -> int:
    """A single-label matched clip of the largest class, so dropping it leaves every class its size."""
    single = [clip_labels[0] for clip_labels in tabulated_labels[:n_single]]
    largest = max(set(single), key=single.count)
    return int(rng.choice([row for row, c in enumerate(single) if c == largest]))


class _EmbeddingModel:
    """VGGish-like embeddings: whole numbers 0..255 around a per-column centre, like quantized VGGish."""

    def __init__(self, rng: np.random.Generator):
        self.projection = rng.standard_normal((EMB_VIEW, EMBEDDING_DIM)).astype(np.float32) / math.sqrt(EMB_VIEW)
        self.centre = rng.uniform(70, 180, EMBEDDING_DIM).astype(np.float32)
        self.scale = rng.uniform(14, 32, EMBEDDING_DIM).astype(np.float32)

    def values(self, rng: np.random.Generator, latent: np.ndarray) -> np.ndarray:
        signal = latent[:, :EMB_VIEW] @ self.projection
        noise = EMB_NOISE * rng.standard_normal(signal.shape, dtype=np.float32)
        spread = math.sqrt(1 + CLIP_SPREAD ** 2 + EMB_NOISE ** 2)
        return np.clip(np.rint(self.centre + self.scale * (signal + noise) / spread), 0, 255).astype(np.uint8)

    def columns(self, values: np.ndarray) -> dict[str, pa.Array]:
        # Decimals with one digit print as pandas prints whole-number floats ("123.0"), and read back as floats.
        return {f"emb_{j}": pa.array(values[:, j]).cast(pa.decimal128(4, 1)) for j in range(EMBEDDING_DIM)}


class _SpectrumModel:
    """Per-bin means and standard deviations of stft magnitude, mel power and cqt level (dB).

    Each clip's log spectrum is a smooth tilt plus latent-driven bumps, a loudness gain and per-bin noise.
    """

    def __init__(self, rng: np.random.Generator, bins: dict[str, int]):
        self.bins = bins
        n_view = LATENT_DIM - TAB_VIEW
        self.shapes = {}  # (group, stat) -> latent-to-spectrum map, n_view x n_bins
        self.tilts = {}
        for group, n_bins in bins.items():
            position = np.linspace(0, 1, n_bins)
            top, drop, curve = _SPECTRAL_TILT[group]
            self.tilts[group] = (top - drop * position ** curve).astype(np.float32)
            centres = np.linspace(0, 1, BASIS_PER_GROUP)
            bumps = np.exp(-0.5 * ((position[None, :] - centres[:, None]) * BASIS_PER_GROUP) ** 2)
            for stat in ("mean", "std"):
                mixing = rng.standard_normal((n_view, BASIS_PER_GROUP)) / math.sqrt(n_view)
                self.shapes[group, stat] = (mixing @ bumps).astype(np.float32)
        self.column_names = [f"{group}_{stat}_{b}" for group, n_bins in bins.items() for stat in ("mean", "std")
                             for b in range(n_bins)]
        typical = self._express(np.zeros((1, n_view), dtype=np.float32), np.zeros((1, 1), dtype=np.float32),
                                _no_noise)[0]
        decimals = np.clip(SIGNIFICANT_DIGITS - 1 - np.floor(np.log10(typical)), 0, 10)
        self.rounding = (10.0 ** decimals).astype(np.float32)

    def values(self, rng: np.random.Generator, latent: np.ndarray) -> np.ndarray:
        loudness = LOUDNESS_SPREAD * rng.standard_normal((len(latent), 1), dtype=np.float32)

        def noise(shape: tuple[int, int]) -> np.ndarray:
            return TAB_NOISE * rng.standard_normal(shape, dtype=np.float32)

        values = self._express(latent[:, TAB_VIEW:], loudness, noise)
        return np.round(values * self.rounding) / self.rounding

    def _express(self, view: np.ndarray, loudness: np.ndarray, noise: Callable) -> np.ndarray:
        blocks = []
        for group in self.bins:
            level = self.tilts[group] + loudness + TAB_SIGNAL * view @ self.shapes[group, "mean"]
            level += noise(level.shape)
            wobble = TAB_SIGNAL * view @ self.shapes[group, "std"] + noise(level.shape)
            if group == "stft":  # magnitude
                blocks += [np.exp(level), np.exp(level + _STD_TO_MEAN + wobble)]
            elif group == "mel":  # power
                blocks += [np.exp(2 * level), np.exp(2 * (level + _STD_TO_MEAN + wobble))]
            else:  # cqt level in dB above a floor; its spread over time in dB
                blocks += [np.maximum(_DB * level + _CQT_FLOOR_DB, 0), np.exp(_CQT_STD_DB + wobble)]
        return np.hstack(blocks).astype(np.float32)

    def columns(self, values: np.ndarray) -> dict[str, np.ndarray]:
        return {name: values[:, j] for j, name in enumerate(self.column_names)}


def _no_noise(shape: tuple[int, int]) -> np.ndarray:
    return np.zeros(shape, dtype=np.float32)


def _write_csv(path: Path, chunks) -> None:
    """Write dicts of columns (one per chunk of rows) as one CSV, atomically, the way the user's pandas files
    look: a plain header, NaN as an empty cell, numbers unquoted; text cells are quoted only in a file whose
    text can hold commas (the labels), since pyarrow's writer quotes all text cells or none."""

    def write(temp: Path) -> None:
        writer = None
        try:
            for columns in chunks:
                table = pa.table({name: pa.array(values, from_pandas=True) for name, values in columns.items()})
                if writer is None:
                    quoting = "needed" if "labels" in columns else "none"
                    writer = pa_csv.CSVWriter(temp, table.schema, write_options=pa_csv.WriteOptions(
                        quoting_style=quoting, quoting_header="none", batch_size=CHUNK_ROWS))
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()

    atomic_write(path, write, setting=OUT)
