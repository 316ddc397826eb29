"""Faults injected into Ray worker processes (`runtime_env={"worker_process_setup_hook": ...}`)."""

from __future__ import annotations

import errno
import os

FULL_DISK_ENV = "VISTUNE_TEST_FULL_DISK"


def full_disk_on_fsync() -> None:
    """Make `os.fsync` of any file under $VISTUNE_TEST_FULL_DISK fail with ENOSPC, as it does on a
    full disk with delayed allocation (ext4, XFS): the writes were buffered, the flush finds no space."""
    root = os.environ.get(FULL_DISK_ENV)
    if not root:
        return
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if path.startswith(root):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        real_fsync(fd)

    os.fsync = fsync
