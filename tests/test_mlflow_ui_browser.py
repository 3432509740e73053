"""What `mlflow ui` shows of a sweep, in a real browser: a tiny grid through the entry point, the real `mlflow ui`
over its store on a loopback port, and Debian's headless Chromium rendering MLflow's single-page app. The parent run
is on the experiment's page; each child's page shows its name, its `condition` tag and its parent (issue 11, item 8).
Skipped, with the reason, only where no Chromium is installed (`.ci/run` installs Debian's `chromium`)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from html.parser import HTMLParser

import pytest

QUICK = ("epochs=1", "data.limit_train=500", "probe.every_steps=null", "tracking.figures=false", "threads=1")
SERVER_START_S = 300  # `mlflow ui` imports a lot; on two busy cores that takes a while
PAGE_DEADLINE_S = 240  # per page: Chromium is run again, with more virtual time, until the app has rendered it
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-proxy-server", "--window-size=1600,1000")


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)


def _stop(proc: subprocess.Popen) -> None:
    """End the process group this test started (the server's uvicorn workers, Chromium's helpers) and reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left, the leader gone or not
    except ProcessLookupError:
        pass
    proc.wait()


class _Text(HTMLParser):
    """The page's text as a reader sees it: text nodes joined, scripts and styles left out."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def _text(dom: str) -> str:
    parser = _Text()
    parser.feed(dom)
    return "".join(parser.parts)


@pytest.fixture
def mlflow_ui(tmp_path, free_port) -> Iterator[Callable[[str], str]]:
    """``mlflow_ui(store_uri)`` → the base URL of a real ``mlflow ui`` over that store, on 127.0.0.1; stopped at the
    end of the test, whatever happens."""
    started: list[subprocess.Popen] = []
    log = (tmp_path / "mlflow-ui.log").open("w")

    def start(store_uri: str) -> str:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store_uri, "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            # no job runner (GenAI's judges and the like): only pages are read here, and the cores are few
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        started.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow ui exited with {proc.returncode}:\n{(tmp_path / 'mlflow-ui.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=10) as answer:
                    if answer.status == 200:
                        return base
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow ui did not answer on {base} within {SERVER_START_S} s:\n"
                            f"{(tmp_path / 'mlflow-ui.log').read_text()[-3000:]}")
            time.sleep(0.5)

    yield start
    for proc in started:
        _stop(proc)
    log.close()


@pytest.fixture
def rendered(tmp_path):
    """``rendered(url, ready)`` → the DOM headless Chromium renders at ``url``, once ``ready`` is in it or in its
    text: a string the page has only when the app has fetched its data from the server. Until then Chromium is run
    again, with twice the virtual time."""
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium here to render MLflow's UI: Debian's package chromium is not installed "
                    "(.ci/run installs it: apt-get install chromium)")
    attempts = iter(range(1, 1000))

    def render(url: str, ready: str) -> str:
        budget_ms, deadline, dom = 15_000, time.monotonic() + PAGE_DEADLINE_S, ""
        while True:
            profile = tmp_path / f"chromium-profile-{next(attempts)}"  # a new, empty one each time
            profile.mkdir()
            proc = subprocess.Popen(
                [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                 "--dump-dom", url],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                start_new_session=True)
            try:
                dom, err = proc.communicate(timeout=max(30.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                dom, err = "", "Chromium was still running at the deadline"
            finally:
                _stop(proc)
            if ready in dom or ready in _text(dom):
                return dom
            if time.monotonic() > deadline:
                pytest.fail(f"{url} never showed {ready!r} within {PAGE_DEADLINE_S} s; Chromium's last words:\n"
                            f"{err[-2000:]}\nits page text: {_text(dom)[:2000]!r}")
            budget_ms *= 2

    return render


def test_mlflow_ui_shows_the_parent_its_children_and_their_conditions(cli, tmp_path, runs_in, mlflow_ui, rendered):
    done = cli("-m", "norm=none,bn1", *QUICK)
    assert done.code == 0, done.err[-3000:]
    _, runs = runs_in(tmp_path)
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and len(runs) == 3
    conditions = {c.info.run_id: c.data.tags["condition"] for c in children}
    assert len(set(conditions.values())) == 2, conditions
    experiment = parent.info.experiment_id

    base = mlflow_ui(f"sqlite:///{tmp_path / 'mlflow.db'}")

    # The experiment's runs table: the sweep is one row, the parent, its children folded under it.
    table = rendered(f"{base}/#/experiments/{experiment}/runs",
                     ready=f'href="#/experiments/{experiment}/runs/{parent.info.run_id}"')  # the parent's row
    assert parent.info.run_name in _text(table), _text(table)[:3000]

    # Each child's own page: its name, its condition tag, and the parent it belongs to.
    for child in children:
        page = _text(rendered(f"{base}/#/experiments/{experiment}/runs/{child.info.run_id}",
                              ready=f"Run ID{child.info.run_id}"))  # its details, not the title's id
        assert child.info.run_name in page, page[:3000]
        assert f"condition: {conditions[child.info.run_id]}" in page, page[:3000]
        assert f"Parent run{parent.info.run_name}" in page, page[:3000]
