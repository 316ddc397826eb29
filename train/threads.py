"""Torch's CPU thread count for a training or eval process: the CPUs it is given (formats/cpus.py)."""

from __future__ import annotations

import torch

from formats.cpus import thread_count


def use_cpu_threads(requested: int = 0) -> int:
    """Set torch's intra-op threads: `requested` when > 0, else the CPUs this process is given
    (never more than an earlier setting: a launcher's or a test's). Returns the count set."""
    n = requested if requested > 0 else min(torch.get_num_threads(), thread_count())
    torch.set_num_threads(n)
    return n
