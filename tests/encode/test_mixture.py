"""The mixture stream: realized ratios, partitioning by rank and worker, exact resume, exclusions."""

from collections import Counter
from dataclasses import asdict
from itertools import islice

import numpy as np
import pytest

from encode.mixture import MixtureConfig, MixtureError, MixtureStream, build_index, realized_ratios, stratified_block
from encode.tasks import EncodeSettings
from pipelines.encode_job import EncodeWorker
from tests.encode.raw_fixtures import write_annotate_shard, write_render_shard


@pytest.fixture(scope="module")
def task_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    for i in range(5):
        write_render_shard(root / "raw", i, range(i * 3, i * 3 + 3), 24, 32)
    for i in range(3):
        write_annotate_shard(root / "raw", i, range(50 + i * 3, 53 + i * 3), height=24, width=32)
    worker = EncodeWorker(asdict(EncodeSettings(size=16, eval_fraction=0.2)), "raise")
    for tar in sorted((root / "raw").glob("*.tar")):
        worker.encode_shard(str(root / "out"), str(tar))
    return str(root / "out")


def _cfg(root, **kw):
    return MixtureConfig.from_dict({"roots": [root], "window": 2, "sources": {
        "gen": {"weight": 0.9, "filter": {"task_group": ["generation", "restoration"]}},
        "depth": {"weight": 0.06, "filter": {"task": "depth"}},
        "ref": {"weight": 0.04, "filter": {"task": "referring"}}}, **kw})


def test_realized_ratios_within_one_percent(task_root):
    cfg = _cfg(task_root)
    for world, workers in [(1, 1), (2, 3)]:
        ratios = realized_ratios(cfg, 10_000, world, workers)
        for name, w in zip(["gen", "depth", "ref"], cfg.weights):
            assert abs(ratios[name] - w) <= 0.01, (name, ratios)
    # and over any prefix, within 1/block of the weights at block ends
    stream = MixtureStream(cfg)
    counts = Counter(stream.source_at(m) for m in range(3_000))
    assert counts == {0: 2700, 1: 180, 2: 120}


def test_stratified_block_is_exact():
    rng = np.random.default_rng(0)
    ids = stratified_block(np.array([0.5, 0.3333, 0.1667]), 1000, rng)
    assert Counter(ids.tolist()) == {0: 500, 1: 333, 2: 167}


def test_samples_are_read_and_match_their_source(task_root):
    cfg = _cfg(task_root)
    seen = Counter()
    for s in islice(MixtureStream(cfg), 300):
        task = s["__shard__"].split("/")[-2]
        seen[s["__source__"]] += 1
        assert (s["__source__"] == "depth") == (task == "depth")
        assert (s["__source__"] == "ref") == (task == "referring")
        assert b"\"split\": \"train\"" in s["json"]
    assert set(seen) == {"gen", "depth", "ref"}


def test_workers_partition_each_epoch_and_ranks_yield_equally(task_root):
    cfg = _cfg(task_root)
    index = build_index(cfg)
    depth = next(ix for ix in index if ix.name == "depth")
    streams = [MixtureStream(cfg, r, 2, w, 2, index=index) for r in range(2) for w in range(2)]
    per_worker = []
    for st in streams:
        k = np.arange(depth.n // 4)  # within the first epoch, G=4 workers split the depth samples
        per_worker.append({st.sample_ref(1, int(i))[3] for i in k})
    union = set().union(*per_worker)
    assert sum(len(p) for p in per_worker) == len(union)  # disjoint
    # infinite and resampled: every worker keeps yielding past an epoch, the same count each
    for st in streams:
        assert len(list(islice(st.plan(3 * depth.n), 3 * depth.n))) == 3 * depth.n


def test_every_sample_visited_once_per_epoch(task_root):
    cfg = MixtureConfig.from_dict({"roots": [task_root], "window": 3,
                                   "sources": {"all": {"weight": 1.0, "filter": {"task": "t2i"}}}})
    stream = MixtureStream(cfg)
    n = stream.index[0].n
    first = [k for _, _, k in stream.plan(n)]
    second = [k for _, _, k in islice(stream.plan(2 * n), n, 2 * n)]
    assert sorted(first) == sorted(set(first)) == sorted(second)
    assert first != second  # reshuffled each epoch


def test_exact_resume(task_root):
    cfg = _cfg(task_root)
    ref = list(islice(MixtureStream(cfg, 1, 2, 0, 1), 120))
    resumed = MixtureStream(cfg, 1, 2, 0, 1)
    resumed.load_state_dict(ref[69]["__position__"])
    again = list(islice(resumed, 50))
    assert [s["__key__"] for s in again] == [s["__key__"] for s in ref[70:]]
    assert [s["target.png"] for s in again] == [s["target.png"] for s in ref[70:]]


def test_resume_from_another_mixture_is_refused(task_root):
    state = next(iter(MixtureStream(_cfg(task_root))))["__position__"]
    other = MixtureStream(_cfg(task_root, seed=1))
    with pytest.raises(MixtureError, match="another mixture"):
        other.load_state_dict(state)


def test_bad_configs(task_root):
    with pytest.raises(MixtureError, match="matches no"):
        MixtureStream(MixtureConfig.from_dict({"roots": [task_root], "sources": {"e": {"weight": 1, "filter": {"task": "edit"}}}}))
    with pytest.raises(ValueError, match="unknown manifest column"):
        MixtureStream(MixtureConfig.from_dict({"roots": [task_root], "sources": {"e": {"weight": 1, "filter": {"colour": 1}}}}))
    with pytest.raises(MixtureError, match="weight"):
        MixtureConfig.from_dict({"roots": [task_root], "sources": {"e": {"weight": 0}}})
    ok = MixtureStream(MixtureConfig.from_dict({"roots": [task_root], "allow_empty": True, "sources": {
        "e": {"weight": 0.5, "filter": {"task": "edit"}}, "t": {"weight": 0.5, "filter": {"task": "t2i"}}}}))
    assert [ix.name for ix in ok.index] == ["t"] and ok.weights.tolist() == [1.0]


def test_corrupt_sample_is_skipped_or_raised(task_root, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(task_root, root)
    cfg = MixtureConfig.from_dict({"roots": [str(root)], "sources": {"t": {"weight": 1.0, "filter": {"task": "t2i"}}}})
    stream = MixtureStream(cfg)
    victim = stream.index[0].shard_paths[0]
    with open(victim, "r+b") as f:
        f.write(b"\xff" * 600)  # smash the first member header
    n = stream.index[0].n
    got = list(islice(MixtureStream(cfg), n - 1))
    assert len(got) == n - 1  # the stream moves on past the bad sample
    strict = MixtureConfig.from_dict({"roots": [str(root)], "on_error": "raise",
                                      "sources": {"t": {"weight": 1.0, "filter": {"task": "t2i"}}}})
    with pytest.raises(Exception, match="corrupt|truncated|unsafe|not"):
        list(islice(MixtureStream(strict), n))
