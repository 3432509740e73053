"""Encode arrays in the IDX format (LeCun's MNIST files) that torchvision reads."""

from __future__ import annotations

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
