"""The training loop: epochs × batches over data resident on the device, for K members at once.

K = 1 is an ordinary run of the plain model. K > 1 trains independent copies (own init, own shuffle
order, own BatchNorm statistics) as one stacked model; see ``stacked.py``. Tensors carry the member
axis first. Nothing inside an epoch waits for the device except on the ``log_every`` cadence, where the
step loss is recorded and checked for NaN/inf, and on the step probe's, whose numbers are read back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from bn_study.data import Splits
from bn_study.train.losses import MemberLoss, member_loss, needs_onehot
from bn_study.train.members import Members
from bn_study.train.step import StepFn

EVAL_CHUNK = 10_000


@dataclass(frozen=True)
class TrainSpec:
    epochs: int
    batch_size: int
    seeds: tuple[int, ...]
    loss: str
    shuffle: bool = True
    log_every: int = 50
    drop_last: bool = False
    # training ends after this many optimizer steps even mid-epoch (equal-update designs); None: after `epochs`
    max_steps: int | None = None

    def done(self, global_step: int) -> bool:
        return self.max_steps is not None and global_step >= self.max_steps

    def steps_in_epoch(self, epoch: int, n: int, has_batch_norm: bool) -> int:
        """Optimizer steps epoch ``epoch`` (0-based) makes: a whole epoch's, or what ``max_steps`` leaves."""
        whole = steps_per_epoch(n, self, has_batch_norm)
        return whole if self.max_steps is None else max(0, min(whole, self.max_steps - epoch * whole))

    def planned_epochs(self, n: int, has_batch_norm: bool) -> int:
        """How many epochs the run trains (evaluated at each end; the last one may be cut short)."""
        if self.max_steps is None:
            return self.epochs
        return min(self.epochs, math.ceil(self.max_steps / steps_per_epoch(n, self, has_batch_norm)))


@dataclass
class TrainState:
    members: Members
    optimizer: torch.optim.Optimizer
    shufflers: list[torch.Generator]
    epoch: int = 0
    global_step: int = 0
    # Why member k stopped (None while it trains): its run ends FAILED with this reason.
    failures: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.failures:
            self.failures = [None] * self.members.count


def new_state(members: Members, optimizer: torch.optim.Optimizer, seeds: Sequence[int]) -> TrainState:
    shufflers = [torch.Generator().manual_seed(int(s)) for s in seeds]
    return TrainState(members, optimizer, shufflers)


@dataclass
class EpochReport:
    epoch: int
    seconds: float
    metrics: list[dict[str, float]]  # per member: train_loss, train_acc, val_loss, val_acc, steps (so far)
    step_losses: list[tuple[int, list[float]]]  # (global step, per-member loss) on the log cadence
    failures: list[str | None]
    # (global step, per-member values) of the step probe's looks in this epoch; epoch 1's start at step 0
    probes: list[tuple[int, list[dict[str, float]]]] = field(default_factory=list)


@dataclass
class Targets:
    """A split as the loop consumes it: inputs, labels, and one-hot targets when the loss wants them."""

    x: Tensor
    labels: Tensor
    onehot: Tensor | None


def targets(x: Tensor, y: Tensor, loss: str, num_classes: int) -> Targets:
    onehot = torch.nn.functional.one_hot(y, num_classes).to(x.dtype) if needs_onehot(loss) else None
    return Targets(x, y, onehot)


# called on the logging cadence with the steps done so far in this epoch and the members' step losses
ProgressFn = Callable[[int, "list[float] | None"], None]


class StepProbe(Protocol):
    """A look at the model every ``every`` optimizer steps (and at step 0, before training) that leaves the
    training untouched: no RNG drawn, no gradient, no parameter or buffer changed. ``probe.PreActivationProbe``
    is one."""

    every: int

    def __call__(self) -> list[dict[str, float]]:
        """Per member, the values to log at the current global step."""


class IndexedStep(Protocol):
    """A step that takes each batch from the resident data itself, by index, and keeps the epoch's sums.

    ``graph.GraphStep`` is one: it gathers the batch inside its CUDA graph, so one graph replay is one
    whole step with no launch outside it. ``train_epoch`` prefers this path when the step offers it.
    """

    def start_epoch(self, data: Targets, order: Tensor) -> None:
        """This epoch's sample order, ``[K, n]`` indices into ``data`` on its device; sums restart at 0."""

    def step_at(self, lo: int, hi: int) -> Tensor:
        """Train on positions ``lo:hi`` of the order (the next ones); per-member losses ``[K]`` of this step,
        valid until the next call."""

    def epoch_totals(self) -> tuple[Tensor, Tensor]:
        """Summed loss (each step's mean loss × its batch size) and correct count, per member."""


def indexed(step: object) -> IndexedStep | None:
    return step if callable(getattr(step, "step_at", None)) else None  # type: ignore[return-value]


def epoch_order(state: TrainState, n: int, spec: TrainSpec, device: torch.device) -> Tensor | None:
    """Each member's sample order for the next epoch, ``[K, n]`` on the device; None = dataset order."""
    if not spec.shuffle:
        return None
    return torch.stack([torch.randperm(n, generator=g) for g in state.shufflers]).to(device)


def epoch_steps(n: int, batch_size: int, drop_last: bool, has_batch_norm: bool) -> int:
    """Optimizer steps in one pass over ``n`` samples."""
    b = batch_size
    steps = n // b if drop_last else math.ceil(n / b)
    if not drop_last and n % b == 1 and has_batch_norm:
        steps -= 1  # BatchNorm cannot normalise a batch of one sample; that last sample waits
    return steps


def steps_per_epoch(n: int, spec: TrainSpec, has_batch_norm: bool) -> int:
    return epoch_steps(n, spec.batch_size, spec.drop_last, has_batch_norm)


def train_epoch(state: TrainState, data: Targets, spec: TrainSpec, step: StepFn,
                progress: ProgressFn | None = None, after_step: Callable[[int], None] | None = None,
                ) -> tuple[Tensor, Tensor, list[tuple[int, list[float]]], int]:
    """One pass over the training set. Returns summed loss, correct count, logged step losses, samples.
    ``after_step`` is called with the global step after each optimizer step."""
    k, n, b = state.members.count, data.x.shape[0], spec.batch_size
    device = data.x.device
    steps = steps_per_epoch(n, spec, state.members.has_batch_norm)
    order = epoch_order(state, n, spec, device)
    by_index = indexed(step)
    if by_index is not None:
        by_index.start_epoch(data, order if order is not None else torch.arange(n, device=device).expand(k, n))
    loss_sum = torch.zeros(k, device=device)
    correct = torch.zeros(k, dtype=torch.long, device=device)
    logged: list[tuple[int, list[float]]] = []
    seen = 0
    if order is None:  # every member sees the same samples: views of the data, sliced per step
        all_x, all_labels = data.x.unsqueeze(0).expand(k, -1, -1), data.labels.unsqueeze(0).expand(k, -1)
        all_onehot = None if data.onehot is None else data.onehot.unsqueeze(0).expand(k, -1, -1)
    for s in range(steps):
        lo, hi = s * b, min((s + 1) * b, n)
        if by_index is not None:
            losses = by_index.step_at(lo, hi)
        else:
            if order is None:
                x, labels = all_x[:, lo:hi], all_labels[:, lo:hi]
                onehot = None if all_onehot is None else all_onehot[:, lo:hi]
            else:
                idx = order[:, lo:hi]
                x, labels = data.x[idx], data.labels[idx]
                onehot = None if data.onehot is None else data.onehot[idx]
            losses, hits = step(x, labels, onehot)
            loss_sum += losses * (hi - lo)
            correct += hits
        seen += hi - lo
        state.global_step += 1
        if after_step is not None:
            after_step(state.global_step)
        if state.global_step % spec.log_every == 0:
            values = losses.tolist()  # the one host sync, on the cadence
            logged.append((state.global_step, values))
            _note_divergence(state, values, f"step {state.global_step} (epoch {state.epoch + 1})")
            if progress is not None:
                progress(s + 1, values)  # steps done in this epoch
            if all(state.failures):
                break
        if spec.done(state.global_step):
            break
    if by_index is not None:
        loss_sum, correct = by_index.epoch_totals()
    return loss_sum, correct, logged, seen


def _note_divergence(state: TrainState, values: Sequence[float], where: str) -> None:
    for k, value in enumerate(values):
        if state.failures[k] is None and not math.isfinite(value):
            state.failures[k] = f"training loss became {value} at {where}"


def evaluate(members: Members, data: Targets, loss_fn: MemberLoss) -> tuple[Tensor, Tensor]:
    """Mean loss and accuracy per member over a whole split, in eval mode (BN uses running stats)."""
    with torch.no_grad():  # (a block, not the decorator: mutmut skips decorated functions, docs/mutation.md)
        net = members.net
        was_training = net.training
        net.eval()
        k, n = members.count, data.x.shape[0]
        loss_sum = torch.zeros(k, device=data.x.device)
        correct = torch.zeros(k, dtype=torch.long, device=data.x.device)
        try:
            for lo in range(0, n, EVAL_CHUNK):
                x = data.x[lo:lo + EVAL_CHUNK].unsqueeze(0).expand(k, -1, -1)
                labels = data.labels[lo:lo + EVAL_CHUNK].unsqueeze(0).expand(k, -1)
                onehot = None if data.onehot is None else data.onehot[lo:lo + EVAL_CHUNK].unsqueeze(0).expand(k, -1, -1)
                out = members(x)
                loss_sum += loss_fn(out, labels, onehot) * x.shape[1]
                correct += (out.argmax(-1) == labels).sum(1)
        finally:
            net.train(was_training)
        return loss_sum / n, correct.double() / n  # float64 from the count: 2376/10000 is 0.2376, not 0.23759999871


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fit(state: TrainState, splits: Splits, spec: TrainSpec, step: StepFn,
        progress: Callable[[int], ProgressFn | None] | None = None,
        probe: StepProbe | None = None) -> Iterator[EpochReport]:
    """Train epoch after epoch, yielding each epoch's per-member metrics as it ends.

    Stops early when every member has diverged; a diverged member's metrics stop at its last good epoch.
    ``probe`` looks at steps 0, every, 2·every, ...; each epoch's looks come in its report.
    """
    loss_fn = member_loss(spec.loss)
    train = targets(splits.train_x, splits.train_y, spec.loss, splits.num_classes)
    val = targets(splits.val_x, splits.val_y, spec.loss, splits.num_classes)
    device = splits.train_x.device
    looks: list[tuple[int, list[dict[str, float]]]] = []

    def look(global_step: int) -> None:
        if probe is not None and global_step % probe.every == 0:
            looks.append((global_step, probe()))

    if state.global_step == 0:  # at initialisation: the curves start where training starts
        look(0)
    while state.epoch < spec.epochs and not spec.done(state.global_step) and not all(state.failures):
        _sync(device)
        tic = time.perf_counter()
        loss_sum, correct, logged, seen = train_epoch(
            state, train, spec, step, progress(state.epoch) if progress else None,
            look if probe is not None else None)
        _sync(device)
        seconds = time.perf_counter() - tic
        state.epoch += 1
        val_loss, val_acc = evaluate(state.members, val, loss_fn)
        train_loss = (loss_sum / max(seen, 1)).tolist()
        train_acc = (correct.double() / max(seen, 1)).tolist()
        val_loss_l, val_acc_l = val_loss.tolist(), val_acc.tolist()
        _note_divergence(state, train_loss, f"the end of epoch {state.epoch}")
        _note_divergence(state, val_loss_l, f"validation after epoch {state.epoch}")
        metrics = [
            {"train_loss": train_loss[k], "train_acc": train_acc[k],
             "val_loss": val_loss_l[k], "val_acc": val_acc_l[k], "epoch_seconds": seconds,
             "steps": float(state.global_step)}
            for k in range(state.members.count)
        ]
        yield EpochReport(state.epoch, seconds, metrics, logged, list(state.failures), looks)
        looks = []
