"""SIGKILL the whole `vistune run` (driver, embedded Ray, workers: a machine crash) mid-way, twice: once
while encode writes shards, once while pre-training. Each rerun redoes only what was missing: the
completed raw and task shards and checkpoints stay untouched (same mtimes), the stage summaries
count exactly the missing shards, and the last run finishes with every sample exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from render.shard import scene_key
from tests.encode.raw_fixtures import write_web_images
from tests.reliability.checks import raw_shard_keys, task_shard_keys
from tests.reliability.procs import descendants, kill_tree

pytestmark = pytest.mark.slow
N_RAW = 8  # 4 render + 4 annotate shards, one sample each: 8 encode inputs
PRETRAIN_STEPS = 40


def _overrides(out: Path, images: Path) -> list[str]:
    return [
        f"out={out}", f"annotate.source={images}", "ray.num_cpus=2",
        "render.n_scenes=4", "render.scenes_per_shard=1", "render.width=32", "render.height=32",
        "render.render.samples=1", "render.render.denoise=false", "render.edit_fraction=0.5",
        "annotate.images_per_shard=1", "annotate.decode.size=64",
        # the salt puts one of the 4 scenes in the eval split whatever the temp paths (annotate's split
        # groups are image paths): eval needs held-out samples
        "encode.workers=1", "encode.settings.size=16", "encode.settings.eval_fraction=0.5",
        "encode.settings.split_salt=b",
        "tune.mixture.allow_empty=true", "pretrain.mixture.allow_empty=true",
        f"pretrain.train.steps={PRETRAIN_STEPS}", "pretrain.train.ckpt_every=10", "pretrain.train.keep=0", "tune.train.steps=4",
        "tune.train.ckpt_every=2", "pretrain.train.batch_size=2", "tune.train.batch_size=2",
        "pretrain.data.num_workers=0", "tune.data.num_workers=0", "pretrain.train.progress=false",
        "tune.train.progress=false", "pretrain.train.tensorboard=false", "tune.train.tensorboard=false",
        "eval.steps=2", "eval.max_samples=12", "eval.loss_draws=1", "eval.examples_per_task=1",
    ]


def _start(overrides: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as f:
        return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", *overrides], stdout=f,
                                stderr=subprocess.STDOUT)


def _kill_when(proc: subprocess.Popen, ready, log: Path, timeout_s: float = 240) -> None:
    """SIGKILL `proc` and all its descendants the moment `ready()` is true. The process tree is
    collected ahead of time, so the kill lands within milliseconds of the condition."""
    deadline, tree, t_tree = time.time() + timeout_s, set(), 0.0
    while not ready():
        assert proc.poll() is None, f"vistune run ended before the kill point:\n{log.read_text()[-3000:]}"
        assert time.time() < deadline, "the kill point was never reached"
        if time.time() - t_tree > 0.2:
            tree, t_tree = descendants(proc.pid), time.time()
        time.sleep(0.002)
    for pid in [proc.pid, *tree]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    kill_tree(proc.pid)  # whatever started since the last look
    proc.wait(timeout=30)


def _mtimes(paths) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in paths}


def _stage(run: Path, stage: str) -> dict:
    return json.loads((run / "run_summary.json").read_text())["stages"][stage]


def test_killed_run_resumes_redoing_only_missing_work(tmp_path):
    images = write_web_images(tmp_path / "web")
    run, log = tmp_path / "run", tmp_path / "log.txt"
    overrides = _overrides(run, images)
    done_dir = run / "encode" / "_done"

    # 1. killed while encoding: as soon as the first input shard's completion record appears
    _kill_when(_start(overrides, log), lambda: any(done_dir.glob("*.json")), log)
    done = sorted(done_dir.glob("*.json"))
    assert 1 <= len(done) < N_RAW, f"killed too late: {len(done)} of {N_RAW} inputs encoded"
    raw = sorted((run / "render").glob("render-*")) + sorted((run / "annotate").glob("annotate-0*"))
    kept = _mtimes(raw + done + [p for d in (run / "encode").iterdir() if d.name != "_done"
                                 for p in d.glob("*") if (done_dir / f"{p.stem}.json") in done])

    # 2. the rerun skips the raw shards and the encoded inputs; killed again during pre-training
    ckpts = run / "pretrain" / "checkpoints"
    _kill_when(_start(overrides, log), lambda: any(ckpts.glob("step-*.pt")), log)
    assert _stage(run, "render")["new"] == 0
    annotate = json.loads((run / "annotate" / "annotate-summary.json").read_text())
    assert annotate["annotated_shards"] == 0 and annotate["skipped_shards"] == 4
    redone = N_RAW - len(done)
    assert f"encode: {redone} input shards encoded, {len(done)} already done" in _stage(run, "encode")["summary"]
    assert _mtimes(kept) == kept, "a complete shard was rewritten"
    assert len(list(done_dir.glob("*.json"))) == N_RAW
    saved = sorted(ckpts.glob("step-*.pt"))
    assert saved and int(saved[-1].stem[5:]) < PRETRAIN_STEPS, f"killed too late: {saved}"
    kept.update(_mtimes(saved))

    # 3. the last rerun finishes: pre-training resumes from its newest checkpoint, nothing else is redone
    final = _start(overrides, log)
    assert final.wait(timeout=300) == 0, log.read_text()[-3000:]
    summary = json.loads((run / "run_summary.json").read_text())
    assert "encode: 0 input shards encoded, 8 already done" in summary["stages"]["encode"]["summary"]
    assert summary["stages"]["pretrain"]["step"] == PRETRAIN_STEPS and Path(summary["report"]).exists()
    assert f"resumed from {saved[-1]}" in summary["stages"]["pretrain"]["summary"]
    assert _mtimes(kept) == kept, "a complete shard or checkpoint was rewritten"

    assert raw_shard_keys(run / "render", "render") == [scene_key(i) for i in range(4)]
    assert len(raw_shard_keys(run / "annotate", "annotate")) == 4
    by_task = task_shard_keys(run / "encode")  # each sample once, manifests == shards, no temp files left
    assert sorted(by_task["depth"]) == [scene_key(i) for i in range(4)]
    written = Counter()  # what the completion records say was written, input by input
    for record in done_dir.glob("*.json"):
        written.update(json.loads(record.read_text())["written"])
    assert {t: len(keys) for t, keys in by_task.items()} == dict(written)
