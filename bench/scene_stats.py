"""Scene composition benchmark: what the sampled views show, measured on real ground-truth renders.

    python bench/scene_stats.py [--views 40] [--width 128] [--height 96] [--seed 2027] [--families indoor,...]

Renders `--views` scenes per family (ground truth only, one warm Blender, seeds from `--seed`, which
should differ from the job defaults) and prints per family: median visible instances (> 0.1% of the
pixels), the share of views where one instance covers > 60%, the share whose depth p95/p5 < 1.5 (a
flat surface filling the frame), objects per scene, the camera search (attempts, views that passed
the pre-render check) and the sampler's time; then the material kinds used over all scenes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from render import layout  # noqa: E402
from render.sampling import FAMILIES, sample_scene, scene_seed  # noqa: E402


def measure(family: str, views: int, width: int, height: int, seed: int, renderer) -> list[dict]:
    rows = []
    for i in range(views):
        t = time.perf_counter()
        spec = sample_scene(scene_seed(seed, i), width, height, family=family)
        sample_s = time.perf_counter() - t
        res = renderer.render(spec)
        stats = layout.view_stats(res.instance, res.depth)
        rows.append({**stats, "objects": len(spec.objects), "sample_s": sample_s, "gt_s": res.timings["gt_render_s"],
                     "attempts": spec.view_check["attempts"], "passed": spec.view_check["passed"],
                     "estimate": spec.view_check["estimate"]["visible"],
                     "kinds": {o.material.kind for o in spec.objects}})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", type=int, default=40)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--height", type=int, default=96)
    ap.add_argument("--seed", type=int, default=2027)
    ap.add_argument("--families", default=",".join(FAMILIES))
    args = ap.parse_args()
    from render.blender import BlenderRenderer, RenderSettings

    renderer = BlenderRenderer(RenderSettings(rgb=False))
    kinds: set[str] = set()
    print(f"Ground-truth renders at {args.width}x{args.height}, {args.views} views per family, seeds from {args.seed}")
    head = ("family", "med vis", "p10 vis", "big>60%", "p95/p5<1.5", "objects", "attempts", "passed", "est vis",
            "sample ms", "gt ms")
    print("".join(f"{h:>11}" for h in head))
    for family in args.families.split(","):
        rows = measure(family, args.views, args.width, args.height, args.seed, renderer)
        vis = [r["visible"] for r in rows]
        flat = [r["depth_p95"] / r["depth_p5"] < 1.5 if r["depth_p5"] > 0 else True for r in rows]
        vals = (family, statistics.median(vis), sorted(vis)[len(vis) // 10],
                f"{sum(r['largest_share'] > 0.6 for r in rows) / len(rows):.1%}", f"{sum(flat) / len(rows):.1%}",
                statistics.mean(r["objects"] for r in rows), statistics.mean(r["attempts"] for r in rows),
                f"{sum(r['passed'] for r in rows) / len(rows):.0%}", statistics.median(r["estimate"] for r in rows),
                1000 * statistics.mean(r["sample_s"] for r in rows), 1000 * statistics.mean(r["gt_s"] for r in rows))
        print("".join(f"{v:>11.1f}" if isinstance(v, float) else f"{v!s:>11}" for v in vals))
        for r in rows:
            kinds |= r["kinds"]
    renderer.close()
    print(f"material kinds over all scenes: {len(kinds)}: {sorted(kinds)}")


if __name__ == "__main__":
    main()
