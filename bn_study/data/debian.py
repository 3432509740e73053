"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package, verified before and after it is opened.

Machines that reach only the package registries still reach Debian's archive. The package carries the
real set (``../shared/data.md`` has the facts), re-gzipped by Debian, so torchvision's md5s of the
``.gz`` files do not apply: what is pinned is the ``.deb``'s sha256 and the sha256 of each IDX file
after decompression. Two sources:

- ``debian``: the files where ``apt-get install dataset-fashion-mnist`` put them
  (``/usr/share/datasets/fashion-mnist``); each checked after decompression, never modified;
- ``apt``: the package fetched with ``apt-get download`` (no root needed) into a scratch directory,
  its sha256 checked before it is opened, then only the four members read out of its ``data.tar.*``
  (a ``.deb`` is an ``ar`` archive) and each checked after decompression. A file that fails its check is
  deleted.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bn_study.data.catalog import FASHION_MNIST_SHA256, RAW_FILES
from bn_study.data.failures import SourceFailed
from bn_study.util.digest import sha256_file

APT_TIMEOUT_S = 600
AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60
MAX_IDX_BYTES = 64 << 20  # the largest IDX file is 47 MB; a member that inflates past this is not one


def apt_get_download(spec: str, dest: Path) -> Path:
    """``apt-get download SPEC`` into ``dest``; with the machine's own package lists, else (lists missing
    or stale, and no root to update them) with private ones fetched into ``dest``."""
    first = _apt(["download", spec], dest)
    if first.returncode != 0:
        private = [f"-oDir::State::Lists={dest / 'lists'}", f"-oDir::Cache={dest / 'cache'}",
                   "-oDebug::NoLocking=1"]
        (dest / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (dest / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        update = _apt([*private, "update"], dest)
        again = _apt([*private, "download", spec], dest) if update.returncode == 0 else update
        if again.returncode != 0:
            raise SourceFailed(f"apt-get download {spec} failed ({_apt_error(first)}; with fresh package lists: "
                               f"{_apt_error(again)})")
    debs = sorted(dest.glob("*.deb"))
    if len(debs) != 1:
        raise SourceFailed(f"apt-get download {spec} gave {len(debs)} .deb files instead of one")
    return debs[0]


def _apt(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["apt-get", "-q", *args], cwd=cwd, capture_output=True, text=True,
                              timeout=APT_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise SourceFailed("apt-get is not available on this machine (not Debian or Ubuntu)") from None
    except subprocess.TimeoutExpired:
        raise SourceFailed(f"apt-get {' '.join(args)} took over {APT_TIMEOUT_S} s") from None


def _apt_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip().startswith("E:")]
    return (lines[-1].removeprefix("E: ") if lines else f"exit code {proc.returncode}")[:200]


@dataclass(frozen=True)
class DebianSource:
    """Everything that pins one Debian package of a dataset; tests swap in a small generated one."""

    package: str
    version: str
    deb_sha256: str
    member_dir: str  # the members' directory inside data.tar.* (and, without the "./", on disk)
    idx_sha256: Mapping[str, str]  # RAW_FILES name -> sha256 of the uncompressed file
    installed_root: Path = Path("/")
    download: Callable[[str, Path], Path] = field(default=apt_get_download, compare=False)

    @property
    def installed_dir(self) -> Path:
        return self.installed_root / self.member_dir.lstrip("./")


def read_installed(source: DebianSource) -> dict[str, bytes]:
    """The four IDX files from the installed package, decompressed and verified."""
    where = source.installed_dir
    if not where.is_dir():
        raise SourceFailed(f"{source.package} is not installed (no {where})")
    payloads = {}
    for name in RAW_FILES:
        path = where / f"{name}.gz"
        if not path.is_file():
            raise SourceFailed(f"{path} is missing")
        with open(path, "rb") as f:
            payloads[name] = _verified_idx(f.read(), name, source, f"{path}")
    return payloads


def fetch_deb(source: DebianSource, workdir: Path) -> dict[str, bytes]:
    """The four IDX files out of the downloaded package: the .deb verified, then each member."""
    deb = source.download(f"{source.package}={source.version}", workdir)
    digest = sha256_file(deb)
    if digest != source.deb_sha256:
        deb.unlink(missing_ok=True)
        raise SourceFailed(f"{deb.name} has sha256 {digest}, expected {source.deb_sha256}; it was deleted")
    try:
        members = _data_members(deb.read_bytes(), source.member_dir)
        return {name: _verified_idx(members[name], name, source, f"{deb.name}:{name}.gz") for name in RAW_FILES}
    finally:
        deb.unlink(missing_ok=True)  # verified or not, the payloads are all that is kept


def _data_members(deb: bytes, member_dir: str) -> dict[str, bytes]:
    """The gzipped RAW_FILES members of the package's data.tar.*, read without extracting anything else."""
    data = _ar_member(deb, "data.tar")
    wanted = {f"{member_dir.rstrip('/')}/{name}.gz": name for name in RAW_FILES}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for info in tar:
                name = wanted.get(info.name) or wanted.get(f"./{info.name}")
                if name is None:
                    continue
                if not info.isfile():  # a link or device where a data file should be
                    raise SourceFailed(f"{info.name} in the package is not a regular file")
                handle = tar.extractfile(info)
                assert handle is not None
                found[name] = handle.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise SourceFailed(f"cannot read the package's data archive ({exc})") from exc
    missing = [n for n in RAW_FILES if n not in found]
    if missing:
        raise SourceFailed(f"the package has no {', '.join(f'{member_dir}/{n}.gz' for n in missing)}")
    return found


def _ar_member(archive: bytes, prefix: str) -> bytes:
    if not archive.startswith(AR_MAGIC):
        raise SourceFailed("the .deb is not an ar archive")
    pos = len(AR_MAGIC)
    while pos + AR_HEADER <= len(archive):
        header = archive[pos:pos + AR_HEADER]
        if header[58:60] != b"`\n":
            raise SourceFailed("the .deb has a damaged ar header")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise SourceFailed("the .deb has a damaged ar header") from None
        start = pos + AR_HEADER
        if name.startswith(prefix):
            if start + size > len(archive):
                raise SourceFailed(f"the .deb's {name} is truncated")
            return archive[start:start + size]
        pos = start + size + (size & 1)  # members are padded to an even offset
    raise SourceFailed(f"the .deb has no {prefix}.* member")


def _verified_idx(compressed: bytes, name: str, source: DebianSource, where: str) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(compressed)) as gz:
            raw = gz.read(MAX_IDX_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise SourceFailed(f"{where} does not decompress ({exc})") from exc
    if len(raw) > MAX_IDX_BYTES:
        raise SourceFailed(f"{where} inflates past {MAX_IDX_BYTES} bytes")
    digest = hashlib.sha256(raw).hexdigest()
    if digest != source.idx_sha256[name]:
        raise SourceFailed(f"{where} decompresses to sha256 {digest}, expected {source.idx_sha256[name]}")
    return raw


FASHION_MNIST_DEB = DebianSource(
    package="dataset-fashion-mnist",
    version="0.0~git20200523.55506a9-1",
    deb_sha256="39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
    member_dir="./usr/share/datasets/fashion-mnist",
    idx_sha256=FASHION_MNIST_SHA256,
)

DEBIAN_PACKAGES = {"fashion_mnist": FASHION_MNIST_DEB}  # dataset name -> its Debian package
