"""Devices given by users, checked before any work starts."""

from __future__ import annotations

from typing import Any

from nas.errors import UsageError


def resolve_device(device: Any, *, field: str = "device") -> Any:
    """A ``torch.device`` checked to be usable here: a clear one-line error (naming ``field``)
    for a string torch does not parse, a device type other than cpu/cuda, or a GPU that is
    not there."""
    import torch

    if isinstance(device, bool) or not isinstance(device, (str, torch.device)):
        raise UsageError(f"{field}: must be a device name such as cpu, cuda or cuda:1, "
                         f"got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UsageError(f"{field}: {str(device)!r} is not a device; use cpu, cuda or "
                         "cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"{field}: {dev.type!r} is not supported; use cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"{field}: {str(device)!r} asked for but CUDA is not available "
                             "here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"{field}: {str(device)!r} asked for but this machine has "
                             f"{torch.cuda.device_count()} GPU(s)")
    return dev
