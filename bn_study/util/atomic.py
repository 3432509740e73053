"""Publish files so a reader sees either no file or a complete one, even after a crash."""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Mapping
from pathlib import Path


def stage_bytes(directory: Path, final_name: str, data: bytes) -> Path:
    """Write ``data`` to a hidden temporary file in ``directory`` (same filesystem, so os.replace is atomic)."""
    tmp = directory / f".{final_name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # os.open with 0o666 lets the umask decide the final mode, like an ordinary file; mkstemp would force 0600
    # and make a shared data root unreadable to other users.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            # a full disk can cut a write short without an error at write() (quota, some network file
            # systems): only a temp file of the full size is ever renamed into place
            if os.fstat(f.fileno()).st_size != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def remove_stale_temps(path: Path) -> list[Path]:
    """Delete the temporary files that writes of ``path`` by processes now dead left behind (``stage_bytes``'s
    ``.<name>.<pid>.<token>.tmp``; a kill mid-write leaves one): no temp file outlives the write that made it."""
    removed = []
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            pid = int(tmp.name[len(path.name) + 2:].split(".")[0])
        except ValueError:
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def publish(directory: Path, staged: Mapping[str, Path]) -> None:
    """Move each staged file to ``directory/<name>``; every staged file must already be complete on disk."""
    for src in staged.values():
        _fsync_file(src)
    for name, src in staged.items():
        os.replace(src, directory / name)
    # The renames themselves live in the directory entry; without this a power loss can undo them.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """``path`` holds either its old content or all of ``data``, never a part, even after a crash; when the
    write fails (a full or read-only disk) it raises with ``path`` untouched and no temporary file left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = stage_bytes(path.parent, path.name, data)
    try:
        publish(path.parent, {path.name: staged})
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
