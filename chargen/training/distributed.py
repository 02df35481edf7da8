"""Several processes, one model: torchrun's environment, the process group, and the few
collective operations that keep every rank's decisions identical.

A single process is a world of size 1, and then nothing here talks to anyone. The
model wrapping (DistributedDataParallel) is the trainer's; this module only connects.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ChargenError


@dataclass(frozen=True)
class World:
    """Where this process stands: rank 0 of 1 unless started by torchrun."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, metrics and the progress bar."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env() -> World:
    """The World that torchrun describes in RANK, WORLD_SIZE and LOCAL_RANK; a plain run is World()."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise ChargenError("RANK, WORLD_SIZE or LOCAL_RANK is not an integer",
                           "start several processes with torchrun, or unset those variables") from None
    if size < 1 or not 0 <= rank < size or local < 0:
        raise ChargenError(f"inconsistent torchrun environment: RANK={rank} WORLD_SIZE={size}",
                           "start several processes with torchrun, or unset those variables")
    return World(rank, size, local)


def connect(world: World, device: torch.device) -> torch.device:
    """Join the process group (nccl on CUDA, gloo on CPU) and return this rank's device.

    On CUDA each process takes the GPU numbered by its LOCAL_RANK on its node.
    """
    if not world.distributed:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def disconnect(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def mean(world: World, value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar tensor over all ranks (the tensor itself in a single process)."""
    if not world.distributed:
        return value
    value = value.detach().clone().double()
    dist.all_reduce(value)
    return value / world.size


def from_main(world: World, value: float, device: torch.device) -> float:
    """Rank 0's value of a float, on every rank: clocks and evaluations differ slightly
    between processes, and ranks that decide differently when to stop would wait forever."""
    if not world.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return t.item()
