"""Accuracies are counts over a split, so what is logged is exactly correct / n (float64), never a float32
quotient such as 0.23759999871253967 for 2376 / 10000."""

from __future__ import annotations


def test_every_logged_accuracy_is_a_count_over_its_split(cli, tmp_path, runs_in):
    # 450 training images in batches of 64 (the last one of 2): train_acc over 450, val/test over the 10 000 test images
    done = cli("epochs=2", "data.limit_train=450", "batch_size=64", "probe.samples=100", "probe.every_steps=null",
               "tracking.figures=false", "threads=1")
    assert done.code == 0, done.err[-3000:]
    client, (run,) = runs_in(tmp_path)
    sizes = {"train_acc": 450, "val_acc": 10_000, "test_acc": 10_000}
    checked = 0
    for name, n in sizes.items():
        for m in client.get_metric_history(run.info.run_id, name):
            count = round(m.value * n)
            assert m.value == count / n, (name, m.step, m.value, count)
            checked += 1
    assert checked == 5  # train and val at both epochs, test once
