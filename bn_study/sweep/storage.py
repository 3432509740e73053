"""Where a study lives: the ``storage`` setting, resolved the same way by the sweeper and by its jobs.

``storage`` reads as ``optuna-dashboard <storage>`` reads its argument:

- ``null``: in memory, in the sweeping process only (jobs launched in other processes cannot report);
- a URL (``sqlite:///optuna.db``, ``postgresql://user@host/db``, ``mysql+pymysql://…``): an RDB storage;
  a relative sqlite path is made absolute against the launch directory;
- anything else: the path of an Optuna journal file (relative to the launch directory).

The project's default is the journal file ``optuna.journal`` next to ``mlflow.db``. Several sweeps and
their parallel jobs append to it at once under a file lock, which is what Optuna's
``JournalFileBackend`` is built for; one sqlite file written by many processes at once serialises
every writer on one database lock and, past sqlite's busy timeout, fails with "database is locked".
SQLite works too (the busy timeout is raised to a minute here); a server database scales further.
"""

import functools
import importlib.util
import logging
import threading
from pathlib import Path

from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from bn_study.errors import UserError
from bn_study.util.redact import mask_userinfo
from bn_study.util.retry import retry

log = logging.getLogger(__name__)

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
SQLITE_BUSY_TIMEOUT_S = 60
_OPEN_ATTEMPTS = 5

# The sweeper's in-memory storage, so that jobs run in this process (the basic launcher) can report.
_in_memory: InMemoryStorage | None = None
_lock = threading.Lock()


def resolve_storage(spec: str | None, launch_dir: str | Path) -> str | None:
    """The storage setting made independent of the working directory (None = in memory)."""
    if spec is None or str(spec).strip() == "":
        return None
    spec = str(spec).strip()
    if "://" in spec:
        if spec.startswith("sqlite:///") and not spec.startswith("sqlite:////"):
            path = spec.removeprefix("sqlite:///")
            if path and path != ":memory:" and not Path(path).is_absolute():
                return f"sqlite:///{(Path(launch_dir) / path).resolve()}"
        return spec
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else Path(launch_dir) / path
    if path.suffix in SQLITE_SUFFIXES or _has_sqlite_header(path):
        raise UserError(f"hydra.sweeper.storage={spec!r} looks like a SQLite file; write sqlite:///{spec} for "
                        "SQLite, or name a journal file (optuna.journal) for Optuna's journal storage.")
    return str(path.resolve())


def _has_sqlite_header(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def display(resolved: str | None) -> str:
    """The storage for log lines and tags, without a password."""
    if resolved is None:
        return "in memory"
    if "://" not in resolved:
        return f"journal file {resolved}"
    return mask_userinfo(resolved)


def open_storage(spec: str | None, launch_dir: str | Path) -> BaseStorage | None:
    """The storage object for this setting, one per process and URL, opened with retries; for an
    in-memory study, the sweep's own (None in a process other than the sweeper's)."""
    resolved = resolve_storage(spec, launch_dir)
    if resolved is None:
        return _in_memory
    return _open(resolved)


def new_in_memory_storage() -> InMemoryStorage:
    """A fresh in-memory storage for a sweep; jobs running in this process find it through open_storage."""
    global _in_memory
    with _lock:
        _in_memory = InMemoryStorage()
        return _in_memory


@functools.lru_cache(maxsize=8)
def _open(resolved: str) -> BaseStorage:
    def not_ready(err: Exception) -> None:
        log.warning("storage %s not ready (%s); retrying", display(resolved),
                    mask_userinfo(str(err).splitlines()[0]))

    try:  # two processes creating one fresh sqlite schema at once: the second waits and tries again
        return retry(lambda: _connect(resolved), retryable=lambda err: not isinstance(err, UserError)
                     and not _refused_login(err), attempts=_OPEN_ATTEMPTS, on_retry=not_ready)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001
        hint = ("; a server from python -m bn_study.server keeps its password in <its dir>/pgpass: "
                "export PGPASSFILE=<its dir>/pgpass" if _refused_login(err) else
                "; check the URL and that the database is reachable")
        raise UserError(f"hydra.sweeper.storage={display(resolved)!r} cannot be opened "
                        f"({mask_userinfo(str(err).splitlines()[0])}){hint}.") from err


def _refused_login(err: Exception) -> bool:
    """The database turned the login away (no password, a wrong one): asking again cannot help."""
    text = str(err)
    return "no password supplied" in text or "password authentication failed" in text


def _connect(resolved: str) -> BaseStorage:
    if "://" not in resolved:
        path = Path(resolved)
        if not path.parent.is_dir():
            raise UserError(f"hydra.sweeper.storage: the folder of the journal file {path} does not exist.")
        return JournalStorage(JournalFileBackend(str(path)))
    kwargs = {}
    if resolved.startswith("sqlite:"):
        kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    try:
        return RDBStorage(with_installed_driver(resolved), engine_kwargs=kwargs)
    except ImportError:  # a database driver that is not installed (psycopg, pymysql, …)
        raise UserError(f"hydra.sweeper.storage={display(resolved)!r} needs a database driver that is not "
                        "installed (postgresql:// → pip install psycopg or psycopg2-binary; mysql:// → pip "
                        "install pymysql and write mysql+pymysql://); or use a journal file.") from None


def with_installed_driver(url: str) -> str:
    """``postgresql://`` means psycopg 3 to SQLAlchemy 2; with only psycopg2 installed (this project's
    ``server`` extra), the same URL goes through psycopg2 instead of failing."""
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def study_exists(storage: BaseStorage, name: str) -> bool:
    try:
        storage.get_study_id_from_name(name)
        return True
    except KeyError:
        return False


def check_direction(storage: BaseStorage, name: str, directions: list[str], where: str) -> None:
    """A stored study keeps its direction: resuming it the other way round would rank trials backwards."""
    if not study_exists(storage, name):
        return
    stored = [d.name.lower() for d in storage.get_study_directions(storage.get_study_id_from_name(name))]
    if stored != directions:
        raise UserError(f"study {name!r} in {where} optimises {', '.join(stored)}, not "
                        f"hydra.sweeper.direction={', '.join(directions)}; use another hydra.sweeper.study_name "
                        "(or storage) for a new study.")
