"""Ray Train for `vistune train train.backend=ray`: a `TorchTrainer` runs `train.loop.train` on N workers.

TorchTrainer sets up the DDP process group in each worker; `ray_context()` turns what it set up
into the `train.distributed.DistContext` the loop takes, so the loop and `train/` know nothing of
Ray (torchrun and one process build the same context in train/distributed.py).
"""

from __future__ import annotations

import os
from typing import Any, Callable

from train.distributed import DistContext


def ray_context() -> DistContext:
    """Inside a Ray Train worker: rank, world size and device as TorchTrainer set them up."""
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    return DistContext(ctx.get_world_rank(), ctx.get_world_size(), ctx.get_local_rank(), ray.train.torch.get_device())


def report(metrics: dict[str, Any]) -> None:
    """Hand a worker's final metrics to Ray Train (a collective: every rank must call it; rank 0's are kept)."""
    import ray.train

    ray.train.report(metrics)


def fit(worker_fn: Callable[[dict], None], config: dict, num_workers: int, use_gpu: bool,
        storage_path: str, cpus_per_worker: float = 1.0) -> Any:
    """Run `worker_fn(config)` on `num_workers` Ray Train workers (TorchTrainer: DDP process group).

    Checkpoints are written by rank 0 to the run's `out` directory, which on a multi-node cluster
    must be shared storage (or mounted object storage) so a restarted run finds them.
    """
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(worker_fn, train_loop_config=config,
                           scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                                        resources_per_worker={"CPU": cpus_per_worker}),
                           run_config=RunConfig(name="vistune-train", storage_path=os.path.abspath(storage_path)))
    return trainer.fit()
