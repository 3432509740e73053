"""Hydra's Optuna plugin and this project's sweeper on the plugin's example apps (tests/hydra_optuna_examples),
case by case: the exit code, every trial (number, state, params, values) read back from the study, and
``optimization_results.yaml``'s plugin keys (name, best_params, best_value, solutions).

The plugin is not installable beside Optuna 5 from PyPI (its last release pins optuna<3): give a directory
holding its ``hydra_plugins/hydra_optuna_sweeper`` (from a checkout of facebookresearch/hydra) and a Python
that has hydra-core, optuna and cmaes but not bn_study, so that ``hydra/sweeper=optuna`` is the plugin's:

    python -m venv /tmp/plugin-venv && /tmp/plugin-venv/bin/pip install hydra-core==1.3.8 optuna==5.0.0 cmaes
    python bench/plugin_parity.py --plugin-python /tmp/plugin-venv/bin/python \\
        --plugin-path ~/hydra/plugins/hydra_optuna_sweeper                       # every case, a table
    python bench/plugin_parity.py ... --only sphere_tpe custom --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[1] / "tests" / "hydra_optuna_examples"
SPHERE, MO, CUSTOM = "sphere.py", "multi-objective.py", "custom-search-space-objective.py"
COMMON = ["hydra.job.chdir=True", "hydra.sweeper.n_trials=20", "hydra.sweeper.n_jobs=1"]
GRID = [SPHERE, "--multirun", "--config-dir=plugin_conf", "--config-name=test_grid", "hydra.job.chdir=False",
        "hydra.sweeper.n_jobs=1"]
TPE, RANDOM = ["hydra/sweeper/sampler=tpe", "hydra.sweeper.sampler.seed=123"], \
    ["hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=123"]

CASES: dict[str, list[str]] = {  # the plugin suite's runs, and a few that tell defaults apart
    "sphere_tpe_cmd": [SPHERE, "--multirun", *COMMON, *TPE, "~z", "x=choice(0, 1, 2)", "y=0"],
    "sphere_tpe": [SPHERE, "--multirun", *COMMON, *TPE],
    "tpe_n_jobs2": [SPHERE, "--multirun", *TPE, "hydra.sweeper.n_trials=20", "hydra.sweeper.n_jobs=2"],
    "sphere_grid_default": [SPHERE, "--multirun"],
    "grid10": [*GRID, "hydra.sweeper.n_trials=10"],
    "grid1": [*GRID, "hydra.sweeper.n_trials=1"],
    "mo_random_cmd": [MO, "--multirun", *COMMON, *RANDOM, "x=range(0, 5)", "y=range(0, 3)"],
    "mo_random": [MO, "--multirun", *COMMON, *RANDOM],
    "mo_nsgaii": [MO, "--multirun"],
    "custom": [CUSTOM, "--multirun", *COMMON, *RANDOM, "max_z_difference_from_x=0.3"],
    "custom_no_dot": [CUSTOM, "--multirun", *COMMON, *RANDOM, "max_z_difference_from_x=0.3",
                      "hydra.sweeper.custom_search_space=custom-search-space-objective.configure"],
    "failure05": [SPHERE, "--multirun", "hydra.sweeper.n_trials=20", "hydra.sweeper.n_jobs=2", *RANDOM,
                  "hydra.sweeper.max_failure_rate=0.5", "error=true"],
    "failure10": [SPHERE, "--multirun", "hydra.sweeper.n_trials=20", "hydra.sweeper.n_jobs=2", *RANDOM,
                  "hydra.sweeper.max_failure_rate=1.0", "error=true"],
    "fixed_vs_searched": [SPHERE, "--multirun", *TPE, "hydra.sweeper.n_trials=6", "hydra.sweeper.params.x=5",
                          "x=choice(1,2)"],
    "motpe": [MO, "--multirun", "--config-dir=plugin_conf", "--config-name=test_motpe", *COMMON],
}

READ_TRIALS = """
import json, sys, optuna
optuna.logging.set_verbosity(optuna.logging.ERROR)
try:
    trials = optuna.load_study(storage=sys.argv[1], study_name=sys.argv[2]).trials
except Exception:
    trials = []
print(json.dumps([[t.number, t.state.name, t.params, t.values] for t in trials]))
"""


def run_case(name: str, python: str, pythonpath: str, out: Path) -> dict[str, Any]:
    sweep_dir, db = out / name, out / f"{name}.db"
    out.mkdir(parents=True, exist_ok=True)  # neither sweeper makes a sqlite file's directory
    storage = f"sqlite:///{db}"
    cmd = [python, *CASES[name], f"hydra.sweep.dir={sweep_dir}", f"hydra.sweeper.storage={storage}",
           f"hydra.sweeper.study_name={name}"]
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "PYTHONPATH")}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    done = subprocess.run(cmd, cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=900)
    trials = json.loads(subprocess.run([python, "-c", READ_TRIALS, storage, name], env=env, capture_output=True,
                                       text=True, timeout=300).stdout or "[]")
    results_file = sweep_dir / "optimization_results.yaml"
    results = None
    if results_file.exists():
        import yaml

        loaded = yaml.safe_load(results_file.read_text())
        results = {k: loaded.get(k) for k in ("name", "best_params", "best_value", "solutions") if k in loaded}
    said = [line for line in done.stderr.splitlines() if line.strip() and "HYDRA_FULL_ERROR" not in line]
    last = said[-1:] or [""]
    return {"rc": done.returncode, "trials": trials, "results": results, "last_stderr_line": last[0][:200]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugin-python", required=True, help="a Python with hydra-core and optuna, not bn_study")
    parser.add_argument("--plugin-path", required=True, type=Path,
                        help="the directory that holds the plugin's hydra_plugins/hydra_optuna_sweeper")
    parser.add_argument("--only", nargs="*", choices=list(CASES), help="these cases only")
    parser.add_argument("--json", type=Path, help="write every case's both outcomes here")
    args = parser.parse_args()
    if not (args.plugin_path / "hydra_plugins" / "hydra_optuna_sweeper").is_dir():
        parser.error(f"--plugin-path {args.plugin_path}: no hydra_plugins/hydra_optuna_sweeper in it")
    work = Path(tempfile.mkdtemp(prefix="plugin_parity_"))
    rows, record = [], {}
    try:
        for name in args.only or list(CASES):
            plugin = run_case(name, args.plugin_python, str(args.plugin_path), work / "plugin")
            ours = run_case(name, sys.executable, "", work / "ours")
            record[name] = {"plugin": plugin, "bn_study": ours}
            same_trials = plugin["trials"] == ours["trials"]
            same_results = plugin["results"] == ours["results"]
            rows.append((name, plugin["rc"], ours["rc"], len(plugin["trials"]), len(ours["trials"]),
                         "yes" if same_trials else "NO", "yes" if same_results else "NO"))
            print(f"{name}: plugin rc {plugin['rc']}, bn_study rc {ours['rc']}, same trials: {same_trials}",
                  file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| case | rc plugin | rc bn_study | trials plugin | trials bn_study | same trials | same results |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    if args.json:
        args.json.write_text(json.dumps(record, indent=1, default=str))


if __name__ == "__main__":
    main()
