"""raw fixture shards -> `vistune encode` on a real local Ray -> task shards read by webdataset itself."""

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from encode import codecs
from encode.codecs.depth import relative_error_bound
from encode.manifest import open_dataset
from encode.resize import ResizePolicy, plan, resize_nearest
from encode.sample import from_sample
from formats.shards import read_sample_at
from encode.tasks import EncodeSettings
from encode.shard import EncodeJobConfig, InputError
from pipelines.encode_job import run_encode
from tests.encode.raw_fixtures import annotate_sample, render_sample, write_annotate_shard, write_render_shard

ray = pytest.importorskip("ray")
SIZE = 32
H, W = 48, 64


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _settings(**kw):
    return EncodeSettings(size=SIZE, eval_fraction=0.3, **kw)


@pytest.fixture(scope="module")
def encoded(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("enc")
    for i in range(3):
        write_render_shard(root / "render", i, range(i * 4, i * 4 + 4), H, W)
    for i in range(2):
        write_annotate_shard(root / "annotate", i, range(100 + i * 4, 104 + i * 4), height=H, width=W)
    cfg = EncodeJobConfig(inputs=(str(root / "render"), str(root / "annotate")), out=str(root / "out"),
                          settings=_settings(), on_error="raise", workers=2)
    summary = run_encode(cfg, progress=False)
    return root, cfg, summary


def _wds_samples(tar):
    return [dict(s) for s in wds.WebDataset(str(tar), shardshuffle=False)]


def test_every_task_written_and_read_back_by_webdataset(encoded):
    root, cfg, summary = encoded
    assert summary["encoded_inputs"] == 5 and summary["lost"] == 0
    expected = {"depth": 12, "normals": 12, "semantic": 20, "instance": 20, "referring": 16, "t2i": 20,
                "denoise": 20, "lowlight": 20, "derain": 20}
    assert summary["written"] == expected
    assert summary["skipped_reasons"] == {"edit:no_edit_render": 12}
    for task, n in expected.items():
        got = sum(len(_wds_samples(t)) for t in sorted((Path(cfg.out) / task).glob("*.tar")))
        assert got == n, task


def test_targets_decode_to_raw_truth_within_codec_bounds(encoded):
    root, cfg, _ = encoded
    geom = plan(H, W, ResizePolicy(SIZE))
    for s in _wds_samples(Path(cfg.out) / "depth" / "render-000001.tar"):
        ts = from_sample(s)
        _, truth, _ = render_sample(ts.meta["seed"], H, W)
        d = resize_nearest(truth.depth, geom, np.nan)
        codec = codecs.from_spec(ts.meta["codec"])
        back = codec.decode(ts.target)
        fin = np.isfinite(d)
        bound = relative_error_bound(codec, 0.1, 200.0)  # the depth codec's bound on [0.1, 200] m
        assert codec.params["preset"] == "gray" and bound < 0.012   # encode's default preset
        assert np.all(np.abs(back[fin] - d[fin]) / d[fin] <= bound + 1e-6)
        assert np.array_equal(np.isinf(back), np.isinf(d))
        # encode's default canonical camera: the colors draw depth x f_c / f (60 deg across the square)
        f_c = 0.5 * min(ts.target.shape[:2]) / np.tan(np.radians(30.0))
        assert codec.params["camera_scale"] == pytest.approx(f_c / ts.meta["K"][0][0], rel=1e-5)
        metric = codecs.get("depth", preset="gray")
        assert np.array_equal(ts.target, metric.encode((d * codec.camera_scale).astype(np.float32)))
    for s in _wds_samples(Path(cfg.out) / "normals" / "render-000000.tar"):
        ts = from_sample(s)
        _, truth, _ = render_sample(ts.meta["seed"], H, W)
        n = resize_nearest(truth.normals, geom, np.nan)
        back = codecs.from_spec(ts.meta["codec"]).decode(ts.target)
        ok = np.isfinite(n).all(-1)
        ang = np.degrees(np.arccos(np.clip((back[ok] * n[ok]).sum(-1), -1, 1)))
        assert ang.max() < 0.6 and np.isnan(back[~ok]).all()
    for s in _wds_samples(Path(cfg.out) / "instance" / "annotate-000000.tar"):
        ts = from_sample(s)
        _, inst, _ = annotate_sample(ts.meta["seed"], height=H, width=W)
        ids = resize_nearest(inst, geom, 0)
        back = codecs.from_spec(ts.meta["codec"]).decode(ts.target)
        mapping = {int(k): v for k, v in ts.meta["instance_ids"].items()}
        assert np.array_equal(np.vectorize(lambda i: mapping.get(int(i), 0))(back), ids)
    for s in _wds_samples(Path(cfg.out) / "referring" / "annotate-000001.tar"):
        ts = from_sample(s)
        _, inst, _ = annotate_sample(ts.meta["seed"], height=H, width=W)
        mask = resize_nearest(inst, geom, 0) == ts.meta["instance_id"]
        assert np.array_equal(codecs.from_spec(ts.meta["codec"]).decode(ts.target), mask)
        assert ts.meta["expression"] in ts.prompt


def test_eval_samples_carry_raw_targets_and_train_samples_do_not(encoded):
    root, cfg, _ = encoded
    splits = set()
    for tar in (Path(cfg.out) / "depth").glob("*.tar"):
        for s in _wds_samples(tar):
            ts = from_sample(s)
            splits.add(ts.split)
            assert ("depth.exr" in s) == (ts.split == "eval")
            if ts.split == "eval":
                assert ts.raw["depth"].shape == (SIZE, SIZE)
    assert splits == {"train", "eval"}


def test_manifest_matches_shards_one_to_one(encoded):
    root, cfg, _ = encoded
    table = open_dataset(cfg.out).to_table()
    assert table.num_rows == sum(encoded[2]["written"].values())
    rows = table.to_pylist()
    for task_dir in Path(cfg.out).iterdir():
        for tar in task_dir.glob("*.tar"):
            keys = [s["__key__"] for s in _wds_samples(tar)]
            mine = [r for r in rows if r["shard"] == tar.name and r["task"] == task_dir.name]
            assert [r["key"] for r in mine] == keys
            for r in mine:
                s = read_sample_at(tar, r["tar_offset"], r["tar_size"])
                ts = from_sample(s)
                assert s["__key__"] == r["key"] and ts.split == r["split"] and ts.prompt == r["prompt"]
                assert (r["width"], r["height"]) == (SIZE, SIZE)
    assert pq.read_schema(next(Path(cfg.out).glob("depth/*.parquet"))).field("manifest_version")


def test_no_source_group_in_two_splits(encoded):
    table = open_dataset(encoded[1].out).to_table(columns=["source_group", "split"])
    seen = {}
    for g, s in zip(table["source_group"].to_pylist(), table["split"].to_pylist()):
        assert seen.setdefault(g, s) == s, g
    assert set(seen.values()) == {"train", "eval"}


def test_rerun_is_idempotent_and_redoes_only_missing(encoded, tmp_path):
    root, cfg, _ = encoded
    out = tmp_path / "out"
    shutil.copytree(cfg.out, out)
    again = run_encode(EncodeJobConfig(cfg.inputs, str(out), cfg.settings, "raise", 2), progress=False)
    assert again["encoded_inputs"] == 0 and again["skipped_inputs"] == 5
    before = (out / "depth" / "render-000002.tar").read_bytes()
    (out / "_done" / "render-000002.json").unlink()
    (out / "depth" / "render-000002.tar").unlink()
    redo = run_encode(EncodeJobConfig(cfg.inputs, str(out), cfg.settings, "raise", 2), progress=False)
    assert redo["encoded_inputs"] == 1
    assert (out / "depth" / "render-000002.tar").read_bytes() == before


def test_truncated_input_is_counted_or_raised(ray_local, tmp_path):
    raw = tmp_path / "raw"
    paths = write_render_shard(raw, 0, range(5), H, W)
    data = paths.tar.read_bytes()
    paths.tar.write_bytes(data[: len(data) * 3 // 5])
    with pytest.raises(InputError, match="truncated"):
        run_encode(EncodeJobConfig((str(raw),), str(tmp_path / "a"), _settings(), "raise", 1), progress=False)
    summary = run_encode(EncodeJobConfig((str(raw),), str(tmp_path / "b"), _settings(), "skip", 1), progress=False)
    assert summary["lost"] >= 2 and summary["damaged_inputs"] == [str(paths.tar)]
    assert 0 < summary["written"]["depth"] < 5
    record = json.loads((tmp_path / "b" / "_done" / "render-000000.json").read_text())
    assert record["lost"] + record["samples_in"] == 5


def test_corrupt_sample_is_skipped_with_reason(ray_local, tmp_path):
    from formats.shards import ShardPaths, ShardWriter

    files, _, _ = annotate_sample(1, height=H, width=W)
    bad = dict(files, **{"rgb.png": b"\x89PNG\r\n\x1a\n garbage"})
    with ShardWriter(ShardPaths.of(tmp_path / "raw", "annotate", 0)) as w:
        w.add("good", files)
        w.add("bad", bad)
        w.commit()
    summary = run_encode(EncodeJobConfig((str(tmp_path / "raw"),), str(tmp_path / "o"), _settings(), "skip", 1),
                         progress=False)
    assert summary["skipped_reasons"]["all:corrupt_sample"] == 1 and summary["written"]["t2i"] == 1
    with pytest.raises(InputError, match="bad"):
        run_encode(EncodeJobConfig((str(tmp_path / "raw"),), str(tmp_path / "p"), _settings(), "raise", 1),
                   progress=False)


def test_unfinished_input_shard_is_reported(ray_local, tmp_path):
    paths = write_render_shard(tmp_path / "raw", 0, [1], H, W)
    paths.parquet.unlink()
    summary = run_encode(EncodeJobConfig((str(tmp_path / "raw"),), str(tmp_path / "o"), _settings(), "skip", 1),
                         progress=False)
    assert summary["incomplete_inputs"] == 1 and summary["encoded_inputs"] == 0
