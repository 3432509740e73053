"""A new sqlite MLflow store without MLflow's migrations.

MLflow builds a fresh sqlite database by replaying its whole Alembic history, which costs seconds — the
largest fixed cost of a first run in a new directory, and paid again by every test that launches in one.
The result is the same empty schema every time for a given MLflow version, so the first database built
that way is kept (a consistent copy through sqlite's backup API) under the user's cache directory, and
later ones start as a copy of it. Experiment 0 ("Default") is the only row that differs between stores:
its artifact location and times are set as MLflow would have set them. Anything unusual (no cache
directory, another MLflow version, a copy that fails) falls back to MLflow's own way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def _template() -> Path:
    import mlflow

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "bn_study" / f"mlflow-{mlflow.__version__}-empty.db"


def seed(db: Path) -> bool:
    """Put a copy of the empty template at ``db``, unless a store is there already. True when ``db`` holds a
    store afterwards; False when it is still to be built (no template, or the copy failed)."""
    template = _template()
    if not template.is_file():
        return False
    tmp = db.with_name(f".{db.name}.{os.getpid()}.seed")
    try:
        with _copy(template, tmp) as dst:
            now = int(time.time() * 1000)
            dst.execute("UPDATE experiments SET artifact_location = ?, creation_time = ?, last_update_time = ? "
                        "WHERE experiment_id = 0", (str(db.parent.resolve() / "mlruns" / "0"), now, now))
            dst.commit()
        os.link(tmp, db)  # never over a store another process made meanwhile
        return True
    except (OSError, sqlite3.Error) as err:
        if not db.exists():
            log.debug("no copy of the empty MLflow store (%s); MLflow builds it", err)
        return db.exists()
    finally:
        tmp.unlink(missing_ok=True)


def keep(db: Path) -> None:
    """``db`` was just built by MLflow and holds nothing yet: keep a copy as the template."""
    template = _template()
    tmp = template.with_name(f".{template.name}.{os.getpid()}.tmp")
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        with _copy(db, tmp):
            pass
        os.replace(tmp, template)
    except (OSError, sqlite3.Error) as err:  # a read-only home: every new store is simply built by MLflow
        log.debug("could not keep the empty MLflow store as a template: %s", err)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _copy(source: Path, target: Path) -> Iterator[sqlite3.Connection]:
    """A consistent copy of the database ``source`` at ``target``, open for changes until the block ends."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
        yield dst
    finally:
        src.close()
        dst.close()
