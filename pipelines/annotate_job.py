"""`vistune annotate`: an actor pool of labeler workers turns web images into raw label shards.

One work unit (`images_per_shard` files of a directory or list, or one input tar) = one output
shard = one Ray task (annotate/shard.py does the work and writes the shard and its stats). Each
actor builds its labeler once and keeps it for every shard it gets. This module plans the
units, runs the missing ones on an actor pool, and totals the shards' stats into
`<prefix>-summary.json`.
"""

from __future__ import annotations

import sys

from annotate import labelers
from annotate.shard import (AnnotateConfig, AnnotateJobConfig, add_stats, annotate_shard, new_totals, read_stats,
                            totals_dict, write_summary)
from annotate.sources import WorkUnit, plan_units
from formats.config import from_dict
from formats.cpus import thread_count
from formats.shards import ensure_output_dir
from pipelines.driver import Bar, Pool, clean_up_after_cancel, drive

MAX_SHARD_ATTEMPTS = 3


class AnnotateWorker:
    """Holds one labeler (weights loaded once); annotates whole shards."""

    def __init__(self, labeler: str, params: dict, threads: int) -> None:
        self.labeler = labelers.get(labeler, **params)
        if "torch" in sys.modules:  # a torch backend: one actor per `cpus_per_worker` cores, no oversubscription
            sys.modules["torch"].set_num_threads(thread_count(threads))

    def annotate_shard(self, cfg: AnnotateJobConfig, unit: WorkUnit) -> dict:
        """Annotate and write one shard (annotate/shard.py); returns its stats."""
        return annotate_shard(self.labeler, cfg, unit)


def run_annotate(cfg: AnnotateJobConfig, progress: bool = True) -> dict:
    """Annotate every missing shard of `cfg` with an actor pool on the current Ray session."""
    ensure_output_dir(cfg.out)  # an unwritable `out` fails here, not in every worker
    units = plan_units(cfg.source, cfg.source_kind, cfg.images_per_shard, cfg.settings.extensions)
    todo = [u for u in units if not cfg.paths(u.index).complete()]
    total = new_totals()
    for u in units:
        if cfg.paths(u.index).complete():
            add_stats(total, {**read_stats(cfg, u.index), "skipped_shard": True})
    summary = {"shards": len(units), "skipped_shards": len(units) - len(todo), "annotated_shards": 0,
               "labeler": cfg.labeler, "out": cfg.out, "workers": 0}

    def fold(unit: WorkUnit, shard: dict) -> int:
        add_stats(total, shard)
        summary["annotated_shards"] += 0 if shard["skipped_shard"] else 1
        return 1

    pool = Pool(AnnotateWorker, (cfg.labeler, dict(cfg.labeler_params), cfg.cpus_per_worker), "annotate_shard",
                cfg.workers, call_args=(cfg,), num_cpus=cfg.cpus_per_worker, num_gpus=cfg.gpus_per_worker,
                attempts=MAX_SHARD_ATTEMPTS, describe=lambda u: f"annotate shard {u.index} ({u.describe()})")
    bar = Bar("annotate", "shard", len(units), len(units) - len(todo), progress,
              postfix=lambda: {"images": total["written"], "skipped": sum(total["skipped"].values())})
    try:
        summary["workers"], wall_s = drive(pool, todo, bar, fold)
    except BaseException:  # cancelled (Ctrl-C, SIGTERM) or failed: what the killed workers left goes too
        clean_up_after_cancel(cfg.paths(u.index) for u in todo)
        raise
    summary["wall_s"] = round(wall_s, 3)
    summary.update(totals_dict(total))
    write_summary(cfg, summary)
    return summary


def config_from_dict(d: dict) -> AnnotateJobConfig:
    """Hydra config (as a plain dict) -> AnnotateJobConfig; raises ConfigError naming a bad key or value.

    Only the chosen labeler's block of `labelers` is used.
    """
    return from_dict(AnnotateConfig, {k: v for k, v in d.items() if k != "ray"}, "annotate").job()


def describe(summary: dict) -> str:
    skipped = ", ".join(f"{k} {v}" for k, v in summary["skipped"].items()) or "none"
    ignored = ", ".join(f"{k} {v}" for k, v in summary.get("ignored", {}).items())
    return (f"annotate: {summary['written']} of {summary['items']} images labeled ({summary['kept']} instances, "
            f"{summary['referring']} referring expressions) in {summary['shards']} shards "
            f"({summary['skipped_shards']} already complete), skipped: {skipped}"
            + (f"; rejected tar content that is not an image: {ignored}" if ignored else "")
            + f"; {summary['wall_s']:.1f} s -> {summary['out']}")
