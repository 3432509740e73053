"""The training loop on small data it makes itself: it learns, it stops cleanly on NaN, it repeats."""

from __future__ import annotations

import io
import math
import time

import pytest
import torch

from bn_study.data import Splits
from bn_study.train.checkpoint import Resumed, capture, misfit, restore
from bn_study.train.loop import TrainSpec, evaluate, fit, new_state, steps_per_epoch, targets, train_epoch
from bn_study.train.members import Members
from bn_study.train.step import eager_step, forward_loss, train_step
from bn_study.train.losses import member_loss
from bn_study.train.model import seeded_models
from bn_study.train.optim import build_optimizer
from bn_study.train.probe import PreActivationProbe

# conf/model/init/glorot_uniform.yaml and torch_default.yaml
GLOROT = {"weight": {"_target_": "torch.nn.init.xavier_uniform_"}, "bias": {"_target_": "torch.nn.init.zeros_"}}
TORCH_DEFAULT = {"weight": None, "bias": None}
MODEL = {"name": "tiny", "hidden": [16, 16], "head": "softmax", "init": GLOROT}
NO_NORM = {"kind": "none", "layers": 0, "position": "after"}
BN1 = {"kind": "batch", "layers": 1, "position": "after", "eps": 1e-3, "momentum": 0.01}
BN_BEFORE = {**BN1, "layers": "all", "position": "before"}
SGD = {"_target_": "torch.optim.SGD", "lr": 0.1, "momentum": 0.9, "nesterov": True}


def separable(n: int = 600, features: int = 12, classes: int = 4, seed: int = 0) -> Splits:
    """Four well-separated Gaussian blobs: any working loop gets them all right."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, features, generator=g) * 4

    def draw(m: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(m) % classes
        return centres[y] + torch.randn(m, features, generator=g) * 0.5, y

    (tx, ty), (vx, vy) = draw(n), draw(200)
    return Splits(tx, ty, vx, vy, vx, vy, name="blobs", val_split="test")


def fresh_state(splits: Splits, seeds=(0,), norm=NO_NORM, optimizer=SGD, model=MODEL, act="relu"):
    models = seeded_models(seeds, model, {"name": act}, norm, num_features=splits.num_features,
                           num_classes=splits.num_classes)
    members = Members(models)
    return new_state(members, build_optimizer(members.net.parameters(), optimizer), seeds)


def train(splits: Splits, *, seeds=(0,), epochs=5, norm=NO_NORM, optimizer=SGD, loss="ce",
          model=MODEL, act="relu", batch_size=32, shuffle=True, log_every=5, state=None, probe_every=None):
    """Train ``epochs`` epochs in all: a given ``state`` continues from the epoch it holds. ``probe_every``:
    the pre-activation probe looks that often, at 2 units per layer of the first 50 validation samples."""
    state = state or fresh_state(splits, seeds, norm, optimizer, model, act)
    spec = TrainSpec(epochs=epochs, batch_size=batch_size, seeds=tuple(seeds), loss=loss, shuffle=shuffle,
                     log_every=log_every)
    probe = PreActivationProbe(state.members, splits.val_x[:50], 2, probe_every) if probe_every else None
    reports = list(fit(state, splits, spec, eager_step(state.members, member_loss(loss), state.optimizer),
                       probe=probe))
    return state, reports


def without_time(reports) -> list:
    return [(r.epoch, [{k: v for k, v in m.items() if k != "epoch_seconds"} for m in r.metrics], r.step_losses,
             r.failures) for r in reports]


@pytest.mark.parametrize("norm", [NO_NORM, BN1], ids=["none", "bn1"])
def test_loop_learns_a_separable_problem(norm):
    state, reports = train(separable(), norm=norm)
    assert [r.epoch for r in reports] == [1, 2, 3, 4, 5]
    first, last = reports[0].metrics[0], reports[-1].metrics[0]
    assert last["val_acc"] == 1.0 and last["train_acc"] > 0.99
    assert last["train_loss"] < first["train_loss"] / 5
    assert state.failures == [None]
    # step losses on the cadence: 600/32 → 19 steps per epoch, every 5th step logged
    steps = [s for r in reports for s, _ in r.step_losses]
    assert steps == list(range(5, 5 * 19 + 1, 5))


@pytest.mark.parametrize("loss,head", [("mse", "sigmoid"), ("bce", "sigmoid"), ("mse", "leaky_relu")])
def test_loop_learns_with_the_books_losses_and_heads(loss, head):
    _, reports = train(separable(), loss=loss, model={**MODEL, "head": head}, act="leaky_relu",
                       optimizer={"_target_": "torch.optim.Adam", "lr": 0.01}, epochs=8)
    assert reports[-1].metrics[0]["val_acc"] > 0.95


def test_dataset_order_when_shuffle_is_off_and_a_batch_of_one():
    splits = separable(n=40)
    _, reports = train(splits, batch_size=1, shuffle=False, epochs=2, log_every=1)
    steps = [s for r in reports for s, _ in r.step_losses]
    assert steps == list(range(1, 81))


def test_same_seed_repeats_bit_for_bit_and_another_seed_differs():
    splits = separable()
    runs = [train(splits, seeds=(s,), norm=BN1)[1] for s in (3, 3, 4)]
    history = [[({k: v for k, v in r.metrics[0].items() if k != "epoch_seconds"}, r.step_losses)
                for r in reports] for reports in runs]
    assert history[0] == history[1]
    assert history[0] != history[2]


def test_divergence_stops_cleanly_with_a_reason():
    state, reports = train(separable(), optimizer={"_target_": "torch.optim.SGD", "lr": 1e30, "momentum": 0.0}, epochs=5)
    # the first logged step after the blow-up (step 5 of 19 in epoch 1) names the value, the step and the epoch
    assert state.failures == ["training loss became nan at step 5 (epoch 1)"]
    assert [r.epoch for r in reports] == [1]  # it stopped early instead of grinding through NaNs
    assert [s for s, _ in reports[0].step_losses] == [5]  # the loop left the epoch at the failing step
    assert reports[-1].failures == state.failures


@pytest.mark.parametrize("optimizer", [SGD, {"_target_": "torch.optim.Adam", "lr": 0.01}], ids=["sgd", "adam"])
def test_save_restore_continue_equals_one_uninterrupted_fit(optimizer):
    """What a resumed job does — capture after epoch 2, write, read, restore into a freshly built job, train
    on — must give the very numbers of one fit: weights, BN statistics, optimizer moments and each member's
    shuffle generator all come back (two members, so the stacked model and per-member generators count)."""
    splits, seeds = separable(), (0, 1)
    whole, whole_reports = train(splits, seeds=seeds, norm=BN1, optimizer=optimizer, epochs=4)

    first, first_reports = train(splits, seeds=seeds, norm=BN1, optimizer=optimizer, epochs=2)
    buffer = io.BytesIO()
    torch.save(capture(first, job_hash="h", member_hashes=["a", "b"], run_ids=["r0", "r1"], history=[],
                       probe_first=None), buffer)
    buffer.seek(0)
    payload = torch.load(buffer, weights_only=True)
    later = fresh_state(splits, seeds, BN1, optimizer)
    assert misfit(later, payload, 4) is None
    restore(later, payload)
    assert (later.epoch, later.global_step) == (2, first.global_step)
    later, later_reports = train(splits, seeds=seeds, norm=BN1, optimizer=optimizer, epochs=4, state=later)

    assert without_time(first_reports + later_reports) == without_time(whole_reports)
    for key, value in whole.members.net.state_dict().items():
        assert torch.equal(later.members.net.state_dict()[key], value), key


def looked_at(reports) -> list[int]:
    return [s for r in reports for s, _ in r.probes]


@pytest.mark.parametrize("every, per_epoch", [
    (5, [[0, 5, 10, 15], [20, 25, 30, 35]]),
    (19, [[0, 19], [38]]),  # one look per epoch, at its last step
    (1, [list(range(0, 20)), list(range(20, 39))]),
    (50, [[0], []]),  # beyond the run: only the look before training
])
def test_the_step_probe_looks_at_step_0_and_every_kth_step_after(every, per_epoch):
    # 600 samples in batches of 32: 19 steps per epoch, 38 in all
    _, reports = train(separable(), seeds=(0, 1), epochs=2, norm=BN1, probe_every=every)
    assert [[s for s, _ in r.probes] for r in reports] == per_epoch
    for _, values in reports[0].probes:
        assert len(values) == 2 and len(values[0]) == 2 * 2 * 3  # members; layers × units × percentiles


@pytest.mark.parametrize("norm", [BN1, BN_BEFORE], ids=["bn_after", "bn_before"])
def test_looking_at_every_step_changes_nothing_the_run_learns(norm):
    splits, seeds = separable(), (0, 1)
    off_state, off = train(splits, seeds=seeds, norm=norm, epochs=2)
    on_state, on = train(splits, seeds=seeds, norm=norm, epochs=2, probe_every=1)
    assert len(looked_at(on)) == 39 and looked_at(off) == []
    assert without_time(on) == without_time(off)
    for key, value in off_state.members.net.state_dict().items():  # BN's running statistics included
        assert torch.equal(on_state.members.net.state_dict()[key], value), key
    assert [g.get_state().tolist() for g in on_state.shufflers] == [g.get_state().tolist() for g in off_state.shufflers]


def test_the_indexed_step_path_looks_at_the_same_steps_and_learns_the_same_with_the_probe():
    """engine=graph's path (``GraphStep``, here with no graph on the CPU): the probe runs between its steps and
    sees what the eager step's run sees; the run learns what it learns without the probe."""
    from bn_study.train.graph import GraphStep

    splits, seeds = separable(), (0, 1)
    spec = TrainSpec(epochs=2, batch_size=32, seeds=seeds, loss="ce", log_every=5)

    def by_index(probe_every):
        state = fresh_state(splits, seeds, BN_BEFORE)
        step = GraphStep(state.members, member_loss("ce"), state.optimizer, torch.device("cpu"), capture=False)
        probe = PreActivationProbe(state.members, splits.val_x[:50], 2, probe_every) if probe_every else None
        return state, list(fit(state, splits, spec, step, probe=probe))

    on_state, on = by_index(4)
    off_state, off = by_index(None)
    _, eager = train(splits, seeds=seeds, norm=BN_BEFORE, epochs=2, probe_every=4)
    assert looked_at(on) == looked_at(eager) == list(range(0, 39, 4))
    for (_, got), (_, want) in zip([p for r in on for p in r.probes], [p for r in eager for p in r.probes]):
        for g, w in zip(got, want):
            assert g == pytest.approx(w, rel=1e-4, abs=1e-5)
    assert without_time(on) == without_time(off)
    for key, value in off_state.members.net.state_dict().items():
        assert torch.equal(on_state.members.net.state_dict()[key], value), key


def test_a_resumed_fit_looks_at_the_very_steps_and_values_of_an_uninterrupted_one():
    """The looks of the epochs before a checkpoint come back with its history (what the figure draws); the
    continued fit looks at the later steps only, with the numbers one fit gives."""
    splits, seeds = separable(), (0, 1)
    _, whole = train(splits, seeds=seeds, norm=BN_BEFORE, epochs=4, probe_every=7)
    first, first_reports = train(splits, seeds=seeds, norm=BN_BEFORE, epochs=2, probe_every=7)
    buffer = io.BytesIO()
    history = [{"epoch": r.epoch, "seconds": r.seconds, "metrics": r.metrics, "failures": r.failures,
                "probes": r.probes} for r in first_reports]
    torch.save(capture(first, job_hash="h", member_hashes=["a", "b"], run_ids=["r0", "r1"], history=history,
                       probe_first=None), buffer)
    buffer.seek(0)
    later = fresh_state(splits, seeds, BN_BEFORE)
    resumed = Resumed.restore(later, torch.load(buffer, weights_only=True))
    later, later_reports = train(splits, seeds=seeds, norm=BN_BEFORE, epochs=4, state=later, probe_every=7)

    got = [look for r in resumed.history + later_reports for look in r.probes]
    assert got == [look for r in whole for look in r.probes]
    assert looked_at(later_reports) == list(range(42, 77, 7))  # none twice, none lost (38 steps were done)


def test_bn_skips_a_last_batch_of_one_sample():
    splits = separable(n=65)  # 65 = 2 × 32 + 1
    _, reports = train(splits, norm=BN1, batch_size=32, epochs=1)
    assert math.isfinite(reports[0].metrics[0]["train_loss"])


@pytest.mark.parametrize("loss, wanted", [("ce", False), ("mse", True), ("bce", True)])
def test_one_hot_targets_only_for_the_losses_that_read_them(loss, wanted):
    x, y = torch.zeros(4, 3, dtype=torch.float64), torch.tensor([0, 2, 1, 2])  # class 3 of 4 absent from the split
    made = targets(x, y, loss, num_classes=4)
    assert made.x is x and made.labels is y
    if not wanted:
        assert made.onehot is None  # 60 000 × 10 floats the cross-entropy never reads
    else:
        assert made.onehot.dtype == torch.float64 and made.onehot.tolist() == [
            [1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 1, 0]]


def test_a_step_zeroes_gradients_in_place_only_when_asked():
    """``keep_grads`` (what a CUDA graph replays into) keeps each gradient tensor; by default they are freed."""
    splits = separable(n=64)
    state = fresh_state(splits)
    forward = forward_loss(state.members, member_loss("ce"))
    x, labels = splits.train_x.unsqueeze(0), splits.train_y.unsqueeze(0)

    def grads():
        return [p.grad for p in state.members.net.parameters()]

    train_step(forward, state.optimizer, x, labels, None, keep_grads=True)
    kept = grads()
    train_step(forward, state.optimizer, x, labels, None, keep_grads=True)
    assert all(a is b for a, b in zip(kept, grads()))
    train_step(forward, state.optimizer, x, labels, None)
    assert all(a is not b for a, b in zip(kept, grads()))


@pytest.mark.parametrize("n, batch, drop_last, bn, steps", [
    (64, 32, False, False, 2), (64, 32, True, True, 2),
    (65, 32, False, False, 3), (65, 32, False, True, 2),  # BN leaves a last batch of one sample out
    (65, 32, True, False, 2), (65, 32, True, True, 2),
    (66, 32, False, True, 3), (66, 32, True, False, 2), (95, 32, True, False, 2),
    (1, 32, False, True, 0),
])
def test_steps_per_epoch(n, batch, drop_last, bn, steps):
    spec = TrainSpec(epochs=1, batch_size=batch, seeds=(0,), loss="ce", drop_last=drop_last)
    assert steps_per_epoch(n, spec, has_batch_norm=bn) == steps


class SeenSamples:
    """A step that trains nothing and records which samples each member was given (x holds each sample's index)."""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def __call__(self, x, labels, onehot):
        self.seen.append(x[:, :, 0].long())
        return torch.zeros(x.shape[0]), torch.zeros(x.shape[0], dtype=torch.long)


def indexed_splits(n: int) -> Splits:
    x = torch.arange(n, dtype=torch.float32).unsqueeze(1).repeat(1, 3)
    y = torch.arange(n) % 4
    return Splits(x, y, x, y, x, y, name="indexed", val_split="test")


@pytest.mark.parametrize("shuffle", [True, False])
def test_each_member_walks_its_own_generators_order_each_epoch(shuffle):
    splits, seeds = indexed_splits(50), (5, 6)
    state = fresh_state(splits, seeds, model={**MODEL, "hidden": [4]})
    step = SeenSamples()
    spec = TrainSpec(epochs=2, batch_size=16, seeds=seeds, loss="ce", shuffle=shuffle, log_every=1000)
    for _ in range(2):
        train_epoch(state, targets(splits.train_x, splits.train_y, "ce", 4), spec, step)
        state.epoch += 1
    walked = torch.cat(step.seen, dim=1)  # [members, 2 epochs × 50]
    for k, seed in enumerate(seeds):
        g = torch.Generator().manual_seed(seed)
        want = torch.cat([torch.randperm(50, generator=g), torch.randperm(50, generator=g)]) if shuffle \
            else torch.arange(50).repeat(2)
        assert torch.equal(walked[k], want), k


class ByIndex:
    """The indexed-step protocol (what GraphStep offers): the loop hands over the order and reads the totals back."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __call__(self, x, labels, onehot):
        raise AssertionError("an indexed step is never called with gathered batches")

    def start_epoch(self, data, order):
        self.data, self.order = data, order
        self.calls.append(("start", tuple(order.shape)))

    def step_at(self, lo, hi):
        self.calls.append(("step", lo, hi))
        return torch.full((1,), 0.5)

    def epoch_totals(self):
        return torch.tensor([7.0]), torch.tensor([3])


@pytest.mark.parametrize("shuffle", [False, True])
def test_a_step_that_takes_batches_by_index_gets_the_order_and_gives_the_totals(shuffle):
    splits = indexed_splits(40)
    state = fresh_state(splits, seeds=(3,), model={**MODEL, "hidden": [4]})
    step = ByIndex()
    spec = TrainSpec(epochs=1, batch_size=16, seeds=(3,), loss="ce", shuffle=shuffle, log_every=2)
    data = targets(splits.train_x, splits.train_y, "ce", 4)
    loss_sum, correct, logged, seen = train_epoch(state, data, spec, step)
    assert step.calls == [("start", (1, 40)), ("step", 0, 16), ("step", 16, 32), ("step", 32, 40)]
    assert step.data is data
    want = torch.randperm(40, generator=torch.Generator().manual_seed(3)) if shuffle else torch.arange(40)
    assert torch.equal(step.order[0], want)
    assert (loss_sum.tolist(), correct.tolist(), logged, seen) == ([7.0], [3], [(2, [0.5])], 40)


class KnownLosses(SeenSamples):
    """A step whose loss is the mean index of its batch and whose hits are the batch's even indices."""

    def __call__(self, x, labels, onehot):
        idx = x[:, :, 0]
        self.seen.append(idx.long())
        return idx.mean(1), (idx.long() % 2 == 0).sum(1)


def test_an_epochs_sums_weight_each_step_by_its_batch_size():
    splits = indexed_splits(40)  # batches of 16, 16 and 8
    state = fresh_state(splits, model={**MODEL, "hidden": [4]})
    spec = TrainSpec(epochs=1, batch_size=16, seeds=(0,), loss="ce", shuffle=False, log_every=1000)
    loss_sum, correct, _, seen = train_epoch(state, targets(splits.train_x, splits.train_y, "ce", 4), spec,
                                             KnownLosses())
    assert (loss_sum.tolist(), correct.tolist(), seen) == ([float(sum(range(40)))], [20], 40)


def test_fit_reports_means_over_the_samples_seen_the_time_taken_and_the_progress():
    splits = indexed_splits(40)
    state = fresh_state(splits, model={**MODEL, "hidden": [4]})
    spec = TrainSpec(epochs=2, batch_size=16, seeds=(0,), loss="ce", shuffle=False, log_every=2)
    calls = []

    def progress(epoch):
        calls.append(("epoch", epoch))
        return lambda steps, values: calls.append((steps, values))

    tic = time.perf_counter()
    reports = list(fit(state, splits, spec, KnownLosses(), progress))
    took = time.perf_counter() - tic
    assert [(r.metrics[0]["train_loss"], r.metrics[0]["train_acc"]) for r in reports] == [(19.5, 0.5)] * 2
    assert all(0 < r.seconds < took and r.metrics[0]["epoch_seconds"] == r.seconds for r in reports)
    # global steps 2, 4 and 6 are on the cadence: batches 16..31 (step 2 of epoch 1), then 0..15 and 32..39 of the
    # second epoch (its steps 1 and 3); progress hears the steps done so far in the epoch
    assert calls == [("epoch", 0), (2, [23.5]), ("epoch", 1), (1, [7.5]), (3, [35.5])]


def test_a_loss_that_turns_nan_at_the_epochs_end_or_in_validation_says_where():
    splits = indexed_splits(40)
    spec = TrainSpec(epochs=3, batch_size=16, seeds=(0,), loss="ce", shuffle=False, log_every=1000)

    class NanAfterFirstEpoch(KnownLosses):
        def __call__(self, x, labels, onehot):
            losses, hits = super().__call__(x, labels, onehot)
            return (losses * float("nan") if len(self.seen) > 3 else losses), hits

    state = fresh_state(splits, model={**MODEL, "hidden": [4]})
    reports = list(fit(state, splits, spec, NanAfterFirstEpoch()))
    assert state.failures == ["training loss became nan at the end of epoch 2"] and len(reports) == 2

    state = fresh_state(splits, model={**MODEL, "hidden": [4]})
    with torch.no_grad():
        state.members.net.head.bias.fill_(float("nan"))
    list(fit(state, splits, spec, KnownLosses()))
    assert state.failures == ["training loss became nan at validation after epoch 1"]


def test_evaluation_is_the_mean_over_the_whole_split_in_chunks(monkeypatch):
    monkeypatch.setattr("bn_study.train.loop.EVAL_CHUNK", 7)  # 20 samples: chunks of 7, 7 and 6
    splits = separable(n=20, classes=4)
    state = fresh_state(splits, seeds=(0, 1), norm=BN1)
    state.members.net.train()
    data = targets(splits.val_x[:20], splits.val_y[:20], "ce", 4)
    loss, acc = evaluate(state.members, data, member_loss("ce"))
    assert state.members.net.training  # handed back in train mode
    for k in range(2):
        net = state.members.member(k).eval()
        with torch.no_grad():
            out = net(data.x)
        want_loss = torch.nn.functional.cross_entropy(out, data.labels)
        want_acc = (out.argmax(1) == data.labels).float().mean()
        assert loss[k].item() == pytest.approx(want_loss.item(), rel=1e-5)
        assert acc[k].item() == pytest.approx(want_acc.item())


def test_an_epoch_of_one_sample_reports_that_samples_loss():
    splits = indexed_splits(1)
    state = fresh_state(splits, model={**MODEL, "hidden": [4]})
    spec = TrainSpec(epochs=1, batch_size=16, seeds=(0,), loss="ce", shuffle=False, log_every=1000)
    [report] = fit(state, Splits(splits.train_x + 2, splits.train_y, splits.val_x, splits.val_y, splits.test_x,
                                 splits.test_y, name="one", val_split="test"), spec, KnownLosses())
    assert (report.metrics[0]["train_loss"], report.metrics[0]["train_acc"]) == (2.0, 1.0)  # index 2: even, a hit


@pytest.mark.parametrize("indexed", [False, True], ids=["gathered", "by_index"])
def test_max_steps_ends_training_mid_epoch_with_that_epochs_means_over_the_steps_taken(indexed):
    """40 samples in batches of 16 are 3 steps an epoch: max_steps=4 is one whole epoch and the first batch of
    the second, which ends there (evaluated as epoch 2) although epochs=5; `steps` counts the updates made."""
    splits = indexed_splits(40)
    state = fresh_state(splits, model={**MODEL, "hidden": [4]})
    spec = TrainSpec(epochs=5, batch_size=16, seeds=(0,), loss="ce", shuffle=False, log_every=1, max_steps=4)
    assert spec.planned_epochs(40, has_batch_norm=False) == 2
    step = ByIndex() if indexed else KnownLosses()
    reports = list(fit(state, splits, spec, step))
    assert [r.epoch for r in reports] == [1, 2] and state.global_step == 4
    assert [r.metrics[0]["steps"] for r in reports] == [3.0, 4.0]
    assert [s for r in reports for s, _ in r.step_losses] == [1, 2, 3, 4]
    if indexed:
        assert step.calls[-2:] == [("start", (1, 40)), ("step", 0, 16)]
    else:  # epoch 2 trained on samples 0..15 only: its mean loss is theirs, its accuracy their even share
        assert (reports[1].metrics[0]["train_loss"], reports[1].metrics[0]["train_acc"]) == (7.5, 0.5)
        assert [t.tolist() for t in step.seen[3:]] == [[list(range(16))]]


@pytest.mark.parametrize("max_steps, epochs", [(None, 3), (6, 2), (7, 3), (100, 3), (1, 1)])
def test_the_epochs_a_run_plans_are_its_epochs_or_as_many_as_its_max_steps_need(max_steps, epochs):
    spec = TrainSpec(epochs=3, batch_size=16, seeds=(0,), loss="ce", max_steps=max_steps)
    assert spec.planned_epochs(40, has_batch_norm=False) == epochs


def test_the_step_bar_counts_the_steps_each_epoch_really_makes():
    """40 samples in batches of 16 are 3 steps; max_steps=5 leaves the second epoch 2. The bar's total is each
    epoch's real count, what it shows never passes it, and it ends full."""
    from bn_study.ui import TrainingProgress

    splits = indexed_splits(40)
    state = fresh_state(splits, model={**MODEL, "hidden": [4]})
    spec = TrainSpec(epochs=3, batch_size=16, seeds=(0,), loss="ce", shuffle=False, log_every=2, max_steps=5)
    seen = []
    with TrainingProgress(True, spec.planned_epochs(40, False), lambda e: spec.steps_in_epoch(e, 40, False), "t") as bars:
        task = lambda: bars._progress.tasks[bars._steps]  # noqa: E731

        def for_epoch(epoch):
            advance = bars.for_epoch(epoch)

            def shown(done, losses):
                advance(done, losses)
                seen.append((epoch, task().completed, task().total))
            return shown

        for report in fit(state, splits, spec, KnownLosses(), for_epoch):
            bars.epoch_done([m["val_acc"] for m in report.metrics])
            seen.append((report.epoch, "end", task().completed, task().total))
        epochs_task = bars._progress.tasks[bars._epochs]
        assert (epochs_task.completed, epochs_task.total) == (2, 2)
    assert seen == [(0, 2, 3), (1, "end", 3, 3), (1, 1, 2), (2, "end", 2, 2)]
