"""A job ends with one line that says where it went: its run ids, how they ended, the final numbers, the store,
and how to open it (issue: a single run used to end on its last epoch line)."""

from __future__ import annotations

QUICK = ("epochs=1", "data.limit_train=500", "probe.every_steps=null", "tracking.figures=false", "threads=1")


def _closing(text: str) -> str:
    return next(line for line in text.splitlines() if "to look: mlflow ui" in line)


def test_a_single_run_ends_with_its_id_status_numbers_store_and_page(cli, tmp_path, runs_in):
    done = cli(*QUICK)
    assert done.code == 0, done.err[-3000:]
    client, (run,) = runs_in(tmp_path)
    line = _closing(done.out + done.err)
    acc = client.get_metric_history(run.info.run_id, "val_acc")[-1].value
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert f"run {run.info.run_id}: FINISHED · after epoch 1: val_acc {acc:.4f}, val_loss " in line
    assert f"· store {uri} · to look: mlflow ui --backend-store-uri {uri}, then " \
           f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}" \
           "?workflowType=machine_learning" in line  # the model-training view, not MLflow 3's GenAI one


def test_batched_seeds_name_every_run_and_a_diverged_one_says_why(cli, tmp_path, runs_in):
    done = cli(*QUICK, "seeds=[0,1]", "act=relu", "optimizer.lr=1e30", "optimizer.momentum=0", "optimizer.nesterov=false",
               "log_every=4")
    assert done.code == 1
    _, runs = runs_in(tmp_path)
    line = _closing(done.out + done.err)
    assert line.split(" - ", 1)[-1].startswith(f"2 runs {runs[0].info.run_id} {runs[1].info.run_id}: ") or \
        line.split(" - ", 1)[-1].startswith(f"2 runs {runs[1].info.run_id} {runs[0].info.run_id}: ")
    assert "FAILED: training loss became" in line and all(r.info.status == "FAILED" for r in runs)
