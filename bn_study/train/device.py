"""Which device a job trains on: ``device`` in the config."""

from __future__ import annotations

import re

import torch

from bn_study.errors import UserError

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(name: str) -> torch.device:
    """``auto`` = the first CUDA device when there is one, else the CPU."""
    if not isinstance(name, str) or not _DEVICE.match(name):
        raise UserError(f"device={name!r} is not allowed; choose auto, cpu, cuda or cuda:N.")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device={name!r} is not available: this machine has no CUDA GPU; use device=cpu or auto.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"device={name!r} does not exist; this machine has cuda:0..cuda:{torch.cuda.device_count() - 1}.")
    return device
