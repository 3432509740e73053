"""A condition is one configuration everywhere: the settings that differ from the defaults, in a canonical
order, the same for a single run, a grid job and an Optuna trial — and never shared by two configurations."""

from __future__ import annotations

QUICK = ("epochs=1", "data.limit_train=300", "probe.enabled=false", "tracking.figures=false")


def launch(cli, where, *args: str) -> None:
    where.mkdir(exist_ok=True)
    result = cli(*args, cwd=where)
    assert result.code == 0, result.err[-2000:]


def conditions(runs_in, where) -> dict[str, str]:
    """run name → condition tag, for the runs that trained (not the sweeps' parents)."""
    _, runs = runs_in(where)
    return {r.info.run_name: r.data.tags["condition"] for r in runs if "condition" in r.data.tags}


def test_two_sweeps_that_differ_in_one_setting_never_share_a_condition(cli, tmp_path, runs_in):
    for act in ("tanh", "relu"):  # the command line fixes act for every job of each sweep
        launch(cli, tmp_path / act, "-m", "norm=none,bn1", f"act={act}", *QUICK)
    tanh, relu = (set(conditions(runs_in, tmp_path / act).values()) for act in ("tanh", "relu"))
    assert tanh == {"act=tanh data.limit_train=300 epochs=1", "act=tanh norm=bn1 data.limit_train=300 epochs=1"}
    assert relu == {"act=relu data.limit_train=300 epochs=1", "act=relu norm=bn1 data.limit_train=300 epochs=1"}
    # the same configuration as a single run, overrides in another order: the same condition and name
    launch(cli, tmp_path / "single", *reversed(QUICK), "norm=bn1", "act=relu", "seed=3")
    assert conditions(runs_in, tmp_path / "single") == {
        "act=relu norm=bn1 data.limit_train=300 epochs=1 seed=3": "act=relu norm=bn1 data.limit_train=300 epochs=1"}


def test_a_trial_and_a_single_run_of_its_settings_share_a_condition(cli, tmp_path, runs_in):
    trial = tmp_path / "trial"
    launch(cli, trial, "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=1", "hydra.sweeper.final=null",
           "optimizer.lr=choice(0.05)", "batch_size=choice(64)", *QUICK)
    [(name, condition)] = conditions(runs_in, trial).items()
    # the search's plumbing (the trial's number in its environment, the sweeper) is not a setting
    assert condition == "optimizer.lr=0.05 data.val=holdout data.limit_train=300 batch_size=64 epochs=1"
    launch(cli, tmp_path / "single", "data.val=holdout", "batch_size=64", "optimizer.lr=0.05", *QUICK)
    assert set(conditions(runs_in, tmp_path / "single").values()) == {condition}
    assert name == f"trial 0 {condition} seed=0" and "hydra" not in condition and "BN_STUDY" not in condition


def test_a_value_reads_the_same_however_it_was_written():
    from bn_study.tracking.condition import canonical

    assert canonical("1.0") == canonical("1") == "1"  # the grid's 1.0, the condition's 1
    assert canonical("0.010") == canonical("0.01") == canonical("1e-2") == "0.01"
    assert canonical("0.35950160623136634") == "0.359502"  # a param's every digit, a condition's six
    assert [canonical(v) for v in ("relu", "true", "null", "[0,1]", "")] == ["relu", "true", "null", "[0,1]", ""]
