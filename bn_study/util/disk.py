"""A full or read-only disk, told apart from every other error wherever it comes from — an OSError, or
SQLite's words after MLflow and SQLAlchemy wrapped it — so it can be said in one line."""

from __future__ import annotations

from bn_study.errors import StoreError

_DISK_ERRNOS = {"ENOSPC", "EROFS", "EDQUOT"}
# how SQLite (through SQLAlchemy and MLflow) words a full or read-only disk: no errno survives that far
_SQLITE_DISK = (("database or disk is full", "No space left on device"),
                ("attempt to write a readonly database", "Read-only file system"))


def disk_problem(err: BaseException) -> str | None:
    """Why ``err`` (or an error it was raised from) could not write: "No space left on device", "Read-only
    file system", … — None when it is not a full or read-only disk."""
    import errno

    seen: BaseException | None = err
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, OSError) and errno.errorcode.get(seen.errno or 0) in _DISK_ERRNOS:
            return seen.strerror or errno.errorcode[seen.errno]
        for text, reason in _SQLITE_DISK:
            if text in str(seen):
                return f"{text} ({reason})"
        seen = seen.__cause__ or seen.__context__
    return None


def quiet_disk_tracebacks() -> None:
    """MLflow logs every SQLite error with its traceback before it raises it; a full or read-only disk under
    the store is then said once, in one line, by whoever catches it: that traceback is left out."""
    import logging

    logger = logging.getLogger("mlflow.store.db.utils")
    if not any(isinstance(f, _DiskTracebackFilter) for f in logger.filters):
        logger.addFilter(_DiskTracebackFilter())


class _DiskTracebackFilter:
    def filter(self, record: object) -> bool:
        exc = getattr(record, "exc_info", None)
        return not (exc and exc[1] is not None and disk_problem(exc[1]))


def as_store_error(err: BaseException, store: str) -> StoreError | None:
    """``err`` as the StoreError a job ends with when it is a full or read-only disk (None when it is not):
    what could not be written, where, and why; ``store`` is the tracking URI an SQLite error speaks of."""
    if isinstance(err, StoreError):
        return err
    reason = disk_problem(err)
    if reason is None:
        return None
    where = getattr(err, "filename", None)
    if where:
        return StoreError(f"cannot write {where}: {reason}")
    return StoreError(f"the tracking store {store} cannot be written: {reason}")
