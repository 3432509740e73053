"""Unpickle numpy arrays without letting the pickle run code.

A pickle can call any importable function while loading. This unpickler resolves only the three globals
that a plain numpy array pickle needs, so a hostile file fails with UnpicklingError before anything runs.
It reads Python 2 pickles (encoding="latin1"), which store bytes as str; a Python 3 pickle of an array
at protocol <= 2 also references ``_codecs.encode`` and is refused on purpose.
"""

from __future__ import annotations

import pickle
from typing import IO, Any

import numpy as np

if int(np.__version__.split(".")[0]) >= 2:
    # numpy 2 moved numpy.core to numpy._core; importing the old name still works but warns.
    from numpy._core.multiarray import _reconstruct
else:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # how pickles written by numpy < 2 spell it
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # the same function, as numpy >= 2 spells it
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy arrays are allowed"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing persistent ids: only numpy arrays are allowed")


def load_numpy_pickle(file: IO[bytes]) -> Any:
    """Load a pickle made only of containers, plain values and numeric numpy arrays."""
    obj = RestrictedUnpickler(file, encoding="latin1").load()
    _refuse_object_arrays(obj)
    return obj


def _refuse_object_arrays(obj: Any) -> None:
    # An object array can carry arbitrary Python objects through to whoever uses the data; numbers only.
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise pickle.UnpicklingError(f"refusing an array of dtype {obj.dtype}: only numeric arrays are allowed")
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            _refuse_object_arrays(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            _refuse_object_arrays(item)
