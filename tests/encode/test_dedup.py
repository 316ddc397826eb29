"""`vistune mix check`: a duplicate planted across splits is found, reported and dropped."""

import json
from dataclasses import asdict
from itertools import islice

import numpy as np
import pytest

from encode.dedup import Item, exclusions, find_duplicates
from encode.manifest import hamming, phash
from encode.mixture import MixtureConfig, MixtureStream
from formats.shards import ShardPaths, ShardWriter
from encode.tasks import EncodeSettings, split_of
from pipelines.cli import main
from pipelines.encode_job import EncodeWorker
from tests.encode.raw_fixtures import annotate_sample

SALT = "vistune"


def _path_in(split: str, start: int) -> str:
    i = start
    while split_of(f"annotate:/planted/{i}.jpg", 0.3, SALT) != split:
        i += 1
    return f"/planted/{i}.jpg"


@pytest.fixture
def planted(tmp_path):
    """Ten distinct images, plus copies of image 3: exact in eval, JPEG-recompressed in train."""
    from PIL import Image
    import io

    rows = []
    for seed in range(10):
        files, _, _ = annotate_sample(seed, height=64, width=64)
        meta = json.loads(files["json"])
        meta["source"] = {"path": _path_in("train", 100 * seed)}
        rows.append((f"img{seed}", dict(files, json=json.dumps(meta).encode())))
    files, _, rgb = annotate_sample(3, height=64, width=64)
    meta = json.loads(files["json"])
    meta["source"] = {"path": _path_in("eval", 5000)}
    rows.append(("copy_eval", dict(files, json=json.dumps(meta).encode())))
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=70)
    meta["source"] = {"path": _path_in("train", 9000)}
    rows.append(("copy_train_jpeg", {**{k: v for k, v in files.items() if k != "rgb.png"}, "rgb.jpg": buf.getvalue(),
                                     "json": json.dumps(meta).encode()}))
    with ShardWriter(ShardPaths.of(tmp_path / "raw", "annotate", 0)) as w:
        for key, f in rows:
            w.add(key, f)
        w.commit()
    worker = EncodeWorker(asdict(EncodeSettings(size=32, eval_fraction=0.3, split_salt=SALT)), "raise")
    worker.encode_shard(str(tmp_path / "out"), str(tmp_path / "raw" / "annotate-000000.tar"))
    return tmp_path


def test_planted_duplicates_found_and_dropped(planted, capsys):
    out = planted / "out"
    rc = main(["mix", "check", f"roots=[{out}]", f"out={planted / 'report'}", "check.drop=true"])
    assert rc == 0
    report = json.loads((planted / "report" / "check.json").read_text())
    kinds = {(p["kind"], p["exact"]) for p in report["pairs_list"]}
    assert ("train-eval", True) in kinds       # the exact copy in eval vs the original in train
    assert ("train-eval", False) in kinds      # the JPEG copy: a near duplicate
    assert report["pairs"]["train-eval"] == 2 and report["pairs"]["train-train"] == 1
    assert "contamination" in capsys.readouterr().out
    dropped = set(report["drop"])
    assert len(dropped) == 2 and all("planted" in g for g in dropped)
    assert (out / "_excluded.parquet").exists()
    cfg = MixtureConfig.from_dict({"roots": [str(out)], "sources": {"t": {"weight": 1, "filter": {"task": "t2i"}}}})
    groups = {json.loads(s["json"])["origin"]["group"] for s in islice(MixtureStream(cfg), 50)}
    assert groups and not groups & dropped
    keep_all = MixtureConfig.from_dict({"roots": [str(out)], "use_exclusions": False,
                                        "sources": {"t": {"weight": 1, "filter": {"task": "t2i"}}}})
    assert MixtureStream(keep_all).index[0].n == MixtureStream(cfg).index[0].n + 2


def test_phash_is_robust_to_recompression_and_tells_images_apart():
    a = annotate_sample(1, height=64, width=64)[2]
    b = annotate_sample(2, height=64, width=64)[2]
    noisy = np.clip(a + np.random.default_rng(0).normal(0, 4, a.shape), 0, 255).astype(np.uint8)
    assert hamming(phash(a), phash(noisy)) <= 4
    assert hamming(phash(a), phash(b)) > 6


def test_near_duplicate_search_finds_every_pair_within_threshold():
    """Multi-index hashing against brute force on random hashes with planted neighbours."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2 ** 63, 300, dtype=np.int64).astype(np.uint64)
    flips = [np.uint64(1) << np.uint64(b) for b in range(64)]
    near = [h ^ flips[rng.integers(64)] ^ flips[rng.integers(64)] ^ flips[rng.integers(64)] for h in base[:50]]
    hashes = np.concatenate([base, np.array(near, dtype=np.uint64)])
    items = [Item(f"g{i}", "train" if i % 3 else "eval", f"s{i}", int(h)) for i, h in enumerate(hashes)]
    found = {(p.a.group, p.b.group) for p in find_duplicates(items, threshold=5)}
    d = hamming(hashes[:, None], hashes[None, :])
    brute = {(items[i].group, items[j].group) for i in range(len(items)) for j in range(i + 1, len(items))
             if d[i, j] <= 5}
    assert found == brute and len(brute) >= 50


def test_exclusions_keep_eval_and_one_train_copy():
    a, b, c, e = (Item("a", "train", "x", 0), Item("b", "train", "x", 0), Item("c", "train", "x", 0),
                  Item("e", "eval", "x", 0))
    drop = exclusions(find_duplicates([a, b, c, e], threshold=0))
    assert set(drop) == {"a", "b", "c"}  # every train copy contaminates the eval one
    drop = exclusions(find_duplicates([a, b, c], threshold=0))
    assert set(drop) == {"b", "c"}
