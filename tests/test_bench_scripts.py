"""The benchmark scripts run (their numbers are not asserted: benchmarks are not timed tests), and the GPU
check's verdict on CPU-vs-GPU agreement is right both ways."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.filterwarnings("ignore")


def test_step_bench_runs_every_cpu_variant_on_real_mnist(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, "bench/step.py", "--device", "cpu", "--workload", "both", "--seeds", "1", "2",
         "--article-limit", "256", "--book-steps", "20", "--repeats", "1", "--threads", "1",
         "--variants", "tutorial", "eager", "auto", "batched", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    got = sorted((r["workload"], r["variant"], r["seeds"]) for r in rows)
    want = sorted((w, v, k) for w in ("article", "book") for v, k in
                  [("tutorial", 1), ("eager", 1), ("auto", 1), ("batched", 1), ("batched", 2)])
    assert got == want
    assert all(r["median"] > 0 and r["per_seed"] == pytest.approx(r["median"] / r["seeds"]) for r in rows)


FINAL = """# {name}

## Final metrics

| condition | runs (finished/total) | test_acc (last epoch, mean ± 95 % CI) | test_loss (last epoch, mean ± 95 % CI) |
|---|---|---|---|
| sigmoid, no BN | 5/5 | {acc} ± 0.90 | 0.4911 ± 0.0336 |
| relu, no BN | 5/5 | 97.83 ± 0.20 | 0.0770 ± 0.0069 |

## Figures
"""


def agreement(tmp_path: Path, gpu_acc: float) -> subprocess.CompletedProcess[str]:
    for side, acc in (("cpu", 85.80), ("gpu", gpu_acc)):
        (tmp_path / side / "bn_vs_none").mkdir(parents=True)
        (tmp_path / side / "bn_vs_none" / "README.md").write_text(FINAL.format(name="bn_vs_none", acc=acc))
    return subprocess.run([sys.executable, "bench/gpu_agreement.py", "--gpu", str(tmp_path / "gpu"),
                           "--cpu", str(tmp_path / "cpu")], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_agreement_within_the_seed_spread(tmp_path: Path) -> None:
    proc = agreement(tmp_path, 85.80 + 1.2)  # |Δ| 1.2 <= hypot(0.90, 0.90) = 1.27
    assert proc.returncode == 0, proc.stdout
    assert "4 of 4 cells agree" in proc.stdout


def test_disagreement_beyond_the_seed_spread_is_reported(tmp_path: Path) -> None:
    proc = agreement(tmp_path, 85.80 + 1.4)  # 1.4 > 1.27
    assert proc.returncode == 1
    assert "| bn_vs_none | sigmoid, no BN | test_acc | 87.2 ± 0.9 | 85.8 ± 0.9 | **no** |" in proc.stdout
    assert "3 of 4 cells agree" in proc.stdout


def test_gpu_check_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(REPO / "bench" / "gpu_check.sh")]).returncode == 0


def test_plugin_parity_bench_compares_two_sweepers_case_by_case(tmp_path: Path) -> None:
    # Hydra's plugin cannot be installed here (its release pins optuna<3): an empty plugin directory leaves
    # this project's sweeper on both sides, which must then agree on every trial and result
    (tmp_path / "plugin" / "hydra_plugins" / "hydra_optuna_sweeper").mkdir(parents=True)
    out = tmp_path / "parity.json"
    proc = subprocess.run([sys.executable, "bench/plugin_parity.py", "--plugin-python", sys.executable,
                           "--plugin-path", str(tmp_path / "plugin"), "--only", "grid10", "failure05",
                           "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[2:] == ["| grid10 | 0 | 0 | 8 | 8 | yes | yes |",
                                            "| failure05 | 1 | 1 | 2 | 2 | yes | yes |"]
    record = json.loads(out.read_text())
    assert record["grid10"]["plugin"]["results"]["best_value"] == 1.0
    assert record["failure05"]["bn_study"]["trials"][0][1] == "FAIL"
    assert record["failure05"]["bn_study"]["last_stderr_line"] == "RuntimeError: cfg.error is True"
