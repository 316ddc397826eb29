"""Core claims: distinct cores per live process, released when the process dies."""

import json
import os
import subprocess
import sys

import pytest

CLAIM = """
import json, os, sys
from pipelines.affinity import claim_cores
cores = claim_cores(1, sys.argv[1])
print(json.dumps([cores, sorted(os.sched_getaffinity(0))]), flush=True)
sys.stdin.read()  # hold the claim until the parent closes stdin
"""

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity API")


def _claimer(lock_dir) -> tuple[subprocess.Popen, list[int], list[int]]:
    proc = subprocess.Popen([sys.executable, "-c", CLAIM, str(lock_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    cores, allowed = json.loads(proc.stdout.readline())
    return proc, cores, allowed


def test_live_processes_get_distinct_cores_and_a_dead_ones_core_is_reused(tmp_path):
    n_cores = len(os.sched_getaffinity(0))
    procs = [_claimer(tmp_path) for _ in range(n_cores)]
    claimed = [cores for _, cores, _ in procs]
    assert all(len(c) == 1 for c in claimed)
    assert sorted(c[0] for c in claimed) == sorted(os.sched_getaffinity(0))  # all distinct
    assert all(allowed == cores for _, cores, allowed in procs)  # pinned to the claimed core
    extra, cores, allowed = _claimer(tmp_path)  # every core taken: runs unpinned
    assert cores == [] and allowed == sorted(os.sched_getaffinity(0))
    extra.communicate("")
    first, first_cores, _ = procs[0]
    first.kill()
    first.wait()
    again, cores, _ = _claimer(tmp_path)
    assert cores == first_cores  # the kernel released the dead process's lock
    for proc, _, _ in [(again, None, None)] + procs[1:]:
        proc.communicate("")
