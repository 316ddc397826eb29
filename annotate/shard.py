"""One annotate shard: a work unit's labeled samples -> `<prefix>-NNNNNN.{stats.json,tar,parquet}`, and the config.

`annotate_shard(labeler, cfg, unit)` writes one shard atomically (formats/shards.py): its
`.stats.json` (counts of skipped items by reason, filter drops, timings) first, then the tar and
the Parquet sidecar, so a complete shard (Parquet present) always has its stats. A complete
shard is left alone (its stats are read back), so a rerun only fills the gaps; a shard whose
worker died is redone from scratch. `read_stats` / `add_stats` turn the stats files into job
totals, and `write_summary` writes them to `<prefix>-summary.json`. No Ray here
(pipelines/annotate_job.py runs this on an actor pool).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotate import labelers
from annotate.filters import FilterConfig
from annotate.imageio import DecodePolicy
from annotate.labelers.base import Labeler
from annotate.process import AnnotateSettings, UnitStats, annotate_unit
from annotate.sources import SOURCE_KINDS, WorkUnit, detect_kind
from formats.atomic import atomic_open
from formats.config import from_dict
from formats.shards import ShardPaths, ShardWriter


@dataclass(frozen=True)
class AnnotateJobConfig:
    out: str
    source: str
    labeler: str = "u2netp"
    labeler_params: dict = field(default_factory=dict)
    source_kind: str = "auto"
    images_per_shard: int = 256
    prefix: str = "annotate"
    workers: int = 0  # actors; 0 = as many as the cluster's CPUs (or GPUs) allow
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0
    settings: AnnotateSettings = AnnotateSettings()

    def __post_init__(self) -> None:
        if not self.source:
            raise ValueError("source is required: a directory of images, a file list, or .tar shards (source=PATH)")
        labelers.check(self.labeler, dict(self.labeler_params))  # typos and missing weights fail before Ray starts
        if self.source_kind not in SOURCE_KINDS:
            raise ValueError(f"source_kind must be one of {list(SOURCE_KINDS)}, got {self.source_kind!r}")
        if self.images_per_shard < 1:
            raise ValueError(f"images_per_shard must be >= 1, got {self.images_per_shard}")
        if self.source_kind == "auto":
            detect_kind(self.source)  # a missing source fails here, not after Ray has started
        if self.workers < 0 or self.cpus_per_worker < 1 or self.gpus_per_worker < 0:
            raise ValueError(f"workers >= 0, cpus_per_worker >= 1 and gpus_per_worker >= 0 required, got "
                             f"{self.workers}, {self.cpus_per_worker}, {self.gpus_per_worker}")

    def paths(self, index: int) -> ShardPaths:
        return ShardPaths.of(self.out, self.prefix, index)

    def stats_path(self, index: int) -> Path:
        return Path(self.out) / f"{self.prefix}-{index:06d}.stats.json"

    def summary_path(self) -> Path:
        return Path(self.out) / f"{self.prefix}-summary.json"


@dataclass(frozen=True)
class ReferringConfig:
    per_instance: int = AnnotateSettings.referring_per_instance  # expressions per instance, each of a different kind
    max_total: int = AnnotateSettings.referring_max  # per image


@dataclass(frozen=True)
class AnnotateConfig:
    """`vistune annotate` as configured (pipelines/conf/annotate.yaml): the job's fields, the sample
    settings spelled flat, and every labeler backend's parameters (`labelers`, only the chosen one is
    used). Defaults are the job config's. `job()` makes the AnnotateJobConfig."""

    out: str
    source: str
    labeler: str = AnnotateJobConfig.labeler
    labelers: dict = field(default_factory=dict)
    source_kind: str = AnnotateJobConfig.source_kind
    images_per_shard: int = AnnotateJobConfig.images_per_shard
    prefix: str = AnnotateJobConfig.prefix
    workers: int = AnnotateJobConfig.workers
    cpus_per_worker: int = AnnotateJobConfig.cpus_per_worker
    gpus_per_worker: float = AnnotateJobConfig.gpus_per_worker
    seed: int = AnnotateSettings.seed
    batch_size: int = AnnotateSettings.batch_size
    jpeg_quality: int = AnnotateSettings.jpeg_quality
    decode: DecodePolicy = DecodePolicy()
    filters: FilterConfig = FilterConfig()
    referring: ReferringConfig = ReferringConfig()

    def job(self, where: str = "annotate") -> AnnotateJobConfig:
        """The job config; raises ConfigError (naming the key) for a value the job or its settings reject."""
        settings = from_dict(AnnotateSettings, {
            "decode": self.decode, "filters": self.filters, "batch_size": self.batch_size, "seed": self.seed,
            "jpeg_quality": self.jpeg_quality, "referring_per_instance": self.referring.per_instance,
            "referring_max": self.referring.max_total}, where)
        same = {f.name for f in dataclasses.fields(AnnotateJobConfig)} & {f.name for f in dataclasses.fields(self)}
        params = dict(self.labelers.get(self.labeler) or {})  # only the chosen backend's block
        return from_dict(AnnotateJobConfig, {**{k: getattr(self, k) for k in same}, "labeler_params": params,
                                             "settings": settings}, where)


def annotate_shard(labeler: Labeler, cfg: AnnotateJobConfig, unit: WorkUnit) -> dict[str, Any]:
    """Annotate and write one shard (stats file first, then tar + Parquet); returns its stats."""
    paths = cfg.paths(unit.index)
    if paths.complete():
        return {"unit": unit.index, "skipped_shard": True, **read_stats(cfg, unit.index)}
    t0 = time.perf_counter()
    stats = UnitStats()
    with ShardWriter(paths) as writer:
        for sample in annotate_unit(unit, labeler, cfg.settings, stats):
            t1 = time.perf_counter()
            writer.add(sample.key, sample.files, sample.row)
            stats.timings["write_s"] += time.perf_counter() - t1
        doc = {"unit": unit.index, "source": unit.describe(), "labeler": labelers.describe(labeler),
               **stats.to_dict(), "wall_s": round(time.perf_counter() - t0, 4), "pid": os.getpid()}
        with atomic_open(cfg.stats_path(unit.index), "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
        writer.commit()
    return {"skipped_shard": False, **doc}


def read_stats(cfg: AnnotateJobConfig, index: int) -> dict[str, Any]:
    """Shard `index`'s stats file."""
    try:
        return json.loads(cfg.stats_path(index).read_text())
    except FileNotFoundError:  # a shard written by something other than this job: count it, know nothing else
        return {"items": 0, "written": 0}


def new_totals() -> dict[str, Any]:
    """Job totals with nothing added yet (see add_stats)."""
    return {"items": 0, "written": 0, "referring": 0, "candidates": 0, "kept": 0, "skipped": Counter(),
            "ignored": Counter(), "notes": Counter(), "dropped": Counter(), "timings": Counter()}


def add_stats(total: dict[str, Any], shard: dict[str, Any]) -> None:
    """Fold one shard's stats into the job totals (counts add up; dicts of counts add per key)."""
    for key in ("items", "written", "referring"):
        total[key] += shard.get(key, 0)
    total["skipped"].update(shard.get("skipped", {}))
    total["ignored"].update(shard.get("ignored", {}))
    total["notes"].update(shard.get("notes", {}))
    inst = shard.get("instances", {})
    total["candidates"] += inst.get("candidates", 0)
    total["kept"] += inst.get("kept", 0)
    total["dropped"].update(inst.get("dropped", {}))
    if not shard.get("skipped_shard"):
        total["timings"].update(shard.get("timings", {}))


def totals_dict(total: dict[str, Any]) -> dict[str, Any]:
    """The job totals as the summary reports them: counters as sorted dicts, timings rounded."""
    out = {k: dict(sorted(v.items())) if isinstance(v, Counter) else v for k, v in total.items()}
    out["timings"] = {k: round(v, 3) for k, v in out["timings"].items()}
    return out


def write_summary(cfg: AnnotateJobConfig, summary: dict[str, Any]) -> None:
    """Write the job summary to `<prefix>-summary.json`."""
    with atomic_open(cfg.summary_path(), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
