"""Render benchmark: per-scene cost, pipeline overhead, worker scaling, process-per-scene baseline.

    python bench/render.py [--size 512] [--scenes 6] [--quick]

Prints, on this machine:
- seconds per scene at SIZE x SIZE for ground-truth passes only and for RGB at the default
  quality preset (render/settings.py), in one warm Blender process pinned to one core, one
  Cycles thread (how `vistune render` workers run);
- the pipeline overhead ratio of the Ray job: job wall time x workers / sum of Cycles' own
  render times (the bpy render call), ground truth only; also split into the worker side
  (time inside `render_shard`: scene sampling, build, pass read-back, encoding, shard write)
  and the one-time start of the actors (Python + Ray + bpy import), which a long job amortizes;
- scaling of the job from 1 to 2 workers (scenes per second ratio), ground truth only, next to
  the same ratio for two independent warm renderer processes, pinned and unpinned;
- the speed-up over launching a fresh Python + bpy process per scene (BlenderProc- and
  Kubric-style runs), ground truth only.
All ratios come from one run; absolute seconds vary with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
sys.path.insert(0, ROOT)

from render.sampling import scene_seed  # noqa: E402
from render.settings import RenderSettings  # noqa: E402

# One warm renderer process: optional core claim (before bpy), warm-up, then timed scenes.
WARM_LOOP = """
import json, statistics, sys, time
sys.path.insert(0, {root!r})
from pipelines.affinity import claim_cores
cores = claim_cores(1, {lock_dir!r}) if {pin} else []
from render.blender import BlenderRenderer, RenderSettings
from render.sampling import sample_scene
r = BlenderRenderer(RenderSettings(rgb={rgb}))
r.render(sample_scene({seeds}[0], 32, 32))
walls, parts = [], {{}}
t0 = time.perf_counter()
for seed in {seeds}:
    t = time.perf_counter()
    res = r.render(sample_scene(seed, {size}, {size}))
    walls.append(time.perf_counter() - t)
    for k, v in res.timings.items():
        parts.setdefault(k, []).append(v)
print(json.dumps({{"loop_s": time.perf_counter() - t0, "scene_s": statistics.mean(walls), "cores": cores,
                  "parts": {{k: statistics.mean(v) for k, v in parts.items()}}}}))
"""

ONE_SCENE = """
import sys
sys.path.insert(0, {root!r})
from pipelines.affinity import claim_cores
claim_cores(1, {lock_dir!r})
from render.blender import BlenderRenderer, RenderSettings
from render.sampling import sample_scene
BlenderRenderer(RenderSettings(rgb=False)).render(sample_scene({seed}, {size}, {size}))
"""


def warm_loops(size: int, seeds: list[int], copies: int = 1, pin: bool = True, rgb: bool = False) -> list[dict]:
    """Run `copies` warm renderer processes at once, each rendering `seeds`; their reports."""
    with tempfile.TemporaryDirectory() as lock_dir:
        code = WARM_LOOP.format(root=ROOT, lock_dir=lock_dir, pin=pin, rgb=rgb, seeds=seeds, size=size)
        procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                 for _ in range(copies)]
        return [json.loads(p.communicate()[0].decode().strip().splitlines()[-1]) for p in procs]


def fresh_processes(size: int, seeds: list[int]) -> float:
    with tempfile.TemporaryDirectory() as lock_dir:
        t = time.perf_counter()
        for seed in seeds:
            subprocess.run([sys.executable, "-c", ONE_SCENE.format(root=ROOT, lock_dir=lock_dir, seed=seed, size=size)],
                           check=True, capture_output=True)
        return (time.perf_counter() - t) / len(seeds)


def job(size: int, n: int, workers: int) -> dict:
    from pipelines.render_job import RenderJobConfig, run_render

    with tempfile.TemporaryDirectory() as out:
        cfg = RenderJobConfig(out=out, n_scenes=n, scenes_per_shard=4, width=size, height=size,
                              workers=workers, render={"rgb": False})
        # warm the actors' imports outside the timed run: one tiny job first
        warm = RenderJobConfig(out=str(Path(out) / "warm"), n_scenes=workers, scenes_per_shard=1, width=16, height=16,
                               workers=workers, render={"rgb": False})
        run_render(warm, progress=False)
        return run_render(cfg, progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--scenes", type=int, default=6, help="per-scene measurements; the jobs render 8x as many")
    ap.add_argument("--quick", action="store_true", help="128 px, 4 scenes")
    args = ap.parse_args()
    size, n = (128, 4) if args.quick else (args.size, args.scenes)
    seeds = [scene_seed(2026, i) for i in range(n)]

    gt = warm_loops(size, seeds)[0]
    rgb = warm_loops(size, seeds[: max(2, n // 2)], rgb=True)[0]
    fresh_s = fresh_processes(size, seeds[: max(2, n // 2)])
    loop_seeds = [scene_seed(2026, i) for i in range(2 * n)]
    scaling = {}
    for pin in (True, False):
        alone = warm_loops(size, loop_seeds, 1, pin)[0]["loop_s"]
        pair = max(r["loop_s"] for r in warm_loops(size, loop_seeds, 2, pin))
        scaling[pin] = (alone, 2 * alone / pair)

    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    one = job(size, 8 * n, workers=1)
    two = job(size, 8 * n, workers=2)
    ray.shutdown()

    print(f"Render benchmark at {size}x{size} (seeds from 2026); jobs render {8 * n} scenes, 4 per shard")
    print(f"{'measure':<62}{'value':>14}")
    row = lambda label, value: print(f"{label:<62}{value:>14}")  # noqa: E731
    row("ground truth only, s/scene (warm process, pinned)", f"{gt['scene_s']:.3f}")
    for k, v in gt["parts"].items():
        row("  " + k, f"{v:.3f}")
    d = RenderSettings()
    row(f"RGB + GT, default preset ({d.samples} spp, denoise {d.denoise}), s/scene", f"{rgb['scene_s']:.3f}")
    for k, v in rgb["parts"].items():
        row("  " + k, f"{v:.3f}")
    for label, s in (("1 worker", one), ("2 workers", two)):
        w = s["workers"]
        row(f"job, {label}: wall s, scenes/s", f"{s['wall_s']:.2f}, {s['scenes'] / s['wall_s']:.2f}")
        row(f"job, {label}: overhead ratio wall*workers/cycles", f"{s['wall_s'] * w / s['cycles_s']:.3f}")
        row(f"job, {label}:   worker side (in render_shard)/cycles", f"{s['worker_s'] / s['cycles_s']:.3f}")
        row(f"job, {label}:   start + scheduling + tail, s per worker", f"{s['wall_s'] - s['worker_s'] / w:.2f}")
        row(f"job, {label}:     of which actor start-up, s", f"{s['startup_s']:.2f}")
    row("scaling 1 -> 2 workers, job (throughput ratio)", f"{one['wall_s'] / two['wall_s']:.2f}")
    row("scaling 1 -> 2 independent warm processes, pinned", f"{scaling[True][1]:.2f}")
    row("scaling 1 -> 2 independent warm processes, unpinned", f"{scaling[False][1]:.2f}")
    row("one warm process, unpinned / pinned time", f"{scaling[False][0] / scaling[True][0]:.2f}")
    row("fresh process per scene, s/scene", f"{fresh_s:.3f}")
    row("speed-up of warm workers over fresh processes", f"{fresh_s / gt['scene_s']:.2f}")


if __name__ == "__main__":
    main()
