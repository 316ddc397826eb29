"""The two reference rows of every table: the codec oracle and a trivial baseline.

- oracle: the ground truth encoded then decoded (the sample's `target.png`, fed through the
  same decode, resize and scoring as a model's prediction): the floor the encoding alone imposes.
- baseline: a constant answer fitted on training data (or, when none is given, on the eval set
  itself, and labeled so): the mean depth, the mean normal, the majority class, one instance
  covering the image, the whole image as the referred mask, the mean color for text-to-image,
  and the unedited input for editing. A model that does not beat it has learned nothing usable.
- pixel_baseline: the same fit, per pixel where the image layout carries information: the
  per-pixel median training depth and the per-pixel mean training normal (they know "floor
  below, far above" without looking at the image); the constant answer for the other tasks. A
  model that cannot beat it has not learned to look at the image.

Both are plain predict functions (list[TaskSample] -> list[uint8 image]) so they run through
exactly the path a model's predictions take.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from encode.resize import resize_values_nearest
from encode.sample import TaskSample
from evals.failure import EvalFailure
from evals.scoring import RAW_KEY, codec_of

# Depths beyond this are "far" rather than measured and would dominate a mean (sky is +inf anyway).
BASELINE_MAX_DEPTH = 200.0
# Training maps kept per task for the per-pixel statistics (a median needs them all): 512 maps of
# 256 x 256 float32 depth are 134 MB; beyond that the statistic is settled anyway.
PIXEL_MAPS = 512
PIXEL_TASKS = ("depth", "normals")


def oracle_predict(samples: list[TaskSample]) -> list[np.ndarray]:
    """The encoded ground truth itself."""
    return [s.target for s in samples]


def _values(sample: TaskSample) -> np.ndarray | None:
    """Raw truth when the sample has it (eval), else its target decoded (training shards)."""
    key = RAW_KEY.get(sample.task)
    if key is None:
        return None
    if key in sample.raw:
        return sample.raw[key]
    try:
        return codec_of(sample).decode(sample.target)
    except (EvalFailure, ValueError):
        return None


@dataclass
class _Acc:
    total: np.ndarray | float = 0.0
    count: float = 0.0
    classes: dict[int, int] = field(default_factory=lambda: defaultdict(int))


class Baseline:
    """Constant predictions fitted per (task, source), falling back to the task over all sources."""

    def __init__(self, origin: str) -> None:
        self.origin = origin  # where the statistics come from, shown in the report
        self.stats: dict[tuple[str, str], _Acc] = defaultdict(_Acc)
        self.maps: dict[str, list[np.ndarray]] = defaultdict(list)  # task -> training maps (per-pixel stats)
        self._pixel: dict[str, np.ndarray] = {}

    @classmethod
    def fit(cls, samples: Iterable[TaskSample], origin: str) -> "Baseline":
        self = cls(origin)
        for s in samples:
            v = None if s.task == "t2i" else _values(s)  # decoded once for every statistic of the sample
            for src in (s.meta.get("source", "unknown"), "*"):
                self._add(self.stats[(s.task, src)], s, v)
            self._add_map(s, v)
        return self

    def _add_map(self, s: TaskSample, v: np.ndarray | None) -> None:
        """Keep the sample's truth map `v` for the per-pixel statistics (resized to the first map's size)."""
        maps = self.maps[s.task] if s.task in PIXEL_TASKS else None
        if maps is None or len(maps) >= PIXEL_MAPS or v is None:
            return
        if maps and v.shape[:2] != maps[0].shape[:2]:
            v = resize_values_nearest(v, maps[0].shape[:2])
        maps.append(np.asarray(v, np.float32))

    def _add(self, acc: _Acc, s: TaskSample, v: np.ndarray | None) -> None:
        if s.task == "t2i":
            acc.total = acc.total + s.target.reshape(-1, 3).mean(0)
            acc.count += 1
            return
        if v is None:
            return
        if s.task == "depth":
            ok = np.isfinite(v) & (v > 0) & (v < BASELINE_MAX_DEPTH)
            acc.total = acc.total + float(v[ok].sum())
            acc.count += float(ok.sum())
        elif s.task == "normals":
            ok = np.isfinite(v).all(axis=-1)
            acc.total = acc.total + v[ok].sum(0)
            acc.count += float(ok.sum())
        elif s.task == "semantic":
            ids, counts = np.unique(v[v > 0], return_counts=True)
            for i, c in zip(ids.tolist(), counts.tolist()):
                acc.classes[i] += c

    def _acc(self, s: TaskSample) -> _Acc | None:
        for src in (s.meta.get("source", "unknown"), "*"):
            acc = self.stats.get((s.task, src))
            if acc is not None and (acc.count > 0 or acc.classes):
                return acc
        return None

    def describe(self) -> dict[str, str]:
        """Task -> the constant it predicts (over all sources), for the report."""
        out = {"depth": "mean depth", "normals": "mean normal", "semantic": "majority class",
               "instance": "one instance covering the image", "referring": "the whole image",
               "t2i": "mean color", "edit": "the unedited input"}
        acc = self.stats.get(("depth", "*"))
        if acc and acc.count:
            out["depth"] = f"mean depth {acc.total / acc.count:.3f} m"
        acc = self.stats.get(("semantic", "*"))
        if acc and acc.classes:
            out["semantic"] = f"majority class {max(acc.classes, key=acc.classes.get)}"
        return out

    def predict_one(self, s: TaskSample) -> np.ndarray:
        h, w = s.target.shape[:2]
        if s.task == "edit":
            return s.input if s.input is not None else np.zeros((h, w, 3), np.uint8)
        acc = self._acc(s)
        if s.task == "t2i":
            color = acc.total / acc.count if acc else np.full(3, 127.5)
            return np.broadcast_to(np.round(color).astype(np.uint8), (h, w, 3)).copy()
        codec = codec_of(s)
        if s.task == "depth":
            value = acc.total / acc.count if acc else 1.0
            return codec.encode(np.full((h, w), value, np.float32))
        if s.task == "normals":
            n = acc.total / np.linalg.norm(acc.total) if acc else np.array([0.0, 0.0, -1.0])
            return codec.encode(np.broadcast_to(n.astype(np.float32), (h, w, 3)).copy())
        if s.task == "semantic":
            cls = max(acc.classes, key=acc.classes.get) if acc else 1
            return codec.encode(np.full((h, w), cls, np.uint16))
        if s.task == "instance":
            return codec.encode(np.ones((h, w), np.uint16))
        if s.task == "referring":
            return codec.encode(np.ones((h, w), bool))
        raise ValueError(f"Baseline: no baseline for task {s.task!r}")

    def predict(self, samples: list[TaskSample]) -> list[np.ndarray]:
        return self._each(self.predict_one, samples)

    def predict_pixel(self, samples: list[TaskSample]) -> list[np.ndarray]:
        """The per-pixel baseline: median depth / mean normal per pixel, else the constant answer."""
        return self._each(self.predict_pixel_one, samples)

    def _each(self, fn, samples: list[TaskSample]) -> list[np.ndarray]:
        out = []
        for s in samples:
            try:
                out.append(fn(s))
            except EvalFailure:
                out.append(None)  # e.g. no codec spec: the scorer records the same failure for this sample
        return out

    def predict_pixel_one(self, s: TaskSample) -> np.ndarray:
        stat = self.pixel_statistic(s.task)
        if stat is None:
            return self.predict_one(s)
        h, w = s.target.shape[:2]
        if stat.shape[:2] != (h, w):
            stat = resize_values_nearest(stat, (h, w))
        return codec_of(s).encode(stat)

    def pixel_statistic(self, task: str) -> np.ndarray | None:
        """(H, W) median training depth or (H, W, 3) mean training normal; None without training maps."""
        if task not in self._pixel and self.maps.get(task):
            self._pixel[task] = _pixel_statistic(task, np.stack(self.maps[task]))
        return self._pixel.get(task)


def _pixel_statistic(task: str, maps: np.ndarray) -> np.ndarray:
    """Per-pixel median depth (NaN ignored; +inf counts as far) or normalized mean normal (invalid ignored)."""
    if task == "depth":
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: NaN, scored as invalid truth
            return np.nanmedian(maps, axis=0).astype(np.float32)
    total = np.nansum(np.where(np.isfinite(maps).all(-1, keepdims=True), maps, 0.0), axis=0)
    norm = np.linalg.norm(total, axis=-1, keepdims=True)
    mean = np.where(norm > 1e-6, total / np.maximum(norm, 1e-12), np.array([0.0, 0.0, -1.0]))
    return mean.astype(np.float32)
