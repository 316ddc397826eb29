"""How many threads a stage's compute libraries (torch, onnxruntime) may use: the CPUs this
process is given, not the machine's core count.

Torch and onnxruntime size their pools by the machine's cores and their OpenMP threads spin
while they wait for each other. When other processes compete for those cores a spinning thread
burns the time slice its partner needs: on the 2-core development machine, under load, a
2-thread training step took 60x longer than a 1-thread one (bench numbers in issue 19). Two
rules avoid it:

- `thread_count()`: an explicit setting, else what the launcher gave this process
  (`OMP_NUM_THREADS`, which Ray sets to an actor's `num_cpus` and torchrun to 1 per rank),
  else the CPUs of the affinity mask and the cgroup CPU quota.
- `passive_omp_wait()`: OpenMP threads sleep instead of spinning when idle
  (`OMP_WAIT_POLICY=PASSIVE`). Measured on the debug generator (2 cores, 100 steps of 16 at 32 px):
  under a competing process 56-70 ms/step passive against 120-140 spinning; alone, 60 against 26-32,
  and 25 with one thread. Models whose ops are that small do best with one thread (the smoke preset
  sets `train.threads=1`), where the wait policy does not matter.
  OpenMP reads it once, when torch is imported: call it before that (the CLI does, first thing).

Pure standard library: every stage (and the annotate labelers' onnxruntime sessions) can import it.
"""

from __future__ import annotations

import math
import os

WAIT_POLICY = {"OMP_WAIT_POLICY": "PASSIVE"}


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by the cgroup (v2) CPU quota."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(n, 1)


def thread_count(requested: int = 0) -> int:
    """Threads for torch / onnxruntime: `requested` when > 0, else `OMP_NUM_THREADS` when set to a
    positive integer (a launcher's share: Ray's num_cpus, torchrun's 1), else available_cpus()."""
    if requested > 0:
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return min(int(env), available_cpus())
    return available_cpus()


def passive_omp_wait() -> None:
    """Make OpenMP threads sleep when idle, unless the user chose a policy; before torch is imported."""
    for key, value in WAIT_POLICY.items():
        os.environ.setdefault(key, value)
