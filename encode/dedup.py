"""Exact and near-duplicate search over manifests: duplicates within train and train/eval contamination.

The unit is the *source image*: all task samples of one source group (a scene, a web image)
share its clean input image, so they are one item here, hashed by `image_sha256` (exact) and
`image_phash` (64-bit pHash). Two different source groups with the same exact hash, or pHashes
within `threshold` bits, are duplicates. Near-duplicate search uses multi-index hashing: the 64
bits are cut into threshold + 1 bands, and by the pigeonhole principle two hashes within
`threshold` bits agree exactly on at least one band, so only band-mates are compared.

`find_duplicates` returns pairs labeled train-train, train-eval (contamination) or eval-eval;
`exclusions` turns them into the source groups to drop: the train side of every contaminated
pair, and all but the first (sorted) group of every train-train cluster. Eval is never dropped.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as pads

from encode.manifest import hamming

# Tasks whose manifest `image_*` hashes describe the clean source image (restoration inputs are degraded).
CLEAN_IMAGE_TASKS = ("depth", "normals", "semantic", "instance", "referring", "t2i", "edit")


@dataclass(frozen=True)
class Item:
    group: str
    split: str
    sha: str
    phash: int


@dataclass(frozen=True)
class DuplicatePair:
    a: Item
    b: Item
    distance: int  # Hamming distance of the pHashes (0 for exact duplicates)
    exact: bool

    @property
    def kind(self) -> str:
        # a validation sample is held out as an eval one is: a duplicate of training data leaks the same way
        sides = ("eval" if it.split == "val" else it.split for it in (self.a, self.b))
        return "-".join(sorted(sides, key=("train", "eval").index))


def items_from_dataset(ds: pads.Dataset) -> list[Item]:
    """One item per (source group, clean image): the content each source contributes."""
    table = ds.to_table(columns=["source_group", "split", "image_sha256", "image_phash"],
                        filter=pc.field("task").isin(list(CLEAN_IMAGE_TASKS)))
    seen, items = set(), []
    for g, s, h, p in zip(*(table[c].to_pylist() for c in table.column_names)):
        if (g, h) not in seen:
            seen.add((g, h))
            items.append(Item(g, s, h, int(p)))
    return sorted(items, key=lambda it: (it.group, it.sha))


def find_duplicates(items: list[Item], threshold: int = 6) -> list[DuplicatePair]:
    """All pairs of items from different source groups that are exact or near duplicates."""
    if not 0 <= threshold < 32:
        raise ValueError(f"near-duplicate threshold must be in [0, 32) bits, got {threshold}")
    pairs: dict[tuple[int, int], DuplicatePair] = {}
    by_sha: dict[str, list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        by_sha[it.sha].append(i)
    for members in by_sha.values():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                i, j = members[x], members[y]
                if items[i].group != items[j].group:
                    pairs[(i, j)] = DuplicatePair(items[i], items[j], 0, True)
    if threshold > 0 and len(items) > 1:
        hashes = np.array([it.phash for it in items], dtype=np.uint64)
        n_bands = threshold + 1
        bounds = np.linspace(0, 64, n_bands + 1).astype(int)
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            band = (hashes >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)
            order = np.argsort(band, kind="stable")
            sorted_band = band[order]
            starts = np.flatnonzero(np.r_[True, sorted_band[1:] != sorted_band[:-1]])
            ends = np.r_[starts[1:], len(order)]
            for s, e in zip(starts, ends):
                if e - s < 2:
                    continue
                bucket = order[s:e]
                d = hamming(hashes[bucket][:, None], hashes[bucket][None, :])
                for x, y in zip(*np.nonzero(np.triu(d <= threshold, k=1))):
                    i, j = sorted((int(bucket[x]), int(bucket[y])))
                    if items[i].group != items[j].group and (i, j) not in pairs:
                        pairs[(i, j)] = DuplicatePair(items[i], items[j], int(d[x, y]), items[i].sha == items[j].sha)
    return [pairs[k] for k in sorted(pairs)]


def exclusions(pairs: list[DuplicatePair]) -> dict[str, str]:
    """Source groups to drop -> reason. Eval groups are kept; train duplicates keep one representative."""
    drop: dict[str, str] = {}
    parent: dict[str, str] = {}

    def find(g: str) -> str:
        while parent.setdefault(g, g) != g:
            g = parent[g]
        return g

    for p in pairs:
        if p.kind == "train-eval":
            train = p.a if p.a.split == "train" else p.b
            other = p.b if train is p.a else p.a
            drop[train.group] = f"contaminates eval group {other.group} ({'exact' if p.exact else f'{p.distance} bits'})"
        elif p.kind == "train-train":
            ra, rb = find(p.a.group), find(p.b.group)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    for g in list(parent):
        root = find(g)
        if root != g and g not in drop:
            drop[g] = f"duplicate of train group {root}"
    return drop


def summarize(items: list[Item], pairs: list[DuplicatePair]) -> dict:
    counts = {"train-train": 0, "train-eval": 0, "eval-eval": 0}
    exact = dict(counts)
    for p in pairs:
        counts[p.kind] += 1
        exact[p.kind] += int(p.exact)
    return {"items": len(items), "train_items": sum(it.split == "train" for it in items),
            "eval_items": sum(it.split == "eval" for it in items), "pairs": counts, "exact_pairs": exact}
