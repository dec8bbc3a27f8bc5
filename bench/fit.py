"""Fit timings in one process, on the engine's split of the workload (run by bench/bench.py).

    python bench/fit.py compare EMBEDDINGS TABULAR JSON_PATH [--seeds 3] [--epochs 20] [--lr 3e-3] [--profile]
    python bench/fit.py threads EMBEDDINGS TABULAR JSON_PATH [--epochs 5]

compare: for each seed, the stock fit (TabularDataLoaders.from_df + tabular_learner + fit_one_cycle) and the
engine's fit (build_learner + engine.train.fit) as the product runs it (shuffle, precision auto), with
sampling=replacement, and in fp32 where auto picks bf16; interleaved so that load from other processes hits every
variant alike; same rows, same LR, same torch thread count. --proposals adds the PROPOSALS and the bare loop.
threads: the engine's fit with 1 and 2 torch threads, alone and while a busy process shares the cores.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from fastai.tabular.model import TabularModel  # noqa: E402

from engine import model  # noqa: E402
from engine.config import RunConfig  # noqa: E402
from engine.errors import Cancelled  # noqa: E402
from engine.events import BatchEnded  # noqa: E402
from engine.pipeline import Session  # noqa: E402
from engine.train import fit  # noqa: E402

THREADS_CAP = 10.0  # seconds; a longer thread-count run is stopped and extrapolated

# One single-threaded process spinning on small matmuls: stands in for another user's job on the 2 cores.
BUSY_CODE = ("import numpy as np\n"
             "a = np.random.rand(200, 200)\n"
             "while True:\n"
             "    a = np.tanh(a @ a)\n")


def prepared_data(embeddings: str, tabular: str, cache_dir: str):
    config = RunConfig(embeddings=embeddings, tabular=tabular, lr=3e-3)
    session = Session(cache_dir=cache_dir)
    prepared = session.prepare(config)
    frame = session.clean_data(config).labelled.frame
    return prepared, frame


# Engine changes measured but not made (bench/ only): each patches the learner engine.model.build_learner made.
def frozen_input_bn_affine(learner, seed: int) -> None:
    """Keep the input BatchNorm's normalisation but freeze its scale and shift (the first linear layer can
    absorb both): the backward pass then skips the 64×200 by 200×2,602 input-gradient matmul per batch."""
    learner.model.bn_cont.weight.requires_grad_(False)
    learner.model.bn_cont.bias.requires_grad_(False)


def no_input_batchnorm(learner, seed: int) -> None:
    """TabularModel(bn_cont=False): the engine standardizes inputs already; without the input BatchNorm the
    backward pass skips the input gradient of the first layer and the BatchNorm itself."""
    old = learner.model
    torch.manual_seed(seed)
    learner.model = TabularModel(emb_szs=[], n_cont=old.n_cont, out_sz=old.layers[-1][0].out_features,
                                 layers=[block[0].out_features for block in old.layers[:-1]], bn_cont=False)


class _BatchNormLinear(torch.autograd.Function):
    """(xhat * g + b) @ W.T, whose backward gets the BatchNorm's scale/shift gradients from one matmul
    M = dh.T @ xhat: dW = M * g + outer(sum dh, b), dg = sum_k W * M, db = W.T @ sum dh. Autograd instead does
    two (dW = dh.T @ y and the input gradient dy = dh @ W)."""

    @staticmethod
    def forward(ctx, xhat, scale, shift, weight):
        ctx.save_for_backward(xhat, scale, shift, weight)
        return torch.nn.functional.linear(torch.addcmul(shift, xhat, scale), weight)

    @staticmethod
    def backward(ctx, grad):
        xhat, scale, shift, weight = ctx.saved_tensors
        products = (grad.t().to(xhat.dtype) @ xhat).float()
        sums = grad.float().sum(0)
        weight = weight.float()
        return None, (weight * products).sum(0), sums @ weight, torch.addr(products * scale, sums, shift)


def fused_input_batchnorm_linear(learner, seed: int) -> None:
    """The input BatchNorm and the first linear layer as one op with the backward above (same maths, same
    running statistics); the bench-only patch of the idea left open in the last round."""
    norm, linear = learner.model.bn_cont, learner.model.layers[0][0]

    def normalised_linear(x):
        with torch.no_grad():  # the input needs no gradient; F.batch_norm updates the running statistics
            xhat = torch.nn.functional.batch_norm(x, norm.running_mean, norm.running_var, None, None,
                                                  norm.training, norm.momentum, norm.eps)
        return _BatchNormLinear.apply(xhat, norm.weight, norm.bias, linear.weight)

    norm.forward = lambda x: x
    linear.forward = normalised_linear


# name: (precision, patches); precision "auto" is what the product resolves on this CPU.
PROPOSALS = {"frozen_bn": ("auto", (frozen_input_bn_affine,)), "no_bn": ("auto", (no_input_batchnorm,)),
             "fused_bn_fp32": ("fp32", (fused_input_batchnorm_linear,)),
             "fused_bn_bf16": ("bf16", (fused_input_batchnorm_linear,))}


def engine_fit(prepared, *, seed: int, epochs: int, lr: float, sampling: str = "shuffle", precision: str = "fp32",
               patches=(), cap: float | None = None) -> dict:
    """One engine fit; with `cap` seconds, a run still going then is cancelled and its full length
    extrapolated from the batches done (two torch threads can run 30× slower when the cores are shared)."""
    started = time.perf_counter()
    learner = model.build_learner(prepared.x_train, prepared.y_train, prepared.x_valid, prepared.y_valid,
                                  n_classes=len(prepared.classes), layers=(200, 100), ps=0.0, wd=0.01, bs=64,
                                  seed=seed, sampling=sampling, precision=precision)
    for patch in patches:
        patch(learner, seed)
    batches = []
    cancel = threading.Event()
    timer = threading.Timer(cap, cancel.set) if cap else None
    built, cpu_built = time.perf_counter(), time.process_time()
    if timer:
        timer.start()
    try:
        history = fit(learner, epochs=epochs, lr=lr, cancel=cancel,
                      report=lambda event: batches.append(1) if isinstance(event, BatchEnded) else None)
        accuracy, capped = history[-1]["accuracy"], False
    except Cancelled:
        accuracy, capped = float("nan"), True
    finally:
        if timer:
            timer.cancel()
    done, cpu_done = time.perf_counter(), time.process_time()
    total = epochs * len(learner.dls.train)
    scale = total / len(batches) if capped and batches else 1.0  # no batch done: the time is a lower bound
    return {"build": built - started, "fit": (done - built) * scale, "fit_cpu": (cpu_done - cpu_built) * scale,
            "accuracy": accuracy, "capped": capped}


def plain_fit(prepared, *, seed: int, epochs: int, lr: float) -> dict:
    """The floor, not a product option: the same TabularModel in a bare PyTorch loop (shuffled batches of 64,
    fused AdamW, one-cycle LR as a torch scheduler), one valid pass per epoch and no callbacks."""
    import torch.nn.functional as F

    torch.manual_seed(seed)
    x, y = torch.from_numpy(prepared.x_train), torch.from_numpy(prepared.y_train)
    x_valid, y_valid = torch.from_numpy(prepared.x_valid), torch.from_numpy(prepared.y_valid)
    net = TabularModel(emb_szs=[], n_cont=x.shape[1], out_sz=len(prepared.classes), layers=[200, 100])
    opt = torch.optim.AdamW(net.parameters(), lr=lr, eps=1e-5, weight_decay=0.01, fused=True)
    steps = len(x) // 64
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps, pct_start=0.25)
    generator = torch.Generator().manual_seed(seed)
    no_cat = torch.empty(64, 0, dtype=torch.long)
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(x), generator=generator)
        for i in range(steps):
            rows = order[i * 64:(i + 1) * 64]
            loss = F.cross_entropy(net(no_cat, x[rows]), y[rows])
            loss.backward()
            opt.step()
            opt.zero_grad()
            schedule.step()
        net.eval()
        with torch.no_grad():
            scores = net(torch.empty(len(x_valid), 0, dtype=torch.long), x_valid)
        accuracy = float((scores.argmax(1) == y_valid).float().mean())
    return {"build": 0.0, "fit": time.perf_counter() - started, "fit_cpu": time.process_time() - cpu_started,
            "accuracy": accuracy}


def stock_fit(frame, prepared, *, seed: int, epochs: int, lr: float) -> dict:
    from stock import stock_learner

    columns = list(prepared.feature_columns)
    started = time.perf_counter()
    learn = stock_learner(frame[columns + ["labels"]], columns, prepared.valid_idx, seed=seed)
    built, cpu_built = time.perf_counter(), time.process_time()
    # No progress bar and no printed table: the stock fit is timed without console costs (conservative).
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, lr)
    done, cpu_done = time.perf_counter(), time.process_time()
    return {"build": built - started, "fit": done - built, "fit_cpu": cpu_done - cpu_built,
            "accuracy": float(learn.recorder.values[-1][2])}


def profile_text(action, top: int = 25) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    action()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def warm_up(prepared, frame=None) -> dict:
    """One-epoch fits before timing: the first fit in a process pays one-time costs (lazy imports, allocator
    warm-up; torch.optim's first step imports torch._dynamo, ~2.3 s, which the engine's FusedAdam avoids);
    returned as first-minus-second 1-epoch fit, in seconds."""
    extra = {}
    precision = model.resolve_precision("auto")
    if precision != "fp32":
        engine_fit(prepared, seed=0, epochs=1, lr=3e-3, precision="fp32")  # its one-time costs, untimed
    runs = [("engine", lambda: engine_fit(prepared, seed=0, epochs=1, lr=3e-3, precision=precision))]
    if frame is not None:
        runs.append(("stock", lambda: stock_fit(frame, prepared, seed=0, epochs=1, lr=3e-3)))
    for name, run in runs:
        first, second = run(), run()
        extra[name] = first["fit"] - second["fit"]
    return extra


def compare(args, prepared, frame) -> dict:
    threads = model.set_threads(args.threads)
    precision = model.resolve_precision("auto")
    first_fit_extra = warm_up(prepared, frame)
    # name: engine_fit settings. "engine" is the product's default (shuffle, precision auto).
    variants = {"engine": dict(precision=precision), "replacement": dict(sampling="replacement", precision=precision)}
    if precision != "fp32":
        variants["fp32"] = dict(precision="fp32")
    if args.proposals:
        variants |= {name: dict(precision=model.resolve_precision(choice), patches=patches)
                     for name, (choice, patches) in PROPOSALS.items()}
    runs: dict[str, list[dict]] = {"stock": []} | {name: [] for name in variants}
    if args.proposals:
        runs["plain_floor"] = []
    for seed in range(args.seeds):
        runs["stock"].append(stock_fit(frame, prepared, seed=seed, epochs=args.epochs, lr=args.lr))
        for name, settings in variants.items():
            runs[name].append(engine_fit(prepared, seed=seed, epochs=args.epochs, lr=args.lr, **settings))
        if args.proposals:
            runs["plain_floor"].append(plain_fit(prepared, seed=seed, epochs=args.epochs, lr=args.lr))
        print(f"seed {seed}: " + ", ".join(f"{k} {v[-1]['fit']:.1f} s" for k, v in runs.items()), file=sys.stderr)
    result = {"threads": threads, "precision": precision, "epochs": args.epochs, "lr": args.lr, "runs": runs,
              "first_fit_extra": first_fit_extra,
              "train_rows": len(prepared.train_idx), "valid_rows": len(prepared.valid_idx),
              "features": int(prepared.x_train.shape[1]), "classes": len(prepared.classes)}
    if args.profile:
        result["profile_engine"] = profile_text(
            lambda: engine_fit(prepared, seed=0, epochs=args.epochs, lr=args.lr, precision=precision))
        result["profile_stock"] = profile_text(
            lambda: stock_fit(frame, prepared, seed=0, epochs=args.epochs, lr=args.lr))
    return result


def threads(args, prepared) -> dict:
    result: dict[str, float] = {}
    torch.set_num_threads(1)
    warm_up(prepared)
    busy = None
    try:
        for contended in (False, True):
            if contended:
                env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
                busy = subprocess.Popen([sys.executable, "-c", BUSY_CODE], env=env)
                time.sleep(0.5)
            for count in (1, 2):
                torch.set_num_threads(count)
                run = engine_fit(prepared, seed=0, epochs=args.epochs, lr=args.lr, cap=THREADS_CAP,
                                 precision=model.resolve_precision("auto"))
                result[f"{count}_{'busy' if contended else 'alone'}"] = run["fit"]
                result[f"{count}_{'busy' if contended else 'alone'}_capped"] = run["capped"]
                print(f"threads {count} {'busy' if contended else 'alone'}: {run['fit']:.2f} s", file=sys.stderr)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return {"epochs": args.epochs, "fit": result, "cap": THREADS_CAP}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("compare", "threads"))
    parser.add_argument("embeddings")
    parser.add_argument("tabular")
    parser.add_argument("json_path")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the engine's)")
    parser.add_argument("--profile", action="store_true", help="cProfile one engine fit and one stock fit")
    parser.add_argument("--proposals", action="store_true", help="also time the engine changes in PROPOSALS")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vggtab-bench-") as scratch:
        prepared, frame = prepared_data(args.embeddings, args.tabular, args.cache_dir or scratch)
        result = compare(args, prepared, frame) if args.mode == "compare" else threads(args, prepared)
    Path(args.json_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
