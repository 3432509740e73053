"""Every user-settable option the other tests leave alone, through the real entry point on real MNIST at toy
sizes: each test would fail if its option stopped doing what conf/config.yaml and the README say it does."""

from __future__ import annotations

import math
import re
import shutil

import pytest
from omegaconf import OmegaConf

# The smallest real run: 500 training images (4 steps of 128, the last one partial), one epoch.
TINY = ("data.limit_train=500", "epochs=1", "threads=1")
QUIET = ("probe.enabled=false", "tracking.figures=false")


def metrics_of(client, run) -> dict[str, list[tuple[int, float]]]:
    return {key: [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, key),
                                                     key=lambda m: m.step)]
            for key in run.data.metrics}


def is_count(x: float) -> bool:
    """``x`` is a whole number, up to the float32 rounding of the fraction it was computed from (~1e-7
    relative; a neighbouring count is 1 away)."""
    return abs(x - round(x)) <= 1e-6 * max(abs(x), 1.0)


def one_run(runs_in, where):
    client, runs = runs_in(where)
    [run] = runs
    assert run.info.status == "FINISHED"
    return client, run


# --- engine=compile ------------------------------------------------------------------------------------------

def _cxx() -> str | None:
    for name in ("c++", "g++", "clang++"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_compile_engine_trains_what_eager_trains_on_the_cpu(cli, tmp_path, runs_in):
    """``engine=compile`` (torch.compile of forward + loss, Inductor's C++ backend on the CPU) finishes a run
    whose metrics are eager's up to float32 rounding. 256 images = two full batches of 128: one compiled shape.
    Tolerance: Inductor fuses the forward/loss ops into its own C++ loops, which may sum in a different order
    than ATen's kernels — ~1 ulp per op (float32: ~1e-7 relative) through two SGD steps; rel 1e-5 leaves that
    room and nothing more (one wrong gradient step moves train_loss by ~1e-2). Accuracies count whole images,
    so an ulp can flip at most an image whose top two logits tie: they must match exactly or by one image."""
    if _cxx() is None:
        pytest.skip("torch.compile on the CPU needs a C++ compiler (Inductor builds C++ kernels); none on PATH")
    import torch._dynamo.utils

    common = ("data.limit_train=256", "epochs=1", "threads=1", "log_every=1", *QUIET)
    eager_dir, compile_dir = tmp_path / "eager", tmp_path / "compile"
    eager_dir.mkdir()
    compile_dir.mkdir()
    assert cli(*common, "engine=eager", cwd=eager_dir).code == 0
    torch._dynamo.utils.counters.clear()
    result = cli(*common, "engine=compile", cwd=compile_dir)
    assert result.code == 0, result.err[-3000:]
    # the forward + loss really went through Dynamo (one graph for the one batch shape), not op by op
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1

    client_e, run_e = one_run(runs_in, eager_dir)
    client_c, run_c = one_run(runs_in, compile_dir)
    assert run_c.data.params["engine"] == "compile"
    eager, compiled = metrics_of(client_e, run_e), metrics_of(client_c, run_c)
    assert set(eager) == set(compiled)
    assert [s for s, _ in compiled["step_loss"]] == [1, 2]
    for key in ("step_loss", "train_loss", "val_loss", "test_loss"):
        for (se, ve), (sc, vc) in zip(eager[key], compiled[key]):
            assert se == sc and vc == pytest.approx(ve, rel=1e-5), key
    for key in ("train_acc", "val_acc", "test_acc"):
        [(_, ve)], [(_, vc)] = eager[key], compiled[key]
        n = 256 if key == "train_acc" else 10_000
        assert abs(vc - ve) * n <= 1 + 1e-6, key


# --- drop_last -----------------------------------------------------------------------------------------------

def test_drop_last_drops_the_partial_batch(cli, tmp_path, runs_in):
    """500 images in batches of 128: 3 full batches + one of 116. drop_last=false takes 4 optimizer steps and
    trains on all 500; drop_last=true takes 3 steps and sees 384 images."""
    counts = {}
    for flag in ("false", "true"):
        where = tmp_path / flag
        where.mkdir()
        assert cli(*TINY, *QUIET, "log_every=1", "shuffle=false", f"drop_last={flag}", cwd=where).code == 0
        client, run = one_run(runs_in, where)
        history = metrics_of(client, run)
        counts[flag] = [s for s, _ in history["step_loss"]]
        [(_, acc)] = history["train_acc"]
        # train_acc is a count of correct images over the images trained on: a multiple of 1/500 or 1/384
        seen = 500 if flag == "false" else 384
        assert is_count(acc * seen), (flag, acc)
    assert counts == {"false": [1, 2, 3, 4], "true": [1, 2, 3]}


# --- progress ------------------------------------------------------------------------------------------------

def test_progress_draws_nothing_when_stdout_is_not_a_terminal(cli, tmp_path):
    """Not a terminal (a pipe, a log file; here pytest's capture): Rich draws no live display, and the bars
    are transient (no final picture left behind), so progress=true writes what progress=false writes — the
    per-epoch log line, no bar in the log file."""
    for flag in ("true", "false"):
        where = tmp_path / flag
        where.mkdir()
        result = cli(*TINY, *QUIET, f"progress={flag}", cwd=where)
        assert result.code == 0, result.err[-2000:]
        assert "epoch 1/1" in result.out and "train_loss" in result.out, flag
        assert "steps" not in result.out and "4/4" not in result.out, flag


def test_progress_true_draws_bars_and_false_draws_none(cli, tmp_path, monkeypatch):
    """On a console that can draw (what a terminal gives Rich; stdout still captured), progress=true draws
    the bars — the job's label, a "steps" bar with its n/40 count — and progress=false does not. Rich redraws
    10 times a second: 5 000 images (40 steps of 128, then 10 000 validation images) keep the bars up for
    well over a tenth of a second on any CPU, so they are drawn at least once."""
    import bn_study.ui

    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "200")  # wide enough that no column of the bars is cut short
    drawn = {}
    for flag in ("true", "false"):
        monkeypatch.setattr(bn_study.ui, "_console", None)  # built afresh under this environment, as in a new process
        where = tmp_path / flag
        where.mkdir()
        result = cli("data.limit_train=5000", "epochs=1", "threads=1", *QUIET, f"progress={flag}", cwd=where)
        assert result.code == 0, result.err[-2000:]
        drawn[flag] = result.out
    assert "epoch 1/1" in drawn["false"] and "epoch 1/1" in drawn["true"]
    assert "steps" in drawn["true"] and re.search(r"\b\d+/40\b", drawn["true"])
    assert "data.limit_train=5000" in drawn["true"]  # the bar's label: the job's overrides
    assert "steps" not in drawn["false"] and not re.search(r"\b\d+/40\b", drawn["false"])


# --- the probe -----------------------------------------------------------------------------------------------

PROBE_STATS = ("mean", "std", "saturated")
WIDTHS = (512, 256, 128, 64)  # the article's hidden layers


def test_probe_samples_sets_how_many_images_the_probe_looks_at(cli, tmp_path, runs_in):
    """probe.samples=N: the statistics are over the first N validation images. With N=1 every saturated
    fraction is a count of units over one image's layer width; N=1 and N=1000 see different images, so the
    step-0 (untrained, identical weights) statistics differ; the training itself is untouched."""
    seen = {}
    for n in (1, 1000):
        where = tmp_path / str(n)
        where.mkdir()
        assert cli(*TINY, "tracking.figures=false", f"probe.samples={n}", cwd=where).code == 0
        client, run = one_run(runs_in, where)
        seen[n] = metrics_of(client, run)
    one, many = seen[1], seen[1000]
    for layer, width in enumerate(WIDTHS, start=1):
        for step_value in one[f"act{layer}_saturated"]:
            assert is_count(step_value[1] * width), (layer, step_value)
    assert one["act1_mean"][0][0] == many["act1_mean"][0][0] == 0
    assert one["act1_mean"][0][1] != pytest.approx(many["act1_mean"][0][1], abs=1e-6)
    assert one["act4_std"][0][1] != pytest.approx(many["act4_std"][0][1], abs=1e-6)
    # a sigmoid's output on one image: mean over 512 units in (0, 1), and the 1 000-image mean is not it
    assert 0 < one["act1_mean"][0][1] < 1
    # what the probe looks at does not change what is trained
    for key in ("train_loss", "val_loss", "val_acc"):
        assert one[key] == many[key], key


def test_probe_disabled_logs_no_probe_metrics(cli, tmp_path, runs_in):
    assert cli(*TINY, "probe.enabled=false", "tracking.figures=true").code == 0
    client, run = one_run(runs_in, tmp_path)
    assert not [k for k in run.data.metrics if k.startswith("act")]
    assert {"train_loss", "val_acc", "val_loss", "train_acc"} <= set(run.data.metrics)
    # and no activation histogram without a probe; the learning curves are still drawn
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"config.yaml", "curves.png"}


def test_probe_every_steps_and_units_say_when_and_where_the_nonlinearities_inputs_are_read(cli, tmp_path, runs_in):
    """probe.every_steps=2, probe.units=2: the 15th/50th/85th percentiles of the input of each hidden
    nonlinearity at 2 evenly spread units per layer, at steps 0, 2 and 4 of the 4-step run; every_steps=0:
    none of them, and the training and the other probe numbers are the same."""
    seen = {}
    for every in (2, 0):
        where = tmp_path / str(every)
        where.mkdir()
        assert cli(*TINY, "tracking.figures=false", "probe.samples=100", f"probe.every_steps={every}",
                   "probe.units=2", cwd=where).code == 0
        client, run = one_run(runs_in, where)
        seen[every] = metrics_of(client, run)
    on, off = seen[2], seen[0]
    units = {1: (128, 384), 2: (64, 192), 3: (32, 96), 4: (16, 48)}  # a quarter and three quarters of each width
    assert {k for k in on if "_pre_" in k} == {f"act{layer}_pre_u{u}_p{p}" for layer, us in units.items()
                                               for u in us for p in (15, 50, 85)}
    assert not [k for k in off if "_pre_" in k]
    for layer, us in units.items():
        for u in us:
            p15, p50, p85 = (on[f"act{layer}_pre_u{u}_p{p}"] for p in (15, 50, 85))
            assert [s for s, _ in p15] == [s for s, _ in p50] == [s for s, _ in p85] == [0, 2, 4]
            assert all(a[1] <= b[1] <= c[1] for a, b, c in zip(p15, p50, p85))
    for key in ("train_loss", "val_loss", "val_acc", "act1_mean", "act4_saturated"):
        assert on[key] == off[key], key


@pytest.mark.parametrize("act, kind, start_low, start_high", [
    # tanh on MNIST pixels (0..1) through glorot-uniform weights, untrained: the layer's outputs have a std of
    # ~0.3, and |tanh| > 0.99 needs a pre-activation beyond ±2.65 — about 8 standard deviations: ~no unit
    ("tanh", "saturated", 0.0, 0.01),
    # leaky relu: zero biases and weights symmetric about 0 put about half the units on the negative side
    ("leaky_relu", "negative", 0.4, 0.6),
])
def test_probe_counts_tanh_saturated_and_leaky_relu_negative_units(cli, tmp_path, runs_in, act, kind,
                                                                    start_low, start_high):
    assert cli(*TINY, "tracking.figures=false", "probe.samples=200", f"act={act}").code == 0
    client, run = one_run(runs_in, tmp_path)
    history = metrics_of(client, run)
    others = {"saturated", "dead", "negative"} - {kind}
    assert not [k for k in history if k.rsplit("_", 1)[-1] in others]
    for layer, width in enumerate(WIDTHS, start=1):
        points = history[f"act{layer}_{kind}"]
        assert [s for s, _ in points] == [0, 1], layer  # before training and after the epoch
        for _, v in points:
            assert 0 <= v <= 1
            assert is_count(v * width * 200), (layer, v)  # a count of (image, unit) pairs over 200 images
    first = history[f"act1_{kind}"][0][1]
    assert start_low <= first <= start_high, first
    if act == "leaky_relu":  # every layer, not only the first: about half its units on the negative side
        assert all(0.4 < history[f"act{i}_negative"][0][1] < 0.6 for i in range(1, 5))


CONSTANT_NET = ("model.init.weight._target_=torch.nn.init.zeros_", "model.init.bias._target_=torch.nn.init.constant_")


@pytest.mark.parametrize("act, bias, kind, fraction, output", [
    ("tanh", -3.0, "saturated", 1.0, math.tanh(-3.0)),  # |tanh| = 0.995 > 0.99: every unit saturated
    ("tanh", -2.0, "saturated", 0.0, math.tanh(-2.0)),  # |tanh| = 0.964: none (a sigmoid's rule, < 0.01, says all)
    ("leaky_relu", -1.0, "negative", 1.0, -0.02),  # slope 0.02: every unit on the leaky side, none dead
    ("leaky_relu", 1.0, "negative", 0.0, 1.0),
])
def test_probe_statistics_of_a_network_whose_units_all_output_one_value(cli, tmp_path, runs_in, act, bias, kind,
                                                                        fraction, output):
    """Zero weights and a constant bias b: before training every hidden unit of every layer outputs act(b)
    for every image, so the probe's step-0 numbers are known exactly: mean act(b), std 0, and the fraction
    of saturated (tanh: |a| > 0.99) or negative (leaky relu: a < 0) units 0 or 1."""
    assert cli(*TINY, "tracking.figures=false", "probe.samples=50", f"act={act}", *CONSTANT_NET,
               f"+model.init.bias.val={bias}").code == 0
    client, run = one_run(runs_in, tmp_path)
    history = metrics_of(client, run)
    for layer in range(1, 5):
        [(step, value)] = history[f"act{layer}_{kind}"][:1]
        assert step == 0 and value == fraction, (layer, value)
        assert history[f"act{layer}_mean"][0] == (0, pytest.approx(output, rel=1e-6)), layer
        assert history[f"act{layer}_std"][0] == (0, pytest.approx(0.0, abs=1e-6)), layer  # float32 rounding


# --- the objective -------------------------------------------------------------------------------------------

def test_objective_metric_and_direction_drive_the_optuna_search(cli, tmp_path, runs_in):
    """objective.metric=train_loss, objective.direction=minimize: each trial's value is its run's final
    train_loss (not the default val_acc), the study minimizes, and its best trial is the one with the
    lowest train_loss."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    result = cli("-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.final=null",
                 "batch_size=choice(64,128)", *TINY, *QUIET,
                 "objective.metric=train_loss", "objective.direction=minimize")
    assert result.code == 0, result.err[-3000:]
    study = optuna.load_study(study_name="bn_study",
                              storage=JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal"))))
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    _, runs = runs_in(tmp_path)
    trial_runs = {int(r.data.tags["optuna_trial"]): r for r in runs if r.data.tags.get("stage") == "tune"}
    assert sorted(trial_runs) == [0, 1]
    for t in study.trials:
        run = trial_runs[t.number]
        assert t.value == pytest.approx(run.data.metrics["train_loss"], rel=1e-9)
        assert t.value != pytest.approx(run.data.metrics["val_acc"], rel=1e-3)
    assert study.best_trial.number == min(study.trials, key=lambda t: t.value).number
    # the multirun summary prints each trial's objective as it was told to Optuna
    for t in study.trials:
        assert f"{t.value:.4f}" in result.out


def test_objective_metric_is_what_a_grid_job_returns(cli, tmp_path, runs_in):
    """A grid multirun's summary shows each job's objective: the final epoch's objective.metric."""
    result = cli("-m", "norm=none,bn1", *TINY, *QUIET, "objective.metric=val_loss", "objective.direction=minimize")
    assert result.code == 0, result.err[-3000:]
    _, runs = runs_in(tmp_path)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2
    summary = result.out[result.out.index("multirun summary"):]
    for r in children:
        assert f"{r.data.metrics['val_loss']:.4f}" in summary
        assert f"{r.data.metrics['val_acc']:.4f}" not in summary


# --- figures -------------------------------------------------------------------------------------------------

def test_tracking_figures_switches_the_figure_artifacts(cli, tmp_path, runs_in):
    import matplotlib.image

    names = {}
    for flag in ("true", "false"):
        where = tmp_path / flag
        where.mkdir()
        assert cli(*TINY, "probe.samples=100", f"tracking.figures={flag}", cwd=where).code == 0
        client, run = one_run(runs_in, where)
        names[flag] = {a.path for a in client.list_artifacts(run.info.run_id)}
        if flag == "true":
            for png in ("curves.png", "activations.png", "preactivations.png"):
                image = matplotlib.image.imread(client.download_artifacts(run.info.run_id, png, str(where / "dl")))
                assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100, png
    assert names == {"true": {"config.yaml", "curves.png", "activations.png", "preactivations.png"},
                     "false": {"config.yaml"}}


# --- --cfg job -----------------------------------------------------------------------------------------------

def test_cfg_job_prints_the_composed_config_and_writes_nothing(cli, tmp_path):
    result = cli("--cfg", "job", "norm=bn1", "act=relu", "epochs=3", "optimizer=adam", "data.limit_train=2000")
    assert result.code == 0, result.err
    cfg = OmegaConf.create(result.out)
    assert cfg.epochs == 3 and cfg.data.limit_train == 2000
    assert cfg.act.name == "relu"
    assert cfg.norm.kind == "batch" and cfg.norm.layers == 1 and cfg.norm.momentum == pytest.approx(0.01)
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer.lr == pytest.approx(0.001)
    assert cfg.batch_size == 128 and cfg.objective.metric == "val_acc"  # the defaults, composed in
    assert "hydra" not in cfg  # the job's config, not Hydra's
    assert list(tmp_path.iterdir()) == []  # no mlflow.db, mlruns, outputs/, multirun/, checkpoints/
