"""Device resolution: ``auto | cpu | cuda | cuda:N | mps``."""

from __future__ import annotations

import torch

from gendsl.errors import UsageError

__all__ = ["resolve_device"]


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` for ``name``; ``auto`` picks CUDA, then MPS, then the CPU.

    :raises UsageError: an unknown name, or an accelerator this machine does not have.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise UsageError(f"device must be auto, cpu, cuda, cuda:N or mps, got {name!r}") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {name!r} requested but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(
                f"device {name!r} requested but only {torch.cuda.device_count()} GPU(s) exist"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"device {name!r} requested but MPS is not available")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"device must be auto, cpu, cuda, cuda:N or mps, got {name!r}")
    return device
