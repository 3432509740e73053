"""The IDX format of LeCun's MNIST files (what torchvision reads): encoded, and decoded without torchvision."""

from __future__ import annotations

import math
import struct

import numpy as np

# The third byte of the magic is the element type (0x08 = unsigned byte), the fourth the number of dimensions.
LABEL_MAGIC = 0x0801  # 2049
IMAGE_MAGIC = 0x0803  # 2051


def encode_images(images: np.ndarray) -> bytes:
    """uint8 [N, rows, cols] -> IDX3 bytes (big-endian header, then the pixels row-major)."""
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"IDX images must be uint8 [N, rows, cols], got {images.dtype} {images.shape}")
    n, rows, cols = images.shape
    return struct.pack(">IIII", IMAGE_MAGIC, n, rows, cols) + np.ascontiguousarray(images).tobytes()


def encode_labels(labels: np.ndarray) -> bytes:
    """uint8 [N] -> IDX1 bytes."""
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"IDX labels must be uint8 [N], got {labels.dtype} {labels.shape}")
    return struct.pack(">II", LABEL_MAGIC, labels.shape[0]) + np.ascontiguousarray(labels).tobytes()


def decode(data: bytes) -> np.ndarray:
    """IDX bytes of unsigned bytes → an array of the shape the header gives (a read-only view of ``data``);
    ``ValueError`` when the header is not one or the size disagrees with it."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08 or data[3] not in (1, 3):
        raise ValueError("not an IDX file of unsigned bytes with 1 or 3 dimensions")
    ndim = data[3]
    body = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", data[4:body])
    if len(data) - body != math.prod(dims):
        raise ValueError(f"the header says {'x'.join(map(str, dims))} values, the file holds {len(data) - body}")
    return np.frombuffer(data, dtype=np.uint8, offset=body).reshape(dims)
