"""``hydra/sweeper/sampler=…`` and ``hydra/sweeper/pruner=…`` reach the study as the named Optuna class with
their settings: a seeded sweep of the sphere app draws exactly what that sampler draws (and not what TPE
draws), and each pruner stops exactly the trials its rule stops on a curve built for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from test_optuna_sweeper import sweep, trials_of

optuna.logging.set_verbosity(optuna.logging.WARNING)

SEED = 7
SAMPLERS = {  # the config group's name → the sampler its defaults make, and overrides that make it matter
    "cmaes": (lambda: optuna.samplers.CmaEsSampler(seed=SEED, n_startup_trials=1), []),
    "qmc": (lambda: optuna.samplers.QMCSampler(qmc_type="sobol", scramble=False, seed=SEED), []),
    # a population of 3: trials 3.. are bred from the first generation, not drawn at random
    "nsgaii": (lambda: optuna.samplers.NSGAIISampler(seed=SEED, population_size=3),
               ["hydra.sweeper.sampler.population_size=3"]),
    # 2 random trials, then 4 from the Gaussian process
    "gp": (lambda: optuna.samplers.GPSampler(seed=SEED, n_startup_trials=2), ["hydra.sweeper.sampler.n_startup_trials=2"]),
}
N_TRIALS = 6


def replay(sampler: optuna.samplers.BaseSampler, distributions: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The params ``sampler`` asks for on the sphere (x² + y²), told each value as the sweeper tells them."""
    study = optuna.create_study(sampler=sampler, direction="minimize")
    drawn = []
    for _ in range(n):
        trial = study.ask(fixed_distributions=distributions)
        study.tell(trial, trial.params["x"] ** 2 + trial.params["y"] ** 2)
        drawn.append(trial.params)
    return drawn


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_a_sampler_choice_is_that_sampler(hydra_sweep_runner: Any, tmp_path: Path, name: str) -> None:
    make, extra = SAMPLERS[name]
    storage = str(tmp_path / f"{name}.journal")
    returns = sweep(hydra_sweep_runner, tmp_path, f"hydra/sweeper/sampler={name}", f"hydra.sweeper.sampler.seed={SEED}",
                    *extra, "x=interval(-5, 5)", "y=interval(-5, 5)", f"hydra.sweeper.n_trials={N_TRIALS}",
                    "hydra/sweeper/pruner=nop", f"hydra.sweeper.storage={storage}")
    trials = trials_of(storage)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * N_TRIALS
    assert all(t.value == t.params["x"] ** 2 + t.params["y"] ** 2 for t in trials)
    distributions = trials[0].distributions
    assert distributions == {"x": optuna.distributions.FloatDistribution(-5.0, 5.0),
                             "y": optuna.distributions.FloatDistribution(-5.0, 5.0)}
    drawn = [t.params for t in trials]
    assert drawn == replay(make(), distributions, N_TRIALS)  # exactly this sampler's draws for the seed
    assert drawn != replay(optuna.samplers.TPESampler(seed=SEED), distributions, N_TRIALS)
    assert returns["best_value"] == min(t.value for t in trials)


@pytest.mark.parametrize("sampler, keys", [
    ("tpe", ["hydra.sweeper.sampler.consider_prior=true", "hydra.sweeper.sampler.prior_weight=1.0",
             "hydra.sweeper.sampler.consider_magic_clip=true", "hydra.sweeper.sampler.consider_endpoints=false",
             "hydra.sweeper.sampler.n_startup_trials=2"]),
    ("random", []),
    ("cmaes", ["hydra.sweeper.sampler.sigma0=1.0", "hydra.sweeper.sampler.consider_pruned_trials=false",
               "hydra.sweeper.sampler.use_separable_cma=false"]),
    ("qmc", ["hydra.sweeper.sampler.scramble=true"]),
    ("nsgaii", ["hydra.sweeper.sampler.population_size=4", "hydra.sweeper.sampler.constraints_func=null"]),
    ("gp", ["hydra.sweeper.sampler.n_startup_trials=2", "hydra.sweeper.sampler.deterministic_objective=true"]),
    ("grid", []),
])
def test_every_sampler_searches_with_the_plugins_keys(hydra_sweep_runner: Any, tmp_path: Path, sampler: str,
                                                     keys: list[str]) -> None:
    # every sampler the README names runs after the README's install, and takes the plugin's keys
    storage = str(tmp_path / "s.journal")
    space = ["x=choice(0, 1, 2)", "y=choice(-1, 0)"] if sampler == "grid" else ["x=interval(-2, 2)", "y=0"]
    returns = sweep(hydra_sweep_runner, tmp_path, f"hydra/sweeper/sampler={sampler}", "hydra.sweeper.sampler.seed=3",
                    *keys, *space, "hydra.sweeper.n_trials=5", "hydra.sweeper.n_jobs=1",
                    f"hydra.sweeper.storage={storage}")
    trials = trials_of(storage)
    assert len(trials) == 5 and {t.state for t in trials} == {TrialState.COMPLETE}
    assert returns["best_value"] == min(t.value for t in trials)
    assert len({t.params["x"] for t in trials}) > 1  # it searched


# Each trial reports x² · (1 + 1/step) for steps 1..5 (the sphere app's +curve). The random sampler, seed 2, draws
#   x=choice(0.5, 4):    0.5 0.5 0.5 4 0.5 0.5 4 4 0.5 0.5         (trials 3, 6, 7: hopeless)
#   x=choice(0.5, 1, 2): 2 0.5 1 1 1 1 0.5 1 1 2
# expected: {pruned trial: the steps it reported}; every other trial completes with all 5 steps.
PRUNERS = {
    "median, for contrast": (["hydra/sweeper/pruner=median", "hydra.sweeper.pruner.n_startup_trials=2"],
                             "choice(0.5, 1, 2)", {9: [1]}),
    # the same curves: at percentile 25 the x=1 trials are worse than the best quarter and stop; the median
    # lets them run
    "percentile 25": (["hydra/sweeper/pruner=percentile", "hydra.sweeper.pruner.percentile=25",
                       "hydra.sweeper.pruner.n_startup_trials=2"],
                      "choice(0.5, 1, 2)", {3: [1], 4: [1], 5: [1], 7: [1], 8: [1], 9: [1]}),
    # the first rung is at step min_resource=2: the hopeless trials stop after 2 steps, not 1
    "successive halving": (["hydra/sweeper/pruner=successive_halving", "hydra.sweeper.pruner.min_resource=2",
                            "hydra.sweeper.pruner.reduction_factor=2"],
                           "choice(0.5, 4)", {3: [1, 2], 6: [1, 2], 7: [1, 2]}),
    # brackets by trial: trial 7's bracket has its first rung at step 3
    "hyperband": (["hydra/sweeper/pruner=hyperband"], "choice(0.5, 4)", {3: [1], 6: [1], 7: [1, 2, 3]}),
}


@pytest.mark.parametrize("case", list(PRUNERS))
def test_a_pruner_stops_exactly_the_trials_its_rule_stops(hydra_sweep_runner: Any, tmp_path: Path, case: str) -> None:
    overrides, space, expected = PRUNERS[case]
    storage = str(tmp_path / "prune.journal")
    sweep(hydra_sweep_runner, tmp_path, *overrides, "+curve=true", "hydra.sweeper.n_trials=10", f"x={space}", "y=0",
          "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=2", f"hydra.sweeper.storage={storage}")
    trials = trials_of(storage)
    assert len(trials) == 10
    pruned = {t.number: sorted(t.intermediate_values) for t in trials if t.state == TrialState.PRUNED}
    assert pruned == expected, [(t.params["x"], t.state.name, sorted(t.intermediate_values)) for t in trials]
    for t in trials:
        if t.number not in expected:
            assert t.state == TrialState.COMPLETE and sorted(t.intermediate_values) == [1, 2, 3, 4, 5]
            assert t.value == t.params["x"] ** 2


@pytest.mark.parametrize("name", ["random", "nsgaii"])
def test_each_arm_draws_from_its_own_sampler(hydra_sweep_runner: Any, tmp_path: Path, name: str) -> None:
    # one study per arm, each with a sampler built from the same settings: the same seed gives each arm the
    # same draws (a sampler shared by the arms would give the second arm the first one's continuation)
    storage = str(tmp_path / "arms.journal")
    sweep(hydra_sweep_runner, tmp_path, f"hydra/sweeper/sampler={name}", f"hydra.sweeper.sampler.seed={SEED}",
          "x=interval(-5, 5)", "y=interval(-5, 5)", "z=1,2", "+hydra.sweeper.arms={z:'1,2'}", "hydra.sweeper.n_trials=4",
          "hydra/sweeper/pruner=nop", f"hydra.sweeper.storage={storage}")
    first, second = ([t.params for t in trials_of(storage, f"sphere z={z}")] for z in (1, 2))
    assert len(first) == 4 and first == second
    make = {"random": optuna.samplers.RandomSampler, "nsgaii": optuna.samplers.NSGAIISampler}[name]
    axis = optuna.distributions.FloatDistribution(-5.0, 5.0)
    assert first == replay(make(seed=SEED), {"x": axis, "y": axis}, 4)
