"""The one place where the device and the floating-point precision of a run are decided.

Defaults: CUDA when present, else CPU; float32 on CPU, float16 on CUDA (the precision the
official runner uses, spec §1.1). Half precision on a CPU is refused rather than silently
replaced, because it would change the results.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import DeviceUnavailable

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

_DTYPE_NAMES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
}
VALID_DTYPES = tuple(sorted(_DTYPE_NAMES))


@dataclass(frozen=True)
class Placement:
    """Where a model runs and in which precision."""

    device: "torch.device"
    dtype: "torch.dtype"

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"


def resolve_device(device: str | None = None, dtype: str | None = None) -> Placement:
    """Choose the device and dtype of a run.

    Args:
        device: "cpu", "cuda" or "cuda:N"; None picks CUDA when available, else CPU.
        dtype: one of VALID_DTYPES; None picks float32 on CPU and float16 on CUDA.

    Returns:
        The resolved Placement.

    Raises:
        DeviceUnavailable: CUDA was requested but is absent, or half precision on a CPU.
        ValueError: unknown device or dtype name.
    """
    import torch

    dev = _resolve_device_name(device, torch.cuda.is_available())
    if dtype is None:
        name = "float16" if dev.type == "cuda" else "float32"
        log.info("Running on %s in %s (default for this device).", dev, name)
    else:
        name = _DTYPE_NAMES.get(str(dtype).lower().removeprefix("torch."))
        if name is None:
            raise ValueError(f"Unknown dtype {dtype!r}; choose one of {', '.join(VALID_DTYPES)}.")
    if dev.type == "cpu" and name != "float32":
        raise DeviceUnavailable(
            f"{name} needs a CUDA GPU and this run is on the CPU; drop the dtype option "
            "or run on a machine with an NVIDIA GPU."
        )
    return Placement(device=dev, dtype=getattr(torch, name))


def _resolve_device_name(device: str | None, cuda_available: bool) -> "torch.device":
    import torch

    if device is None:
        return torch.device("cuda" if cuda_available else "cpu")
    try:
        dev = torch.device(str(device).lower())
    except RuntimeError as err:
        raise ValueError(f"Unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'.") from err
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"Unsupported device {device!r}; use 'cpu', 'cuda' or 'cuda:N'.")
    if dev.type == "cuda" and not cuda_available:
        raise DeviceUnavailable(
            f"Device {device!r} was requested but this machine has no CUDA GPU; "
            "use --device cpu or run on a machine with an NVIDIA GPU."
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceUnavailable(
            f"Device {device!r} does not exist (this machine has {torch.cuda.device_count()} "
            "GPU(s)); pick an index below that count."
        )
    return dev
