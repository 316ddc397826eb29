"""The driver loop the shard-shaped Ray stages share: pending units through an actor pool, one progress bar.

render, encode and annotate each find the units whose output is not complete yet, show a bar
that starts at what is already done, hand the rest to `run_pool` (pipelines/work_pool.py), and
fold every result into their summary as it arrives. `drive` is that loop; a job module says only
which actor does a unit (`Pool`), what the bar counts (`Bar`) and how a result adds up (`fold`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from tqdm import tqdm

from formats.shards import ShardPaths

from pipelines.work_pool import MAX_ATTEMPTS, run_pool


@dataclass(frozen=True)
class Pool:
    """The actors: `worker_cls(*init_args)`, each unit run as `worker.<method>(*call_args, unit)`.

    `workers` = 0 starts as many actors as the cluster's free CPUs (or, with `num_gpus`, GPUs) fit.
    """

    worker_cls: type
    init_args: tuple
    method: str
    workers: int = 0
    call_args: tuple = ()
    num_cpus: float = 1
    num_gpus: float = 0
    attempts: int = MAX_ATTEMPTS
    describe: Callable[[Any], str] | None = None  # names a unit in the error when its worker kept dying

    def size(self) -> int:
        """Actors to start: `workers`, or as many as fit the cluster's free resources (at least one)."""
        if self.workers:
            return self.workers
        import ray

        free = ray.available_resources()
        fit = free.get("GPU", 0) / self.num_gpus if self.num_gpus else free.get("CPU", 1) / self.num_cpus
        return max(int(fit), 1)


@dataclass(frozen=True)
class Bar:
    """The progress bar: `total` of `unit` in the job, `done` of them complete before this run."""

    desc: str
    unit: str
    total: int
    done: int
    enabled: bool = True
    postfix: Callable[[], dict] | None = None  # running totals shown after the bar (refreshed with it)


def drive(pool: Pool, todo: list, bar: Bar, fold: Callable[[Any, dict], int]) -> tuple[int, float]:
    """Run every unit of `todo` on `pool` under `bar`; returns (actors used, wall seconds).

    `fold(unit, result)` adds one unit's result to the caller's summary (on the driver, in arrival
    order) and returns how far the bar advances. No units: no actors, no bar. Raises what
    `run_pool` raises (the worker's own exception, or ShardFailed).
    """
    t0 = time.perf_counter()
    if not todo:
        return 0, time.perf_counter() - t0
    progress = tqdm(total=bar.total, initial=bar.done, unit=bar.unit, desc=bar.desc, disable=not bar.enabled)

    def on_result(unit: Any, result: dict) -> None:
        step = fold(unit, result)
        if bar.postfix is not None:
            progress.set_postfix(**bar.postfix(), refresh=False)
        progress.update(step)

    try:
        workers = run_pool(pool.worker_cls, pool.init_args, pool.method, todo, min(pool.size(), len(todo)),
                           on_result, num_cpus=pool.num_cpus, num_gpus=pool.num_gpus, call_args=pool.call_args,
                           attempts=pool.attempts, describe=pool.describe)
    finally:
        progress.close()
    return workers, time.perf_counter() - t0


def clean_up_after_cancel(shards: Iterable[ShardPaths], timeout_s: float = 15.0) -> None:
    """After `drive` was cancelled (Ctrl-C, SIGTERM) or failed: remove the temp and lock files its
    killed workers left on the output `shards` of the units it did not finish, so nothing stays
    until the next run. Waits up to `timeout_s` in all for workers still dying to let go of a shard."""
    deadline = time.monotonic() + timeout_s
    for paths in shards:
        paths.clean_up_after_dead_writers(wait_s=max(deadline - time.monotonic(), 0.0))
