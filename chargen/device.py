"""Turning a user's device string (auto, cpu, cuda, cuda:N, mps) into a torch.device."""
from __future__ import annotations

import torch

from .errors import ChargenError


def resolve_device(spec: str = "auto") -> torch.device:
    """`auto` picks CUDA, then Apple's MPS, then the CPU. Raises ChargenError for an unavailable device."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ChargenError(f"unknown device {spec!r}", "use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ChargenError("--device cuda was asked for, but CUDA is not available here",
                               "use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ChargenError(f"no GPU {device.index}: this machine has {torch.cuda.device_count()}",
                               "use --device cuda:0")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ChargenError("--device mps was asked for, but MPS is not available here", "use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ChargenError(f"unsupported device {spec!r}", "use auto, cpu, cuda, cuda:N or mps")
    return device
