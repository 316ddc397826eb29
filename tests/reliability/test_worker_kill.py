"""SIGKILL a stage's Ray worker while it writes a shard (twice, in different shards): Ray restarts the
actor, the shard is redone from scratch, and the stage ends with every sample exactly once.

Only workers of this test's own embedded Ray (descendants of this process) are killed: other tests
may run Ray on the machine at the same time. (Render has its own test in tests/pipelines.)
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.reliability.checks import raw_shard_keys, task_shard_keys
from tests.reliability.procs import run_killing

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_local():
    assert not ray.is_initialized()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_encode_worker_killed_mid_shard(ray_local, tmp_path):
    from encode.shard import EncodeJobConfig
    from pipelines.encode_job import run_encode
    from encode.tasks import EncodeSettings
    from tests.encode.raw_fixtures import write_annotate_shard, write_render_shard

    raw = tmp_path / "raw"
    for i in range(3):
        write_render_shard(raw / "render", i, range(i * 3, i * 3 + 3), 48, 64)
        write_annotate_shard(raw / "annotate", i, range(100 + i * 3, 103 + i * 3), height=48, width=64)
    inputs = (str(raw / "render"), str(raw / "annotate"))
    settings = EncodeSettings(size=32, eval_fraction=0.3)

    clean = run_encode(EncodeJobConfig(inputs, str(tmp_path / "clean"), settings, "raise", 1), progress=False)
    out = tmp_path / "killed"
    summary, hit = run_killing(
        lambda: run_encode(EncodeJobConfig(inputs, str(out), settings, "raise", 1), progress=False), out, "EncodeWorker")

    assert summary["encoded_inputs"] == 6 and summary["lost"] == 0
    assert summary["written"] == clean["written"]
    by_task = task_shard_keys(out)  # each key once per task, manifests == shards, no temp files
    assert {t: len(k) for t, k in by_task.items()} == clean["written"]
    # Encoding is deterministic, so a shard redone after a kill equals the undisturbed run's, byte for byte.
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.parent.name != "_done")
    assert files == sorted(p.relative_to(tmp_path / "clean") for p in (tmp_path / "clean").rglob("*")
                           if p.is_file() and p.parent.name != "_done")
    for rel in files:
        if rel.suffix == ".tar":
            assert (out / rel).read_bytes() == (tmp_path / "clean" / rel).read_bytes(), rel
    for stem in hit:  # the completion record of a redone input counts its samples once
        record = json.loads((out / "_done" / f"{stem}.json").read_text())
        assert record["samples_in"] == record["expected_in"] == 3 and record["lost"] == 0


def _photos(root: Path) -> int:
    import skimage.data as skdata

    photos = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket(), skdata.camera()]
    for i, rgb in enumerate(photos):
        buf = io.BytesIO()
        Image.fromarray(rgb[::4, ::4]).convert("RGB").save(buf, format="JPEG", quality=90)
        (root / f"{i}.jpg").write_bytes(buf.getvalue())
    return len(photos)


def test_annotate_worker_killed_mid_shard(ray_local, tmp_path):
    from pipelines.annotate_job import config_from_dict, run_annotate

    src, out = tmp_path / "web", tmp_path / "out"
    src.mkdir()
    n = _photos(src)
    cfg = config_from_dict({"out": str(out), "source": str(src), "images_per_shard": 1, "batch_size": 1,
                            "workers": 2, "decode": {"size": 96}})
    summary, hit = run_killing(lambda: run_annotate(cfg, progress=False), out, "AnnotateWorker")

    assert summary["shards"] == n and summary["annotated_shards"] == n and summary["skipped_shards"] == 0
    assert summary["items"] == n and summary["written"] == n  # a killed shard's images counted once
    keys = raw_shard_keys(out, "annotate")
    assert keys == [f"img{i:06d}_000000" for i in range(n)]
    for i in range(n):  # each shard's stats file describes the shard that was finally written
        stats = json.loads((out / f"annotate-{i:06d}.stats.json").read_text())
        assert stats["written"] == 1 and stats["items"] == 1
    assert json.loads((out / "annotate-summary.json").read_text())["written"] == n
    assert set(hit) <= {f"annotate-{i:06d}" for i in range(n)}
