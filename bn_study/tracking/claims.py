"""Which launch trains which member, kept in the tracking store itself, so that N launchers of one grid — two
identical commands in one directory, or N machines against one server — train each member exactly once.

The store's one atomic write that works the same on a sqlite file and behind an MLflow server is a run
parameter: a param, once logged, cannot be changed (a second value is refused, by the database's primary
key). So a claim on a member is the param ``claim/<experiment>/<config hash>/<generation>`` of one bookkeeping
run (the *ledger*, in the experiment ``LEDGER_EXPERIMENT``), whose value names the owner (host:pid:start
time). Whoever logs it first holds the member; the others see the holder. A holder that lets go tags the
claim ``released/…``; a holder that died (its pid gone on this host, or no heartbeat for
``tracking.stale_after_seconds`` from another) is overtaken by claiming the next generation, which again
only one launcher can win.

Every process that tracks runs beats: it sets the ledger's tag ``heartbeat/<host>/<pid>/<start>`` to the
time every ``tracking.heartbeat_seconds``, while it holds a claim or a RUNNING run. That is how a run or a
claim of another host is known to be orphaned. A joblib worker also watches its sweep's process and ends
itself when that is gone, so no worker trains on into runs a rerun would continue.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from mlflow import MlflowClient
from mlflow.entities import Param, RunTag
from mlflow.exceptions import MlflowException

from bn_study.tracking.owner import describe_owner, owner_gone, owner_host, this_owner
from bn_study.tracking.store import connect, get_or_create_experiment
from bn_study.util.retry import retry

log = logging.getLogger(__name__)

LEDGER_EXPERIMENT = "bn_study.claims"
_NOTE = ("Bookkeeping of bn_study launchers, not results: which process trains which member (params claim/…) "
         "and when each process last showed it was alive (tags heartbeat/…). Leave it while sweeps run.")
_FIND_LEDGER_S = 30.0  # how long to wait for the ledger run of the process that made its experiment


def _busy(err: Exception) -> bool:
    """A store busy under parallel writers (sqlite's lock) or restarting is worth another try."""
    text = str(err).lower()
    return "locked" in text or "busy" in text or "connection" in text or "temporarily" in text


def _store_call(call, *args):  # noqa: ANN001, ANN202 - a thin retry around one client call
    return retry(lambda: call(*args), retryable=_busy, deadline=time.monotonic() + 30)


_REFUSALS = (
    "changing param values is not allowed",  # the store saw the other launcher's param before writing
    # the other launcher's write landed between the store's check and its own commit: the database's key
    "unique constraint failed",  # sqlite
    "duplicate key value violates unique constraint",  # postgresql
    "duplicate entry",  # mysql
)


def _refused(err: MlflowException) -> bool:
    """The store refused a second value for a param: another launcher logged this claim first. (Only that:
    the same error code also means, say, a deleted ledger run, which no retry mends.)"""
    text = str(err).lower()
    return any(refusal in text for refusal in _REFUSALS)


def _claim_key(experiment_id: str, digest: str, generation: int) -> str:
    return f"claim/{experiment_id}/{digest}/{generation}"


def _released_key(claim_key: str) -> str:
    return "released/" + claim_key.removeprefix("claim/")


def heartbeat_key(owner: str) -> str:
    return "heartbeat/" + owner.replace(":", "/")


def _new_ledger_run(client: MlflowClient, experiment_id: str) -> str:
    """A ledger run, FINISHED at once: it runs nothing, and a closed run still takes params and tags."""
    run_id = client.create_run(experiment_id, run_name="claims", tags={"mlflow.note.content": _NOTE}).info.run_id
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _ledger_run(client: MlflowClient, uri: str) -> str:
    """The ledger run's id; the process that creates the ledger experiment creates its run. Should it die in
    between, the others make one after a wait, and everyone takes the oldest (one rule, one answer)."""
    experiment, created = get_or_create_experiment(client, LEDGER_EXPERIMENT, uri,
                                                   tags={"mlflow.note.content": _NOTE})
    if created:
        return _new_ledger_run(client, experiment)
    deadline = time.monotonic() + _FIND_LEDGER_S
    while True:
        runs = _store_call(lambda: client.search_runs([experiment], max_results=20,
                                                      order_by=["attributes.start_time ASC"]))
        active = sorted((r for r in runs if r.info.lifecycle_stage == "active"),
                        key=lambda r: (r.info.start_time, r.info.run_id))
        if active:
            return active[0].info.run_id
        if runs or time.monotonic() > deadline:  # a ledger run deleted by hand, or its maker died
            _new_ledger_run(client, experiment)
            continue
        time.sleep(0.2)


@dataclass
class Ledger:
    """The claims and heartbeats of one tracking store."""

    client: MlflowClient
    uri: str
    run_id: str
    stale_after: float
    owner: str = field(default_factory=this_owner)
    held: dict[str, str] = field(default_factory=dict)  # claim key → the value this process logged

    @classmethod
    def open(cls, client: MlflowClient, uri: str, stale_after: float) -> Ledger:
        run_id = _LEDGERS.get(uri)
        if run_id is not None:
            try:
                if client.get_run(run_id).info.lifecycle_stage != "active":
                    run_id = None  # deleted in the UI: a new one is made
            except MlflowException:  # the store was replaced since (a new file at the same path)
                run_id = None
        if run_id is None:
            run_id = _LEDGERS[uri] = _ledger_run(client, uri)
        return cls(client, uri, run_id, stale_after)

    def _state(self) -> tuple[Mapping[str, str], Mapping[str, str]]:
        data = _store_call(self.client.get_run, self.run_id).data
        return data.params, data.tags

    def gone(self, owner: str | None, tags: Mapping[str, str] | None = None) -> bool:
        """Whether ``owner`` is certainly not running any more: its process is gone (this host), or it has not
        beaten for ``stale_after`` seconds (another host). An owner never seen beating is not judged."""
        if owner_gone(owner):
            return True
        if owner_host(owner) in (None, owner_host(this_owner())):
            return False
        beat = (tags if tags is not None else self._state()[1]).get(heartbeat_key(owner))
        try:
            return beat is not None and time.time() - float(beat) > self.stale_after
        except ValueError:
            return False

    def _current(self, params: Mapping[str, str], tags: Mapping[str, str], experiment_id: str,
                 digest: str) -> tuple[int, str | None]:
        """The next generation to claim, and the live owner holding this member (None: free)."""
        prefix = _claim_key(experiment_id, digest, 0)[:-1]
        generations = [int(k[len(prefix):]) for k in params if k.startswith(prefix) and k[len(prefix):].isdigit()]
        if not generations:
            return 0, None
        last = _claim_key(experiment_id, digest, max(generations))
        if last in self.held:
            return max(generations), self.owner
        holder = params[last].split(" ")[0]
        if tags.get(_released_key(last)) == "true" or holder == self.owner or self.gone(holder, tags):
            return max(generations) + 1, None
        return max(generations), holder

    def claim(self, experiment_id: str, digests: Sequence[str]) -> dict[str, str]:
        """Claim every member of ``digests``, all or none: {} when this process now holds them all, else the
        members another live launch holds (and nothing is kept). While one is held, nothing is written: a
        launch waiting for a member only reads."""
        params, tags = self._state()
        found = {d: self._current(params, tags, experiment_id, d)[1] for d in digests}
        held = {d: owner for d, owner in found.items() if owner is not None and owner != self.owner}
        if held:
            return held
        got: list[str] = []
        for digest in digests:
            while True:
                generation, holder = self._current(params, tags, experiment_id, digest)
                if holder == self.owner:
                    break
                if holder is not None:
                    self.release(got)
                    return {digest: holder}
                key, value = _claim_key(experiment_id, digest, generation), f"{self.owner} {secrets.token_hex(4)}"
                self.held[key] = value  # before the write: should it fail after the store took it, it is released
                try:
                    _store_call(self.client.log_batch, self.run_id, [], [Param(key, value)], [])
                except MlflowException as err:
                    if _refused(err):
                        del self.held[key]
                        params, tags = self._state()
                        continue  # another launcher won this generation: look again at who holds it
                    raise
                got.append(key)
                break
        return {}

    def release(self, keys: Iterable[str] | None = None) -> None:
        """Let go of claims (all of this process's when ``keys`` is None), so a later launch may take them."""
        keys = list(self.held) if keys is None else list(keys)
        if not keys:
            return
        tags = [RunTag(_released_key(k), "true") for k in keys]
        try:
            for i in range(0, len(tags), 100):
                _store_call(self.client.log_batch, self.run_id, [], [], tags[i:i + 100])
        except Exception as err:  # the owner's death frees them as well, a little later
            log.warning("could not release %d claim(s) in the tracking store: %s", len(keys), err)
        for k in keys:
            self.held.pop(k, None)

    def beat(self) -> None:
        _store_call(self.client.set_tag, self.run_id, heartbeat_key(self.owner), f"{time.time():.0f}")


def hold(ledger: Ledger, experiment_id: str, digests: Sequence[str], *, defer: bool, poll_seconds: float) -> str | None:
    """Claim every member of ``digests`` (None once held), or name the live launch that trains one (its owner)
    when ``defer``; without ``defer``, wait until that launch lets go of it or is gone."""
    told = False
    while True:
        held = ledger.claim(experiment_id, digests)
        if not held:
            return None
        owner = next(iter(held.values()))
        if defer:
            return owner
        if not told:
            log.info("waiting: another launch (%s) trains this job's member%s; this one continues once it is "
                     "done (or gone)", describe_owner(owner), "s" if len(digests) > 1 else "")
            told = True
        time.sleep(poll_seconds)


def sweep_to_watch(sweep_owner: str | None, launcher: str | None) -> str | None:
    """A joblib worker's sweep process: when it is gone, the worker must not train on (the loky workers of a
    killed sweep would finish their jobs first)."""
    if not sweep_owner or "joblib" not in (launcher or "") or sweep_owner == this_owner():
        return None
    return sweep_owner


_LEDGERS: dict[str, str] = {}  # tracking URI → ledger run id, found once per process


class Heartbeat:
    """This process's heartbeat in one store, while anything holds it (reference counted: a sweep's parent run
    and each job). ``watch``: an owner (the sweep process of a joblib worker) whose end ends this process."""

    _running: dict[str, Heartbeat] = {}
    _lock = threading.Lock()

    def __init__(self, ledger: Ledger, every: float, watch: str | None) -> None:
        self.ledger = Ledger(connect(ledger.uri), ledger.uri, ledger.run_id, ledger.stale_after)
        self.every, self.watch, self.users = every, watch, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bn_study-heartbeat", daemon=True)

    @classmethod
    @contextlib.contextmanager
    def held(cls, ledger: Ledger, every: float, watch: str | None = None) -> Iterator[None]:
        with cls._lock:
            beat = cls._running.get(ledger.uri)
            if beat is None:
                beat = cls._running[ledger.uri] = Heartbeat(ledger, every, watch)
                beat._beat()  # before any claim: another host should never see a claim without a beat
                beat._thread.start()
            beat.users += 1
        try:
            yield
        finally:
            with cls._lock:
                beat.users -= 1
                if beat.users == 0:
                    beat._stop.set()
                    cls._running.pop(ledger.uri, None)

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(min(1.0, self.every)):
            if self.watch and owner_gone(self.watch):
                log.error("the sweep that started this worker (%s) is gone: the worker stops too; the next "
                          "launch of the sweep closes or continues its runs", describe_owner(self.watch))
                logging.shutdown()
                os.kill(os.getpid(), signal.SIGKILL)
            if time.monotonic() - last >= self.every:
                last = time.monotonic()
                self._beat()

    def _beat(self) -> None:
        try:
            self.ledger.beat()
        except Exception as err:  # a missed beat is survivable: stale_after spans several
            log.debug("heartbeat not written: %s", err)
