import itertools

import numpy as np
import pytest
import torch

from encode import codecs
from encode.sample import TaskSample
from tests.train.fixtures import depth_sample, t2i_sample
from train.data import (BatchError, BatchStream, DataConfig, MixtureStreamFactory, ShardListStream, check_batch,
                        collate, prepare)

ALL_KEYS = {f"s{s}i{i}" for s in range(2) for i in range(8)}


def _keys(it, n):
    return [s["__key__"] for s in itertools.islice(it, n)]


def test_shard_list_epoch_splits_all_samples_across_ranks_and_workers(task_shards):
    factory = ShardListStream([str(p) for p in task_shards], seed=3)
    parts = [_keys(factory(rank, 2, worker, 2, None), 4) for rank in range(2) for worker in range(2)]
    assert set().union(*parts) == ALL_KEYS and sum(map(len, parts)) == 16  # disjoint, complete
    again = _keys(factory(0, 1, 0, 1, None), 32)
    assert set(again[:16]) == ALL_KEYS and set(again[16:]) == ALL_KEYS and again[:16] != again[16:]  # reshuffled


def test_shard_list_resumes_from_a_position(task_shards):
    factory = ShardListStream([str(p) for p in task_shards])
    full = list(itertools.islice(factory(0, 1, 1, 2, None), 12))
    resumed = _keys(factory(0, 1, 1, 2, full[4]["__position__"]), 7)
    assert resumed == [s["__key__"] for s in full[5:12]]  # crosses an epoch boundary too
    with pytest.raises(ValueError, match="no task shards match"):
        ShardListStream(["/nonexistent/*.tar"])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_batch_stream_resumes_exactly_behind_prefetching_workers(task_shards, num_workers):
    factory = ShardListStream([str(p) for p in task_shards])
    cfg = DataConfig(resolution=32, batch_size=3, num_workers=num_workers)
    reference = [b.keys for b in itertools.islice(BatchStream(factory, cfg), 9)]
    first = BatchStream(factory, cfg)
    head = [next(first).keys for _ in range(5)]  # workers have prefetched beyond these
    state = first.state_dict()
    tail = [b.keys for b in itertools.islice(BatchStream(factory, cfg, state=state), 4)]
    assert head + tail == reference
    with pytest.raises(ValueError, match="ran .* streams per rank"):
        BatchStream(factory, DataConfig(resolution=32, batch_size=3, num_workers=3), state=state)


def test_batches_hold_uint8_chw_and_convert_to_unit_range(task_shards):
    batch = next(BatchStream(ShardListStream([str(task_shards[0])]), DataConfig(resolution=32, batch_size=4)))
    assert batch.target.dtype == torch.uint8 and batch.target.shape == (4, 3, 32, 32)
    assert batch.has_image.tolist() == [t == "depth" for t in batch.tasks]
    assert batch.image[~batch.has_image].eq(0).all()
    m = batch.to_model("cpu")
    assert m.target.dtype == torch.float32 and -1 <= m.target.min() and m.target.max() <= 1
    check_batch(m, 32)


def test_resize_policy_keeps_codec_colors_for_vision_targets():
    depth = depth_sample("d", 48, seed=1)
    t2i = t2i_sample("t", 48, seed=2)
    d, t = prepare(depth, 32, resize="resize"), prepare(t2i, 32, resize="resize")
    assert d["target"].shape == (3, 32, 32) and d["image"].shape == (3, 32, 32)
    src = {tuple(c) for c in depth.target.reshape(-1, 3)}
    assert {tuple(c) for c in d["target"].reshape(3, -1).T} <= src  # nearest: only source colors
    dec = codecs.get("depth").decode(d["target"].transpose(1, 2, 0))
    assert np.isfinite(dec).all() and dec.min() >= depth.raw["depth"].min() * 0.99
    t_colors = {tuple(c) for c in t["target"].reshape(3, -1).T}
    assert len(t_colors) > 2  # bilinear: the square's edge blends for photos


def test_mismatched_resolution_and_bad_samples_are_clear_errors():
    s = depth_sample("k1", 48, seed=0)
    with pytest.raises(BatchError, match=r"sample 'k1': target is 48x48, the model needs 32x32 \(data.resize=error"):
        prepare(s, 32, resize="error")
    bad = TaskSample("k2", "depth", s.target, "p", {}, input=s.input[:40])
    with pytest.raises(BatchError, match="input .* and target .* sizes differ"):
        prepare(bad, 32, resize="resize")
    with pytest.raises(BatchError, match=r"unknown task 'depht'"):
        prepare(TaskSample("k3", "depht", s.target, "p", {}), 32)
    with pytest.raises(ValueError, match=r"data.resize 'stretch' not in \['resize', 'error'\]"):
        DataConfig(resolution=32, batch_size=1, resize="stretch")


def test_check_batch_names_nan_samples_wrong_shapes_and_unknown_tasks():
    items = [prepare(depth_sample(f"k{i}", 32, seed=i), 32) for i in range(3)]
    batch = collate(items).to_model("cpu")
    batch.target[1, 0, 5, 5] = float("nan")
    with pytest.raises(BatchError, match=r"target holds NaN/inf values in samples \['k1'\]"):
        check_batch(batch, 32)
    with pytest.raises(BatchError, match=r"shape \(3, 3, 32, 32\), the model needs \(3, 3, 64, 64\)"):
        check_batch(collate(items), 64)
    odd = collate(items)
    odd.tasks[2] = "telepathy"
    with pytest.raises(BatchError, match=r"unknown task\(s\) \['telepathy'\] in batch \(keys \['k2'\]\)"):
        check_batch(odd, 32)


def test_mixture_stream_adapter_resumes_exactly(task_shards):
    mixture = {"roots": [str(task_shards[0].parent)], "block": 10,
               "sources": {"gen": {"weight": 0.7, "filter": {"task": "t2i"}},
                           "depth": {"weight": 0.3, "filter": {"task": "depth"}}}}
    factory = MixtureStreamFactory(mixture)
    cfg = DataConfig(resolution=32, batch_size=2, num_workers=2)
    reference = [b.keys for b in itertools.islice(BatchStream(factory, cfg), 8)]
    first = BatchStream(factory, cfg)
    head = [next(first).keys for _ in range(3)]
    tail = [b.keys for b in itertools.islice(BatchStream(factory, cfg, state=first.state_dict()), 5)]
    assert head + tail == reference
    tasks = [k for keys in reference for k in keys]
    assert len(set(tasks)) > 8  # both sources, many samples


def test_a_finite_stream_is_a_clear_error(task_shards):
    def finite(rank, world_size, worker, num_workers, position):
        return iter(list(itertools.islice(ShardListStream([str(task_shards[0])])(0, 1, 0, 1, None), 3)))

    stream = BatchStream(finite, DataConfig(resolution=32, batch_size=2))
    next(stream)
    with pytest.raises(RuntimeError, match="the data stream ended"):
        next(stream)


def test_loss_mask_zeroes_undefined_depth_and_normal_pixels_only():
    """With loss_mask, sky (+inf) and invalid (NaN) depth pixels and NaN normals weigh 0, every
    other pixel and every other task 1; a target's colors there then cannot change the loss."""
    from train.model import GeneratorConfig

    ds = depth_sample("d", 32, 0)
    depth = ds.raw["depth"].copy()
    depth[:8] = np.inf
    depth[8:10, :4] = np.nan
    ds = TaskSample(key="d", task="depth", target=codecs.get("depth").encode(depth), prompt=ds.prompt,
                    meta=ds.meta, input=ds.input)
    normals = np.zeros((32, 32, 3), np.float32)
    normals[..., 2] = -1.0
    normals[20:, :] = np.nan
    ncodec = codecs.get("normals")
    ns = TaskSample(key="n", task="normals", target=ncodec.encode(normals), prompt="normals",
                    meta={"codec": codecs.spec(ncodec), "split": "train"}, input=ds.input)
    items = [prepare(s, 32, loss_mask=True) for s in (ds, ns, t2i_sample("t", 32, 1))]
    batch = collate(items)
    w = batch.weight[:, 0].numpy()
    expect_depth = np.isfinite(depth).astype(np.uint8)
    assert np.array_equal(w[0], expect_depth) and w[0].sum() == 32 * 32 - 8 * 32 - 8
    assert np.array_equal(w[1], np.isfinite(normals).all(-1).astype(np.uint8))
    assert np.all(w[2] == 1)
    assert collate([prepare(s, 32) for s in (ds, ns)]).weight is None  # off by default in DataConfig

    model = GeneratorConfig(size="debug").build()
    b = batch.to_model("cpu")
    changed = b.target.clone()
    changed[0, :, :8] = torch.rand_like(changed[0, :, :8])     # other colors where the depth is sky
    losses = []
    for target, weight in ((b.target, b.weight), (changed, b.weight), (changed, None)):
        out = model(target, b.image, b.has_image, b.prompts, generator=torch.Generator().manual_seed(0), weight=weight)
        losses.append(out["per_sample"])
    assert torch.equal(losses[0], losses[1])
    assert not torch.allclose(losses[0][0], losses[2][0])


def test_hflip_mirrors_depth_pixels_and_negates_the_x_of_normals():
    """A mirrored sample is the sample of the mirrored scene: depth colors move with their pixel, a
    camera-frame normal's x changes sign (within the codec's rounding), undefined normals stay
    undefined, and the input photo mirrors with its target."""
    from train.data import FLIP_TASKS, flip_decision, mirror

    ds = depth_sample("d", 32, 3)
    flipped = prepare(ds, 32, flip=True)
    plain = prepare(ds, 32)
    assert np.array_equal(flipped["target"], plain["target"][:, :, ::-1])
    assert np.array_equal(flipped["image"], plain["image"][:, :, ::-1])

    rng = np.random.default_rng(0)
    n = rng.normal(size=(32, 32, 3)).astype(np.float32)
    n[..., 2] = -np.abs(n[..., 2])
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    n[:4] = np.nan
    ncodec = codecs.get("normals")
    ns = TaskSample(key="n", task="normals", target=ncodec.encode(n), prompt="normals",
                    meta={"codec": codecs.spec(ncodec), "split": "train"}, input=ds.input)
    got = ncodec.decode(prepare(ns, 32, flip=True)["target"].transpose(1, 2, 0))
    want = n[:, ::-1] * np.array([-1.0, 1.0, 1.0], np.float32)
    assert np.array_equal(np.isnan(got).all(-1), np.isnan(want).all(-1))
    ok = ~np.isnan(want).all(-1)
    angle = np.degrees(np.arccos(np.clip((got[ok] * want[ok]).sum(-1), -1, 1)))
    assert angle.max() < 1.0

    with pytest.raises(BatchError, match="do not mirror"):
        mirror(t2i_sample("t", 32, 1), np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8))
    assert "referring" not in FLIP_TASKS and "edit" not in FLIP_TASKS
    coins = [flip_decision(f"k{i}", {"epoch": 0, "index": i}, 0.5) for i in range(2000)]
    assert 0.45 < np.mean(coins) < 0.55                                      # a fair coin ...
    assert coins == [flip_decision(f"k{i}", {"epoch": 0, "index": i}, 0.5) for i in range(2000)]  # ... replayable
    assert not any(flip_decision(f"k{i}", None, 0.0) for i in range(100))
    with pytest.raises(ValueError, match="hflip"):
        DataConfig(resolution=32, batch_size=2, hflip=1.5)
