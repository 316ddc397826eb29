"""Render benchmark: per-scene cost, pipeline overhead, worker scaling, process-per-scene baseline.

    python bench/render.py [--size 512] [--scenes 6] [--job-scenes 200] [--rounds 4] [--quick]
    python bench/render.py --compare-only [--compare-size 64] [--baseline 07466ae] [--scenes 9]

Prints, on this machine:
1. Seconds per scene at SIZE x SIZE in one warm Blender process pinned to one core, one Cycles
   thread (how `vistune render` workers run): ground-truth passes only, split into every step
   of a worker's loop (spec sampling, scene build, Cycles' own engine time, the rest of
   Blender's render call, pass conversion, clear, shard-member encoding); and RGB + GT at the
   default quality preset (render/settings.py).
2. The pipeline overhead ratio of the Ray job, ground truth only: job wall time x workers /
   Cycles' own render time summed over scenes. "Cycles' own" is the time inside the Cycles
   engine's callbacks (session set-up, scene sync, BVH, path tracing; measured by the
   renderer's engine hook); the ratio against the whole bpy render call (which adds Blender's
   depsgraph evaluation and render-result bookkeeping) is printed beside it. The job's wall
   time is split into the worker side (inside `render_shard`) and the one-time actor start
   (Python + Ray + bpy import), which a long job amortizes: `--job-scenes` per worker.
3. Scaling from 1 to 2 workers (scenes/s ratio) for the job, next to what the machine itself
   gives two processes: two independent warm renderer processes (no Ray) and a pure CPU loop.
   Each pair runs back to back, in alternating order over rounds (1 2, 2 1, ...), and the
   median over rounds is reported: the development VM's speed drifts by up to 2x within
   minutes, and a ratio of two runs taken minutes apart measures the drift.
4. The speed-up over launching a fresh Python + bpy process per scene (BlenderProc- and
   Kubric-style runs), ground truth only.
5. Old vs new scenes: seconds per scene (sampling, GT-only and GT + RGB at the smoke preset's
   8 spp) for the scenes of this checkout next to those of `--baseline` (a git revision, unpacked
   with `git archive` into a temp dir and run from there: its own sampler, materials and renderer),
   same seeds, at `--compare-size` (64 px: the smoke preset) and at `--size`; runs alternate
   old/new over `--rounds` and the median ratio is reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
sys.path.insert(0, ROOT)

from render.sampling import scene_seed  # noqa: E402
from render.settings import RenderSettings  # noqa: E402

# One warm renderer process: core claim (before bpy), warm-up, then timed scenes. Times every
# step a render worker takes per scene, shard-member encoding included.
WARM_LOOP = """
import json, statistics, sys, time
sys.path.insert(0, {root!r})
from pipelines.affinity import claim_cores
cores = claim_cores(1, {lock_dir!r}) if {pin} else []
from formats import raw_render as raw
from render.blender import BlenderRenderer, RenderSettings
from render.sampling import sample_scene
r = BlenderRenderer(RenderSettings(rgb={rgb}, samples={samples}))
r.render(sample_scene({seeds}[0], 32, 32))
walls, parts = [], {{}}
t0 = time.perf_counter()
for seed in {seeds}:
    t = time.perf_counter()
    spec = sample_scene(seed, {size}, {size})
    sample_s = time.perf_counter() - t
    res = r.render(spec)
    t1 = time.perf_counter()
    raw.to_files(res.depth, res.normals, res.instance, res.semantic, {{"spec": spec.to_dict()}}, res.rgb)
    encode_s = time.perf_counter() - t1
    walls.append(time.perf_counter() - t)
    for k, v in {{"sample_s": sample_s, **res.timings, "encode_s": encode_s}}.items():
        parts.setdefault(k, []).append(v)
print(json.dumps({{"loop_s": time.perf_counter() - t0, "scene_s": statistics.mean(walls), "cores": cores,
                  "objects": statistics.mean(len(sample_scene(s, 16, 16).objects) for s in {seeds}),
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

SPIN = """
import os, sys, time
os.sched_setaffinity(0, {{{core}}})
t = time.perf_counter(); x = 0
for i in range({n}): x += i * i
print(time.perf_counter() - t)
"""


def warm_loops(size: int, seeds: list[int], copies: int = 1, pin: bool = True, rgb: bool = False,
               root: str = ROOT, samples: int = RenderSettings().samples) -> list[dict]:
    """Run `copies` warm renderer processes at once, each rendering `seeds` with the code under `root`; their reports."""
    with tempfile.TemporaryDirectory() as lock_dir:
        code = WARM_LOOP.format(root=root, lock_dir=lock_dir, pin=pin, rgb=rgb, seeds=seeds, size=size, samples=samples)
        procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                 for _ in range(copies)]
        return [json.loads(p.communicate()[0].decode().strip().splitlines()[-1]) for p in procs]


def spin(copies: int, n: int = 20_000_000) -> float:
    """Wall seconds for `copies` pinned pure-Python loops of `n` iterations run at once."""
    t = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", SPIN.format(core=i, n=n)], stdout=subprocess.DEVNULL)
             for i in range(copies)]
    for p in procs:
        p.wait()
    return time.perf_counter() - t


def fresh_processes(size: int, seeds: list[int]) -> float:
    with tempfile.TemporaryDirectory() as lock_dir:
        t = time.perf_counter()
        for seed in seeds:
            subprocess.run([sys.executable, "-c", ONE_SCENE.format(root=ROOT, lock_dir=lock_dir, seed=seed, size=size)],
                           check=True, capture_output=True)
        return (time.perf_counter() - t) / len(seeds)


def job(size: int, n: int, workers: int, seed: int) -> dict:
    from pipelines.render_job import run_render
    from render.shard import RenderJobConfig

    with tempfile.TemporaryDirectory() as out:
        cfg = RenderJobConfig(out=out, n_scenes=n, scenes_per_shard=4, width=size, height=size, seed=seed,
                              workers=workers, render={"rgb": False})
        return run_render(cfg, progress=False)


def baseline_tree(rev: str, into: str) -> str:
    """The files of git revision `rev` of this repository, unpacked under `into`; their root."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return into


def compare(rev: str, sizes: list[int], seeds: list[int], rounds: int, samples: int = 8) -> None:
    """Old (`rev`) vs new scenes: s/scene for GT only and GT + RGB, alternating old/new each round."""
    print(f"Old ({rev}) vs new scenes, same {len(seeds)} seeds, one warm pinned process each, RGB at {samples} spp")
    print(f"{'measure':<58}{'old':>10}{'new':>10}{'new/old':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        old_root = baseline_tree(rev, tmp)
        for size in sizes:
            for rgb in (False, True):
                runs: dict[str, list[dict]] = {"old": [], "new": []}
                for r in range(rounds):
                    for which in (("old", "new") if r % 2 == 0 else ("new", "old")):
                        root = old_root if which == "old" else ROOT
                        runs[which].append(warm_loops(size, seeds, rgb=rgb, root=root, samples=samples)[0])
                label = f"{size} px, {'GT + RGB' if rgb else 'GT only'}"
                med = {k: sorted(v, key=lambda x: x["scene_s"])[len(v) // 2] for k, v in runs.items()}
                ratios = [n["scene_s"] / o["scene_s"] for o, n in zip(runs["old"], runs["new"])]
                print(f"{label + ': s/scene, all steps':<58}{med['old']['scene_s']:>10.3f}{med['new']['scene_s']:>10.3f}"
                      f"{statistics.median(ratios):>10.2f}")
                for k in ("sample_s", "build_s", "gt_render_s", "rgb_render_s", "encode_s"):
                    if k in med["old"]["parts"] and k in med["new"]["parts"]:
                        o, n = med["old"]["parts"][k], med["new"]["parts"][k]
                        print(f"{'  ' + k:<58}{o:>10.4f}{n:>10.4f}{n / o:>10.2f}")
                print(f"{'  objects per scene':<58}{med['old']['objects']:>10.1f}{med['new']['objects']:>10.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--scenes", type=int, default=6, help="scenes per warm-process measurement")
    ap.add_argument("--job-scenes", type=int, default=200, help="scenes per worker in each job")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds of the 1- and 2-worker runs")
    ap.add_argument("--quick", action="store_true", help="128 px, 4 scenes, 24 scenes per worker, 1 round")
    ap.add_argument("--baseline", default="07466ae", help="git revision of the old scenes (before issue 18)")
    ap.add_argument("--compare-size", type=int, default=64, help="the old-vs-new comparison's small size")
    ap.add_argument("--compare-only", action="store_true", help="only the old-vs-new comparison (section 5)")
    args = ap.parse_args()
    if args.quick:
        args.size, args.scenes, args.job_scenes, args.rounds = 128, 4, 24, 1
    size, n, per_worker = args.size, args.scenes, args.job_scenes
    seeds = [scene_seed(2026, i) for i in range(n)]
    if args.compare_only:
        compare(args.baseline, [args.compare_size], seeds, args.rounds)
        return

    gt = warm_loops(size, seeds)[0]
    rgb = warm_loops(size, seeds[:2], rgb=True)[0]
    fresh_s = fresh_processes(size, seeds[: max(2, n // 2)])

    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    job(16, 2, 2, seed=1)  # the driver's own imports and Ray's first leases, outside the timed runs
    jobs: dict[int, list[dict]] = {1: [], 2: []}
    warm_pairs: dict[int, list[float]] = {1: [], 2: []}
    spins: dict[int, list[float]] = {1: [], 2: []}
    loop_seeds = seeds * 2
    for r in range(args.rounds):  # each pair back to back, order alternating (1 2, 2 1, ...): drift cancels
        order = (1, 2) if r % 2 == 0 else (2, 1)
        for w in order:
            jobs[w].append(job(size, per_worker * w, w, seed=100 + r))
        for w in order:
            warm_pairs[w].append(max(x["loop_s"] for x in warm_loops(size, loop_seeds, copies=w)))
        for w in order:
            spins[w].append(spin(w))
    ray.shutdown()

    def rate(s: dict) -> float:
        return s["scenes"] / s["wall_s"]

    print(f"Render benchmark at {size}x{size}, ground truth only unless marked; seeds from 2026")
    print(f"{'measure':<70}{'value':>14}")
    row = lambda label, value: print(f"{label:<70}{value:>14}")  # noqa: E731
    p = gt["parts"]
    row("warm process, pinned: s/scene, all steps below", f"{gt['scene_s']:.3f}")
    labels = {"sample_s": "spec sampling + validation", "build_s": "scene build (bpy datablocks)",
              "gt_cycles_s": "Cycles engine (sync, BVH, path tracing)",
              "gt_render_s": "rest of Blender's render call", "gt_read_s": "pass copy + conversion",
              "clear_s": "scene clear", "encode_s": "shard members (EXR, PNG, json)"}
    for k, label in labels.items():
        v = p[k] - p["gt_cycles_s"] if k == "gt_render_s" else p[k]
        row(f"  {label}, s", f"{v:.4f}")
    row("  overhead / Cycles engine (one process, no Ray)", f"{gt['scene_s'] / p['gt_cycles_s']:.3f}")
    d = RenderSettings()
    row(f"RGB + GT, default preset ({d.samples} spp, denoise {d.denoise}), s/scene", f"{rgb['scene_s']:.2f}")
    row("  of which the beauty pass's Cycles engine, s", f"{rgb['parts']['rgb_cycles_s']:.2f}")
    for w in (1, 2):
        runs = jobs[w]
        med = sorted(runs, key=lambda s: s["wall_s"] * w / s["cycles_s"])[len(runs) // 2]
        label = f"job, {w} worker{'s' if w > 1 else ''}, {per_worker * w} scenes"
        row(f"{label}: wall s, scenes/s", f"{med['wall_s']:.1f}, {rate(med):.2f}")
        row(f"{label}: overhead wall*workers / Cycles engine", f"{med['wall_s'] * w / med['cycles_s']:.3f}")
        row(f"{label}: overhead wall*workers / bpy render calls", f"{med['wall_s'] * w / med['render_s']:.3f}")
        row(f"{label}:   worker side (render_shard) / Cycles engine", f"{med['worker_s'] / med['cycles_s']:.3f}")
        row(f"{label}:   actor start-up (Python, Ray, bpy), s", f"{med['startup_s']:.2f}")
        steady = (med["wall_s"] - med["startup_s"]) * w / med["cycles_s"]
        row(f"{label}:   overhead without the one-time start-up", f"{steady:.3f}")
        row(f"{label}:   start + scheduling + tail, s per worker", f"{med['wall_s'] - med['worker_s'] / w:.2f}")
    ratios = [rate(b) / rate(a) for a, b in zip(jobs[1], jobs[2])]
    row(f"scaling 1 -> 2 workers, job (median of {len(ratios)} rounds)", f"{statistics.median(ratios):.2f}")
    row("  each round", ", ".join(f"{x:.2f}" for x in ratios))
    warm = [2 * a / b for a, b in zip(warm_pairs[1], warm_pairs[2])]
    row("scaling 1 -> 2 independent warm renderers, pinned, no Ray", f"{statistics.median(warm):.2f}")
    row("  each round", ", ".join(f"{x:.2f}" for x in warm))
    cpu = [2 * a / b for a, b in zip(spins[1], spins[2])]
    row("scaling 1 -> 2 pinned pure-Python loops (the machine's ceiling)", f"{statistics.median(cpu):.2f}")
    row("  each round", ", ".join(f"{x:.2f}" for x in cpu))
    row("fresh process per scene, s/scene", f"{fresh_s:.3f}")
    row("speed-up of a warm worker over fresh processes", f"{fresh_s / gt['scene_s']:.2f}")
    print()
    compare(args.baseline, [args.compare_size, size], seeds, max(1, args.rounds // 2))


if __name__ == "__main__":
    main()
