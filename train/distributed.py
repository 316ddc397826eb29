"""Process groups and model wrapping for multi-GPU / multi-node training (the model knows nothing of it).

Three ways to run the same `train.loop.train`:
- one process (tests, CPU): `DistContext.local()`;
- `torchrun --nproc_per_node=8 -m pipelines.cli train ...`: `init_torchrun()` reads RANK /
  WORLD_SIZE / LOCAL_RANK and starts the process group (NCCL on GPUs, gloo on CPU);
- Ray Train (`train.backend=ray`): pipelines/train_ray.py starts a `TorchTrainer`, which sets up
  the process group in each worker, and builds the `DistContext` from it (Ray stays out of train/).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def local(cls, device: str = "auto") -> "DistContext":
        return cls(device=pick_device(device, 0))

    def wrap(self, model: nn.Module) -> nn.Module:
        """DDP across ranks (the identity in one process)."""
        if not self.distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def all_reduce_sum(self, x: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj` (picklable), on every rank."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def pick_device(device: str, local_rank: int) -> torch.device:
    """'auto' -> cuda:<local_rank> when a GPU is visible, else cpu; 'cpu' / 'cuda' as asked."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"train.device {device!r} not in ['auto', 'cpu', 'cuda']")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device=cuda but no CUDA device is visible")
    if device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def init_torchrun(device: str = "auto") -> DistContext:
    """A context from torchrun's environment; one process when WORLD_SIZE is unset or 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext.local(device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistContext(rank, world, local_rank, dev)


def shutdown() -> None:
    """End the process group (torchrun / Ray Train workers); nothing to do in one process."""
    if dist.is_initialized():
        dist.destroy_process_group()
