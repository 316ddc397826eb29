"""A real two-node Ray cluster on this machine (`ray start --head` + `ray start --address`, one CPU
each): `vistune render` and `vistune encode` join it with `ray.address=HOST:PORT`, as the README's
cluster instructions do, and write every sample exactly once, with the work spread over both nodes."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from render.shard import scene_key
from tests.reliability.checks import raw_shard_keys, task_shard_keys
from tests.reliability.procs import LocalCluster, proc_table, ray_workers

pytestmark = pytest.mark.slow
N_SCENES = 4


@pytest.fixture
def cluster():
    c = LocalCluster()
    try:
        c.add_node("head_node", num_cpus=1, head=True)
        c.add_node("second_node", num_cpus=1)
        yield c
    finally:
        c.stop()


def _vistune_watching(cluster: LocalCluster, stage: str, overrides: list[str], worker: str) -> tuple[str, dict]:
    """Run `vistune <stage>` as a driver of `cluster`; meanwhile note, per node, the pids of `worker`
    actors and whether one was seen running a shard. Returns (stdout, {node: (pids, busy)})."""
    raylets = {name: cluster.raylet(name) for name in cluster.nodes}
    seen = {name: (set(), False) for name in raylets}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", stage, f"ray.address={cluster.address}",
                             *overrides], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env)
    deadline = time.time() + 240
    while proc.poll() is None and time.time() < deadline:
        table = proc_table()
        for name, raylet in raylets.items():
            pids = ray_workers(worker, raylet, table)
            busy = any(b"." in table[p][1].split(b"\0")[0] for p in pids)  # title ray::Worker.method: running
            seen[name] = (seen[name][0] | set(pids), seen[name][1] or busy)
        time.sleep(0.05)
    try:
        out, err = proc.communicate(timeout=max(deadline - time.time(), 1))
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, f"vistune {stage} failed ({proc.returncode}):\n{err[-4000:]}"
    return out, seen


def test_render_and_encode_on_a_two_node_cluster_write_every_sample_once(cluster, tmp_path):
    import ray

    assert not ray.is_initialized()  # the drivers are the vistune processes, not this one
    raw, enc = tmp_path / "raw", tmp_path / "enc"
    out, seen = _vistune_watching(cluster, "render", [
        f"out={raw}", f"n_scenes={N_SCENES}", "scenes_per_shard=1", "width=32", "height=24", "edit_fraction=0",
        "render.samples=1", "render.denoise=false"], "RenderWorker")
    assert f"render: {N_SCENES} scenes rendered in {N_SCENES} shards" in out
    # Each node has one CPU and a render actor needs one, so the two actors sat on different nodes;
    # the pool hands every actor a shard at once, and we also saw each node's actor mid-shard.
    assert all(pids and busy for pids, busy in seen.values()), seen
    assert raw_shard_keys(raw, "render") == [scene_key(i) for i in range(N_SCENES)]

    out, seen = _vistune_watching(cluster, "encode", [
        f"inputs=[{raw}]", f"out={enc}", "on_error=raise", "settings.size=16", "settings.eval_fraction=0.5"],
        "EncodeWorker")
    assert f"encode: {N_SCENES} input shards encoded, 0 already done" in out
    assert all(pids for pids, _ in seen.values()), seen  # one encode actor per node (one CPU each)
    by_task = task_shard_keys(enc)
    for task in ("depth", "normals", "semantic", "instance"):  # one sample per scene, each exactly once
        assert sorted(by_task[task]) == [scene_key(i) for i in range(N_SCENES)], task
    assert sorted(p.stem for p in (enc / "_done").glob("*.json")) == [f"render-{i:06d}" for i in range(N_SCENES)]

    # the same command again against the cluster: nothing is redone
    out, _ = _vistune_watching(cluster, "encode", [
        f"inputs=[{raw}]", f"out={enc}", "on_error=raise", "settings.size=16", "settings.eval_fraction=0.5"],
        "EncodeWorker")
    assert f"encode: 0 input shards encoded, {N_SCENES} already done" in out
