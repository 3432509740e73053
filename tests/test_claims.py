"""The claims ledger on a real store: one winner among processes that claim a member at the same moment, a
holder that let go or died (this host: its pid; another host: its heartbeat) is overtaken, a live one is not."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from bn_study.tracking.claims import Ledger, heartbeat_key
from bn_study.tracking.store import connect

DIGEST = "0123456789abcdef"


def _ledger(db, owner: str | None = None, stale_after: float = 60.0) -> Ledger:
    uri = f"sqlite:///{db}"
    ledger = Ledger.open(connect(uri), uri, stale_after)
    if owner is not None:
        ledger.owner = owner
    return ledger


def _claim_at(db, start: float, results, stay) -> None:  # in a child process
    ledger = _ledger(db)
    time.sleep(max(0.0, start - time.time()))
    results.put((ledger.owner, ledger.claim("1", [DIGEST])))
    stay.wait(120)  # alive until every contender has looked: a dead winner could rightly be overtaken


def test_of_six_processes_claiming_one_member_at_once_exactly_one_wins(tmp_path):
    db = tmp_path / "mlflow.db"
    _ledger(db)  # the store and the ledger exist; the race is for the claim itself
    ctx = multiprocessing.get_context("spawn")
    results, stay = ctx.Queue(), ctx.Event()
    start = time.time() + 8  # past every child's imports
    procs = [ctx.Process(target=_claim_at, args=(db, start, results, stay)) for _ in range(6)]
    for p in procs:
        p.start()
    try:
        got = [results.get(timeout=120) for _ in procs]
    finally:
        stay.set()
        for p in procs:
            p.join(60)
    winners = [owner for owner, held in got if held == {}]
    assert len(winners) == 1, got
    assert all(held == {DIGEST: winners[0]} for owner, held in got if owner != winners[0])


def test_a_claim_that_lands_between_the_stores_check_and_its_write_is_lost_not_raised(tmp_path, monkeypatch):
    """The six processes' race made certain: the other launcher's claim is committed after the store has looked
    for the param and before it inserts its own, so the database's key refuses it, not MLflow's check."""
    from mlflow.store.tracking import sqlalchemy_store

    db = tmp_path / "mlflow.db"
    here, other = _ledger(db), _ledger(db, "otherbox:4242:777")  # another host that never beat: live
    real = sqlalchemy_store.SqlParam

    def param_once_the_other_has_claimed(**columns):
        monkeypatch.setattr(sqlalchemy_store, "SqlParam", real)
        assert other.claim("1", [DIGEST]) == {}
        return real(**columns)

    monkeypatch.setattr(sqlalchemy_store, "SqlParam", param_once_the_other_has_claimed)
    assert here.claim("1", [DIGEST]) == {DIGEST: "otherbox:4242:777"}
    assert here.held == {}
    params = here.client.get_run(here.run_id).data.params
    assert params[f"claim/1/{DIGEST}/0"].startswith("otherbox:4242:777 ")


def test_a_released_claim_or_a_dead_holder_is_taken_over_a_live_one_is_not(tmp_path):
    db = tmp_path / "mlflow.db"
    first, second = _ledger(db, "vm-a:1:1"), _ledger(db)
    import socket

    host = socket.gethostname()
    dead = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    dead.start()
    dead.join()
    first.owner = f"{host}:{dead.pid}:1"  # this host, a process that has ended
    assert first.claim("1", [DIGEST]) == {}
    assert second.claim("1", [DIGEST]) == {}  # overtaken at once: its pid is gone
    params = first.client.get_run(first.run_id).data.params
    assert sorted(k for k in params if DIGEST in k) == [f"claim/1/{DIGEST}/0", f"claim/1/{DIGEST}/1"]
    third = _ledger(db, f"{host}:1:{'x'}")
    assert third.claim("1", [DIGEST]) == {DIGEST: second.owner}  # the holder lives: held
    second.release()
    assert third.claim("1", [DIGEST]) == {}  # let go of: free again


@pytest.mark.parametrize(("beat_age", "taken"), [(None, False), (5, False), (500, True)])
def test_another_hosts_holder_is_judged_by_its_heartbeat(tmp_path, beat_age, taken):
    db = tmp_path / "mlflow.db"
    other = _ledger(db, "otherbox:4242:777")
    assert other.claim("1", [DIGEST]) == {}
    if beat_age is not None:
        other.client.set_tag(other.run_id, heartbeat_key(other.owner), f"{time.time() - beat_age:.0f}")
    here = _ledger(db, stale_after=60)
    assert here.claim("1", [DIGEST]) == ({} if taken else {DIGEST: "otherbox:4242:777"})


def test_all_or_nothing_a_job_holding_one_member_of_two_keeps_neither(tmp_path):
    db = tmp_path / "mlflow.db"
    other, here = _ledger(db), _ledger(db)
    here.owner = "vm-b:2:2"  # a live process elsewhere, beating now
    here.client.set_tag(here.run_id, heartbeat_key(here.owner), f"{time.time():.0f}")
    assert here.claim("1", ["b" * 16]) == {}
    assert other.claim("1", ["a" * 16, "b" * 16]) == {"b" * 16: here.owner}
    assert other.held == {}  # "a" was let go of again
    assert here.claim("1", ["a" * 16]) == {}
