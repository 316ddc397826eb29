"""One work unit -> labeled samples: read, decode, label in batches, filter, describe, encode.

`annotate_unit(unit, labeler, settings, stats)` is a generator of `LabeledSample`s (key,
shard members, Parquet row) in source order. It never raises for one bad input: unreadable
and undecodable items, and images the labeler itself fails on, are counted in `stats` under
their reason and skipped; every other item becomes exactly one sample. No Ray, no shard
writing (annotate/shard.py writes shards, pipelines/annotate_job.py runs them on Ray).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from formats import raw_label as raw
from annotate.filters import FilterConfig, filter_instances, mask_box, paint_maps
from annotate.imageio import DecodedImage, DecodePolicy, SkipImage, decode_image
from annotate.labelers.base import LabelResult, Labeler, describe
from annotate.referring import referring_expressions
from annotate.sources import IMAGE_EXTENSIONS, SourceItem, WorkUnit, iter_unit

# Formats an extension may hold. MPO is the JPEG variant cameras write (extra images appended).
_EXT_FORMATS = {"jpg": ("JPEG", "MPO"), "jpeg": ("JPEG", "MPO"), "png": ("PNG",), "webp": ("WEBP",), "gif": ("GIF",),
                "bmp": ("BMP",), "tif": ("TIFF",), "tiff": ("TIFF",)}


@dataclass(frozen=True)
class AnnotateSettings:
    """Everything but the labeler that decides what a unit's samples look like."""

    decode: DecodePolicy = DecodePolicy()
    filters: FilterConfig = FilterConfig()
    batch_size: int = 8
    seed: int = 0
    referring_per_instance: int = 2
    referring_max: int = 32
    jpeg_quality: int = 95
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS
    max_logged_skips: int = 1000  # skipped items listed one by one in the stats (all are counted)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.referring_per_instance < 0 or self.referring_max < 0:
            raise ValueError(f"referring_per_instance and referring_max must be >= 0, got "
                             f"{self.referring_per_instance}, {self.referring_max}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")


@dataclass
class UnitStats:
    """What happened to a unit's items; `to_dict()` is the shard's `.stats.json`."""

    items: int = 0
    written: int = 0
    skipped: Counter = field(default_factory=Counter)
    skipped_items: list[dict[str, Any]] = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)  # rejected tar content that is not an image, by reason
    notes: Counter = field(default_factory=Counter)
    candidates: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    referring: int = 0
    timings: Counter = field(default_factory=Counter)

    def skip(self, ref: dict[str, Any], reason: str, detail: str, limit: int) -> None:
        self.skipped[reason] += 1
        if len(self.skipped_items) < limit:
            self.skipped_items.append({"ref": ref, "reason": reason, "detail": detail})

    def ignore(self, ref: dict[str, Any], reason: str, detail: str, limit: int) -> None:
        """Count rejected non-image content (not an item: `items` counts images only)."""
        self.ignored[reason] += 1
        if len(self.skipped_items) < limit:
            self.skipped_items.append({"ref": ref, "reason": reason, "detail": detail, "image": False})

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "written": self.written, "skipped": dict(sorted(self.skipped.items())),
                "skipped_items": self.skipped_items, "ignored": dict(sorted(self.ignored.items())),
                "notes": dict(sorted(self.notes.items())),
                "instances": {"candidates": self.candidates, "kept": self.kept,
                              "dropped": dict(sorted(self.dropped.items()))},
                "referring": self.referring, "timings": {k: round(v, 4) for k, v in sorted(self.timings.items())}}


@dataclass
class LabeledSample:
    key: str
    files: dict[str, bytes]
    row: dict[str, Any]


@dataclass
class _Pending:
    pos: int
    item: SourceItem
    image: DecodedImage
    decode_s: float


def sample_key(unit: int, pos: int) -> str:
    """`img<unit>_<position in unit>`: stable across reruns, unique in a job."""
    return f"img{unit:06d}_{pos:06d}"


def image_seed(base_seed: int, unit: int, pos: int) -> int:
    """Independent per-image seeds from one job seed (numpy SeedSequence, stable across versions)."""
    return int(np.random.SeedSequence([int(base_seed), int(unit), int(pos)]).generate_state(1, dtype=np.uint64)[0]) >> 1


def annotate_unit(unit: WorkUnit, labeler: Labeler, settings: AnnotateSettings,
                  stats: UnitStats) -> Iterator[LabeledSample]:
    """Label every usable image of `unit` (see the module docstring); fills `stats` as it goes."""
    batch: list[_Pending] = []
    for pos, item in enumerate(iter_unit(unit, settings.extensions)):
        if not item.is_image:  # a rejected caption/metadata member: reported, but not an image
            stats.ignore(item.ref, *item.error, settings.max_logged_skips)
            continue
        stats.items += 1
        if item.error is not None:
            stats.skip(item.ref, *item.error, settings.max_logged_skips)
            continue
        t0 = time.perf_counter()
        try:
            image = decode_image(item.data, settings.decode, settings.jpeg_quality)
        except SkipImage as skip:
            stats.skip(item.ref, skip.reason, skip.detail, settings.max_logged_skips)
            continue
        finally:
            stats.timings["decode_s"] += time.perf_counter() - t0
        if item.ext and image.format not in _EXT_FORMATS.get(item.ext, ()):
            stats.notes["extension_mismatch"] += 1  # kept: the bytes, not the name, say what it is
        batch.append(_Pending(pos, item, image, time.perf_counter() - t0))
        if len(batch) == settings.batch_size:
            yield from _label_batch(unit, batch, labeler, settings, stats)
            batch = []
    if batch:
        yield from _label_batch(unit, batch, labeler, settings, stats)


def _label_batch(unit: WorkUnit, batch: list[_Pending], labeler: Labeler, settings: AnnotateSettings,
                 stats: UnitStats) -> Iterator[LabeledSample]:
    t0 = time.perf_counter()
    results = _run_labeler(labeler, batch, stats, settings)
    model_s = (time.perf_counter() - t0) / len(batch)
    stats.timings["model_s"] += time.perf_counter() - t0
    for pending, result in zip(batch, results):
        if result is not None:
            yield _build_sample(unit, pending, result, labeler, settings, stats, model_s)


def _run_labeler(labeler: Labeler, batch: list[_Pending], stats: UnitStats,
                 settings: AnnotateSettings) -> list[LabelResult | None]:
    """Label the batch; if the batch fails, label image by image so one bad image costs only itself."""
    try:
        return _checked_label(labeler, [p.image.rgb for p in batch])
    except Exception as err:  # noqa: BLE001  (a systematic failure shows as labeler_error on every image)
        if len(batch) == 1:
            stats.skip(batch[0].item.ref, "labeler_error", f"{type(err).__name__}: {err}"[:300],
                       settings.max_logged_skips)
            return [None]
    return [r for p in batch for r in _run_labeler(labeler, [p], stats, settings)]


def _checked_label(labeler: Labeler, images: list[np.ndarray]) -> list[LabelResult]:
    results = labeler.label(images)
    if len(results) != len(images):
        raise RuntimeError(f"labeler {labeler.name!r} returned {len(results)} results for {len(images)} images")
    for rgb, result in zip(images, results):
        bad = [inst.mask.shape for inst in result.instances if inst.mask.shape != rgb.shape[:2]]
        if bad or (result.semantic is not None and result.semantic.shape != rgb.shape[:2]):
            raise RuntimeError(f"labeler {labeler.name!r} returned masks of shape {bad or result.semantic.shape} "
                               f"for an image of {rgb.shape[:2]}")
    return results


def _build_sample(unit: WorkUnit, pending: _Pending, result: LabelResult, labeler: Labeler,
                  settings: AnnotateSettings, stats: UnitStats, model_s: float) -> LabeledSample:
    t0 = time.perf_counter()
    image, item = pending.image, pending.item
    seed = image_seed(settings.seed, unit.index, pending.pos)
    class_table = ["unlabeled", *labeler.classes]
    class_ids = {name: i for i, name in enumerate(class_table)}
    kept, filter_stats = filter_instances(result.instances, settings.filters)
    instance_map, semantic_map = paint_maps(kept, class_ids, image.rgb.shape[:2], result.semantic)
    instances = [{"id": i, "class": inst.class_name, "semantic_id": class_ids[inst.class_name],
                  "score": round(float(inst.score), 4), "box": list(mask_box(inst.mask)), "area": inst.area,
                  "stability": None if inst.stability is None else round(float(inst.stability), 4)}
                 for i, inst in enumerate(kept, start=1)]
    referring = referring_expressions(image.rgb, instance_map, {d["id"]: d["class"] for d in instances}, seed,
                                      settings.referring_per_instance, settings.referring_max)
    post_s = time.perf_counter() - t0
    stats.timings["post_s"] += post_s
    stats.candidates += filter_stats["candidates"]
    stats.kept += filter_stats["kept"]
    stats.dropped.update(filter_stats["dropped"])
    stats.referring += len(referring)
    stats.written += 1
    t1 = time.perf_counter()
    meta = {"seed": seed, "source": item.ref, "width": image.width, "height": image.height,
            "orig_width": image.orig_width, "orig_height": image.orig_height, "class_table": class_table,
            "instances": instances, "referring": referring, "labelers": [describe(labeler)],
            "stats": {**filter_stats, "decode": {"format": image.format, "mode": image.mode, "frames": image.n_frames,
                                                 "exif_transposed": image.exif_transposed, "resized": image.resized},
                      "timings": {"decode_s": round(pending.decode_s, 4), "model_s": round(model_s, 4),
                                  "post_s": round(post_s, 4)}}}
    files = raw.to_files(image.stored, instance_map, semantic_map, meta, item.caption)
    stats.timings["write_s"] += time.perf_counter() - t1
    row = {"source_path": item.ref.get("path"), "source_url": item.ref.get("url"),
           "source_shard": item.ref.get("shard"), "source_key": item.ref.get("key"), "seed": seed,
           "width": image.width, "height": image.height, "orig_width": image.orig_width,
           "orig_height": image.orig_height, "format": image.format, "n_instances": len(instances),
           "n_referring": len(referring), "labeler": labeler.name, "has_caption": item.caption is not None}
    return LabeledSample(sample_key(unit.index, pending.pos), files, row)
