"""`vistune render`: an actor pool of Blender workers renders seeded scenes into raw shards.

One shard = `scenes_per_shard` consecutive scene indices = one Ray task. Each actor keeps
bpy loaded across shards. Shards are written atomically (formats/shards.py); complete shards
are skipped on rerun. A worker killed mid-shard is restarted by Ray and the shard redone from
scratch, so the output never holds partial or duplicate samples.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from tqdm import tqdm

from formats.shards import ShardPaths, ShardWriter, ensure_output_dir
from pipelines.affinity import claim_cores
from pipelines.work_pool import run_pool
from render.sampling import FAMILIES, scene_seed
from render.settings import RenderSettings

MAX_SHARD_ATTEMPTS = 4


@dataclass(frozen=True)
class RenderJobConfig:
    out: str
    n_scenes: int
    scenes_per_shard: int = 2
    seed: int = 0
    width: int = 256
    height: int = 256
    families: tuple[str, ...] = FAMILIES
    workers: int = 0
    pin_cores: bool = True  # each worker claims `render.threads` cores of its node and pins itself
    edit_fraction: float = 0.0  # share of scenes re-rendered with one object edited (image-editing pairs)
    prefix: str = "render"
    render: dict = field(default_factory=dict)  # RenderSettings fields

    def __post_init__(self) -> None:
        if self.n_scenes < 1:
            raise ValueError(f"n_scenes must be >= 1, got {self.n_scenes}")
        if self.scenes_per_shard < 1:
            raise ValueError(f"scenes_per_shard must be >= 1, got {self.scenes_per_shard}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if not 0.0 <= self.edit_fraction <= 1.0:
            raise ValueError(f"edit_fraction must be in [0, 1], got {self.edit_fraction}")
        if self.edit_fraction and not self.render.get("rgb", True):
            raise ValueError("edit_fraction > 0 needs RGB renders (render.rgb=true): an edit pair is two images")
        if not 8 <= self.width <= 8192 or not 8 <= self.height <= 8192:
            raise ValueError(f"width and height must be in [8, 8192], got {self.width}x{self.height}")
        unknown = sorted(set(self.families) - set(FAMILIES))
        if unknown or not self.families:
            raise ValueError(f"families must be a non-empty subset of {list(FAMILIES)}, got {list(self.families)}")

    @property
    def n_shards(self) -> int:
        return -(-self.n_scenes // self.scenes_per_shard)

    def shard_scenes(self, shard: int) -> range:
        return range(shard * self.scenes_per_shard, min((shard + 1) * self.scenes_per_shard, self.n_scenes))

    def paths(self, shard: int) -> ShardPaths:
        return ShardPaths.of(self.out, self.prefix, shard)


def scene_key(index: int) -> str:
    return f"scene{index:09d}"


class RenderWorker:
    """Holds one BlenderRenderer (bpy stays loaded); renders whole shards."""

    def __init__(self, settings: dict, pin_cores: bool = True) -> None:
        self.settings = RenderSettings(**settings)
        # Before bpy is imported: Blender sizes its thread pools by the cores it can see.
        self.cores = claim_cores(self.settings.threads) if pin_cores and self.settings.threads else []

        from render.blender import BlenderRenderer

        self.renderer = BlenderRenderer(self.settings)

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        """Remove the renderer's scratch directory (RAM-backed /dev/shm); `ray.kill` runs no cleanup."""
        self.renderer.close()

    def render_shard(self, cfg: RenderJobConfig, shard: int) -> dict:
        """Render and write one shard. Encoding and writing scene k (EXR, PNG, tar) run on a
        helper thread while Cycles renders scene k + 1: free when the worker has a spare core
        or renders on a GPU, harmless otherwise. Samples are added in scene order."""
        from render.sampling import sample_scene

        paths = cfg.paths(shard)
        if paths.complete():
            return {"shard": shard, "skipped": True, "scenes": len(cfg.shard_scenes(shard))}
        t0, started = time.perf_counter(), time.time()
        cycles_s = render_s = 0.0
        paths.remove_stale_temps()  # left by a worker killed mid-shard; this shard is redone whole
        with ShardWriter(paths) as writer, ThreadPoolExecutor(1, thread_name_prefix="shard-writer") as pool:
            pending: Future | None = None
            for index in cfg.shard_scenes(shard):
                seed = scene_seed(cfg.seed, index)
                spec = sample_scene(seed, cfg.width, cfg.height, families=cfg.families)
                result = self.renderer.render(spec)
                edit = self._edit(cfg, seed, spec, result)
                t = result.timings
                cycles_s += t["gt_cycles_s"] + t.get("rgb_cycles_s", 0.0) + t["edit_cycles_s"]
                render_s += t["gt_render_s"] + t.get("rgb_render_s", 0.0) + t["edit_render_s"]
                if pending is not None:
                    pending.result()  # in order; re-raises a failed write here
                pending = pool.submit(self._write_scene, writer, cfg, index, seed, spec, result, edit)
            if pending is not None:
                pending.result()
            n = writer.commit()
        return {"shard": shard, "skipped": False, "scenes": n, "wall_s": time.perf_counter() - t0, "cycles_s": cycles_s,
                "render_s": render_s, "pid": os.getpid(), "started": started, "ended": time.time()}

    def _edit(self, cfg: RenderJobConfig, seed: int, spec, result):
        """(edited RGB, edit record) for a seeded `edit_fraction` of scenes, else None."""
        import numpy as np

        from render.edits import edit_spec

        result.timings["edit_render_s"] = result.timings["edit_cycles_s"] = 0.0  # every row has the columns
        rng = np.random.default_rng([seed, 0xED17])
        if not cfg.edit_fraction or rng.random() >= cfg.edit_fraction:
            return None
        ids, counts = np.unique(result.instance, return_counts=True)
        visible = {int(i): c / result.instance.size for i, c in zip(ids, counts) if i}
        edit = edit_spec(spec, int(rng.integers(2 ** 31)), visible)
        if edit is None:
            return None
        t, timings = time.perf_counter(), {}
        rgb = self.renderer.render_rgb(edit[0], timings)
        result.timings["edit_render_s"] = time.perf_counter() - t
        result.timings["edit_cycles_s"] = timings["rgb_cycles_s"]
        return rgb, edit[1]

    def _write_scene(self, writer: ShardWriter, cfg: RenderJobConfig, index: int, seed: int, spec, result,
                     edit=None) -> None:
        from formats import raw_render as raw
        from formats.members import png_bytes
        from render.blender.renderer import settings_dict

        meta = {"seed": seed, "index": index, "spec": spec.to_dict(), "K": result.K.tolist(),
                "world_to_camera": result.world_to_camera.tolist(), "class_table": spec.class_table(),
                "renderer": settings_dict(self.settings), "timings": result.timings}
        if edit is not None:
            meta["edit"] = edit[1]
        files = raw.to_files(result.depth, result.normals, result.instance, result.semantic, meta, result.rgb)
        if edit is not None:
            files["edit.png"] = png_bytes(edit[0])
        writer.add(scene_key(index), files, {
            "scene_index": index, "seed": seed, "family": spec.family, "n_objects": len(spec.objects),
            "width": cfg.width, "height": cfg.height, "focal_mm": spec.camera.focal_mm_35(),
            **{k: float(v) for k, v in result.timings.items()},
        })


def run_render(cfg: RenderJobConfig, progress: bool = True) -> dict:
    """Render every missing shard of `cfg` with an actor pool on the current Ray session."""
    import ray

    ensure_output_dir(cfg.out)  # an unwritable `out` fails here, not in every worker
    todo = [s for s in range(cfg.n_shards) if not cfg.paths(s).complete()]
    done_scenes = cfg.n_scenes - sum(len(cfg.shard_scenes(s)) for s in todo)
    summary = {"shards": cfg.n_shards, "skipped_shards": cfg.n_shards - len(todo), "rendered_shards": 0,
               "scenes": cfg.n_scenes, "rendered_scenes": 0, "cycles_s": 0.0, "render_s": 0.0,
               "worker_s": 0.0,
               "out": cfg.out}
    t0, t0_epoch = time.perf_counter(), time.time()
    first_start: dict[int, float] = {}  # worker pid -> first shard start (epoch s)
    if todo:
        n_workers = min(cfg.workers or max(int(ray.available_resources().get("CPU", 1)), 1), len(todo))
        bar = tqdm(total=cfg.n_scenes, initial=done_scenes, unit="scene", desc="render", disable=not progress)

        def on_result(shard: int, stats: dict) -> None:
            summary["rendered_shards"] += 0 if stats["skipped"] else 1
            summary["rendered_scenes"] += 0 if stats["skipped"] else stats["scenes"]
            summary["cycles_s"] += stats.get("cycles_s", 0.0)  # Cycles' own engine time
            summary["render_s"] += stats.get("render_s", 0.0)  # whole bpy render calls (+ Blender's bookkeeping)
            summary["worker_s"] += stats.get("wall_s", 0.0)
            if "started" in stats:
                first_start[stats["pid"]] = min(first_start.get(stats["pid"], math.inf), stats["started"])
            bar.update(stats["scenes"])

        try:
            n_workers = run_pool(RenderWorker, (dict(cfg.render), cfg.pin_cores), "render_shard", todo, n_workers,
                                 on_result, call_args=(cfg,), attempts=MAX_SHARD_ATTEMPTS,
                                 describe=lambda shard: f"render shard {shard}")
        finally:
            bar.close()
        summary["workers"] = n_workers
    summary["wall_s"] = time.perf_counter() - t0
    # Actor start-up: from job start to each worker's first shard (bpy import, scene setup).
    summary["startup_s"] = sum(t - t0_epoch for t in first_start.values()) / max(len(first_start), 1)
    return summary


def config_from_dict(d: dict) -> RenderJobConfig:
    fields_ = {k: v for k, v in d.items() if k != "ray"}
    fields_["families"] = tuple(fields_.get("families", FAMILIES))
    RenderSettings(**fields_.get("render", {}))  # validate early, with a named error
    return RenderJobConfig(**fields_)


def describe(summary: dict) -> str:
    return (f"render: {summary['rendered_scenes']} scenes rendered in {summary['rendered_shards']} shards, "
            f"{summary['skipped_shards']} shards already complete, {summary['wall_s']:.1f} s -> {summary['out']}")

