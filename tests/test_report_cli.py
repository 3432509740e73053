"""``python -m bn_study.report`` on a small synthetic MLflow store, written through the real MLflow API the way
the app writes it: a parent run per sweep, one child run per seed with the condition/seed tags, params and
per-epoch metrics (accuracies as fractions), some runs FAILED."""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib.image
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from bn_study.report.__main__ import main

OFFSETS = (-2, -1, 0, 1, 2)  # seed s gets mean + OFFSETS[s] * noise


class FakeStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.client = MlflowClient(self.uri)

    def experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found:
            return found.experiment_id
        return self.client.create_experiment(name, artifact_location=(self.root / "mlruns" / name).as_uri())

    def sweep(self, experiment: str, conditions: dict[str, dict], *, overrides: str | None = None,
              status: str = "FINISHED", child_tags: dict[str, dict[str, str]] | None = None) -> str:
        """``conditions``: condition tag → {"metrics": {name: [epoch1, epoch2, …]}, "noise": …, "failed": {seed: reason},
        "params": {…}}; every condition gets 5 seeds."""
        exp = self.experiment(experiment)
        parent = self.client.create_run(exp, run_name=f"multirun {overrides}", tags={
            "role": "multirun parent", "overrides": overrides or f"+experiment={experiment}", "git_commit": "abc1234def"})
        pid = parent.info.run_id
        for condition, spec in conditions.items():
            for seed, offset in enumerate(OFFSETS):
                tags = {"condition": condition, "seed": str(seed), "mlflow.parentRunId": pid,
                        "device": "cpu: Test CPU (2 threads)", "torch_version": "2.99",
                        "overrides": f"{condition} +experiment={experiment}", **(child_tags or {}).get(condition, {})}
                child = self.client.create_run(exp, run_name=f"{condition} seed={seed}", tags=tags)
                cid = child.info.run_id
                params = {"seed": str(seed), "data.val": "test", **spec.get("params", {})}
                failed = spec.get("failed", {}).get(seed)
                metrics = []
                for name, per_epoch in spec["metrics"].items():
                    start = 0 if name.startswith("act") else 1
                    for step, mean in enumerate(per_epoch, start=start):
                        if failed and step > 1:
                            break  # a diverged run logs no epochs after the one where it blew up
                        metrics.append(Metric(name, mean + offset * spec.get("noise", 0.001), 0, step))
                if not failed:
                    last = len(spec["metrics"]["val_acc"])
                    metrics.append(Metric("test_acc", spec["metrics"]["val_acc"][-1] + offset * spec.get("noise", 0.001), 0, last))
                    if "val_loss" in spec["metrics"]:
                        metrics.append(Metric("test_loss", spec["metrics"]["val_loss"][-1], 0, last))
                self.client.log_batch(cid, metrics=metrics, params=[Param(k, v) for k, v in params.items()],
                                      tags=[RunTag("failure_reason", failed)] if failed else [])
                self.client.set_terminated(cid, "FAILED" if failed else "FINISHED")
        if status != "RUNNING":
            self.client.set_terminated(pid, status)
        time.sleep(0.01)  # distinct start times: "latest" must be well defined
        return pid


def article(sigmoid_bn_epoch1: float = 0.92) -> dict[str, dict]:
    act = {f"act{i}_{s}": [v] * 4 for i in range(1, 5) for s, v in (("mean", 0.5), ("std", 0.1))}
    sat = {f"act{i}_saturated": [0.0, 0.1, 0.2, 0.3] for i in range(1, 5)}
    dead = {f"act{i}_dead": [0.5, 0.4, 0.4, 0.4] for i in range(1, 5)}
    return {
        "act=sigmoid norm=none": {"metrics": {"val_acc": [0.11, 0.12, 0.15], "train_loss": [2.30, 2.29, 2.28],
                                              "val_loss": [2.30, 2.29, 2.28], **act, **sat}},
        "act=sigmoid norm=bn1": {"metrics": {"val_acc": [sigmoid_bn_epoch1, 0.95, 0.96], "train_loss": [0.5, 0.3, 0.2],
                                             "val_loss": [0.4, 0.3, 0.25], **act, **sat}},
        "act=relu norm=none": {"metrics": {"val_acc": [0.94, 0.96, 0.97], "train_loss": [0.3, 0.15, 0.1],
                                           "val_loss": [0.2, 0.14, 0.12], **act, **dead}},
        "act=relu norm=bn1": {"metrics": {"val_acc": [0.955, 0.97, 0.975], "train_loss": [0.2, 0.1, 0.08],
                                          "val_loss": [0.18, 0.12, 0.1], **act, **dead},
                              "failed": {4: "loss is nan at epoch 2"}},
    }


BOOK = {  # variant: (mean test accuracy, published)
    "book_baseline": 0.868, "book_bce": 0.880, "book_leaky_relu": 0.969, "book_leaky_relu_hidden": 0.922,
    "book_adam": 0.971, "book_layernorm": 0.911, "book_all_four": 0.972,
}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> FakeStore:
    s = FakeStore(tmp_path_factory.mktemp("store"))
    sigmoid_only = {k: v for k, v in article(sigmoid_bn_epoch1=0.12).items() if "sigmoid" in k}
    s.old_bn = s.sweep("bn_vs_none", sigmoid_only)  # an older sweep, where BN was no faster
    s.bn = s.sweep("bn_vs_none", article(), overrides="+experiment=bn_vs_none epochs=3")
    # the newest sweep is still running: not the default choice
    s.running = s.sweep("bn_vs_none", {"act=relu norm=none": article()["act=relu norm=none"]}, status="RUNNING")
    # an older, partial book sweep: only the baseline and BCE ran
    s.book_partial = s.sweep("book_ch3", {f"+variant={v}": {"metrics": {"val_acc": [BOOK[v]]}}
                                          for v in ("book_baseline", "book_bce")})
    s.book = s.sweep("book_ch3", {f"+variant={v}": {"metrics": {"val_acc": [acc - 0.02, acc - 0.01, acc],
                                                                "train_loss": [0.05, 0.03, 0.02]},
                                                    "params": {"loss.name": "bce" if "bce" in v or "all" in v else "mse"}}
                                  for v, acc in BOOK.items()})
    arms = {"norm=none": "0.05", "norm=bn1": "0.3"}
    # a tuned study (as fair_bn is) without a conf file of its own: the hook needs no configuration
    s.fair = s.sweep("tuned_demo", {arm: {"metrics": {"val_acc": [0.9, 0.95 + 0.01 * i]}, "params": {"optimizer.lr": lr}}
                                 for i, (arm, lr) in enumerate(arms.items())},
                     child_tags={arm: {"stage": "final", "arm": arm} for arm in arms})
    # an Optuna tuning run of the same study (stage=tune): not part of the comparison
    trial = s.client.create_run(s.experiment("tuned_demo"), tags={"mlflow.parentRunId": s.fair, "stage": "tune",
                                                                "condition": "optimizer.lr=0.9"})
    s.client.set_terminated(trial.info.run_id, "FINISHED")
    # the article's question asked of Fashion-MNIST, where (in this fake) BN barely speeds sigmoid up
    s.fashion = s.sweep("fashion_bn", {k: {**v, "params": {"data.name": "fashion_mnist"}}
                                       for k, v in article(sigmoid_bn_epoch1=0.14).items()})
    return s


def report(store: FakeStore, out: Path, *args: str) -> int:
    return main([*args, "--tracking-uri", store.uri, "--out", str(out)])


@pytest.fixture(scope="module")
def bn_report(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    assert report(store, out, "bn_vs_none") == 0
    return out


def test_files_figures_and_index(bn_report, store):
    folder = bn_report / "bn_vs_none"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "curves.png", "dead_relu.png",
                                                         "saturation_sigmoid.png"]
    for png in folder.glob("*.png"):
        image = matplotlib.image.imread(png)
        assert image.shape[0] > 300 and image.shape[1] > 600
    readme = (folder / "README.md").read_text()
    for png in ("curves.png", "dead_relu.png", "saturation_sigmoid.png"):
        assert f"]({png})" in readme  # relative links
    index = (bn_report / "README.md").read_text()
    assert "[bn_vs_none](bn_vs_none/README.md)" in index and "claims (Holm): 5 supported" in index
    # how the runs were made, at the top: the sweep's command and the machine, as MLflow recorded them
    made = ("- `python -m bn_study -m +experiment=bn_vs_none epochs=3` · machine: cpu: Test CPU (2 threads), "
            "torch 2.99 · sweep wall time")
    assert made in index, index
    assert index.index(made) < index.index("| experiment |")
    # the same files are artifacts of the sweep's parent run
    logged = {a.path for a in store.client.list_artifacts(store.bn, "report")}
    assert logged == {"report/README.md", "report/curves.png", "report/dead_relu.png", "report/saturation_sigmoid.png"}


def test_table_claims_and_failed_runs(bn_report, store):
    readme = (bn_report / "bn_vs_none" / "README.md").read_text()
    assert f"sweep (parent run) `{store.bn}`" in readme  # the latest finished sweep, not the running one
    assert "extra overrides `epochs=3`" in readme
    assert "**Verdicts:** claims (Holm): 5 supported\n" in readme
    rows = {line.split("|")[1].strip(): line for line in readme.splitlines() if line.startswith("| ")}
    claim1 = rows["**1. BN speeds up sigmoid convergence a lot**"]
    assert "+81.00 pp" in claim1 and "**supported**" in claim1 and "effect > 5 pp" in claim1
    faster = next(v for k, v in rows.items() if "at least 2 epochs sooner" in k)
    # 1 vs never in 3 epochs (counted as 4): a lower bound, never an exact-looking [+3.0, +3.0]
    assert "≥ +3.0 epochs (+2.0, +∞)" in faster and "**supported**" in faster and "[+3.0, +3.0]" not in faster
    assert "sigmoid, no BN: >3 (n=5; 5 never reached 90)" in faster
    claim2 = next(v for k, v in rows.items() if "BN speeds up relu convergence a little" in k)
    assert "**supported**" in claim2 and "(n=4;" in claim2  # the diverged seed is left out …
    assert "1 of 5 runs did not finish" in readme  # … and said so
    sigmoid_none = rows["sigmoid, no BN"]
    assert "| 5/5 |" in sigmoid_none and "15.00 ± 0.20" in sigmoid_none and ">3 · >3 · >3 · >3 · >3" in sigmoid_none
    relu_bn = rows["relu, BN after layer 1"]
    assert "| 4/5 |" in relu_bn and "✗" in relu_bn
    assert "seed 4 (run `" in readme and "FAILED: loss is nan at epoch 2" in readme


def test_same_data_same_bytes(store, bn_report, tmp_path):
    assert report(store, tmp_path, "bn_vs_none", "--no-artifacts") == 0
    for name in ("README.md", "curves.png", "saturation_sigmoid.png"):
        assert (tmp_path / "bn_vs_none" / name).read_bytes() == (bn_report / "bn_vs_none" / name).read_bytes(), name


def test_parent_option_picks_an_older_sweep(store, tmp_path):
    assert report(store, tmp_path, "bn_vs_none", "--parent", store.old_bn, "--no-artifacts") == 0
    readme = (tmp_path / "bn_vs_none" / "README.md").read_text()
    assert store.old_bn in readme
    claim1 = next(ln for ln in readme.splitlines() if ln.startswith("| **1. BN speeds up sigmoid"))
    assert "**contradicted**" in claim1  # 12 % vs 11 %: BN gained 1 pp, far from "a lot"


def test_book_published_vs_reproduced(store, tmp_path):
    assert report(store, tmp_path, "book_ch3", "--no-artifacts") == 0
    folder = tmp_path / "book_ch3"
    readme = (folder / "README.md").read_text()
    section = readme.split("## Published vs reproduced")[1].split("## Final metrics")[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ") and not ln.startswith("| condition")]
    assert [r.split("|")[1].strip() for r in rows] == [
        "baseline (sigmoid, MSE, SGD)", "BCE loss", "LeakyReLU, hidden + output", "LeakyReLU, hidden only (extra)",
        "Adam", "LayerNorm", "all four together"]
    baseline, bce, _, extra, adam, _, _ = rows
    assert "| 87 | 86.80 ± 0.20 | 5/5 |" in baseline and "agrees: our mean's 95 % CI lies inside" in baseline
    assert "| 91 | 88.00 ± 0.20 |" in bce and "**disagrees: reproduced 3.0 pp lower" in bce
    assert "— (not published)" in extra and "92.20 ± 0.20" in extra
    assert "| 97 | 97.10 ± 0.20 |" in adam and "agrees" in adam
    assert "published numbers: 5 agree · 1 disagree" in readme
    assert "The two LeakyReLU readings" in readme
    assert {p.name for p in folder.glob("*.png")} == {"published.png", "accuracy.png", "loss.png"}


def test_book_variants_missing_from_a_sweep_are_listed(store, tmp_path):
    assert report(store, tmp_path, "book_ch3", "--parent", store.book_partial, "--no-artifacts") == 0
    readme = (tmp_path / "book_ch3" / "README.md").read_text()
    assert "published numbers: 1 agree · 1 disagree · 4 not run in this sweep" in readme
    for label, published in (("LeakyReLU, hidden + output", 97), ("Adam", 97), ("LayerNorm", 91),
                             ("all four together", 97)):
        assert f"| {label} | {published} | — | 0/0 | — | — | **not run in this sweep** |" in readme
    assert "no condition of this sweep matches {variant=book_adam}" in readme


def test_tuned_study_reports_final_runs_per_arm(store, tmp_path):
    assert report(store, tmp_path, "tuned_demo", "--no-artifacts") == 0
    readme = (tmp_path / "tuned_demo" / "README.md").read_text()
    assert "grouped by their `arm` tag" in readme and "optimizer.lr=0.9" not in readme
    rows = {ln.split("|")[1].strip(): ln for ln in readme.splitlines() if ln.startswith("| norm=")}
    assert "| 0.05 |" in rows["norm=none"] and "95.00 ± 0.20" in rows["norm=none"]
    assert "batch_size" not in readme  # a tuned param the runs do not have is not shown
    assert "| 0.3 |" in rows["norm=bn1"] and "96.00 ± 0.20" in rows["norm=bn1"]


def test_index_links_every_generated_report(bn_report, tmp_path):
    from bn_study.report.build import write_index

    for name in ("zeta_study", "bn_vs_none"):  # the index is rebuilt from the folders that exist
        (tmp_path / name).mkdir()
        (tmp_path / name / "README.md").write_bytes((bn_report / "bn_vs_none" / "README.md").read_bytes())
    (tmp_path / "not_a_report").mkdir()
    index = write_index(tmp_path).read_text()
    assert index.index("[bn_vs_none](bn_vs_none/README.md)") < index.index("[zeta_study](zeta_study/README.md)")
    assert "not_a_report" not in index


@pytest.mark.parametrize("args, message", [
    (["no_such_study"], "unknown experiment 'no_such_study'"),
    (["adam_vs_bn"], "experiment 'adam_vs_bn' has no runs"),
    (["book_baseline"], "report that one: python -m bn_study.report book_ch3"),
    (["bn_vs_none", "--parent", "0" * 32], "is not a run in this MLflow store"),
    (["bn_vs_none", "book_ch3", "--parent", "0" * 32], "exactly one experiment"),
])
def test_user_errors_exit_2_with_one_sentence(store, tmp_path, capsys, args, message):
    assert report(store, tmp_path, *args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("error: ") and len(err.splitlines()) == 1


def test_parent_of_another_experiment_is_refused(store, tmp_path, capsys):
    assert report(store, tmp_path, "bn_vs_none", "--parent", store.book) == 2
    assert "belongs to another experiment" in capsys.readouterr().err


def test_missing_store_is_not_created(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'nothing.db'}"
    assert main(["bn_vs_none", "--tracking-uri", uri, "--out", str(tmp_path / "r")]) == 2
    assert "no MLflow store" in capsys.readouterr().err and not (tmp_path / "nothing.db").exists()


def test_only_running_sweep_says_how_to_report_it(store, tmp_path, capsys):
    pid = store.sweep("batch_size", {"batch_size=4 norm=none": {"metrics": {"val_acc": [0.9]}}}, status="RUNNING")
    assert report(store, tmp_path, "batch_size") == 2
    assert f"pass --parent {pid}" in capsys.readouterr().err
    assert report(store, tmp_path, "batch_size", "--parent", pid, "--no-artifacts") == 0
    readme = (tmp_path / "batch_size" / "README.md").read_text()
    assert "RUNNING" in readme and "no condition of this sweep matches" in readme  # claims need the missing arms


def test_a_study_compared_with_another_judges_both_by_the_same_claims(store, tmp_path):
    """fashion_bn.yaml: bn_vs_none's report section (extends) and a side-by-side with bn_vs_none's latest sweep."""
    assert report(store, tmp_path, "fashion_bn", "--no-artifacts") == 0
    text = (tmp_path / "fashion_bn" / "README.md").read_text()
    assert "> Data: Fashion-MNIST (`data=fashion_mnist`), 60000 training and 10000 test images; labels: 0 T-shirt/top, " \
           "1 Trouser" in text and "9 Ankle boot" in text
    assert "## Side by side with `bn_vs_none` (data not recorded)" in text
    assert f"its latest sweep `{store.bn}` (20 runs" in text  # the finished one, not the RUNNING newer one
    section = text[text.index("## Side by side"):text.index("## Final metrics")]
    row = next(ln for ln in section.splitlines() if ln.startswith("| **1. BN speeds up sigmoid convergence a lot**"))
    # here +3 pp (0.14 vs 0.11): not "a lot"; on bn_vs_none's sweep +81 pp: supported
    assert row.split(" | ")[1].startswith("+3.00 pp") and row.split(" | ")[3].startswith("+81.00 pp")
    assert row.split(" | ")[2] == "**contradicted**" and row.split(" | ")[4].startswith("**supported**")
    # the claims themselves came from bn_vs_none.yaml
    assert "| **2. With BN, sigmoid reaches 90 % test accuracy at least 2 epochs sooner**" in text
    assert "| sigmoid, BN after layer 1 | 96.00 ± 0.20 | 96.00 ± 0.20 |" in section


def test_compare_with_a_study_missing_from_the_store_is_one_sentence(tmp_path, capsys):
    alone = FakeStore(tmp_path / "alone")
    alone.sweep("fashion_bn", article())
    capsys.readouterr()  # MLflow's own lines while the fake store was made
    assert report(alone, tmp_path / "out", "fashion_bn", "--no-artifacts") == 2
    err = capsys.readouterr().err.strip()
    assert "report.compare_with names 'bn_vs_none', which has no runs in this MLflow store" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "out" / "fashion_bn").exists()
