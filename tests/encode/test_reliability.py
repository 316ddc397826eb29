"""Encode faced with damaged raw inputs (issue 19): nothing lost or wrong without being said, and a
repaired input encoded again. Raw shards are written by the real shard writer from the analytic
ray caster (tests/encode/raw_fixtures.py), then damaged the way disks and crashes damage them."""

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encode import codecs
from encode.manifest import MANIFEST_VERSION, SCHEMA, ManifestError, open_dataset
from encode.sample import from_sample
from encode.shard import EncodeJobConfig, InputError, ShardEncoder
from encode.tasks import EncodeSettings
from formats import raw_render as raw
from formats.shards import ShardPaths, ShardWriter, read_sample_at
from tests.encode.raw_fixtures import render_sample, write_render_shard

ray = pytest.importorskip("ray")
H, W = 48, 64
SETTINGS = EncodeSettings(size=32, eval_fraction=0.0, tasks=("depth", "normals"))


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _encode(raw_dir, out, on_error="skip"):
    from pipelines.encode_job import describe, run_encode

    summary = run_encode(EncodeJobConfig((str(raw_dir),), str(out), SETTINGS, on_error, 1), progress=False)
    return summary, describe(summary)


def _record(out, stem="render-000000"):
    return json.loads((out / "_done" / f"{stem}.json").read_text())


def _depth_rows(out):
    return open_dataset(str(out)).to_table(filter=pa.compute.field("task") == "depth").num_rows


def test_repaired_input_is_encoded_again_and_losses_are_reported_until_then(ray_local, tmp_path):
    """Defect 1: a `_done` record with losses used to block every retry and hide the loss on reruns."""
    paths = write_render_shard(tmp_path / "raw", 0, range(4), H, W)
    intact = paths.tar.read_bytes()
    paths.tar.write_bytes(intact[: len(intact) // 2])  # cut in half, as a crashed copy leaves it
    first, text = _encode(tmp_path / "raw", tmp_path / "out")
    assert first["lost"] >= 1 and "LOST" in text and _depth_rows(tmp_path / "out") == 4 - first["lost"]

    again, text = _encode(tmp_path / "raw", tmp_path / "out")  # input not repaired: nothing to redo, loss still said
    assert again["encoded_inputs"] == 0 and again["skipped_inputs"] == 1
    assert again["lost"] == first["lost"] and again["damaged_inputs"] == [str(paths.tar)]
    assert f"LOST: {first['lost']} samples" in text and "earlier run: repair them and rerun" in text

    paths.tar.write_bytes(intact)  # repaired
    repaired, text = _encode(tmp_path / "raw", tmp_path / "out")
    assert repaired["encoded_inputs"] == 1 and repaired["lost"] == 0 and "LOST" not in text
    assert _depth_rows(tmp_path / "out") == 4
    record = _record(tmp_path / "out")
    assert record["lost"] == 0 and record["samples_in"] == 4 and record["input_fingerprint"]["tar"][0] == len(intact)
    assert _encode(tmp_path / "raw", tmp_path / "out")[0]["encoded_inputs"] == 0  # clean now: done for good


def test_damaged_sidecar_is_named_and_the_other_inputs_are_encoded(ray_local, tmp_path):
    """Defect 2: one unreadable raw Parquet sidecar aborted the whole job (exit 2) under on_error=skip."""
    write_render_shard(tmp_path / "raw", 0, range(3), H, W)
    bad = write_render_shard(tmp_path / "raw", 1, range(3, 6), H, W)
    intact = bad.parquet.read_bytes()
    bad.parquet.write_bytes(intact[: len(intact) // 3])
    summary, text = _encode(tmp_path / "raw", tmp_path / "out")
    assert summary["encoded_inputs"] == 2 and summary["damaged_inputs"] == [str(bad.tar)]
    assert summary["written"]["depth"] == 6  # the damaged input's tar is intact: its samples are kept
    assert f"DAMAGED: raw shard sidecar {bad.parquet} is not a readable Parquet file" in text
    assert _record(tmp_path / "out", "render-000000")["sidecar_error"] is None
    assert str(bad.parquet) in _record(tmp_path / "out", "render-000001")["sidecar_error"]
    with pytest.raises(InputError, match=f"raw shard sidecar {bad.parquet} is not a readable Parquet file"):
        _encode(tmp_path / "raw", tmp_path / "strict", on_error="raise")

    bad.parquet.write_bytes(intact)  # repaired: encoded again, and clean
    repaired, text = _encode(tmp_path / "raw", tmp_path / "out")
    assert repaired["encoded_inputs"] == 1 and repaired["damaged_inputs"] == [] and "DAMAGED" not in text


def _shard_with(tmp_path, samples):
    paths = ShardPaths.of(tmp_path / "raw", "render", 0)
    with ShardWriter(paths) as w:
        for key, files in samples:
            w.add(key, files)
        w.commit()
    return paths


def test_corrupt_depth_exr_is_named_by_shard_key_and_member(ray_local, tmp_path):
    """Defect 3: a corrupt depth.exr was reported against a scratch file (/dev/shm/tmpXXXX.exr)."""
    good, _, _ = render_sample(1, H, W)
    garbage = dict(good, **{"depth.exr": b"\x76\x2f\x31\x01 not an exr at all"})
    cut = dict(good, **{"depth.exr": good["depth.exr"][:-10]})  # OpenEXR reads this without raising
    paths = _shard_with(tmp_path, [("scene1", good), ("scene2", garbage), ("scene3", cut)])
    summary, text = _encode(tmp_path / "raw", tmp_path / "out")
    assert summary["written"]["depth"] == 1 and summary["skipped_reasons"]["all:corrupt_sample"] == 2
    assert [s.split(" ", 1)[0] for s in summary["skipped_samples"]] == ["render-000000.tar:scene2",
                                                                         "render-000000.tar:scene3"]
    assert "SKIPPED 2 corrupt samples: render-000000.tar:scene2 (sample 'scene2' member 'depth.exr' is not a " \
           "valid EXR file" in text
    keys = _record(tmp_path / "out")["skipped_keys"]
    assert [k["key"] for k in keys] == ["scene2", "scene3"]
    assert all("member 'depth.exr' is not a valid EXR file" in k["reason"] for k in keys)
    assert "/dev/shm" not in text and "tmp" not in json.dumps(keys)
    with pytest.raises(InputError) as err:
        _encode(tmp_path / "raw", tmp_path / "strict", on_error="raise")
    message = str(err.value)
    assert message.startswith(f"input shard {paths.tar}: sample 'scene2' member 'depth.exr' is not a valid EXR file")
    assert "\n" not in message and "/dev/shm" not in message


def test_valid_frac_counts_only_positive_depth_and_impossible_depths_are_reported(ray_local, tmp_path):
    """Defect 4: negative and zero depth counted as valid in the manifest, and passed without a word."""
    files, truth, _ = render_sample(2, H, W)
    depth = truth.depth.copy()
    depth[:, : W // 4] = -1.5        # negative
    depth[: H // 4, W // 4:W // 2] = 0.0  # zero
    inside = (truth.instance > 0) & np.isfinite(depth) & (depth > 0)
    nan_px = np.flatnonzero(inside)[:7]
    depth.ravel()[nan_px] = np.nan   # unknown depth on a hit object
    bad = raw.to_files(depth, truth.normals, truth.instance, np.zeros_like(truth.instance),
                       json.loads(files["json"]), None) | {"rgb.png": files["rgb.png"]}
    _shard_with(tmp_path, [("scene2", bad)])
    summary, text = _encode(tmp_path / "raw", tmp_path / "out")
    (row,) = open_dataset(str(tmp_path / "out")).to_table(filter=pa.compute.field("task") == "depth").to_pylist()
    sample = from_sample(read_sample_at(tmp_path / "out" / "depth" / row["shard"], row["tar_offset"], row["tar_size"]))
    decoded = codecs.from_spec(sample.meta["codec"]).decode(sample.target)
    assert row["valid_frac"] == pytest.approx(float(np.mean(decoded > 0)), abs=1e-6)  # what a reader gets back
    assert row["valid_frac"] < 0.8
    expected = {"negative": int((depth < 0).sum()), "zero": int((depth == 0).sum()), "nan_in_object": 7}
    assert _record(tmp_path / "out")["impossible_depth"] == {"scene2": expected}
    assert summary["impossible_depth"] == {"render-000000.tar:scene2": expected}
    assert ("IMPOSSIBLE DEPTH (negative, zero or NaN inside an object; encoded as invalid) in 1 samples: "
            f"render-000000.tar:scene2 (negative {expected['negative']} px, zero {expected['zero']} px, "
            "nan_in_object 7 px)") in text


def test_impossible_depth_counts_without_ray(tmp_path):
    """The per-sample counts come from the raw (not the resized) depth; a clean render has none."""
    write_render_shard(tmp_path / "raw", 0, [3], H, W)
    record = ShardEncoder(SETTINGS).encode_shard(str(tmp_path / "out"), str(tmp_path / "raw" / "render-000000.tar"))
    assert record["impossible_depth"] == {} and record["impossible_depth_samples"] == 0


def test_wrong_schema_manifest_names_its_file(tmp_path):
    """Defect 5: `manifest version(s) [None] under [...]` named no file."""
    raw_dir = tmp_path / "raw"
    write_render_shard(raw_dir, 0, [1], H, W)  # a raw shard's sidecar is no manifest
    with pytest.raises(ManifestError, match=f"^{raw_dir / 'render-000000.parquet'} is not a task-shard manifest"):
        open_dataset(str(raw_dir))
    old = tmp_path / "old" / "depth"
    old.mkdir(parents=True)
    row = {name: None for name in SCHEMA.names} | {"key": "k", "manifest_version": MANIFEST_VERSION + 98}
    pq.write_table(pa.Table.from_pylist([row], schema=SCHEMA), old / "render-000000.parquet")
    with pytest.raises(ManifestError, match=f"^{old / 'render-000000.parquet'} has manifest version\\(s\\) "
                                            f"\\[{MANIFEST_VERSION + 98}\\]; this vistune reads version 1"):
        open_dataset([str(tmp_path / "old")])
    (old / "render-000000.parquet").write_bytes(b"PAR1 cut")
    with pytest.raises(ManifestError, match="render-000000.parquet is not a readable Parquet manifest"):
        open_dataset(str(tmp_path / "old"))
    assert os.listdir(old) == ["render-000000.parquet"]
