"""A Ray actor pool for shard-shaped work: stateful workers, one shard per call, retried on death.

Stages whose workers hold something expensive (a Blender session, codec lookup tables, a model)
create `n_workers` actors once and feed them shards; a worker killed mid-shard is restarted by
Ray and the shard re-run from scratch (shards are written atomically, so nothing partial stays).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

MAX_ATTEMPTS = 4


class ShardFailed(RuntimeError):
    """A shard whose worker kept failing (or raised) after every retry."""


def shard_error(err: Exception, what: str, attempts: int = MAX_ATTEMPTS) -> Exception:
    """What the driver raises for a shard call that failed with the Ray error `err`.

    The worker's own exception comes back as itself (a named input error, a full disk: one clear
    line at the CLI, not a remote traceback); anything else (the worker kept dying and Ray gave
    up after `attempts` tries) becomes ShardFailed naming `what`.
    """
    import ray

    if isinstance(err, ray.exceptions.RayTaskError):  # raised by the worker's code: not retried
        cause = getattr(err, "cause", None)
        if isinstance(cause, Exception) and not isinstance(cause, ray.exceptions.RayError):
            return cause
        return ShardFailed(f"{what} failed: {err}")
    return ShardFailed(f"{what} failed after {attempts} attempts: {err}")


def run_pool(worker_cls: type, init_args: tuple, method: str, items: Iterable[Any], n_workers: int,
             on_result: Callable[[Any, dict], None], num_cpus: float = 1, num_gpus: float = 0,
             call_args: tuple = (), attempts: int = MAX_ATTEMPTS,
             describe: Callable[[Any], str] | None = None) -> int:
    """Run `worker.<method>(*call_args, item)` for every item on a pool of `n_workers` actors.

    `on_result(item, result)` is called on the driver as results arrive (any order). Returns the
    number of workers used. Raises the worker's own exception, or ShardFailed naming the item
    (`describe(item)`) when its worker kept dying. Workers with a `close()` method are asked to
    release what `ray.kill` would leak (scratch directories) before they are killed.
    """
    import ray

    queue = list(items)
    if not queue:
        return 0
    n_workers = max(1, min(n_workers, len(queue)))
    remote_cls = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=attempts,
                            max_task_retries=attempts)(worker_cls)
    actors = [remote_cls.remote(*init_args) for _ in range(n_workers)]
    free, pending = list(actors), {}
    try:
        while queue or pending:
            while queue and free:
                actor, item = free.pop(), queue.pop(0)
                pending[getattr(actor, method).remote(*call_args, item)] = (actor, item)
            ready, _ = ray.wait(list(pending), num_returns=1)
            actor, item = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayError as err:
                raise shard_error(err, describe(item) if describe else f"{method} {item!r}", attempts) from err
            free.append(actor)
            on_result(item, result)
    finally:
        if hasattr(worker_cls, "close"):
            idle = [a for a in actors if all(a is not busy for busy, _ in pending.values())]
            ray.wait([a.close.remote() for a in idle], num_returns=len(idle), timeout=30)
        for actor in actors:
            ray.kill(actor)
    return n_workers
