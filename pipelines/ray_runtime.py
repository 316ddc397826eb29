"""Starting or joining Ray from a config: `address: null` embeds a local Ray, `auto` joins a cluster.

An embedded Ray dies with its driver, however the driver ends (pipelines/ray_reaper.py). Its
workers inherit the driver's environment, so the CLI's OMP_WAIT_POLICY=PASSIVE (formats/cpus.py)
reaches them; on a cluster each actor's torch threads follow the OMP_NUM_THREADS Ray gives it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from typing import Iterator

from pipelines import ray_reaper


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[None]:
    """Connect (or start embedded) Ray for the duration of the block; leave an existing session alone."""
    import ray

    if ray.is_initialized():
        yield
        return
    kwargs = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": True}
    watchdog = None
    if address is None:
        # the embedded cluster must import this checkout's packages in its workers
        kwargs["num_cpus"] = num_cpus
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
        watchdog = ray_reaper.watch()
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        try:
            ray.init(address=address, **kwargs)
        finally:
            ray_reaper.untag()  # Ray's own processes are started: later children of the driver are not Ray's
        if callable(sigterm) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)  # ray.init replaced the CLI's clean cancellation with a crash dump
        yield
    finally:
        if ray.is_initialized():
            ray.shutdown()
        ray_reaper.close(watchdog)
