"""Turning a user's device string (auto, cpu, cuda, cuda:N, mps) into a torch.device, and the one
place that decides mixed precision for a device."""
from __future__ import annotations

import torch

from .errors import ChargenError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(spec: str = "auto", mps: bool = True) -> torch.device:
    """`auto` picks CUDA, then Apple's MPS (unless `mps` is False), then the CPU. Raises ChargenError
    for an unavailable device.

    Pass mps=False where the work is a long series of tiny steps (sampling, one sequence
    read character by character): there MPS's fixed cost per operation outweighs its speed.
    """
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps and torch.backends.mps.is_available():
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


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The one place that decides mixed precision: the autocast dtype for training, or None for fp32.

    `auto` picks bfloat16 on a CUDA GPU that has it (else float16, with loss scaling in
    the trainer) and on a CPU with AMX tiles, fp32 elsewhere: oneDNN runs the LSTM/GRU
    products in bf16 there, and on a GPU bf16 reached a lower validation loss than fp16 or
    fp32 in the same time (benchmarks/README.md). Weights, optimizer state and the loss
    stay fp32 either way.
    """
    if precision not in PRECISIONS:
        raise ChargenError(f"unknown precision {precision!r}", "use auto, fp32, bf16 or fp16")
    if precision == "auto":
        if device.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if _cpu_has_amx(device) else "fp32"
    if precision == "fp32":
        return None
    if precision == "fp16":
        if device.type != "cuda":
            raise ChargenError("--precision fp16 is for CUDA GPUs", "use --precision bf16 or fp32 here")
        return torch.float16
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ChargenError("this GPU does not support bfloat16", "use --precision fp16 or fp32")
    return torch.bfloat16


def _cpu_has_amx(device: torch.device) -> bool:
    """Whether this CPU has AMX tiles, read from the kernel's CPU flags (Linux); False elsewhere,
    where bf16 on the CPU is not known to pay."""
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and " amx_tile" in line for line in f)
    except OSError:
        return False
