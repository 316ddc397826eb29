"""`vistune render`: an actor pool of Blender workers renders seeded scenes into raw shards.

One shard = `scenes_per_shard` consecutive scene indices = one Ray task (render/shard.py does the
work). Each actor keeps bpy loaded across shards. Shards are written atomically; complete shards
are skipped on rerun. A worker killed mid-shard is restarted by Ray and the shard redone from
scratch, so the output never holds partial or duplicate samples.
"""

from __future__ import annotations

import math
import os
import tempfile
import time

from formats.config import from_dict
from formats.shards import ensure_output_dir
from pipelines.affinity import claim_cores
from pipelines.driver import Bar, Pool, clean_up_after_cancel, drive
from pipelines.ray_reaper import descendants
from render.scratch import scratch_directory, sweep_scratch
from render.settings import RenderSettings
from render.shard import RenderJobConfig, describe_views, render_shard, view_distribution

MAX_SHARD_ATTEMPTS = 4


class RenderWorker:
    """Holds one BlenderRenderer (bpy stays loaded); renders whole shards."""

    def __init__(self, settings: dict, pin_cores: bool = True) -> None:
        self.settings = RenderSettings(**settings)
        # Before bpy is imported: Blender sizes its thread pools by the cores it can see, and makes
        # its session temp directory under TMPDIR (here: inside our scratch, swept with it).
        self.cores = claim_cores(self.settings.threads) if pin_cores and self.settings.threads else []
        scratch = scratch_directory()
        os.environ["TMPDIR"] = scratch
        tempfile.tempdir = None  # re-read TMPDIR

        from render.blender import BlenderRenderer

        self.renderer = BlenderRenderer(self.settings, scratch)

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        """Remove the renderer's scratch directory (RAM-backed /dev/shm); `ray.kill` runs no cleanup."""
        self.renderer.close()

    def render_shard(self, cfg: RenderJobConfig, shard: int) -> dict:
        """Render and write one shard (render/shard.py); returns its stats."""
        return render_shard(self.renderer, self.settings, cfg, shard)


def run_render(cfg: RenderJobConfig, progress: bool = True) -> dict:
    """Render every missing shard of `cfg` with an actor pool on the current Ray session."""
    ensure_output_dir(cfg.out)  # an unwritable `out` fails here, not in every worker
    todo = [s for s in range(cfg.n_shards) if not cfg.paths(s).complete()]
    summary = {"shards": cfg.n_shards, "skipped_shards": cfg.n_shards - len(todo), "rendered_shards": 0,
               "scenes": cfg.n_scenes, "rendered_scenes": 0, "cycles_s": 0.0, "render_s": 0.0, "worker_s": 0.0,
               "out": cfg.out}
    first_start: dict[int, float] = {}  # worker pid -> first shard start (epoch s)
    views: list[dict] = []  # per-view statistics of the rendered scenes (render/shard.py: view_stats)

    def fold(shard: int, stats: dict) -> int:
        summary["rendered_shards"] += 0 if stats["skipped"] else 1
        summary["rendered_scenes"] += 0 if stats["skipped"] else stats["scenes"]
        summary["cycles_s"] += stats.get("cycles_s", 0.0)  # Cycles' own engine time
        summary["render_s"] += stats.get("render_s", 0.0)  # whole bpy render calls (+ Blender's bookkeeping)
        summary["worker_s"] += stats.get("wall_s", 0.0)
        views.extend(stats.get("views", []))
        if "started" in stats:
            first_start[stats["pid"]] = min(first_start.get(stats["pid"], math.inf), stats["started"])
        return stats["scenes"]

    pool = Pool(RenderWorker, (dict(cfg.render), cfg.pin_cores), "render_shard", cfg.workers, call_args=(cfg,),
                attempts=MAX_SHARD_ATTEMPTS, describe=lambda shard: f"render shard {shard}")
    done_scenes = cfg.n_scenes - sum(len(cfg.shard_scenes(s)) for s in todo)
    t0_epoch = time.time()
    try:
        summary["workers"], summary["wall_s"] = drive(pool, todo, Bar("render", "scene", cfg.n_scenes, done_scenes,
                                                                      progress), fold)
    except BaseException:  # cancelled (Ctrl-C, SIGTERM) or failed: what the killed workers left goes too
        sweep_scratch(wait_for=set(descendants(os.getpid())), timeout_s=15)  # waits for local workers to die
        clean_up_after_cancel(cfg.paths(shard) for shard in todo)
        raise
    # Actor start-up: from job start to each worker's first shard (bpy import, scene setup).
    summary["startup_s"] = sum(t - t0_epoch for t in first_start.values()) / max(len(first_start), 1)
    summary["views"] = view_distribution(views) if views else {}
    return summary


def config_from_dict(d: dict) -> RenderJobConfig:
    """Hydra config (as a plain dict) -> RenderJobConfig; raises ConfigError naming a bad key or value."""
    return from_dict(RenderJobConfig, {k: v for k, v in d.items() if k != "ray"}, "render")


def describe(summary: dict) -> str:
    text = (f"render: {summary['rendered_scenes']} scenes rendered in {summary['rendered_shards']} shards, "
            f"{summary['skipped_shards']} shards already complete, {summary['wall_s']:.1f} s -> {summary['out']}")
    if summary.get("views"):
        text += "\n" + describe_views(summary["views"])
    return text
