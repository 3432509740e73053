"""Engines (``engine=auto|eager|graph|compile``) train exactly what the eager step trains.

On the CPU: ``eager`` and ``auto`` are today's eager step bit for bit; the CUDA-graph step's own logic
(the batch gathered from a device-side position in a static order, epoch sums kept by the step, the
last partial batch, gradients zeroed in place) runs eagerly with ``capture=False`` and must also match
bit for bit, since it performs the very same operations in the same order. Wrong choices are refused.

On a CUDA device (skipped elsewhere): the captured graphs must reproduce the eager engine within the
tolerance of tests/test_batched_seeds.py (1e-4 relative, 1e-5 absolute, over >= 50 steps), BN running
statistics included. Why not bit for bit there: Adam must be ``capturable=True`` in a graph, which
computes its bias corrections on the device with tensor ops instead of Python floats — the same
formula, rounded differently in the last bits; everything else is the same kernels on the same data.
"""

from __future__ import annotations

import pytest
import torch

from bn_study.data import Splits
from bn_study.train.engines import ENGINES, build_engine, resolve_engine
from bn_study.train.graph import GraphStep
from bn_study.errors import UserError
from bn_study.train.loop import TrainSpec, fit, new_state
from bn_study.train.members import Members
from bn_study.train.step import eager_step
from bn_study.train.losses import member_loss
from bn_study.train.model import seeded_models
from bn_study.train.optim import build_optimizer
from bn_study.config.rules import ENGINES as VALID_ENGINES

RTOL, ATOL = 1e-4, 1e-5
# conf/model/init/glorot_uniform.yaml and torch_default.yaml
GLOROT = {"weight": {"_target_": "torch.nn.init.xavier_uniform_"}, "bias": {"_target_": "torch.nn.init.zeros_"}}
TORCH_DEFAULT = {"weight": None, "bias": None}
MODEL = {"name": "mini", "hidden": [32, 24, 16], "head": "softmax", "init": GLOROT}
BOOK = {"name": "mini_book", "hidden": [24], "head": "sigmoid", "init": TORCH_DEFAULT}
NORMS = {
    "plain": {"kind": "none", "layers": 0, "position": "after"},
    "bn2": {"kind": "batch", "layers": 2, "position": "after", "eps": 1e-3, "momentum": 0.01},
    "ln": {"kind": "layer", "layers": "all", "position": "after", "eps": 1e-5},
}
OPTIMIZERS = {
    "sgd_nesterov": {"_target_": "torch.optim.SGD", "lr": 0.05, "momentum": 0.9, "nesterov": True},
    "adam": {"_target_": "torch.optim.Adam", "lr": 0.003, "betas": [0.9, 0.999], "eps": 1e-7},
}
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (CUDA graphs)")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one CPU thread is faster, and immune to a busy machine's thread stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def data(n: int = 290, features: int = 20, device: str | torch.device = "cpu") -> Splits:
    """290 samples at batch 32: 9 full batches and a partial one of 2 — 50 steps in 5 epochs."""
    g = torch.Generator().manual_seed(7)
    x = torch.rand(n, features, generator=g)
    y = (x[:, :5].sum(1) * 2).long().clamp(max=9)
    x, y = x.to(device), y.to(device)
    return Splits(x, y, x[:64], y[:64], x[:64], y[:64], name="synthetic", val_split="test")


def spec(seeds, *, loss="ce", batch_size=32, shuffle=True, epochs=5) -> TrainSpec:
    return TrainSpec(epochs=epochs, batch_size=batch_size, seeds=tuple(seeds), loss=loss, shuffle=shuffle,
                     log_every=1)


def models(seeds, norm, model=MODEL):
    splits = data()
    return Members(seeded_models(seeds, model, {"name": "sigmoid"}, norm, num_features=splits.num_features,
                                 num_classes=splits.num_classes))


def todays(seeds, norm, optimizer, run_spec, model=MODEL, device="cpu"):
    """The training this project did before engines existed: build_optimizer + eager_step."""
    splits = data(device=device)
    members = models(seeds, norm, model)
    members.net.to(device)
    opt = build_optimizer(members.net.parameters(), optimizer)
    state = new_state(members, opt, seeds)
    return members, list(fit(state, splits, run_spec, eager_step(members, member_loss(run_spec.loss), opt)))


def with_engine(engine, seeds, norm, optimizer, run_spec, model=MODEL, device="cpu"):
    splits = data(device=device)
    members = models(seeds, norm, model)
    opt, step = build_engine(engine, members, run_spec.loss, optimizer, torch.device(device))
    state = new_state(members, opt, seeds)
    return members, list(fit(state, splits, run_spec, step)), step


def graph_logic(seeds, norm, optimizer, run_spec, model=MODEL):
    """GraphStep's code path run eagerly on the CPU (``capture=False``)."""
    splits = data()
    members = models(seeds, norm, model)
    opt = build_optimizer(members.net.parameters(), optimizer)
    step = GraphStep(members, member_loss(run_spec.loss), opt, torch.device("cpu"), capture=False)
    state = new_state(members, opt, seeds)
    return members, list(fit(state, splits, run_spec, step))


def history(reports):
    return [([{k: v for k, v in m.items() if k != "epoch_seconds"} for m in r.metrics], r.step_losses)
            for r in reports]


def assert_identical(a, ra, b, rb):
    for (name, x), (_, y) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        assert torch.equal(x.cpu(), y.cpu()), f"{name} differs"
    assert history(ra) == history(rb)
    assert sum(len(r.step_losses) for r in ra) >= 50


def assert_close(a, ra, b, rb):
    for (name, x), (_, y) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        assert torch.allclose(x.float().cpu(), y.float().cpu(), rtol=RTOL, atol=ATOL), f"{name} differs"
    got = torch.tensor([v for r in ra for _, vs in r.step_losses for v in vs])
    want = torch.tensor([v for r in rb for _, vs in r.step_losses for v in vs])
    assert got.numel() >= 50 and torch.allclose(got, want, rtol=RTOL, atol=ATOL)
    for x, y in zip(ra, rb):
        for mx, my in zip(x.metrics, y.metrics):
            assert mx["val_loss"] == pytest.approx(my["val_loss"], rel=RTOL)
            assert mx["train_loss"] == pytest.approx(my["train_loss"], rel=RTOL)


# -- choosing an engine ------------------------------------------------------------------------------

def test_engine_names_match_what_the_config_accepts():
    assert set(ENGINES) == set(VALID_ENGINES)


def test_auto_is_eager_on_the_cpu_and_graph_on_cuda():
    assert resolve_engine("auto", torch.device("cpu")) == "eager"
    assert resolve_engine("auto", torch.device("cuda")) == "graph"
    assert resolve_engine("eager", torch.device("cuda")) == "eager"
    assert resolve_engine("compile", torch.device("cpu")) == "compile"


def test_graph_on_the_cpu_is_refused_in_one_sentence():
    with pytest.raises(UserError, match=r"^engine=graph needs a CUDA device") as err:
        build_engine("graph", models((0,), NORMS["plain"]), "ce", OPTIMIZERS["adam"], torch.device("cpu"))
    assert str(err.value).count(". ") == 0 and str(err.value).endswith(".")


@pytest.mark.parametrize("engine", ["fast", "cuda", "", "Graph"])
def test_unknown_engine_is_refused(engine):
    with pytest.raises(UserError, match="engine=.* is not allowed; choose one of: auto, eager, graph, compile"):
        build_engine(engine, models((0,), NORMS["plain"]), "ce", OPTIMIZERS["adam"], torch.device("cpu"))


# -- the CPU path: bit for bit -----------------------------------------------------------------------

@pytest.mark.parametrize("opt_name", OPTIMIZERS)
@pytest.mark.parametrize("norm_name", NORMS)
def test_eager_is_todays_eager_step_bit_for_bit(norm_name, opt_name):
    seeds = (0, 1, 2)
    want, want_reports = todays(seeds, NORMS[norm_name], OPTIMIZERS[opt_name], spec(seeds))
    got, got_reports, _ = with_engine("eager", seeds, NORMS[norm_name], OPTIMIZERS[opt_name], spec(seeds))
    assert_identical(got, got_reports, want, want_reports)


@pytest.mark.parametrize("opt_name", OPTIMIZERS)
@pytest.mark.parametrize("norm_name", NORMS)
def test_auto_on_the_cpu_is_the_eager_step_with_fused_optimizer_kernels(norm_name, opt_name):
    """Bit for bit ``eager_step`` with ``fused=True``; within the batched-seeds tolerance of today's."""
    seeds, norm, optimizer = (0, 1, 2), NORMS[norm_name], OPTIMIZERS[opt_name]
    opt, _ = build_engine("auto", models(seeds, norm), "ce", optimizer, torch.device("cpu"))
    assert opt.param_groups[0]["fused"] is True
    got, got_reports, _ = with_engine("auto", seeds, norm, optimizer, spec(seeds))
    splits, members = data(), models(seeds, norm)
    opt = build_optimizer(members.net.parameters(), optimizer, fused=True)
    fused_reports = list(fit(new_state(members, opt, seeds), splits, spec(seeds),
                             eager_step(members, member_loss("ce"), opt)))
    assert_identical(got, got_reports, members, fused_reports)
    want, want_reports = todays(seeds, norm, optimizer, spec(seeds))
    assert_close(got, got_reports, want, want_reports)


def test_auto_on_the_cpu_is_eager_bit_for_bit_for_plain_sgd():
    """The book's plain SGD gains nothing from the fused kernel, so auto keeps PyTorch's default there."""
    seeds, plain_sgd = (0, 1), {"_target_": "torch.optim.SGD", "lr": 0.05, "momentum": 0.0, "nesterov": False}
    run = spec(seeds, loss="mse", batch_size=1, shuffle=False, epochs=1)
    model = {**BOOK, "head": "sigmoid"}
    opt, _ = build_engine("auto", models(seeds, NORMS["plain"], model), "mse", plain_sgd, torch.device("cpu"))
    assert not opt.param_groups[0]["fused"]
    want, want_reports = todays(seeds, NORMS["plain"], plain_sgd, run, model=model)
    got, got_reports, _ = with_engine("auto", seeds, NORMS["plain"], plain_sgd, run, model=model)
    assert_identical(got, got_reports, want, want_reports)


@pytest.mark.parametrize("opt_name", OPTIMIZERS)
def test_auto_on_the_cpu_batches_seeds_like_separate_runs(opt_name):
    """tests/test_batched_seeds.py's claim, for the engine a CPU job gets by default."""
    seeds, norm, optimizer = (0, 1, 2), NORMS["bn2"], OPTIMIZERS[opt_name]
    stacked, stacked_reports, _ = with_engine("auto", seeds, norm, optimizer, spec(seeds))
    for k, seed in enumerate(seeds):
        alone, alone_reports, _ = with_engine("auto", (seed,), norm, optimizer, spec((seed,)))
        for (name, got), (_, want) in zip(stacked.member(k).state_dict().items(), alone.net.state_dict().items()):
            assert torch.allclose(got.float(), want.float(), rtol=RTOL, atol=ATOL), f"seed {seed}: {name}"
        got_losses = torch.tensor([v[k] for r in stacked_reports for _, v in r.step_losses])
        want_losses = torch.tensor([v[0] for r in alone_reports for _, v in r.step_losses])
        assert torch.allclose(got_losses, want_losses, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("seeds", [(0,), (0, 1, 2)], ids=["one", "stacked"])
@pytest.mark.parametrize("opt_name", OPTIMIZERS)
@pytest.mark.parametrize("norm_name", NORMS)
def test_graph_step_logic_matches_the_eager_step(norm_name, opt_name, seeds):
    """Gather by device-side position, in-step epoch sums, the partial last batch (2 samples), shuffling."""
    want, want_reports = todays(seeds, NORMS[norm_name], OPTIMIZERS[opt_name], spec(seeds))
    got, got_reports = graph_logic(seeds, NORMS[norm_name], OPTIMIZERS[opt_name], spec(seeds))
    assert_identical(got, got_reports, want, want_reports)


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_graph_step_logic_in_the_books_shape(loss):
    """Batch 1, dataset order, one-hot targets gathered by index too."""
    seeds, run = (0, 1), spec((0, 1), loss=loss, batch_size=1, shuffle=False, epochs=1)
    model = {**BOOK, "head": "sigmoid"}
    want, want_reports = todays(seeds, NORMS["plain"], OPTIMIZERS["adam"], run, model=model)
    got, got_reports = graph_logic(seeds, NORMS["plain"], OPTIMIZERS["adam"], run, model=model)
    assert_identical(got, got_reports, want, want_reports)


def test_a_checkpoint_from_a_graph_run_loads_into_a_cpu_optimizer():
    """Loading copies param-group flags too; a CUDA-graph run's ``capturable=True`` must not stick."""
    members = models((0,), NORMS["plain"])
    opt, step = build_engine("auto", members, "ce", OPTIMIZERS["adam"], torch.device("cpu"))
    x, y = torch.rand(1, 8, 20), torch.randint(0, 9, (1, 8))
    step(x, y, None)
    saved = opt.state_dict()
    saved["param_groups"][0]["capturable"] = True  # what a graph run's checkpoint holds
    again, step_again = build_engine("auto", members, "ce", OPTIMIZERS["adam"], torch.device("cpu"))
    again.load_state_dict(saved)
    assert again.param_groups[0]["capturable"] is False
    step_again(x, y, None)  # a capturable Adam on the CPU would raise here


# -- the safety net: a graph that cannot be recorded or launched ------------------------------------

class ScriptedRecorder:
    """CUDA graphs' protocol on the CPU: warm-up runs the body, recording computes nothing and returns a
    replay that runs the body — and a failure on cue, where a real capture or launch would raise."""

    def __init__(self, fail_record: int | None = None, fail_replay: int | None = None, fail_warm: bool = False):
        self.fail_record, self.fail_replay, self.fail_warm = fail_record, fail_replay, fail_warm
        self.warms = self.records = self.replays = 0

    def warm(self, body):
        self.warms += 1
        if self.fail_warm:
            raise RuntimeError("the step itself is broken")
        body()

    def record(self, body):
        self.records += 1
        if self.records == self.fail_record:
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nCUDA kernel errors ...")

        def replay():
            self.replays += 1
            if self.replays == self.fail_replay:
                raise RuntimeError("CUDA error: the graph could not be launched")
            body()

        return replay


def scripted_graph(recorder, seeds=(0, 1), norm=NORMS["bn2"], optimizer=OPTIMIZERS["adam"], run_spec=None):
    run_spec = run_spec or spec(seeds)
    splits, members = data(), models(seeds, norm)
    opt = build_optimizer(members.net.parameters(), optimizer)
    step = GraphStep(members, member_loss(run_spec.loss), opt, torch.device("cpu"), recorder=recorder)
    return members, list(fit(new_state(members, opt, seeds), splits, run_spec, step)), step


def fallback_lines(caplog):
    return [r for r in caplog.records if "continuing on the eager engine" in r.getMessage()]


def test_scripted_graphs_train_what_the_eager_step_trains():
    """The fake is faithful: with no failure both shapes are 'graphs' and the training is the eager one."""
    seeds = (0, 1)
    recorder = ScriptedRecorder()
    got, got_reports, step = scripted_graph(recorder)
    assert sorted(step.captured) == [("index", 2), ("index", 32)] and step.fallback is None
    # 50 steps: per shape 3 warm-ups, then every step a replay (the recording's own step included)
    assert (recorder.warms, recorder.records, recorder.replays) == (6, 2, 44)
    want, want_reports = todays(seeds, NORMS["bn2"], OPTIMIZERS["adam"], spec(seeds))
    assert_identical(got, got_reports, want, want_reports)


@pytest.mark.parametrize("failure", [{"fail_record": 1}, {"fail_record": 2}, {"fail_replay": 1}, {"fail_replay": 17}],
                         ids=["first-capture", "second-shape-capture", "first-launch", "a-later-launch"])
def test_a_failed_capture_or_launch_goes_on_eagerly_from_the_same_state(failure, caplog):
    seeds = (0, 1)
    recorder = ScriptedRecorder(**failure)
    with caplog.at_level("WARNING", logger="bn_study"):
        got, got_reports, step = scripted_graph(recorder)
    # bit for bit the eager engine's training: the failed step is neither lost nor applied twice
    want, want_reports = todays(seeds, NORMS["bn2"], OPTIMIZERS["adam"], spec(seeds))
    assert_identical(got, got_reports, want, want_reports)
    lines = fallback_lines(caplog)
    assert len(lines) == 1 and "\n" not in lines[0].getMessage()
    assert lines[0].getMessage().startswith("engine=graph: the CUDA graph of the ")
    assert step.fallback.startswith("RuntimeError: CUDA error: ") and "\n" not in step.fallback
    # graphs were given up for good: no shape is recorded or replayed again
    records, replays = recorder.records, recorder.replays
    assert step.captured == [] and step.recorder is None
    list(fit(new_state(got, step.optimizer, seeds), data(), spec(seeds, epochs=1), step))
    assert (recorder.records, recorder.replays) == (records, replays)


def test_a_failing_step_is_the_jobs_error_not_a_graph_fallback(caplog):
    with caplog.at_level("WARNING", logger="bn_study"), pytest.raises(RuntimeError, match="step itself is broken"):
        scripted_graph(ScriptedRecorder(fail_warm=True))
    assert fallback_lines(caplog) == []


# -- CUDA: the captured graphs (run where a GPU is lent) ---------------------------------------------

@CUDA
@pytest.mark.parametrize("seeds", [(0,), (0, 1, 2)], ids=["one", "stacked"])
@pytest.mark.parametrize("opt_name", OPTIMIZERS)
@pytest.mark.parametrize("norm_name", NORMS)
def test_graph_reproduces_eager_on_cuda(norm_name, opt_name, seeds):
    run = spec(seeds)
    want, want_reports, _ = with_engine("eager", seeds, NORMS[norm_name], OPTIMIZERS[opt_name], run, device="cuda")
    got, got_reports, step = with_engine("graph", seeds, NORMS[norm_name], OPTIMIZERS[opt_name], run, device="cuda")
    assert_close(got, got_reports, want, want_reports)  # BN running statistics are in the state dict
    # the full batch (32) and the partial last one (2) both ran as graphs by the end
    assert ("index", 32) in step.captured and ("index", 2) in step.captured


@CUDA
def test_auto_is_the_graph_engine_on_cuda():
    _, step = build_engine("auto", models((0,), NORMS["plain"]), "ce", OPTIMIZERS["adam"], torch.device("cuda"))
    assert isinstance(step, GraphStep)
    assert next(step.members.net.parameters()).is_cuda


@CUDA
@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_graph_in_the_books_shape_on_cuda(loss):
    seeds, run = (0, 1), spec((0, 1), loss=loss, batch_size=1, shuffle=False, epochs=1)
    model = {**BOOK, "head": "sigmoid"}
    want, want_reports, _ = with_engine("eager", seeds, NORMS["plain"], OPTIMIZERS["adam"], run, model, "cuda")
    got, got_reports, step = with_engine("graph", seeds, NORMS["plain"], OPTIMIZERS["adam"], run, model, "cuda")
    assert_close(got, got_reports, want, want_reports)
    assert step.captured == [("index", 1)]


@CUDA
def test_graph_resumes_from_a_cpu_checkpoint_loaded_before_the_first_step():
    """Resume loads model and optimizer state right after build_engine: the graph must train on it."""
    seeds, norm, optimizer = (0, 1), NORMS["bn2"], OPTIMIZERS["adam"]
    first = spec(seeds, epochs=2)
    # 2 epochs on the CPU, then 4 more on CUDA from that state: eagerly, and as a graph
    results = []
    for engine in ("eager", "graph"):
        splits = data(device="cuda")
        cpu_members = models(seeds, norm)
        cpu_opt, cpu_step = build_engine("eager", cpu_members, "ce", optimizer, torch.device("cpu"))
        cpu_state = new_state(cpu_members, cpu_opt, seeds)
        list(fit(cpu_state, data(), first, cpu_step))
        saved_net, saved_opt = cpu_members.net.state_dict(), cpu_opt.state_dict()
        fresh = models(seeds, norm)
        opt, step = build_engine(engine, fresh, "ce", optimizer, torch.device("cuda"))
        fresh.net.load_state_dict(saved_net)
        opt.load_state_dict(saved_opt)
        state = new_state(fresh, opt, seeds)
        for g, s in zip(state.shufflers, cpu_state.shufflers):
            g.set_state(s.get_state())
        state.epoch = cpu_state.epoch
        results.append((fresh, list(fit(state, splits, spec(seeds, epochs=6), step))))
    (want, want_reports), (got, got_reports) = results
    assert_close(got, got_reports, want, want_reports)


@CUDA
def test_graph_rerecords_when_the_optimizer_state_is_replaced_after_capture():
    seeds, norm, optimizer = (0,), NORMS["bn2"], OPTIMIZERS["adam"]
    splits = data(device="cuda")
    members = models(seeds, norm)
    opt, step = build_engine("graph", members, "ce", optimizer, torch.device("cuda"))
    state = new_state(members, opt, seeds)
    list(fit(state, splits, spec(seeds, epochs=2), step))
    assert step.captured
    opt.load_state_dict(opt.state_dict())  # new state tensors: the recorded graphs point at the old ones
    reference = models(seeds, norm)
    ref_opt, ref_step = build_engine("eager", reference, "ce", optimizer, torch.device("cuda"))
    reference.net.load_state_dict(members.net.state_dict())
    ref_opt.load_state_dict(opt.state_dict())
    ref_state = new_state(reference, ref_opt, seeds)
    for g, s in zip(ref_state.shufflers, state.shufflers):
        g.set_state(s.get_state())
    ref_state.epoch = state.epoch
    got = list(fit(state, splits, spec(seeds, epochs=4), step))
    want = list(fit(ref_state, splits, spec(seeds, epochs=4), ref_step))
    assert_close(members, got, reference, want)


@CUDA
def test_a_real_capture_failure_on_cuda_goes_on_eagerly(caplog):
    """An op that is illegal while a stream captures (a device sync) breaks the real capture: the job
    says so once and finishes on the eager path, close to the eager engine's training."""
    from bn_study.train.graph import CudaRecorder

    class SyncingRecorder(CudaRecorder):
        def record(self, body):
            def with_sync():
                body()
                torch.cuda.synchronize()  # not permitted during capture

            return super().record(with_sync)

    seeds, norm, optimizer = (0, 1), NORMS["bn2"], OPTIMIZERS["adam"]
    run = spec(seeds)
    want, want_reports, _ = with_engine("eager", seeds, norm, optimizer, run, device="cuda")
    splits, members = data(device="cuda"), models(seeds, norm)
    opt, _ = build_engine("graph", members, "ce", optimizer, torch.device("cuda"))
    step = GraphStep(members, member_loss("ce"), opt, torch.device("cuda"), recorder=SyncingRecorder(torch.device("cuda")))
    with caplog.at_level("WARNING", logger="bn_study"):
        got_reports = list(fit(new_state(members, opt, seeds), splits, run, step))
    assert len(fallback_lines(caplog)) == 1 and step.captured == [] and step.fallback
    assert_close(members, got_reports, want, want_reports)
