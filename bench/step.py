"""Speed of one training step, measured on real MNIST: the tutorial shape vs this project's engines.

Two workloads (docs/benchmarks.md has the numbers and the machines):

- ``article``: 784-512-256-128-64-10, sigmoid, one BN layer, SGD+Nesterov lr 0.01, CE, batch 128,
  shuffled — seconds per epoch of the 60 000 training images (the partial last batch included).
- ``book``: 784-200-10, sigmoid, sigmoid head, MSE, plain SGD lr 0.01 (``--book-optimizer adam``: the
  book's Adam), batch 1 in dataset order — microseconds per optimizer step.

Variants, each measured in this same run so the ratios compare like with like:

- ``tutorial``: ``DataLoader(TensorDataset)`` batches moved to the device, the textbook eager loop;
- ``eager``: this project's loop (data resident on the device, ``engine=eager``), one seed;
- ``auto``: ``engine=auto`` (on the CPU: the eager step with fused optimizer kernels), one seed;
- ``graph``: ``engine=graph`` (CUDA only), one seed;
- ``compile``: ``engine=compile``, one seed; its warm-up (compilation) is reported separately;
- ``batched``: K seeds as one stacked model with ``engine=auto`` (graph on CUDA, eager on the CPU),
  reported per seed as well; ``batched_compile``: the same with ``engine=compile``.

Every number is the median over ``--repeats`` timed repeats after one untimed warm-up repeat; the
load average is printed next to it because a busy machine slows everything.

    python bench/step.py                         # both workloads, every variant this device can run
    python bench/step.py --workload book --seeds 1 5 8 16 --repeats 7
    python bench/step.py --device cuda --seeds 1 8 16 32 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

# conf/model/init/glorot_uniform.yaml and torch_default.yaml
GLOROT = {"weight": {"_target_": "torch.nn.init.xavier_uniform_"}, "bias": {"_target_": "torch.nn.init.zeros_"}}
TORCH_DEFAULT = {"weight": None, "bias": None}
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bn_study.data import load_splits  # noqa: E402
from bn_study.train.engines import build_engine  # noqa: E402
from bn_study.train.loop import Members, TrainSpec, new_state, targets, train_epoch  # noqa: E402
from bn_study.train.model import build_model, seeded_models  # noqa: E402
from bn_study.train.optim import build_optimizer  # noqa: E402

SGD_KERAS = {"_target_": "torch.optim.SGD", "lr": 0.01, "momentum": 0.9, "nesterov": True}
SGD_PLAIN = {"_target_": "torch.optim.SGD", "lr": 0.01, "momentum": 0.0, "nesterov": False}
ADAM = {"_target_": "torch.optim.Adam", "lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-8}
WORKLOADS = {
    "article": dict(model={"name": "article", "hidden": [512, 256, 128, 64], "head": "softmax",
                           "init": GLOROT},
                    act={"name": "sigmoid"},
                    norm={"kind": "batch", "layers": 1, "position": "after", "eps": 1e-3, "momentum": 0.01},
                    loss="ce", batch_size=128, shuffle=True, unit="s/epoch"),
    "book": dict(model={"name": "book", "hidden": [200], "head": "sigmoid", "init": TORCH_DEFAULT},
                 act={"name": "sigmoid"}, norm={"kind": "none", "layers": 0, "position": "after"},
                 loss="mse", batch_size=1, shuffle=False, unit="us/step"),
}


@dataclass
class Row:
    workload: str
    variant: str
    seeds: int
    unit: str
    median: float  # per job (all seeds together)
    per_seed: float
    spread: tuple[float, float]  # min, max over repeats
    warmup_s: float  # the untimed first repeat (includes compilation / graph capture)
    load: tuple[float, float]  # 1-minute load average before and after
    ratios: dict[str, float] = field(default_factory=dict)  # baseline time / this time, per seed


def load() -> float:
    return os.getloadavg()[0]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], None], repeats: int, device: torch.device) -> tuple[float, list[float]]:
    sync(device)
    tic = time.perf_counter()
    run()  # warm-up: first-call costs (allocations, compilation, graph capture)
    sync(device)
    warmup = time.perf_counter() - tic
    times = []
    for _ in range(repeats):
        sync(device)
        tic = time.perf_counter()
        run()
        sync(device)
        times.append(time.perf_counter() - tic)
    return warmup, times


def workload_data(name: str, device: torch.device, book_steps: int, article_limit: int | None):
    limit = book_steps if name == "book" else article_limit
    return load_splits("mnist", os.environ.get("BN_STUDY_DATA", REPO / "data"), limit_train=limit, device=device)


def tutorial(name: str, splits, device: torch.device, optimizer_cfg: dict) -> Callable[[], None]:
    """The shape every tutorial has: a DataLoader over CPU tensors, each batch moved to the device."""
    w = WORKLOADS[name]
    torch.manual_seed(0)
    model = build_model(w["model"], w["act"], w["norm"]).to(device)
    optimizer = build_optimizer(model.parameters(), optimizer_cfg)
    dataset = TensorDataset(splits.train_x.cpu(), splits.train_y.cpu())
    loader = DataLoader(dataset, batch_size=w["batch_size"], shuffle=w["shuffle"])
    mse = w["loss"] == "mse"

    def epoch() -> None:
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            out = model(xb)
            loss = F.mse_loss(out, F.one_hot(yb, 10).float()) if mse else F.cross_entropy(out, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return epoch


def project(name: str, splits, device: torch.device, optimizer_cfg: dict, engine: str,
            seeds: int) -> Callable[[], None]:
    """This project's loop: ``train_epoch`` over resident data with the step ``build_engine`` returns."""
    w = WORKLOADS[name]
    members = Members(seeded_models(range(seeds), w["model"], w["act"], w["norm"]))
    optimizer, step = build_engine(engine, members, w["loss"], optimizer_cfg, device)
    state = new_state(members, optimizer, range(seeds))
    spec = TrainSpec(epochs=1, batch_size=w["batch_size"], seeds=tuple(range(seeds)), loss=w["loss"],
                     shuffle=w["shuffle"], log_every=10**9)
    data = targets(splits.train_x, splits.train_y, w["loss"], splits.num_classes)

    def epoch() -> None:
        train_epoch(state, data, spec, step)

    return epoch


def scale(name: str, seconds: float, n: int) -> float:
    """Seconds for one pass over n samples → the workload's unit."""
    if name == "book":
        return seconds / n * 1e6  # µs per step (batch 1)
    return seconds * 60_000 / n  # s per 60 000-image epoch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=["article", "book", "both"], default="both")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variants", nargs="+", default=["tutorial", "eager", "auto", "graph", "compile", "batched"],
                        choices=["tutorial", "eager", "auto", "graph", "compile", "batched", "batched_compile"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[5, 8],
                        help="member counts for the batched variant")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--book-steps", type=int, default=None,
                        help="steps per repeat for the book (default 2000 on the CPU, 20000 on CUDA)")
    parser.add_argument("--book-optimizer", choices=["sgd", "adam"], default="sgd")
    parser.add_argument("--article-limit", type=int, default=None,
                        help="time the article on the first N images and scale to 60 000 (default: all)")
    parser.add_argument("--article-batch", type=int, default=128, help="the article's batch size")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    book_steps = args.book_steps or (20_000 if device.type == "cuda" else 2_000)
    workloads = ["article", "book"] if args.workload == "both" else [args.workload]
    # graph needs CUDA; on CUDA auto *is* graph, so it is measured once
    variants = [v for v in args.variants if (v != "graph" or device.type == "cuda") and
                (v != "auto" or device.type != "cuda")]
    machine = describe(device)
    print(machine)
    rows: list[Row] = []
    WORKLOADS["article"]["batch_size"] = args.article_batch
    for name in workloads:
        w = WORKLOADS[name]
        optimizer_cfg = SGD_KERAS if name == "article" else (ADAM if args.book_optimizer == "adam" else SGD_PLAIN)
        splits = workload_data(name, device, book_steps, args.article_limit)
        n = splits.train_x.shape[0]
        print(f"\n{name}: batch {w['batch_size']}, {optimizer_cfg['_target_'].rsplit('.', 1)[-1]}, {n} samples per timed repeat, "
              f"{args.repeats} repeats, unit {w['unit']}")
        plan = []
        for variant in variants:
            if variant.startswith("batched"):
                plan += [(variant, k) for k in args.seeds]
            else:
                plan.append((variant, 1))
        base: dict[str, float] = {}
        for variant, k in plan:
            before = load()
            if variant == "tutorial":
                run = tutorial(name, splits, device, optimizer_cfg)
            else:
                engine = {"batched": "auto", "batched_compile": "compile"}.get(variant, variant)
                run = project(name, splits, device, optimizer_cfg, engine, k)
            warmup, times = timed(run, args.repeats, device)
            values = [scale(name, t, n) for t in times]
            median = statistics.median(values)
            row = Row(name, variant, k, w["unit"], median, median / k, (min(values), max(values)), warmup,
                      (before, load()))
            if variant in ("tutorial", "eager"):
                base[variant] = row.per_seed
            row.ratios = {b: base[b] / row.per_seed for b in base}
            rows.append(row)
            ratios = "  ".join(f"{b} {r:5.2f}x" for b, r in row.ratios.items())
            print(f"  {variant:15s} K={k:<3d} {median:10.3f} {w['unit']:8s} per seed {row.per_seed:10.3f}  "
                  f"[{row.spread[0]:.3f}..{row.spread[1]:.3f}]  warm-up {warmup:6.2f} s  "
                  f"load {row.load[0]:.2f}->{row.load[1]:.2f}  {ratios}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": [asdict(r) for r in rows]}, indent=1))
    return 0


def describe(device: torch.device) -> str:
    from bn_study.tracking.provenance import device_name  # what MLflow runs record as their device tag

    return (f"device: {device} ({device_name(device)}, {os.cpu_count()} cores); torch {torch.__version__}; "
            f"python {platform.python_version()}")


if __name__ == "__main__":
    raise SystemExit(main())
