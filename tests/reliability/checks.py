"""What "complete and exactly once" means for shard directories, checked against the files themselves."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import webdataset as wds

from formats.shards import read_rows


def tar_keys(tar: Path) -> list[str]:
    return [s["__key__"] for s in wds.WebDataset(str(tar), shardshuffle=False, empty_check=False)]


def temp_files(root: Path) -> list[Path]:
    """Writer temp files (`.<final name>.<random>.tmp`) anywhere under `root`."""
    return sorted(p for p in Path(root).rglob(".*.tmp"))


def raw_shard_keys(root: Path, prefix: str) -> list[str]:
    """Sample keys of every `<prefix>-*.tar` under `root`, after checking each tar against its Parquet sidecar.

    Raises AssertionError for a tar without sidecar (or the reverse), a sidecar whose rows differ
    from the tar's samples, or temp files left behind.
    """
    root = Path(root)
    tars = sorted(root.glob(f"{prefix}-*.tar"))
    assert sorted(p.stem for p in root.glob(f"{prefix}-*.parquet")) == [t.stem for t in tars], \
        f"tars and Parquet sidecars differ under {root}"
    keys: list[str] = []
    for tar in tars:
        in_tar = tar_keys(tar)
        rows = read_rows(tar.with_suffix(".parquet"))
        assert [r["key"] for r in rows] == in_tar, f"{tar.name}: sidecar rows != tar samples"
        assert all(r["shard"] == tar.name for r in rows)
        keys += in_tar
    assert not temp_files(root), temp_files(root)
    return keys


def task_shard_keys(out: Path) -> dict[str, list[str]]:
    """task -> sample keys over all of that task's shards under an encode `out`, each checked against
    its manifest, with no key twice within a task and the manifests as a whole (the dataset `mix`
    reads) holding exactly the tars' samples."""
    from encode.manifest import open_dataset

    out = Path(out)
    by_task = {d.name: raw_shard_keys(d, "*") for d in sorted(out.iterdir()) if d.is_dir() and d.name != "_done"}
    for task, keys in by_task.items():
        twice = [k for k, n in Counter(keys).items() if n > 1]
        assert not twice, f"{task}: keys written twice: {twice[:5]}"
    table = open_dataset(str(out)).to_table(columns=["task", "key"]).to_pylist()
    assert Counter((r["task"], r["key"]) for r in table) == Counter(
        (t, k) for t, keys in by_task.items() for k in keys), "manifest rows != task shard samples"
    assert not temp_files(out), temp_files(out)
    return by_task
