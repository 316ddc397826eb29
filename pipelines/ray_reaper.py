"""An embedded Ray dies with its driver: a tiny watchdog process SIGKILLs what the driver left.

`ray.init()` without an address starts GCS, raylet, agents and workers under the driver. Ray ties
GCS and raylet to the driver, but when the driver is SIGKILLed (OOM killer, `kill -9`, a crashed
node agent) its dashboard and runtime-env agents live on as orphans that ignore SIGTERM, and its
workers keep running (and committing shards) for seconds. So `watch()` starts this module as a
watchdog, in a session of its own (a Ctrl-C to the driver's group spares it), on a pipe from the
driver. The pipe reaches end-of-file the moment the driver exits, however it exits; the watchdog
then SIGKILLs the processes it saw below the driver (it notes the tree every POLL_S; a pid counts
only while its start time matches) and every process carrying an environment tag unique to this
driver (set while `ray.init` starts Ray's processes, inherited by the workers the raylet starts
later). Nothing else is touched. A driver that shuts Ray down itself says so first (DONE), and
then only tagged leftovers go.

    python -m pipelines.ray_reaper TOKEN      # started by watch(); not for users
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import uuid

TAG = "VISTUNE_RAY_OWNER"
DONE = b"done\n"  # what a driver that shuts Ray down itself sends before closing the pipe
POLL_S = 0.25  # how often the watchdog notes the driver's process tree


def _stat(pid: int | str) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()  # the name field may hold spaces and ')'
    except OSError:
        return None
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every live process below `root`: walked down from `root` through
    /proc/<pid>/task/<tid>/children (cheap: only the tree is read), else through all of /proc."""
    if not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"):
        return _descendants_by_scan(root)
    found, stack = {}, [root]
    while stack:
        pid = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    children = [int(c) for c in f.read().split()]
            except OSError:
                continue
            for child in children:
                if child not in found and (st := _stat(child)) is not None:
                    found[child] = st[1]
                    stack.append(child)
    return found


def _descendants_by_scan(root: int) -> dict[int, int]:
    table = {int(e): st for e in os.listdir("/proc") if e.isdigit() and (st := _stat(e)) is not None}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, stack = {}, [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found[child] = table[child][1]
                stack.append(child)
    return found


def tagged(token: str) -> dict[int, int]:
    """pid -> start time of this user's processes (other than this one) whose environment holds TAG=token."""
    marker, found = f"{TAG}={token}".encode(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker in f.read().split(b"\0") and (st := _stat(entry)) is not None:
                    found[int(entry)] = st[1]
        except OSError:  # exited meanwhile, or another user's process
            continue
    return found


def reap(token: str, seen: dict[int, int], passes: int = 5) -> int:
    """SIGKILL the processes seen below the driver (still the same processes: same start time) and
    the tagged ones, again until none is left (a dying raylet may still fork). Returns the count."""
    killed: set[int] = set()
    for _ in range(passes):
        targets = {**seen, **tagged(token)}
        pids = [p for p, start in targets.items() if p not in killed and (_stat(p) or (0, None))[1] == start]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
    return len(killed)


def watch() -> tuple[subprocess.Popen, str] | None:
    """Start the watchdog for a Ray about to be embedded, and tag the processes started from now on
    (set os.environ[TAG] until `unwatch`/`close`). None where /proc is missing (not Linux)."""
    if not os.path.isdir("/proc/self"):
        return None
    token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.ray_reaper", token], stdin=subprocess.PIPE,
                            start_new_session=True,  # a Ctrl-C to the driver's process group spares it
                            env={k: v for k, v in os.environ.items() if k != TAG})
    os.environ[TAG] = token
    return proc, token


def untag() -> None:
    """Stop tagging: processes the driver starts from now on (not Ray's) are not the watchdog's."""
    os.environ.pop(TAG, None)


def close(watchdog: tuple[subprocess.Popen, str] | None) -> None:
    """After ray.shutdown(): let the watchdog reap any leftover and exit."""
    if watchdog is None:
        return
    proc, _ = watchdog
    untag()
    with contextlib.suppress(OSError):
        proc.stdin.write(DONE)
    with contextlib.suppress(OSError):
        proc.stdin.close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def main(argv: list[str]) -> int:
    """Watch the driver (our parent) until our stdin closes, noting its process tree; then reap.

    A driver that ends its session normally writes DONE first: then only tagged (Ray) processes
    left after ray.shutdown() go, never another child the driver may still be running."""
    token, driver = argv[0], os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the pipe ends the watch
    seen: dict[int, int] = {}
    message = b""
    try:
        while not select.select([sys.stdin], [], [], POLL_S)[0]:
            seen.update(descendants(driver))  # Ray renames its processes: the tree is what names them ours
        while chunk := os.read(sys.stdin.fileno(), 4096):
            message += chunk
    finally:
        seen.pop(os.getpid(), None)
        reap(token, {} if message.startswith(DONE) else seen)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
