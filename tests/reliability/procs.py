"""Processes this test started, found through /proc (Linux only), and a real multi-process Ray cluster.

Other test sessions may run Ray on the same machine at the same time (pytest -n 2, other
checkouts). Everything here is therefore scoped to processes the test itself started: the pids
of its own subprocesses and their descendants, never a process picked by name alone; and the
cluster gets its own temp dir and ports, so `ray.init()` elsewhere never finds it (Ray looks for
`ray_current_cluster` in the default temp dir only) and `ray stop` is never needed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.reliability.checks import temp_files

RAY = str(Path(sys.executable).with_name("ray"))


def proc_table() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, raw cmdline) of every process that can be read now."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:  # exited while we looked
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])  # the comm field may hold spaces and ')'
        table[int(entry)] = (ppid, cmdline)
    return table


def descendants(roots: int | set[int], table: dict | None = None) -> set[int]:
    """Every process below `roots` (not the roots themselves)."""
    table = proc_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, stack = set(), list({roots} if isinstance(roots, int) else roots)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def ray_workers(title: str, under: int | set[int], table: dict | None = None) -> list[int]:
    """Ray worker processes below `under` whose title is `ray::<title>` (idle) or `ray::<title>.<method>`."""
    table = proc_table() if table is None else table
    prefix = f"ray::{title}".encode()
    return sorted(p for p in descendants(under, table)
                  if table[p][1].startswith(prefix) and table[p][1][len(prefix):len(prefix) + 1] in (b"", b".", b"\0"))


def kill_tree(root: int, grace_s: float = 0.0) -> None:
    """SIGKILL `root` and everything below it (collected first: children outlive a killed parent)."""
    pids = descendants(root) | {root}
    if grace_s:
        _signal(pids, signal.SIGTERM)
        deadline = time.time() + grace_s
        while time.time() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.1)
    _signal(pids, signal.SIGKILL)


def _signal(pids, sig) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b") ")[-1][:1] != b"Z"
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """A head and further nodes, each its own `ray start --block` process tree on this machine.

    Each node gets `num_cpus` and a custom resource `{name: 1}`; all share a private temp dir.
    Token authentication is switched off (RAY_AUTH_MODE=disabled) for these processes and for the
    drivers started with `env`: the cluster listens on this machine only and lives for one test.
    """

    def __init__(self) -> None:
        # short: Ray's unix socket paths live under it (108-byte limit)
        self.temp_dir = tempfile.mkdtemp(prefix="vtray", dir="/tmp")
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        self.env.pop("RAY_ADDRESS", None)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: dict[str, subprocess.Popen] = {}

    def add_node(self, name: str, num_cpus: int, head: bool = False, timeout_s: float = 60) -> None:
        log = Path(self.temp_dir) / f"{name}.log"
        args = [RAY, "start", "--block", "--node-ip-address=127.0.0.1", f"--num-cpus={num_cpus}",
                "--resources", json.dumps({name: 1}), "--temp-dir", self.temp_dir,
                f"--object-store-memory={100 * 2 ** 20}", "--disable-usage-stats", "--include-log-monitor=false",
                f"--dashboard-agent-listen-port={free_port()}"]
        if head:
            args += ["--head", f"--port={self.port}", "--include-dashboard=false", f"--dashboard-port={free_port()}"]
        else:
            args += [f"--address={self.address}"]
        with open(log, "wb") as f:
            self.nodes[name] = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=self.env,
                                                start_new_session=True)
        deadline = time.time() + timeout_s
        while b"Ray runtime started" not in log.read_bytes():
            if self.nodes[name].poll() is not None or time.time() > deadline:
                raise RuntimeError(f"ray start for node {name!r} failed:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    def raylet(self, name: str) -> int:
        """The pid of node `name`'s raylet (the parent of that node's workers)."""
        table = proc_table()
        for pid in descendants(self.nodes[name].pid, table):
            if table[pid][1].split(b"\0")[0].endswith(b"/raylet"):
                return pid
        raise LookupError(f"node {name!r} has no raylet")

    def stop(self) -> None:
        """Stop every process of this cluster (and nothing else), then remove its temp dir."""
        for proc in self.nodes.values():
            if proc.poll() is None:
                kill_tree(proc.pid, grace_s=2)
            proc.wait(timeout=30)
        # workers sit in sessions of their own; any left whose cmdline names our temp dir go too
        leftovers = [p for p, (_, cmd) in proc_table().items() if self.temp_dir.encode() in cmd]
        _signal(leftovers, signal.SIGKILL)
        subprocess.run(["rm", "-rf", self.temp_dir], check=False)


def run_killing(job, out: Path, worker: str, kills: int = 2, timeout_s: float = 180) -> tuple[dict, list[str]]:
    """Run `job()` on a thread; each time a shard temp file appears under `out` for a shard not hit
    yet, SIGKILL this process's `worker` actors. Returns (job result, names of the shards hit)."""
    result: dict = {}
    errors: list[BaseException] = []

    def target():
        try:
            result.update(job())
        except BaseException as err:  # noqa: BLE001 (re-raised on the test thread)
            errors.append(err)

    thread = threading.Thread(target=target)
    thread.start()
    hit: list[str] = []
    deadline = time.time() + timeout_s
    while thread.is_alive() and len(hit) < kills and time.time() < deadline:
        fresh = {p.name.split(".")[1] for p in temp_files(out)} - set(hit)  # .<shard>.tar.<rand>.tmp -> <shard>
        pids = ray_workers(worker, os.getpid()) if fresh else []
        if pids:
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            hit.append(sorted(fresh)[0])
        time.sleep(0.005)
    thread.join(timeout=timeout_s)
    assert not thread.is_alive(), "the job did not finish"
    if errors:
        raise errors[0]
    assert len(hit) == kills, f"caught only {hit} mid-shard"
    return result, hit
