"""Process-group helpers for torch DDP launched by ``torchrun`` (gloo on CPU, nccl on CUDA)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "barrier", "cleanup", "init_from_env"]


@dataclass
class DistInfo:
    """Where this process stands: rank, world size, local rank and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def barrier() -> None:
    """Synchronize all ranks (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def init_from_env(device: str = "auto") -> DistInfo:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE``/``RANK``/``LOCAL_RANK``).

    ``device`` "auto" picks ``cuda:<local_rank>`` when CUDA is available, else the CPU. The backend is
    nccl for CUDA and gloo for the CPU. Without ``WORLD_SIZE`` > 1 nothing is initialized.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(f"cuda:{local}" if device == "cuda" else device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    info = DistInfo(rank, world, local, dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        info.initialized_here = True
    elif dist.is_available() and dist.is_initialized():
        info.rank, info.world_size = dist.get_rank(), dist.get_world_size()
    return info


def cleanup(info: DistInfo) -> None:
    """Leave the process group if :func:`init_from_env` created it."""
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()
