"""Pin a worker process to cores of its own, claimed through per-core lock files.

Blender runs helper threads (scene sync, BVH build) on every core it can see, even when Cycles
is told to use one thread. Several unpinned render workers on one machine therefore fight over
all cores: on the 2-core development machine two unpinned workers each ran 1.3x slower than one
alone, and even one worker was 1.4x slower unpinned than pinned (bench/render.py). A worker
that claims a core and pins itself before importing bpy sees only that core.

Claims are `flock`ed files, one per core, in a node-local directory: the kernel drops a claim
when its process dies (a killed worker's core is free for its restart), and workers of one
node never share a core whatever cluster they belong to. When no core is free the worker runs
unpinned.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from typing import IO

from formats.exr import scratch_dir

_held: list[IO] = []  # open lock files: a claim lasts as long as this process


def lock_dir() -> str:
    base = scratch_dir() or tempfile.gettempdir()
    path = os.path.join(base, f"vistune-cores-{os.getuid()}")
    os.makedirs(path, exist_ok=True)
    return path


def claim_cores(n: int, directory: str | None = None) -> list[int]:
    """Claim `n` free cores of this process's allowed set and pin the process to them.

    Returns the claimed cores, or [] (unpinned) when fewer than `n` are free or the platform
    has no affinity API. Call before importing libraries that size thread pools (bpy).
    """
    if n < 1 or not hasattr(os, "sched_setaffinity"):
        return []
    directory = directory or lock_dir()
    claimed: list[tuple[int, IO]] = []
    for core in sorted(os.sched_getaffinity(0)):
        handle = open(os.path.join(directory, f"core{core}.lock"), "a")  # noqa: SIM115 (held open on purpose)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        claimed.append((core, handle))
        if len(claimed) == n:
            break
    if len(claimed) < n:
        for _, handle in claimed:
            handle.close()  # closing releases the lock
        return []
    os.sched_setaffinity(0, {core for core, _ in claimed})
    _held.extend(handle for _, handle in claimed)
    return [core for core, _ in claimed]
