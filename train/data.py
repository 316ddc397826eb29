"""Task-sample streams -> training batches, with exact resume across DataLoader workers.

A *stream factory* is any callable `make(rank, world_size, worker, num_workers, position)`
returning an iterator of webdataset-style dicts (`__key__`, members, and `__position__`: a
JSON-able position *after* that sample, from which `make(..., position=...)` continues). The
mixture (`encode.mixture.MixtureStream`, via `MixtureStreamFactory`) and plain shard lists
(`ShardListStream`, for pre-training on generation shards and for tests) are two of them.

Each rank runs `num_workers` logical streams (one per DataLoader worker, or one in-process);
each yields whole batches, so a batch comes from one stream and carries that stream's
position after its last sample. The loop records the position of the last batch it *consumed*
per stream (not the last one a worker produced: workers prefetch) and which stream comes next;
DataLoader serves workers round-robin from worker 0, so on resume worker k runs logical stream
(k + next) mod n and the batch order continues exactly.

Resolution policy: samples whose size differs from the model's are an error (`resize="error"`,
the default: encode at the model's resolution, as `vistune run` does) unless `resize="resize"`,
which center-crops them to a square and resizes them (`encode.resize.fit_square`, the encode
stage's default crop geometry). Input images and generation/restoration targets (photos) use an
antialiased bilinear filter; vision targets (depth, semantic, instance, referring, normals)
use nearest neighbour, so every target pixel keeps a codec color: a blend of two palette
colors is another class, and a blend of two depth-path colors decodes to an unrelated depth.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from encode import codecs
from encode.resize import fit_square as fit  # train.predict fits its inputs the same way
from encode.sample import TASK_GROUPS, TASKS, TaskSample, from_sample
from formats.shards import iter_samples, read_rows

StreamFactory = Callable[[int, int, int, int, "dict | None"], Iterator[dict]]
RESIZE_MODES = ("resize", "error")
# Vision tasks whose truth can be undefined at a pixel: depth (+inf: no surface hit, NaN:
# invalid) and normals (NaN). With `loss_mask`, those pixels carry no loss.
MASKED_TASKS = ("depth", "normals")
# Tasks whose answer mirrors with the image (data.hflip). Referring expressions and edits may say
# "left" or "right", text-to-image has no input image to mirror with: never flipped.
FLIP_TASKS = ("depth", "normals", "semantic", "instance")


class BatchError(ValueError):
    """A batch the model must not train on: NaN values, a wrong resolution, an unknown task."""


@dataclass
class TaskBatch:
    """B task samples at the model resolution. Images are uint8 (B, 3, R, R) as produced by the
    data stream (small to move between processes) or float in [-1, 1] after `to_model`."""

    keys: list[str]
    tasks: list[str]
    prompts: list[str]
    target: torch.Tensor
    image: torch.Tensor            # zeros where has_image is False (text-to-image)
    has_image: torch.Tensor        # (B,) bool
    weight: torch.Tensor | None = None  # (B, 1, R, R) per-pixel loss weight (0: undefined truth); None: all 1
    stream: int = 0                # logical stream that produced it
    position: dict | None = None   # that stream's position after the batch's last sample

    def __len__(self) -> int:
        return len(self.keys)

    def to_model(self, device: torch.device | str) -> "TaskBatch":
        """Floats in [-1, 1] on `device` (uint8 images are converted there, after the copy)."""
        def conv(x: torch.Tensor) -> torch.Tensor:
            x = x.to(device, non_blocking=True)
            return x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x.float()
        weight = None if self.weight is None else self.weight.to(device, non_blocking=True).float()
        return dataclasses.replace(self, target=conv(self.target), image=conv(self.image),
                                   has_image=self.has_image.to(device, non_blocking=True), weight=weight)


def check_batch(batch: TaskBatch, resolution: int) -> None:
    """Raise BatchError naming the offending sample keys; cheap enough to run every step."""
    n = len(batch.keys)
    for name in ("target", "image"):
        shape = tuple(getattr(batch, name).shape)
        if shape != (n, 3, resolution, resolution):
            raise BatchError(f"batch {name} has shape {shape}, the model needs {(n, 3, resolution, resolution)} "
                             f"(keys {batch.keys[:4]}...)")
    unknown = sorted({t for t in batch.tasks if t not in TASK_GROUPS})
    if unknown:
        raise BatchError(f"unknown task(s) {unknown} in batch (keys {[k for k, t in zip(batch.keys, batch.tasks) if t in unknown]}); known: {list(TASKS)}")
    for name in ("target", "image"):
        x = getattr(batch, name)
        if x.is_floating_point():
            bad = ~torch.isfinite(x).flatten(1).all(dim=1)
            if bool(bad.any()):
                keys = [k for k, b in zip(batch.keys, bad.tolist()) if b]
                raise BatchError(f"batch {name} holds NaN/inf values in samples {keys}")


def nearest_target(task: str) -> bool:
    """Vision targets are codec colors: resample by nearest neighbour, never blend."""
    return TASK_GROUPS[task] == "vision"


def defined_pixels(ts: TaskSample, target: np.ndarray) -> np.ndarray:
    """(H, W) uint8: 1 where the (resized) target of a depth or normals sample decodes to a
    defined value, 0 on no-hit (+inf depth) and invalid (NaN) pixels.

    Why: the evaluation scores only pixels with defined truth, and under uncertainty a generator
    regresses toward the average of what it has seen. Sky drawn at the far end of the depth
    scale pulls every uncertain pixel of every scene far away; measured (bench/learn.py, 2,000
    scenes, default colormap), the same model trained with these pixels in the loss decodes
    depth with 1.7x the AbsRel (2.30 vs 1.33).
    """
    spec = ts.meta.get("codec")
    if not isinstance(spec, dict) or "name" not in spec:
        raise BatchError(f"sample {ts.key!r} ({ts.task}) has no codec spec: cannot mask its undefined pixels")
    values = codecs.cached_from_spec(spec).decode(target)
    finite = np.isfinite(values) if values.ndim == 2 else np.isfinite(values).all(axis=-1)
    return finite.astype(np.uint8)


def flip_decision(key: str, position: Any, p: float) -> bool:
    """Deterministic coin for data.hflip: a hash of the sample key and its stream position (which
    moves every epoch), so a resumed run flips exactly what the uninterrupted one would."""
    if p <= 0.0:
        return False
    digest = hashlib.blake2b(f"{key}|{json.dumps(position, sort_keys=True)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64 < p


def mirror(ts: TaskSample, target: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The left-right mirror of a (target, input) pair (H, W, 3 uint8) of a FLIP_TASKS sample.

    Depth, semantic and instance colors mirror as pixels (instance ids are ordered by area, which
    a mirror keeps). A camera-frame normal's x component changes sign: decoded, negated and
    re-encoded through the sample's own codec (undefined pixels stay undefined)."""
    if ts.task not in FLIP_TASKS:
        raise BatchError(f"sample {ts.key!r}: {ts.task} targets do not mirror with the image")
    target, image = target[:, ::-1], image[:, ::-1]
    if ts.task == "normals":
        codec = codecs.cached_from_spec(ts.meta["codec"])
        n = codec.decode(np.ascontiguousarray(target))
        n[..., 0] *= -1.0
        target = codec.encode(n)
    return np.ascontiguousarray(target), np.ascontiguousarray(image)


def prepare(ts: TaskSample, resolution: int, resize: str = "error", loss_mask: bool = False,
            flip: bool = False) -> dict[str, Any]:
    """A TaskSample -> uint8 CHW arrays at the model resolution plus its text fields (and, with
    `loss_mask`, the per-pixel loss weight of depth and normals targets; with `flip`, mirrored)."""
    if ts.task not in TASK_GROUPS:
        raise BatchError(f"sample {ts.key!r}: unknown task {ts.task!r}; known: {list(TASKS)}")
    for name, arr in (("target", ts.target), ("input", ts.input)):
        if arr is None:
            continue
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise BatchError(f"sample {ts.key!r}: {name} must be (H, W, 3) uint8, got {arr.shape} {arr.dtype}")
        if resize == "error" and arr.shape[:2] != (resolution, resolution):
            raise BatchError(f"sample {ts.key!r}: {name} is {arr.shape[1]}x{arr.shape[0]}, the model needs "
                             f"{resolution}x{resolution} (data.resize=error; use data.resize=resize to resample)")
    if ts.input is not None and ts.input.shape[:2] != ts.target.shape[:2]:
        raise BatchError(f"sample {ts.key!r}: input {ts.input.shape[:2]} and target {ts.target.shape[:2]} sizes differ")
    target = fit(ts.target, resolution, nearest=nearest_target(ts.task))
    image = np.zeros_like(target) if ts.input is None else fit(ts.input, resolution, nearest=False)
    if flip:
        target, image = mirror(ts, target, image)
    weight = defined_pixels(ts, target) if loss_mask and ts.task in MASKED_TASKS else None
    return {"key": ts.key, "task": ts.task, "prompt": ts.prompt, "has_image": ts.input is not None,
            "target": np.ascontiguousarray(target.transpose(2, 0, 1)),
            "image": np.ascontiguousarray(image.transpose(2, 0, 1)), "weight": weight}


def collate(items: Sequence[dict[str, Any]], stream: int = 0, position: dict | None = None) -> TaskBatch:
    weight = None
    if any(it.get("weight") is not None for it in items):
        ones = np.ones(items[0]["target"].shape[1:], np.uint8)
        weight = torch.from_numpy(np.stack([ones if it.get("weight") is None else it["weight"] for it in items])[:, None])
    return TaskBatch(weight=weight, keys=[it["key"] for it in items], tasks=[it["task"] for it in items],
                     prompts=[it["prompt"] for it in items],
                     target=torch.from_numpy(np.stack([it["target"] for it in items])),
                     image=torch.from_numpy(np.stack([it["image"] for it in items])),
                     has_image=torch.tensor([it["has_image"] for it in items], dtype=torch.bool),
                     stream=stream, position=position)


@dataclass(frozen=True)
class DataConfig:
    resolution: int
    batch_size: int                       # per rank, per micro-batch
    num_workers: int = 0                  # DataLoader workers = logical streams per rank (0: one, in-process)
    resize: str = "error"                 # samples at another resolution: error | resize (center crop + resample)
    tasks: tuple[str, ...] | None = None  # keep only these tasks (e.g. generation for pre-training)
    prefetch: int = 2
    loss_mask: bool = False               # depth/normals pixels with undefined truth carry no loss
    hflip: float = 0.0                    # chance to mirror a FLIP_TASKS sample left-right (augmentation)

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"data.resize {self.resize!r} not in {list(RESIZE_MODES)}")
        if self.batch_size < 1 or self.num_workers < 0:
            raise ValueError(f"data.batch_size must be >= 1 and num_workers >= 0, got {self.batch_size}, {self.num_workers}")
        if not 0.0 <= self.hflip <= 1.0:
            raise ValueError(f"data.hflip must be a probability in [0, 1], got {self.hflip}")
        unknown = sorted(set(self.tasks or ()) - set(TASKS))
        if unknown:
            raise ValueError(f"data.tasks {unknown} not in {list(TASKS)}")

    @property
    def n_streams(self) -> int:
        return max(1, self.num_workers)


class TaskBatchDataset(IterableDataset):
    """Batches from `cfg.n_streams` logical streams; DataLoader worker k runs stream (k + offset) % n."""

    def __init__(self, factory: StreamFactory, cfg: DataConfig, rank: int, world_size: int,
                 positions: dict[int, dict], offset: int) -> None:
        self.factory, self.cfg, self.rank, self.world_size = factory, cfg, rank, world_size
        self.positions, self.offset = positions, offset

    def __iter__(self) -> Iterator[TaskBatch]:
        info = get_worker_info()
        stream = ((info.id if info else 0) + self.offset) % self.cfg.n_streams
        it = self.factory(self.rank, self.world_size, stream, self.cfg.n_streams, self.positions.get(stream))
        items: list[dict[str, Any]] = []
        for raw in it:
            ts = from_sample(raw, with_raw=False)
            if self.cfg.tasks is not None and ts.task not in self.cfg.tasks:
                continue
            flip = ts.task in FLIP_TASKS and flip_decision(ts.key, raw.get("__position__"), self.cfg.hflip)
            items.append(prepare(ts, self.cfg.resolution, self.cfg.resize, self.cfg.loss_mask, flip))
            if len(items) == self.cfg.batch_size:
                yield collate(items, stream, raw.get("__position__"))
                items = []


class BatchStream:
    """An endless iterator of TaskBatches whose `state_dict()` is the consumed position."""

    def __init__(self, factory: StreamFactory, cfg: DataConfig, rank: int = 0, world_size: int = 1,
                 state: dict | None = None, pin_memory: bool = False) -> None:
        self.cfg = cfg
        positions, self.next_stream = {}, 0
        if state:
            if state.get("n_streams") != cfg.n_streams:
                raise ValueError(f"cannot resume the data stream: the checkpoint ran {state.get('n_streams')} "
                                 f"streams per rank (data.num_workers), this run {cfg.n_streams}")
            positions = {int(k): v for k, v in state["positions"].items()}
            self.next_stream = int(state["next_stream"])
        self.positions = dict(positions)
        dataset = TaskBatchDataset(factory, cfg, rank, world_size, positions, self.next_stream)
        self.loader = DataLoader(dataset, batch_size=None, num_workers=cfg.num_workers, pin_memory=pin_memory,
                                 prefetch_factor=cfg.prefetch if cfg.num_workers else None,
                                 persistent_workers=False)
        self._it = iter(self.loader)

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self) -> TaskBatch:
        try:
            batch = next(self._it)
        except StopIteration:
            raise RuntimeError("the data stream ended: stream factories must be infinite (epochs repeat)") from None
        self.positions[batch.stream] = batch.position
        self.next_stream = (batch.stream + 1) % self.cfg.n_streams
        return batch

    def state_dict(self) -> dict:
        """JSON-able: per-stream position after the last consumed batch, and the next stream."""
        return {"n_streams": self.cfg.n_streams, "next_stream": self.next_stream,
                "positions": {str(k): v for k, v in self.positions.items()}}


class ShardListStream:
    """A stream factory over task shards: each epoch visits every sample once, in a seeded order.

    Epoch e shuffles the shard order with (seed, e); sample j of that order goes to global stream
    j mod (world_size * num_workers). Positions are {"epoch", "index"}: the next index in the
    epoch's order. Within a shard the order is the tar order (the mixture stream does the fine
    shuffling; this factory is for pre-training shard sets and tests).
    """

    def __init__(self, shards: Sequence[str], seed: int = 0) -> None:
        paths: list[str] = []
        for pattern in shards:
            found = sorted(glob.glob(os.path.expanduser(pattern)))
            if not found:
                raise ValueError(f"no task shards match {pattern!r}")
            paths += found
        self.shards, self.seed = paths, seed
        self._counts: dict[str, int] = {}

    def _count(self, tar: str) -> int | None:
        """Samples in a shard from its Parquet sidecar (None if absent: the shard is scanned)."""
        if tar not in self._counts:
            pq_path = os.path.splitext(tar)[0] + ".parquet"
            if not os.path.exists(pq_path):
                return None
            self._counts[tar] = len(read_rows(pq_path))
        return self._counts[tar]

    def __call__(self, rank: int, world_size: int, worker: int, num_workers: int,
                 position: dict | None) -> Iterator[dict]:
        g, n_global = rank * num_workers + worker, world_size * num_workers
        epoch, start = (position["epoch"], position["index"]) if position else (0, 0)
        while True:
            order = list(self.shards)
            random.Random(f"{self.seed}:{epoch}").shuffle(order)
            index, produced = 0, False
            for tar in order:
                count = self._count(tar)
                if count is not None and index + count <= start:
                    index += count  # skip whole shards before the resume point without reading them
                    continue
                for sample in iter_samples(tar):
                    if index >= start and index % n_global == g:
                        produced = True
                        yield {**sample, "__position__": {"epoch": epoch, "index": index + 1}}
                    index += 1
            if not produced and start == 0:
                raise ValueError(f"stream {g} of {n_global} got no samples: {index} samples in {len(order)} shards")
            epoch, start = epoch + 1, 0


class MixtureStreamFactory:
    """Adapter: `encode.mixture.MixtureStream` as a stream factory (positions are its state dicts)."""

    def __init__(self, mixture: dict) -> None:
        from encode.mixture import MixtureConfig  # the mix stage's module; imported lazily

        self.config = MixtureConfig.from_dict(mixture)

    def __call__(self, rank: int, world_size: int, worker: int, num_workers: int,
                 position: dict | None) -> Iterator[dict]:
        from encode.mixture import MixtureStream

        stream = MixtureStream(self.config, rank=rank, world_size=world_size, worker=worker, num_workers=num_workers)
        if position is not None:
            stream.load_state_dict(position)
        return iter(stream)
