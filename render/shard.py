"""One render shard: `scenes_per_shard` seeded scenes -> Blender renders -> one raw shard, written atomically.

`render_shard(renderer, settings, cfg, shard)` is the whole unit of work of `vistune render`:
sample each scene's spec from its seed, render it (plus, for a seeded share of scenes, an edited
copy: an image-editing pair), and write the samples in scene order to `<prefix>-NNNNNN.tar` +
`.parquet` (formats/shards.py). A complete shard is left alone, so a rerun only fills the gaps,
and a shard whose worker died is redone whole. `renderer` is a `render.blender.BlenderRenderer`
(anything with its `render` and `render_rgb`); bpy is imported only through it. No Ray here
(pipelines/render_job.py runs this on an actor pool).
"""

from __future__ import annotations

import math
import functools
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from formats.config import from_dict
from formats.shards import ShardPaths, ShardWriter
from render import layout
from render.assets import AssetConfig, apply as apply_assets, scan as asset_library_uncached
from render.edits import edit_spec
from render.sampling import FAMILIES, sample_scene, scene_seed
from render.settings import RenderSettings
from render.spec import SceneSpec


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
    assets: dict = field(default_factory=dict)  # render.assets.AssetConfig fields (optional user assets)

    def __post_init__(self) -> None:
        from_dict(RenderSettings, self.render, "render")  # named error for a bad renderer key, before any work
        asset_cfg = from_dict(AssetConfig, self.assets, "assets")
        if asset_cfg.root is not None:
            asset_library(asset_cfg.root)  # a missing or empty folder: a named error before any work
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


@functools.lru_cache(maxsize=4)
def asset_library(root: str):
    """The user asset folder, scanned once per process (render/assets.py)."""
    return asset_library_uncached(root)


def scene_key(index: int) -> str:
    """The sample key of scene `index`: stable across reruns, unique in a job."""
    return f"scene{index:09d}"


@dataclass
class RenderedScene:
    """One scene's renders, waiting to be written: the spec, the result, and the edit pair if any."""

    index: int
    seed: int
    spec: SceneSpec
    result: Any  # render.blender.RenderResult
    edit: tuple[np.ndarray, dict] | None = None  # (edited RGB, edit record)

    @property
    def cycles_s(self) -> float:
        t = self.result.timings
        return t["gt_cycles_s"] + t.get("rgb_cycles_s", 0.0) + t["edit_cycles_s"]

    @property
    def render_s(self) -> float:
        t = self.result.timings
        return t["gt_render_s"] + t.get("rgb_render_s", 0.0) + t["edit_render_s"]


def render_shard(renderer, settings: RenderSettings, cfg: RenderJobConfig, shard: int) -> dict[str, Any]:
    """Render and write shard `shard` of `cfg` (or skip it if complete); returns its stats."""
    paths = cfg.paths(shard)
    # Under the shard's lock: a worker of a killed run still writing this shard finishes (or dies) first.
    with paths.lock():
        if paths.complete():
            return {"shard": shard, "skipped": True, "scenes": len(cfg.shard_scenes(shard))}
        t0, started = time.perf_counter(), time.time()
        views: list[dict[str, Any]] = []  # per-view statistics (view_stats), for the job summary
        with ShardWriter(paths) as writer:  # removes temp files a worker killed mid-shard left
            cycles_s, render_s = _render_into(writer, renderer, settings, cfg, shard, views)
            n = writer.commit()
    return {"shard": shard, "skipped": False, "scenes": n, "wall_s": time.perf_counter() - t0, "cycles_s": cycles_s,
            "render_s": render_s, "pid": os.getpid(), "started": started, "ended": time.time(), "views": views}


def _render_into(writer: ShardWriter, renderer, settings: RenderSettings, cfg: RenderJobConfig,
                 shard: int, views: list[dict[str, Any]]) -> tuple[float, float]:
    """Render the shard's scenes into `writer` in scene order; (Cycles' own seconds, bpy render seconds).

    Encoding and writing scene k (EXR, PNG, tar) run on a helper thread while Cycles renders scene
    k + 1: free when the worker has a spare core or renders on a GPU, harmless otherwise.
    """
    cycles_s = render_s = 0.0
    with ThreadPoolExecutor(1, thread_name_prefix="shard-writer") as pool:
        pending: Future | None = None
        for index in cfg.shard_scenes(shard):
            scene = render_scene(renderer, cfg, index)
            cycles_s, render_s = cycles_s + scene.cycles_s, render_s + scene.render_s
            if pending is not None:
                pending.result()  # in order; re-raises a failed write here
            pending = pool.submit(write_scene, writer, settings, cfg, scene, views)
        if pending is not None:
            pending.result()
    return cycles_s, render_s


def render_scene(renderer, cfg: RenderJobConfig, index: int) -> RenderedScene:
    """Sample scene `index` from its seed and render it (and its edit, if this scene gets one)."""
    seed = scene_seed(cfg.seed, index)
    spec = sample_scene(seed, cfg.width, cfg.height, families=cfg.families)
    asset_cfg = from_dict(AssetConfig, cfg.assets, "assets")
    if asset_cfg.root is not None:  # user models, texture sets and HDRIs, drawn from the scene seed
        spec = apply_assets(spec, asset_library(asset_cfg.root), np.random.default_rng([seed, 0xA55E7]), asset_cfg)
    result = renderer.render(spec)
    return RenderedScene(index, seed, spec, result, edit_pair(renderer, cfg, seed, spec, result))


def edit_pair(renderer, cfg: RenderJobConfig, seed: int, spec: SceneSpec, result) -> tuple[np.ndarray, dict] | None:
    """(edited RGB, edit record) for a seeded `edit_fraction` of scenes, else None."""
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
    rgb = renderer.render_rgb(edit[0], timings)
    result.timings["edit_render_s"] = time.perf_counter() - t
    result.timings["edit_cycles_s"] = timings["rgb_cycles_s"]
    return rgb, edit[1]


def view_stats(spec: SceneSpec, result) -> dict[str, Any]:
    """What one rendered view shows, for the shard's Parquet sidecar: visible instances (> 0.1% of the
    pixels), the largest instance's share, depth p5/p50/p95 (over pixels that hit something), the share
    of sky, the material kinds of the objects, the camera search, and (with RGB) the clipped share:
    pixels with a channel at 255 (blown out) or all channels at 0 (crushed black)."""
    stats = layout.view_stats(result.instance, result.depth)
    kinds = sorted({o.material.kind for o in spec.objects})
    check = spec.view_check or {}
    out = {**stats, "material_kinds": ",".join(kinds), "n_material_kinds": len(kinds),
           "camera_rig": str(check.get("rig", "")), "view_attempts": int(check.get("attempts", 0)),
           "view_passed": bool(check.get("passed", False)), "clipped_frac": math.nan}
    image = getattr(result, "image", None) or {}
    if "clipped" in image:  # measured by the renderer (render/lights.py)
        out["clipped_frac"] = float(image["clipped"])
    elif result.rgb is not None:
        rgb = np.asarray(result.rgb)
        out["clipped_frac"] = float(np.mean((rgb.max(-1) >= 255) | (rgb.max(-1) == 0)))
    return out


def write_scene(writer: ShardWriter, settings: RenderSettings, cfg: RenderJobConfig, scene: RenderedScene,
                views: list[dict[str, Any]] | None = None) -> None:
    """Add one scene's members (raw passes, metadata, edit image) and its Parquet row to `writer`
    (and the view's statistics to `views`)."""
    # Imported here: the EXR codecs (and bpy, for the renderer's version) are only needed where scenes are written.
    from formats import raw_render as raw
    from formats.members import png_bytes
    from render.blender.renderer import settings_dict

    spec, result = scene.spec, scene.result
    meta = {"seed": scene.seed, "index": scene.index, "spec": spec.to_dict(), "K": result.K.tolist(),
            "world_to_camera": result.world_to_camera.tolist(), "class_table": spec.class_table(),
            "renderer": settings_dict(settings), "timings": result.timings,
            "image": result.image}  # exposure_ev and clipped-pixel fractions (render/lights.py); {} without RGB
    if scene.edit is not None:
        meta["edit"] = scene.edit[1]
    files = raw.to_files(result.depth, result.normals, result.instance, result.semantic, meta, result.rgb)
    if scene.edit is not None:
        files["edit.png"] = png_bytes(scene.edit[0])
    stats = view_stats(spec, result)
    writer.add(scene_key(scene.index), files, {
        "scene_index": scene.index, "seed": scene.seed, "family": spec.family, "n_objects": len(spec.objects),
        "width": cfg.width, "height": cfg.height, "focal_mm": spec.camera.focal_mm_35(),
        **{k: float(v) for k, v in result.timings.items()},
        **{k: float(result.image.get(k, float("nan"))) for k in ("exposure_ev", "clipped", "clipped_white", "clipped_black")},
        **{k: v for k, v in stats.items() if k != "clipped_frac"},  # the row has "clipped" already
    })
    if views is not None:
        views.append({"family": spec.family, **{k: v for k, v in stats.items() if k != "material_kinds"}})


def view_distribution(views: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per family (and "all"): the distribution of the per-view statistics of `view_stats`."""
    out = {}
    for family in sorted({v["family"] for v in views}) + ["all"]:
        rows = [v for v in views if family in ("all", v["family"])]
        vis = np.array([v["visible"] for v in rows], float)
        ratio = np.array([v["depth_p95"] / v["depth_p5"] if v["depth_p5"] > 0 else 0.0 for v in rows])
        clipped = np.array([v["clipped_frac"] for v in rows], float)
        out[family] = {
            "views": len(rows), "visible_p10": float(np.percentile(vis, 10)), "visible_median": float(np.median(vis)),
            "visible_p90": float(np.percentile(vis, 90)),
            "largest_over_60": float(np.mean([v["largest_share"] > 0.6 for v in rows])),
            "flat_depth": float(np.mean(ratio < 1.5)),
            "depth_p50_median": float(np.median([v["depth_p50"] for v in rows])),
            "material_kinds_median": float(np.median([v["n_material_kinds"] for v in rows])),
            "view_passed": float(np.mean([v["view_passed"] for v in rows])),
            "clipped_median": float(np.median(clipped)) if np.isfinite(clipped).any() else math.nan,
        }
    return out


def describe_views(dist: dict[str, dict[str, float]]) -> str:
    """The view statistics as a few lines, one per family."""
    lines = []
    for family, d in dist.items():
        clipped = "" if math.isnan(d["clipped_median"]) else f", clipped px median {d['clipped_median']:.1%}"
        lines.append(f"  {family}: {d['views']} views, visible instances median {d['visible_median']:.0f} "
                     f"(p10 {d['visible_p10']:.0f}, p90 {d['visible_p90']:.0f}), one instance > 60%: "
                     f"{d['largest_over_60']:.0%}, flat depth (p95/p5 < 1.5): {d['flat_depth']:.0%}, "
                     f"median depth {d['depth_p50_median']:.1f} m, material kinds median "
                     f"{d['material_kinds_median']:.0f}, camera check passed {d['view_passed']:.0%}{clipped}")
    return "\n".join(lines)
