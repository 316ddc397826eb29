"""Render workers' private scratch directories (no bpy): created per process, swept when it is gone.

A render worker's scratch directory (`vistune-blender-<pid>-*`, in RAM when /dev/shm exists)
holds the beauty-pass PNGs and, because the worker points TMPDIR at it before importing bpy,
Blender's own session temp directory (`blender_*`) too. A worker killed with SIGKILL (Ray's
kill on cancellation, the OOM killer) cannot remove it, so whoever can tell that its process is
gone does: the next worker that starts on the node, and the driver after a cancelled job
(`sweep_scratch`, which waits a little for the workers it just killed).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

from formats.exr import scratch_dir

SCRATCH_PREFIX = "vistune-blender-"


def scratch_base() -> str:
    return scratch_dir() or tempfile.gettempdir()


def scratch_directory(base: str | None = None) -> str:
    """A private scratch directory named after this process, after sweeping those of processes that
    no longer run."""
    base = base or scratch_base()
    sweep_scratch(base)
    return tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=base)


def sweep_scratch(base: str | None = None, wait_for: set[int] = frozenset(), timeout_s: float = 0.0) -> int:
    """Remove the scratch directories whose process is gone; those of `wait_for` pids (workers being
    killed) are waited for up to `timeout_s`. Returns how many were removed."""
    base = base or scratch_base()
    deadline, removed = time.monotonic() + timeout_s, 0
    while True:
        waiting = False
        for name, pid in _owners(base):
            if not _alive(pid):
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)
                removed += 1
            elif pid in wait_for:
                waiting = True
        if not waiting or time.monotonic() >= deadline:
            return removed
        time.sleep(0.1)


def _owners(base: str) -> list[tuple[str, int]]:
    """(directory name, owner pid) of the scratch directories under `base`."""
    found = []
    for name in os.listdir(base):
        pid = name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if name.startswith(SCRATCH_PREFIX) and pid.isdigit():
            found.append((name, int(pid)))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True
