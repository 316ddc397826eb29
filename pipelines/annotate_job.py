"""`vistune annotate`: an actor pool of labeler workers turns web images into raw label shards.

One work unit (`images_per_shard` files of a directory or list, or one input tar) = one output
shard = one Ray task. Each actor builds its labeler once and keeps it for every shard it gets.
A shard is written atomically (formats/shards.py): its `<prefix>-NNNNNN.stats.json` (counts of
skipped items by reason, filter drops, timings) is written first, then the tar and the Parquet
sidecar, so a complete shard (Parquet present) always has its stats; complete shards are
skipped on rerun, and a shard whose worker died is redone from scratch. The job's totals go to
`<prefix>-summary.json`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from annotate import labelers
from annotate.filters import FilterConfig
from annotate.imageio import DecodePolicy
from annotate.process import AnnotateSettings, UnitStats, annotate_unit
from annotate.sources import SOURCE_KINDS, WorkUnit, detect_kind, plan_units
from formats.shards import ShardPaths, ShardWriter, ensure_output_dir
from formats.atomic import atomic_open
from pipelines.work_pool import run_pool

MAX_SHARD_ATTEMPTS = 3


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


class AnnotateWorker:
    """Holds one labeler (weights loaded once); annotates whole shards."""

    def __init__(self, labeler: str, params: dict, threads: int) -> None:
        self.labeler = labelers.get(labeler, **params)
        if "torch" in sys.modules:  # a torch backend: one actor per `cpus_per_worker` cores, no oversubscription
            sys.modules["torch"].set_num_threads(threads)

    def annotate_shard(self, cfg: AnnotateJobConfig, unit: WorkUnit) -> dict:
        """Annotate and write one shard (stats file first, then tar + Parquet); returns its stats."""
        paths = cfg.paths(unit.index)
        if paths.complete():
            return {"unit": unit.index, "skipped_shard": True, **read_stats(cfg, unit.index)}
        t0 = time.perf_counter()
        paths.remove_stale_temps()  # left by a worker killed mid-shard; this shard is redone whole
        stats = UnitStats()
        with ShardWriter(paths) as writer:
            for sample in annotate_unit(unit, self.labeler, cfg.settings, stats):
                t1 = time.perf_counter()
                writer.add(sample.key, sample.files, sample.row)
                stats.timings["write_s"] += time.perf_counter() - t1
            doc = {"unit": unit.index, "source": unit.describe(), "labeler": labelers.describe(self.labeler),
                   **stats.to_dict(), "wall_s": round(time.perf_counter() - t0, 4), "pid": os.getpid()}
            with atomic_open(cfg.stats_path(unit.index), "w") as f:
                json.dump(doc, f, indent=1, sort_keys=True)
            writer.commit()
        return {"skipped_shard": False, **doc}


def read_stats(cfg: AnnotateJobConfig, index: int) -> dict:
    try:
        return json.loads(cfg.stats_path(index).read_text())
    except FileNotFoundError:  # a shard written by something other than this job: count it, know nothing else
        return {"items": 0, "written": 0}


def add_stats(total: dict, shard: dict) -> None:
    """Fold one shard's stats into the job totals (counts add up; dicts of counts add per key)."""
    for key in ("items", "written", "referring"):
        total[key] += shard.get(key, 0)
    total["skipped"].update(shard.get("skipped", {}))
    total["notes"].update(shard.get("notes", {}))
    inst = shard.get("instances", {})
    total["candidates"] += inst.get("candidates", 0)
    total["kept"] += inst.get("kept", 0)
    total["dropped"].update(inst.get("dropped", {}))
    if not shard.get("skipped_shard"):
        total["timings"].update(shard.get("timings", {}))


def run_annotate(cfg: AnnotateJobConfig, progress: bool = True) -> dict:
    """Annotate every missing shard of `cfg` with an actor pool on the current Ray session."""
    import ray

    ensure_output_dir(cfg.out)  # an unwritable `out` fails here, not in every worker
    units = plan_units(cfg.source, cfg.source_kind, cfg.images_per_shard, cfg.settings.extensions)
    todo = [u for u in units if not cfg.paths(u.index).complete()]
    total = {"items": 0, "written": 0, "referring": 0, "candidates": 0, "kept": 0, "skipped": Counter(),
             "notes": Counter(), "dropped": Counter(), "timings": Counter()}
    for u in units:
        if cfg.paths(u.index).complete():
            add_stats(total, {**read_stats(cfg, u.index), "skipped_shard": True})
    summary = {"shards": len(units), "skipped_shards": len(units) - len(todo), "annotated_shards": 0,
               "labeler": cfg.labeler, "out": cfg.out, "workers": 0}
    t0 = time.perf_counter()
    if todo:
        resources = ray.available_resources()
        fit = (resources.get("GPU", 0) / cfg.gpus_per_worker if cfg.gpus_per_worker
               else resources.get("CPU", 1) / cfg.cpus_per_worker)
        n_workers = min(cfg.workers or max(int(fit), 1), len(todo))
        bar = tqdm(total=len(units), initial=len(units) - len(todo), unit="shard", desc="annotate",
                   disable=not progress)

        def on_result(unit: WorkUnit, shard: dict) -> None:
            add_stats(total, shard)
            summary["annotated_shards"] += 0 if shard["skipped_shard"] else 1
            bar.set_postfix(images=total["written"], skipped=sum(total["skipped"].values()), refresh=False)
            bar.update(1)

        try:
            summary["workers"] = run_pool(
                AnnotateWorker, (cfg.labeler, dict(cfg.labeler_params), cfg.cpus_per_worker), "annotate_shard", todo,
                n_workers, on_result, num_cpus=cfg.cpus_per_worker, num_gpus=cfg.gpus_per_worker, call_args=(cfg,),
                attempts=MAX_SHARD_ATTEMPTS, describe=lambda u: f"annotate shard {u.index} ({u.describe()})")
        finally:
            bar.close()
    summary["wall_s"] = round(time.perf_counter() - t0, 3)
    summary.update({k: dict(sorted(v.items())) if isinstance(v, Counter) else v for k, v in total.items()})
    summary["timings"] = {k: round(v, 3) for k, v in summary["timings"].items()}
    with atomic_open(cfg.summary_path(), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    return summary


def config_from_dict(d: dict) -> AnnotateJobConfig:
    """Hydra config (as a plain dict) -> AnnotateJobConfig.

    Only the chosen labeler's block of `labelers` is used. Unknown keys raise TypeError, bad
    values ValueError (both name the key).
    """
    d = {k: v for k, v in d.items() if k != "ray"}
    per_labeler = d.pop("labelers", None) or {}
    referring = d.pop("referring", None) or {}
    unknown = sorted(set(referring) - {"per_instance", "max_total"})
    if unknown:
        raise TypeError(f"unknown referring keys {unknown}; allowed: ['max_total', 'per_instance']")
    settings = AnnotateSettings(
        decode=DecodePolicy(**_tuples(d.pop("decode", None) or {})), filters=FilterConfig(**(d.pop("filters", None) or {})),
        batch_size=d.pop("batch_size", 8), seed=d.pop("seed", 0), jpeg_quality=d.pop("jpeg_quality", 95),
        referring_per_instance=referring.get("per_instance", 2), referring_max=referring.get("max_total", 32))
    return AnnotateJobConfig(labeler_params=dict(per_labeler.get(d.get("labeler", "u2netp")) or {}), settings=settings,
                             **d)


def _tuples(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def describe(summary: dict) -> str:
    skipped = ", ".join(f"{k} {v}" for k, v in summary["skipped"].items()) or "none"
    return (f"annotate: {summary['written']} of {summary['items']} images labeled ({summary['kept']} instances, "
            f"{summary['referring']} referring expressions) in {summary['shards']} shards "
            f"({summary['skipped_shards']} already complete), skipped: {skipped}; {summary['wall_s']:.1f} s "
            f"-> {summary['out']}")

