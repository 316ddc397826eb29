"""Issue 19, defects 6-8 and 11 at the CLI: outputs checked before work, bounded settings, a clean
cancellation (Ctrl-C / SIGTERM), an embedded Ray that dies with its driver, one writer per shard,
and torch threads sized to the CPUs a process is given.

Kill tests signal only processes the test started (its own subprocess and that subprocess's
descendants, found by pid through /proc)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from formats.shards import ShardPaths, ShardWriter, read_rows
from pipelines import cli
from tests.reliability.checks import tar_keys, temp_files
from tests.reliability.procs import descendants, kill_tree, proc_table, ray_workers

REPO = Path(__file__).resolve().parents[2]


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("vistune")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- 6: `out` that is a file, refused before any work by every stage ------------------------------

@pytest.mark.parametrize("argv", [
    ["train", "out={f}", "data.shards=[{tmp}/none/*.tar]"],
    ["mix", "out={f}", "roots=[{tmp}/none]"],
    ["eval", "out={f}", "checkpoint={tmp}/none.pt", "data={tmp}/none"],
    ["preview", "out={f}", "roots=[{tmp}/none]"],
    ["demo", "out={f}"],
])
def test_output_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, argv):
    """The same check and line as render/encode/annotate: before data, checkpoints or compute are touched
    (the inputs here do not even exist: the `out` error must come first)."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the output directory should be")
    argv = [a.format(f=blocker, tmp=tmp_path) for a in argv]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    line = _one_error_line(captured.err)
    assert line.startswith(f"vistune {argv[0]}: error: out=") and "is not a writable directory" in line
    assert str(blocker) in line
    assert blocker.read_text().startswith("a file")


# -- 7: bounded settings; Ctrl-C / SIGTERM cancel cleanly ----------------------------------------

@pytest.mark.parametrize("key, value", [("render.samples", 1_000_000_000), ("render.max_bounces", 100000),
                                        ("render.filter_width", 1e6)])
def test_settings_that_make_a_render_unbounded_are_config_errors(capsys, key, value):
    assert cli.main(["render", "out=/nonexistent/never-created", "n_scenes=1", f"{key}={value}"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("vistune render: config error:") and key in line and "must be in [" in line


@pytest.mark.parametrize("overrides, key", [
    (["steps=1000000000"], "eval.steps"), (["vision_steps=5000"], "eval.vision_steps"),
    (["select_steps=[1,4,1001]"], "eval.select_steps[2]"), (["guidance=inf"], "eval.guidance"),
    (["guidance=-1"], "eval.guidance"), (["vision_guidance=1e9"], "eval.vision_guidance"),
    (["select_steps=[1]", "select_guidance=[1.0,nan]"], "eval.select_guidance[1]"),
])
def test_eval_sampling_settings_are_bounded(tmp_path, capsys, overrides, key):
    """Sampling steps in [1, 1000] and guidance in [0, 100] (finite): one config error naming the key,
    before checkpoints or data are read (neither exists here)."""
    argv = ["eval", f"out={tmp_path / 'eval'}", f"checkpoint={tmp_path}/none.pt", f"data={tmp_path}/none", *overrides]
    assert cli.main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith(f"vistune eval: config error: {key} must be ") and "in [" in line


def test_eval_sampling_bounds_admit_their_ends(tmp_path):
    from pipelines.eval_job import config_from_dict

    conf = config_from_dict({"checkpoint": "a.pt", "data": "d", "steps": 1000, "guidance": 0.0, "vision_steps": 1,
                             "vision_guidance": 100.0, "select_steps": [1, 1000], "select_guidance": [0, 100]})
    assert (conf.steps, conf.select_steps, conf.select_guidance) == (1000, (1, 1000), (0, 100))


def _scratch_dirs(pids: set[int]) -> list[str]:
    from render.scratch import scratch_base

    return [n for n in os.listdir(scratch_base()) if any(n.startswith(f"vistune-blender-{p}-") for p in pids)]


def _cancel_once_writing(argv: list[str], out: Path, worker_class: str, how: str,
                         poll: float) -> tuple[int, str, set[int]]:
    """Run a vistune command in its own process group (the test's Ctrl-C reaches only it), cancel it
    the moment its first shard temp file appears under `out` (Ctrl-C: SIGINT to the group, as a
    terminal sends it; sigterm: SIGTERM to the driver alone, a scheduler's stop).
    Returns (exit code, stderr, the pids of its `worker_class` Ray workers at the cancel)."""
    # SIGINT at its default, as under a terminal: a test run started in the background by a
    # non-interactive shell inherits SIGINT ignored, and the command would rightly not hear Ctrl-C.
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 240
        while not temp_files(out):
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(poll)
        workers = set(ray_workers(worker_class, proc.pid))
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
    return proc.returncode, err, workers


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_cancelled_render_leaves_one_line_no_scratch_and_no_partial_shard(tmp_path, how):
    """A render slow enough to be caught mid-shard (4096 samples), cancelled the moment its first
    shard's temp file appears: Ctrl-C as a terminal sends it (SIGINT to the whole process group),
    or SIGTERM to the driver alone (a scheduler's stop)."""
    out = tmp_path / "render"
    argv = [sys.executable, "-m", "pipelines.cli", "render", f"out={out}", "n_scenes=2", "scenes_per_shard=1",
            "width=64", "height=64", "render.samples=4096", "workers=1", "ray.num_cpus=1", "edit_fraction=0"]
    returncode, err, workers = _cancel_once_writing(argv, out, "RenderWorker", how, poll=0.05)
    assert workers
    assert returncode == (130 if how == "ctrl-c" else 143), err
    line = _one_error_line(err)
    assert line.startswith("vistune render: cancelled (") and "rerun" in line
    assert sorted(p.name for p in out.iterdir()) == []  # no shard under a final name, no temp or lock file
    table = proc_table()
    assert not [p for p in workers if p in table], "render workers outlived the cancelled job"
    assert _scratch_dirs(workers) == []  # the scratch (and Blender's blender_* temp inside it) is gone


def _lock_and_temp_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for pattern in (".*.tmp", ".*.lock") for p in root.rglob(pattern))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_cancelled_encode_leaves_one_line_no_temp_or_lock_and_no_partial_shard(tmp_path, how):
    """Encode cancelled the moment its first task shard's temp file appears: the killed worker's
    hidden temp and lock files go with the job (before, they stayed until the next run), every
    task shard under a final name is whole (tar == manifest rows), and a rerun finishes the job."""
    from tests.encode.raw_fixtures import write_render_shard

    for i in range(2):
        write_render_shard(tmp_path / "raw", i, range(24 * i, 24 * i + 24), 96, 128)
    out = tmp_path / "encode"
    argv = [sys.executable, "-m", "pipelines.cli", "encode", f"inputs=[{tmp_path / 'raw'}]", f"out={out}",
            "workers=1", "ray.num_cpus=1"]
    returncode, err, workers = _cancel_once_writing(argv, out, "EncodeWorker", how, poll=0.02)
    assert returncode == (130 if how == "ctrl-c" else 143), err
    assert _one_error_line(err).startswith("vistune encode: cancelled (")
    assert _lock_and_temp_files(out) == []
    for task in [d for d in out.iterdir() if d.is_dir() and d.name != "_done"]:
        for tar in task.glob("*.tar"):  # whole shards only: the tar's samples are its manifest's rows
            assert tar_keys(tar) == [r["key"] for r in read_rows(tar.with_suffix(".parquet"))]
        assert sorted(p.stem for p in task.glob("*.parquet")) == sorted(p.stem for p in task.glob("*.tar"))
    assert not [p for p in workers if p in proc_table()], "encode workers outlived the cancelled job"
    rerun = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(p.name for p in (out / "_done").iterdir()) == ["render-000000.json", "render-000001.json"]
    assert len(tar_keys(out / "depth" / "render-000000.tar")) == 24 and _lock_and_temp_files(out) == []


# -- 8: an embedded Ray dies with its driver; one writer per shard -------------------------------

_DRIVER = """
import os, sys, time
from pipelines.ray_runtime import ray_session
import ray

class Busy:
    def pid(self):
        return os.getpid()

with ray_session(None, 1):
    actor = ray.remote(num_cpus=1)(Busy).remote()
    print(ray.get(actor.pid.remote()), flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
def test_sigkilled_driver_takes_its_embedded_ray_along(tmp_path):
    """Before: DashboardAgent and RuntimeEnvAgent lived on with parent 1 (ignoring SIGTERM) and the
    workers for seconds. Now every process below the driver is gone soon after its SIGKILL."""
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        actor = int(proc.stdout.readline())
        time.sleep(1.0)  # let the driver's watchdog note the tree (it polls every 0.25 s)
        tree = descendants(proc.pid)
        assert actor in tree and len(tree) >= 4  # gcs, raylet, agents, the actor
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline, alive = time.time() + 20, tree
        while alive and time.time() < deadline:
            time.sleep(0.2)
            table = proc_table()
            alive = {p for p in tree if p in table and table[p][1]}  # zombies (empty cmdline) are dead
        names = {p: proc_table().get(p, (0, b""))[1].split(b"\0")[0] for p in alive}
        assert not alive, f"processes of the killed driver still run: {names}"
    finally:
        for pid in descendants(proc.pid) | {proc.pid}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


_WRITER = """
import sys, time
from formats.shards import ShardPaths, ShardWriter
with ShardWriter(ShardPaths.of(sys.argv[1], "x", 0)) as writer:
    writer.add("a", {"txt": b"first writer"})
    print("writing", flush=True)
    sys.stdin.readline()  # hold the shard until told (or killed)
    writer.commit()
print("committed", flush=True)
"""


def _writer(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(out)], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "writing\n"
    return proc


def _second_writer(paths: ShardPaths, log: list) -> threading.Thread:
    """What a rerun's worker does: under the shard's lock, skip it if complete, else write it."""
    def run():
        with paths.lock():
            if paths.complete():
                log.append("skipped")
                return
            with ShardWriter(paths) as writer:
                writer.add("b", {"txt": b"second writer"})
                writer.commit()
            log.append("wrote")

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_second_writer_of_a_shard_waits_for_the_first_and_then_skips_it(tmp_path):
    """An orphaned worker still writing shard 0 while a rerun reaches it: the rerun waits, then finds the
    shard complete; the pair on disk is the first writer's, whole (never a mix of two writers' files)."""
    paths, log = ShardPaths.of(tmp_path, "x", 0), []
    first = _writer(tmp_path)
    try:
        second = _second_writer(paths, log)
        second.join(timeout=2)
        assert second.is_alive() and log == [] and not paths.complete()  # blocked on the lock, nothing touched
        assert len(temp_files(tmp_path)) == 1  # the first writer's temp tar is still there
        first.stdin.write("go\n")
        first.stdin.flush()
        assert first.stdout.readline() == "committed\n"
        second.join(timeout=60)
    finally:
        kill_tree(first.pid)
    assert log == ["skipped"]
    assert tar_keys(paths.tar) == [r["key"] for r in read_rows(paths.parquet)] == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x-000000.parquet", "x-000000.tar"]  # no lock, no temp


def test_a_writer_killed_mid_shard_frees_it_for_the_next(tmp_path):
    paths, log = ShardPaths.of(tmp_path, "x", 0), []
    first = _writer(tmp_path)
    second = _second_writer(paths, log)
    second.join(timeout=1)
    assert second.is_alive()
    kill_tree(first.pid)  # SIGKILL: the kernel drops its lock
    first.wait(timeout=30)
    second.join(timeout=60)
    assert log == ["wrote"]
    assert tar_keys(paths.tar) == [r["key"] for r in read_rows(paths.parquet)] == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x-000000.parquet", "x-000000.tar"]  # its temp file swept


def test_clean_up_after_cancel_waits_for_a_dying_writer_then_removes_its_files(tmp_path):
    """What render, encode and annotate do after a cancelled pool: a worker being killed still holds
    its shard; the clean-up waits for its lock to drop, then removes its temp and lock files."""
    from pipelines.driver import clean_up_after_cancel

    paths = ShardPaths.of(tmp_path, "x", 0)
    first = _writer(tmp_path)
    killer = threading.Timer(1.0, kill_tree, (first.pid,))
    killer.start()
    try:
        t0 = time.monotonic()
        clean_up_after_cancel([paths, ShardPaths.of(tmp_path, "x", 1)], timeout_s=60)
        assert time.monotonic() - t0 >= 0.9  # it waited for the writer to die
    finally:
        killer.join()
        kill_tree(first.pid)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # its temp tar and lock file are gone


# -- 11: torch threads follow the CPUs the process is given --------------------------------------

_THREADS = """
import json, os, sys
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # as `taskset -c <one core>` would
from pipelines import cli
code = cli.main(sys.argv[1:])
import torch
print(json.dumps({"code": code, "threads": torch.get_num_threads(),
                  "wait_policy": os.environ.get("OMP_WAIT_POLICY")}))
"""


def _train_threads(tmp_path, *extra) -> dict:
    from tests.train.fixtures import write_task_shards

    shards = write_task_shards(tmp_path / "shards", n_shards=1, per_shard=4)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    proc = subprocess.run([sys.executable, "-c", _THREADS, "train", f"out={tmp_path / 'run'}",
                           f"data.shards=[{shards[0]}]", "train.steps=1", "train.batch_size=2", "data.num_workers=0",
                           "train.progress=false", "train.tensorboard=false", *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_training_uses_the_cpus_it_is_given_and_idle_threads_sleep(tmp_path):
    """Pinned to one core, training runs one torch thread (torch's default follows the machine), and
    OpenMP's idle threads sleep instead of spinning (spinning made a contended step 60x slower)."""
    result = _train_threads(tmp_path)
    assert result == {"code": 0, "threads": 1, "wait_policy": "PASSIVE"}


def test_an_explicit_thread_count_wins(tmp_path):
    assert _train_threads(tmp_path, "train.threads=2")["threads"] == 2


def test_thread_count_follows_affinity_quota_and_launcher(monkeypatch):
    from formats import cpus

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert cpus.available_cpus() <= 4 and cpus.thread_count() == cpus.available_cpus()
    assert cpus.thread_count(3) == 3  # explicit setting
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # Ray sets it to an actor's num_cpus, torchrun to 1 per rank
    assert cpus.thread_count() == 1
