"""The instruction mixture: weighted sources over task-shard manifests, as a resumable sample stream.

A mixture names sources (manifest filters) with weights, e.g. generation 0.9 and vision 0.1.
`MixtureStream(config, rank, world_size, worker, num_workers)` is an infinite, deterministic
stream of task samples for one (rank, worker) of a data-parallel job:

- **Source choice** is stratified: each block of `block` draws holds exactly round(weight * block)
  draws of each source (largest remainder), in a seeded random order. Realized ratios are exact
  at block ends and within 1/block in between, instead of the +-3 sqrt(w(1-w)/n) of i.i.d. draws.
- **Within a source**, each epoch is a seeded permutation of its shards, cut into windows of
  `window` shards; the samples of a window are shuffled together (a shuffle buffer `window`
  shards wide). Epochs repeat with new permutations (infinite, resampled).
- **Split by node and worker**: global worker g of G = world_size * num_workers takes positions
  g, g + G, g + 2G, ... of each source's sequence, so workers never see the same sample in an
  epoch and every rank yields the same number of samples (no uneven-shard hangs under DDP).
- **Randomness** comes only from numpy Generators seeded by (seed, source, epoch, window) and
  (seed, g, block): no global RNG state, identical on every machine.
- **Exact resume**: the position is (n yielded, per-source counts). Every index is computed, not
  replayed, so `load_state_dict` restarts at the next sample in O(1) and yields the same samples
  an uninterrupted stream would. Samples are read by byte range (`tar_offset`, `tar_size` from the
  manifest), so no shard is scanned to find its place.

Every yielded dict is webdataset-style (`__key__`, member bytes) plus `__source__`, `__shard__`
and `__position__` (the stream state after this sample), so a consumer behind a prefetching
DataLoader can record what it has actually consumed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import numpy as np
import pyarrow.compute as pc

from encode.manifest import filesystem_and_path, filter_expression, open_dataset
from formats.shards import ShardError, read_sample_at

log = logging.getLogger("vistune.mix")
EXCLUDED_FILE = "_excluded.parquet"


class MixtureError(ValueError):
    """A mixture config that cannot be built (unknown column, empty source, bad weight, stale resume state)."""


@dataclass(frozen=True)
class MixtureSource:
    name: str
    weight: float
    filter: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.weight > 0:
            raise MixtureError(f"mixture source {self.name!r}: weight must be > 0, got {self.weight}")


@dataclass(frozen=True)
class MixtureConfig:
    roots: tuple[str, ...]                 # task-shard directories (`vistune encode` outputs) or URIs
    sources: tuple[MixtureSource, ...]
    seed: int = 0
    split: str = "train"
    window: int = 8                        # shards shuffled together (the shuffle buffer, in shards)
    block: int = 1000                      # stratified source-choice block
    on_error: str = "skip"                 # a corrupt sample: skip (counted, logged) | raise
    use_exclusions: bool = True            # honour `vistune mix check drop=true` (<root>/_excluded.parquet)
    allow_empty: bool = False              # drop sources that match nothing (warned) instead of failing

    def __post_init__(self) -> None:
        if not self.roots:
            raise MixtureError("mixture: `roots` must name at least one task-shard directory")
        if not self.sources:
            raise MixtureError("mixture: `sources` is empty")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise MixtureError(f"mixture: duplicate source names {names}")
        if self.window < 1 or self.block < 1:
            raise MixtureError(f"mixture: window and block must be >= 1, got {self.window}, {self.block}")
        schemes = {r.split("://")[0] if "://" in r else "file" for r in self.roots}
        if len(schemes) > 1:
            raise MixtureError(f"mixture: all roots must live on one filesystem, got schemes {sorted(schemes)}")
        if self.on_error not in ("skip", "raise"):
            raise MixtureError(f"mixture: on_error {self.on_error!r} not in ['skip', 'raise']")

    @property
    def weights(self) -> np.ndarray:
        w = np.array([s.weight for s in self.sources], dtype=np.float64)
        return w / w.sum()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MixtureConfig":
        d = dict(d)
        roots = d.pop("roots", None)
        roots = [roots] if isinstance(roots, str) else list(roots or [])
        raw_sources = d.pop("sources", None) or {}
        if isinstance(raw_sources, dict):  # {name: {weight, filter}} (Hydra-friendly)
            raw_sources = [{"name": k, **v} for k, v in raw_sources.items()]
        try:
            sources = tuple(MixtureSource(name=s["name"], weight=float(s["weight"]), filter=dict(s.get("filter") or {}))
                            for s in raw_sources)
            return cls(roots=tuple(roots), sources=sources, **d)
        except (KeyError, TypeError) as err:
            raise MixtureError(f"mixture config: {err}") from err


@dataclass
class _SourceIndex:
    """One source's samples in a canonical order: shard paths and per-sample byte ranges."""
    name: str
    shard_paths: list[str]
    shard_starts: np.ndarray   # sample index where each shard begins (len = n_shards + 1)
    offsets: np.ndarray
    sizes: np.ndarray
    keys: list[str]

    @property
    def n(self) -> int:
        return len(self.keys)


def load_exclusions(roots: tuple[str, ...]) -> set[str]:
    """Source groups dropped by `vistune mix check drop=true` (files `<root>/_excluded.parquet`)."""
    import pyarrow.parquet as pq

    groups: set[str] = set()
    for root in roots:
        fs, path = filesystem_and_path(root)
        target = f"{path.rstrip('/')}/{EXCLUDED_FILE}"
        if fs.get_file_info(target).type.name == "File":
            groups.update(pq.read_table(target, columns=["source_group"], filesystem=fs)["source_group"].to_pylist())
    return groups


def build_index(config: MixtureConfig) -> list[_SourceIndex]:
    """Resolve every source's manifest filter to a sorted sample index. Raises MixtureError if one is empty."""
    ds = open_dataset(config.roots)
    excluded = load_exclusions(config.roots) if config.use_exclusions else set()
    columns = ["key", "tar_offset", "tar_size", "source_group", "__filename"]
    out = []
    for src in config.sources:
        try:
            expr = filter_expression({"split": config.split, **src.filter})
        except ValueError as err:
            raise MixtureError(f"mixture source {src.name!r}: {err}") from err
        table = ds.to_table(columns=columns, filter=expr)
        if excluded:
            table = table.filter(pc.invert(pc.is_in(table["source_group"], value_set=_array(excluded))))
        if table.num_rows == 0 and config.allow_empty:
            log.warning("mix: source %r matches no %s samples (filter %s); dropped, weights renormalized",
                        src.name, config.split, src.filter)
            continue
        if table.num_rows == 0:
            raise MixtureError(f"mixture source {src.name!r} matches no {config.split} samples "
                               f"(filter {src.filter}) under {list(config.roots)}; "
                               f"fix the filter or set mixture.allow_empty=true")
        table = table.sort_by([("__filename", "ascending"), ("tar_offset", "ascending")])
        files = table["__filename"].to_pylist()
        shard_paths, starts = [], []
        for i, f in enumerate(files):
            if not shard_paths or shard_paths[-1] != f:
                shard_paths.append(f)
                starts.append(i)
        starts.append(len(files))
        out.append(_SourceIndex(
            name=src.name, shard_paths=[p[: -len(".parquet")] + ".tar" for p in shard_paths],
            shard_starts=np.asarray(starts, dtype=np.int64),
            offsets=table["tar_offset"].to_numpy().astype(np.int64), sizes=table["tar_size"].to_numpy().astype(np.int64),
            keys=table["key"].to_pylist()))
    return out


def _array(values: set[str]):
    import pyarrow as pa

    return pa.array(sorted(values), type=pa.string())


def _seed_words(seed: int, *parts: Any) -> list[int]:
    """Stable 64-bit words from a seed and labels (names hashed, so adding a source doesn't shift others)."""
    h = hashlib.sha256(json.dumps([seed, *parts]).encode()).digest()
    return [int.from_bytes(h[i:i + 8], "little") for i in range(0, 32, 8)]


def _generator(seed: int, *parts: Any) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(key=_seed_words(seed, *parts)[:2]))


def stratified_block(weights: np.ndarray, block: int, rng: np.random.Generator) -> np.ndarray:
    """`block` source ids with exactly the largest-remainder rounding of weights * block each, shuffled."""
    raw = weights * block
    counts = np.floor(raw).astype(np.int64)
    rest = block - counts.sum()
    if rest:
        counts[np.argsort(-(raw - counts), kind="stable")[:rest]] += 1
    ids = np.repeat(np.arange(len(weights)), counts)
    rng.shuffle(ids)
    return ids


class _EpochOrder:
    """The permutation of one source's samples in one epoch: shards permuted, windows shuffled."""

    def __init__(self, index: _SourceIndex, seed: int, window: int) -> None:
        self.index, self.seed, self.window = index, seed, window
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def order(self, epoch: int) -> np.ndarray:
        if epoch in self._cache:
            return self._cache[epoch]
        idx = self.index
        shards = _generator(self.seed, "shards", idx.name, epoch).permutation(len(idx.shard_paths))
        parts = []
        for w in range(0, len(shards), self.window):
            members = np.concatenate([np.arange(idx.shard_starts[s], idx.shard_starts[s + 1]) for s in shards[w:w + self.window]])
            parts.append(_generator(self.seed, "window", idx.name, epoch, w).permutation(members))
        order = np.concatenate(parts)
        self._cache[epoch] = order
        while len(self._cache) > 2:
            self._cache.popitem(last=False)
        return order


class MixtureStream:
    """Infinite, resumable sample stream for one (rank, worker); see the module docstring."""

    def __init__(self, config: MixtureConfig, rank: int = 0, world_size: int = 1, worker: int = 0,
                 num_workers: int = 1, index: list[_SourceIndex] | None = None) -> None:
        if not (0 <= rank < world_size and 0 <= worker < num_workers):
            raise MixtureError(f"bad partition: rank {rank} of {world_size}, worker {worker} of {num_workers}")
        self.config = config
        self.index = index if index is not None else build_index(config)
        self.global_worker = rank * num_workers + worker
        self.n_global = world_size * num_workers
        self._orders = [_EpochOrder(ix, config.seed, config.window) for ix in self.index]
        weight = {s.name: s.weight for s in config.sources}
        w = np.array([weight[ix.name] for ix in self.index], dtype=np.float64)
        if not len(w):
            raise MixtureError("mixture: every source is empty")
        self.weights = w / w.sum()
        self.fingerprint = self._fingerprint()
        self.n = 0
        self.counts = [0] * len(self.index)
        self.errors = 0
        self._block_cache: tuple[int, np.ndarray] = (-1, np.empty(0, np.int64))
        self._fs = filesystem_and_path(config.roots[0])[0]  # one filesystem for every root (checked)

    def _fingerprint(self) -> str:
        h = hashlib.sha256(json.dumps([asdict(self.config)["sources"], self.config.seed, self.config.split,
                                       self.config.window, self.config.block, self.n_global]).encode())
        for ix in self.index:
            h.update(f"{ix.name}:{ix.n}:{ix.shard_paths[0] if ix.shard_paths else ''}".encode())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------------ position

    def state_dict(self) -> dict[str, Any]:
        return {"n": self.n, "counts": {ix.name: c for ix, c in zip(self.index, self.counts)},
                "global_worker": self.global_worker, "n_global": self.n_global, "fingerprint": self.fingerprint}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("fingerprint") != self.fingerprint:
            raise MixtureError("mixture resume state is from another mixture, data set or worker layout "
                               f"(fingerprint {state.get('fingerprint')} != {self.fingerprint}); "
                               "restart the stream or restore the original mixture")
        if state.get("global_worker") != self.global_worker:
            raise MixtureError(f"resume state belongs to worker {state.get('global_worker')}, not {self.global_worker}")
        self.n = int(state["n"])
        self.counts = [int(state["counts"][ix.name]) for ix in self.index]

    # ------------------------------------------------------------------ planning (no I/O)

    def _block(self, b: int) -> np.ndarray:
        if self._block_cache[0] != b:
            self._block_cache = (b, stratified_block(self.weights, self.config.block,
                                                     _generator(self.config.seed, "block", self.global_worker, b)))
        return self._block_cache[1]

    def source_at(self, n: int) -> int:
        """Which source this worker's n-th sample comes from."""
        return int(self._block(n // self.config.block)[n % self.config.block])

    def sample_ref(self, source: int, k: int) -> tuple[str, int, int, str]:
        """(tar path, offset, size, key) of this worker's k-th sample of `source`."""
        ix = self.index[source]
        p = k * self.n_global + self.global_worker
        epoch, pos = divmod(p, ix.n)
        i = int(self._orders[source].order(epoch)[pos])
        shard = int(np.searchsorted(ix.shard_starts, i, side="right") - 1)
        return ix.shard_paths[shard], int(ix.offsets[i]), int(ix.sizes[i]), ix.keys[i]

    def plan(self, n: int) -> Iterator[tuple[str, str, str]]:
        """The next `n` (source name, shard, key) without reading data; the position is not moved."""
        counts = list(self.counts)
        for m in range(self.n, self.n + n):
            s = self.source_at(m)
            tar, _, _, key = self.sample_ref(s, counts[s])
            counts[s] += 1
            yield self.index[s].name, tar, key

    # ------------------------------------------------------------------ reading

    def _read(self, tar: str, offset: int, size: int) -> dict[str, Any]:
        return read_sample_at(tar, offset, size, filesystem=self._fs)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            s = self.source_at(self.n)
            tar, offset, size, key = self.sample_ref(s, self.counts[s])
            self.counts[s] += 1
            self.n += 1
            try:
                sample = self._read(tar, offset, size)
                if sample["__key__"] != key:
                    raise ShardError(f"{tar}@{offset}: holds {sample['__key__']!r}, the manifest says {key!r}")
            except (ShardError, OSError) as err:
                if self.config.on_error == "raise":
                    raise
                self.errors += 1
                log.warning("mix: skipping unreadable sample %s (%d skipped so far): %s", key, self.errors, err)
                continue
            sample.update(__source__=self.index[s].name, __shard__=tar, __position__=self.state_dict())
            yield sample


def realized_ratios(config: MixtureConfig, n: int = 10_000, world_size: int = 1, num_workers: int = 1,
                    index: list[_SourceIndex] | None = None) -> dict[str, float]:
    """Share of each source over the first `n` samples of every worker together (no data read)."""
    index = index if index is not None else build_index(config)
    counts = {ix.name: 0 for ix in index}
    for rank in range(world_size):
        for worker in range(num_workers):
            stream = MixtureStream(config, rank, world_size, worker, num_workers, index=index)
            for m in range(n):
                counts[index[stream.source_at(m)].name] += 1
    total = n * world_size * num_workers
    return {k: v / total for k, v in counts.items()}
