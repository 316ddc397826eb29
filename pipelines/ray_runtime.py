"""Starting or joining Ray from a config: `address: null` embeds a local Ray, `auto` joins a cluster."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[None]:
    """Connect (or start embedded) Ray for the duration of the block; leave an existing session alone."""
    import ray

    if ray.is_initialized():
        yield
        return
    kwargs = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": True}
    if address is None:
        # the embedded cluster must import this checkout's packages in its workers
        kwargs["num_cpus"] = num_cpus
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    ray.init(address=address, **kwargs)
    try:
        yield
    finally:
        ray.shutdown()
