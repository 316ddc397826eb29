"""Contact sheets of raw render shards: RGB | depth | normals | instances, one row per view.

`vistune preview` uses this for roots that hold render shards (`vistune render` output) instead of
encoded task shards; `root_kind` tells them apart by their Parquet sidecars' columns (a task manifest
has `manifest_version`, a render shard's sidecar `scene_index`). Each row shows one view, decoded
from its shard members (formats/raw_render.py):

- RGB: `rgb.png` as rendered (a dark panel reading "no rgb" for `render.rgb=false` shards);
- depth: log-scaled viridis ramp, near = bright yellow, far = dark purple, over one range for the
  whole sheet (the 1st to 99th percentile of every shown view's finite depth, printed in the header),
  so a near and a far view differ; pixels that hit nothing (sky, +inf) are hatched white/grey;
- normals: camera frame (OpenCV axes) as RGB = (n + 1) / 2; invalid (NaN, sky) pixels black;
- instances: each instance id its own colour from the palette of encode/codecs/palette.py (ids
  ranked per view, so up to 1,023 visible instances get distinct colours), background black;

and under it a caption with the view's statistics from the shard's Parquet row (render/shard.py
`view_stats`): key, family, visible instances (> 0.1% of the pixels), the largest instance's
share, depth p5 / p95, sky share, material kinds, clipped pixels, camera rig.
"""

from __future__ import annotations

import html
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont

from encode.codecs.palette import MAX_COLORS, distinct_colors
from formats import raw_render as raw
from formats.shards import read_sample_at

HEADER = 16        # px: the column titles
CAPTION = 30       # px: two lines of statistics under each row
PANELS = ("RGB", "depth", "normals", "instances")
# viridis at 9 stops (matplotlib's), far (0) -> near (1)
_VIRIDIS = np.array([[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
                     [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]], np.float64)
NO_HIT = ((255, 255, 255), (200, 200, 200))  # the hatch over pixels that hit nothing


class PreviewError(ValueError):
    """A root that holds neither render shards nor task manifests, or a render root without views."""


@dataclass
class RenderView:
    """One view of a render shard: its decoded members and its Parquet row."""

    key: str
    render: raw.RawRender
    row: dict[str, Any]


def root_kind(files: list[str]) -> str:
    """"render" or "tasks" for a root whose Parquet files are `files`, by the first file's columns."""
    if not files:
        raise PreviewError("no Parquet files")
    names = pq.read_schema(files[0]).names
    if "manifest_version" in names:
        return "tasks"
    if "scene_index" in names and "tar_offset" in names:
        return "render"
    raise PreviewError(f"{files[0]} is neither a task manifest (no manifest_version column) nor a render shard's "
                       f"sidecar (no scene_index column)")


def load_views(files: list[str], n: int, seed: int = 0) -> list[RenderView]:
    """`n` random views (seeded) of the render shards whose sidecars are `files`, in (file, row) order."""
    index = [(path, row) for path in files for row in pq.read_table(path).to_pylist()]
    if not index:
        raise PreviewError(f"render shards {files[:3]}{'...' if len(files) > 3 else ''} hold no views")
    picked = sorted(random.Random(seed).sample(range(len(index)), min(n, len(index))))
    views = []
    for i in picked:
        path, row = index[i]
        sample = read_sample_at(path[: -len(".parquet")] + ".tar", row["tar_offset"], row["tar_size"])
        views.append(RenderView(row["key"], raw.from_sample(sample), row))
    return views


def depth_range(depths: list[np.ndarray]) -> tuple[float, float]:
    """The sheet's depth range (m): 1st to 99th percentile of all finite, positive depths; (1, 10) if none."""
    finite = [d[np.isfinite(d) & (d > 0)] for d in depths]
    lo = min((float(np.percentile(f, 1)) for f in finite if f.size), default=1.0)
    hi = max((float(np.percentile(f, 99)) for f in finite if f.size), default=10.0)
    return lo, max(hi, lo * 1.01)


def depth_panel(depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Depth (m, +inf no hit) -> RGB: log scale over [lo, hi], near bright; no-hit pixels hatched."""
    hit = np.isfinite(depth) & (depth > 0)
    t = np.zeros(depth.shape)
    t[hit] = (math.log(hi) - np.log(np.clip(depth[hit], lo, hi))) / (math.log(hi) - math.log(lo))  # near -> 1
    x = t * (len(_VIRIDIS) - 1)
    i = np.clip(np.floor(x).astype(int), 0, len(_VIRIDIS) - 2)
    out = _VIRIDIS[i] + (x - i)[..., None] * (_VIRIDIS[i + 1] - _VIRIDIS[i])
    yy, xx = np.indices(depth.shape)
    hatch = np.where((((yy + xx) // 3) % 2 == 0)[..., None], NO_HIT[0], NO_HIT[1])
    return np.where(hit[..., None], np.round(out), hatch).astype(np.uint8)


def normals_panel(normals: np.ndarray) -> np.ndarray:
    """Unit normals (camera frame, NaN invalid) -> RGB (n + 1) / 2; invalid pixels black."""
    ok = np.isfinite(normals).all(-1)
    out = np.zeros(normals.shape, np.uint8)
    out[ok] = np.round((np.clip(normals[ok], -1, 1) + 1) * 127.5).astype(np.uint8)
    return out


def instance_panel(ids: np.ndarray) -> np.ndarray:
    """Instance ids -> RGB: every id present its own palette colour (ranked), background (0) black."""
    present, rank = np.unique(ids, return_inverse=True)
    rank = rank.reshape(ids.shape) + (0 if present[0] == 0 else 1)  # 0 stays background
    palette = distinct_colors(MAX_COLORS)
    return palette[np.where(rank == 0, 0, (rank - 1) % (MAX_COLORS - 1) + 1)]


def _fmt(row: dict[str, Any], key: str, spec: str, default: str = "?") -> str:
    v = row.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return default
    return format(v, spec)


def caption(view: RenderView) -> tuple[str, str]:
    """Two caption lines: identity and visibility; depth, sky, materials, exposure."""
    r = view.row
    first = (f"{view.key} {r.get('family', '?')} | {_fmt(r, 'visible', 'd')} visible instances, "
             f"largest {_fmt(r, 'largest_share', '.0%')} | rig {r.get('camera_rig') or '?'}")
    second = (f"depth p5 {_fmt(r, 'depth_p5', '.2f')} m, p95 {_fmt(r, 'depth_p95', '.2f')} m, sky "
              f"{_fmt(r, 'sky_share', '.0%')} | {_fmt(r, 'n_material_kinds', 'd')} material kinds | "
              f"clipped {_fmt(r, 'clipped', '.1%', 'n/a')}")
    return first, second


def _fit(img: np.ndarray, w: int, h: int, smooth: bool = False) -> Image.Image:
    pil = Image.fromarray(img)
    return pil if pil.size == (w, h) else pil.resize((w, h), Image.BILINEAR if smooth else Image.NEAREST)


def contact_sheet(views: list[RenderView], cell: int = 256) -> tuple[Image.Image, tuple[float, float]]:
    """The sheet (width 4 x `cell`; per row a panel strip of `cell` x height/width of the view, then
    CAPTION px of text; HEADER px of column titles on top) and the depth range its ramp spans."""
    lo, hi = depth_range([v.render.depth for v in views])
    heights = [max(1, round(cell * v.render.depth.shape[0] / v.render.depth.shape[1])) for v in views]
    sheet = Image.new("RGB", (4 * cell, HEADER + sum(h + CAPTION for h in heights)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    titles = ("RGB", f"depth, log {lo:.2g}-{hi:.2g} m (near bright, no hit hatched)", "normals (camera)", "instances")
    for c, title in enumerate(titles):
        draw.text((c * cell + 4, 2), title, fill=(230, 230, 230), font=font)
    y = HEADER
    for view, h in zip(views, heights):
        r = view.render
        rgb = r.rgb if r.rgb is not None else np.full(r.depth.shape + (3,), 48, np.uint8)
        panels = (_fit(rgb, cell, h, smooth=True), _fit(depth_panel(r.depth, lo, hi), cell, h),
                  _fit(normals_panel(r.normals), cell, h), _fit(instance_panel(r.instance), cell, h))
        for c, panel in enumerate(panels):
            sheet.paste(panel, (c * cell, y))
        if r.rgb is None:
            draw.text((4, y + 4), "no rgb", fill=(200, 200, 200), font=font)
        draw.multiline_text((4, y + h + 3), "\n".join(caption(view)), fill=(230, 230, 230), font=font, spacing=2)
        y += h + CAPTION
    return sheet, (lo, hi)


def sheet_html(views: list[RenderView], image: str, depth: tuple[float, float]) -> str:
    """An HTML fragment: the sheet `image` and each row's caption."""
    items = "".join(f"<li>{html.escape(' | '.join(caption(v)))}</li>" for v in views)
    return (f"<h2>renders ({len(views)} views)</h2><p>RGB | depth (log scale {depth[0]:.3g}-{depth[1]:.3g} m, near "
            f"bright, no hit hatched) | normals (camera frame) | instances</p><img src='{html.escape(image)}'>"
            f"<ol>{items}</ol>")


def write_sheet(views: list[RenderView], out: Path, name: str = "renders.png", cell: int = 256) -> str:
    """Write the contact sheet `out/name` atomically; the HTML fragment showing it."""
    from formats.atomic import atomic_open

    sheet, depth = contact_sheet(views, cell)
    with atomic_open(Path(out) / name) as f:
        sheet.save(f, format="PNG")
    return sheet_html(views, name, depth)
