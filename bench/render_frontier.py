"""RGB quality per second: the preset frontier, the cost of the new materials, and the look of the views.

    python bench/render_frontier.py frontier [--size 128] [--scenes 3] [--ref-spp 1024] [--families tabletop]
                                             [--presets all|core]
    python bench/render_frontier.py cost [--size 64] [--scenes 6] [--smoke-spp 8]
    python bench/render_frontier.py views [--views 40] [--width 128 --height 96]

frontier: for a few sampled scenes (one per family per round, as the sampler makes them),
    a reference at `--ref-spp` samples (no adaptive stopping, no denoiser, 12 bounces), then each
    preset (samples, adaptive threshold, denoiser, bounces varied one at a time around the
    default) rendered at the reference's metered exposure (so only noise and bias differ):
    PSNR and SSIM of the 8-bit sRGB images against the reference, and seconds per scene (the bpy
    render call, one Cycles thread: how render workers run). Presets on the Pareto front (no
    other preset both faster and better in PSNR) are marked. `--families` limits the scenes to
    some families, `--presets core` to the denoised sample counts 4-64 and 8 / 32 spp without the
    denoiser (at 512 px a room's 1,024-spp reference alone takes over an hour on one core).
cost: RGB seconds per scene at `--size` with the smoke preset's samples for the same sampled
    scenes in three variants, back to back per scene (order alternating): the old flat/checker
    materials with the old lighting rules (`legacy_material`, `legacy_light`), the new procedural
    materials with the old lighting, and the scene as sampled (new materials, `lights.relight`,
    metering). Ratios of means against the old.
views: `--views` views per family from seeds other than the defaults at `--width` x `--height`
    with the smoke preset (8 spp): distinct material kinds among visible objects (> 0.1% of the
    pixels), and the distribution of clipped-pixel fractions and metered exposures.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from render import lights, materials  # noqa: E402
from render.materials import MaterialSpec  # noqa: E402
from render.sampling import FAMILIES, sample_scene, scene_seed  # noqa: E402
from render.settings import RenderSettings  # noqa: E402

BASE = dict(samples=32, adaptive_threshold=0.01, denoise=True, max_bounces=6)


def presets(which: str = "all") -> list[tuple[str, dict]]:
    """One factor at a time around BASE (RenderSettings fields); `core`: sample counts only."""
    if which == "core":
        return ([(f"{n} spp, denoise", dict(BASE, samples=n)) for n in (4, 8, 16, 32)]
                + [(f"{n} spp, no denoise", dict(BASE, samples=n, denoise=False)) for n in (8, 32)]
                + [("64 spp, denoise", dict(BASE, samples=64))])  # the dearest last: a cut-short run still has the rest
    out = [(f"{n} spp, denoise", dict(BASE, samples=n)) for n in (4, 8, 16, 32, 64, 128)]
    out += [(f"{n} spp, no denoise", dict(BASE, samples=n, denoise=False)) for n in (8, 32, 128)]
    out += [(f"32 spp, adaptive {t or 'off'}", dict(BASE, adaptive_threshold=t)) for t in (0.0, 0.05, 0.1)]
    out += [(f"32 spp, {b} bounces", dict(BASE, max_bounces=b)) for b in (2, 4, 12)]
    return out


def scenes(n_rounds: int, width: int, height: int, base_seed: int = 2026, families: tuple[str, ...] = FAMILIES) -> list:
    """`n_rounds` scenes per family (seeds from `base_seed`; the sampler lights them with
    `lights.relight`); a seed the sampler rejects is skipped and counted."""
    out, skipped = [], 0
    for i in range(n_rounds * 4):
        for family in families:
            if sum(s.family == family for s in out) >= n_rounds:
                continue
            seed = scene_seed(base_seed, i * len(FAMILIES) + FAMILIES.index(family))
            try:
                spec = sample_scene(seed, width, height, family=family)
            except Exception as err:  # noqa: BLE001 - a sampler bug must not stop the bench; counted
                skipped += 1
                print(f"  seed {seed} ({family}) skipped: {type(err).__name__}: {err}", file=sys.stderr)
                continue
            out.append(spec)
    if skipped:
        print(f"  {skipped} seeds skipped by the sampler", file=sys.stderr)
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=-1, data_range=255))


def _renderer(settings: RenderSettings):
    from render.blender import BlenderRenderer

    return BlenderRenderer(settings)


def _rgb(renderer, settings: RenderSettings, spec) -> tuple[np.ndarray, float, dict]:
    renderer.settings = settings
    timings, image = {}, {}
    rgb = renderer.render_rgb(spec, timings, image)
    return rgb, timings["rgb_render_s"], image


def frontier(args) -> None:
    specs = scenes(args.scenes, args.size, args.size, families=tuple(args.families.split(",")))
    r = _renderer(RenderSettings(rgb=True))
    rows = {name: {"psnr": [], "ssim": [], "s": []} for name, _ in presets(args.presets)}
    ref_s = []
    for spec in specs:
        t = time.perf_counter()
        ref_settings = RenderSettings(samples=args.ref_spp, adaptive_threshold=0.0, denoise=False, max_bounces=12)
        _, _, metered = _rgb(r, RenderSettings(samples=32), spec)  # the meter's EV (stable to ~0.01 stop at 32 spp)
        ref, _, _ = _rgb(r, dataclasses.replace(ref_settings, auto_exposure=False, exposure=metered["exposure_ev"]), spec)
        ref_s.append(time.perf_counter() - t)
        print(f"  {spec.family} seed {spec.seed}: reference {ref_s[-1]:.0f} s (with the 32-spp metering render)",
              file=sys.stderr, flush=True)
        for name, fields in presets(args.presets):
            s = RenderSettings(**fields, auto_exposure=False, exposure=metered["exposure_ev"])
            rgb, sec, _ = _rgb(r, s, spec)
            rows[name]["psnr"].append(psnr(rgb, ref))
            rows[name]["ssim"].append(ssim(rgb, ref))
            rows[name]["s"].append(sec)
            print(f"    {name}: PSNR {rows[name]['psnr'][-1]:.2f} dB, SSIM {rows[name]['ssim'][-1]:.4f}, {sec:.2f} s",
                  file=sys.stderr, flush=True)
    r.close()
    table = [(name, statistics.mean(v["psnr"]), statistics.mean(v["ssim"]), statistics.mean(v["s"]))
             for name, v in rows.items()]
    front = {n for n, p, _, s in table if not any(p2 > p and s2 < s for _, p2, _, s2 in table)}
    print(f"\nRGB preset frontier: {len(specs)} scenes ({', '.join(sorted({s.family for s in specs}))}), "
          f"{args.size}x{args.size} px, reference {args.ref_spp} spp (no adaptive, no denoiser, 12 bounces), "
          f"1 Cycles thread, CPU; reference {statistics.mean(ref_s):.0f} s/scene")
    print(f"| preset | PSNR dB | SSIM | s/scene | front |\n|---|---:|---:|---:|:-:|")
    for name, p, q, s in table:
        print(f"| {name} | {p:.2f} | {q:.4f} | {s:.2f} | {'*' if name in front else ''} |")


def legacy_material(rng: np.random.Generator) -> MaterialSpec:
    """The sampler's materials before issue 18: flat, glossy, metal, glass or a checker-like texture."""
    kind = ["diffuse", "glossy", "metal", "glass", "textured"][int(rng.choice(5, p=[0.35, 0.2, 0.15, 0.1, 0.2]))]
    color = tuple(float(c) for c in rng.uniform(0.02, 0.9, 3))
    if kind == "textured":
        return MaterialSpec(kind, color, roughness=float(rng.uniform(0.3, 0.9)),
                            texture=str(rng.choice(materials.TEXTURES)), texture_color=tuple(float(c) for c in rng.uniform(0.02, 0.9, 3)),
                            texture_scale=float(rng.uniform(2, 30)))
    rough = {"diffuse": (0.6, 1.0), "glossy": (0.02, 0.3), "metal": (0.05, 0.5), "glass": (0.0, 0.1)}[kind]
    return MaterialSpec(kind, color, roughness=float(rng.uniform(*rough)), metallic=1.0 if kind == "metal" else 0.0)


def legacy_light(spec, rng: np.random.Generator):
    """The sampler's lighting before issue 18: an area light (+ points) in a uniform world indoors
    and on tables, a sun with a two-colour gradient sky outdoors; no metering."""
    from render.spec import EnvironmentSpec, LightSpec

    xs = [o.location for o in spec.objects]
    cx, cy = float(np.mean([p[0] for p in xs])), float(np.mean([p[1] for p in xs]))
    if spec.family == "outdoor":
        elevation = rng.uniform(0.17, 1.4)
        spec.lights = [LightSpec("sun", (0.0, 0.0, 100.0), (float(np.pi / 2 - elevation), 0.0, float(rng.uniform(0, 6.28))),
                                 energy=float(rng.uniform(1.5, 6.0)), size=0.02)]
        spec.environment = EnvironmentSpec("sky", (0.1, 0.2, 0.6), (0.7, 0.7, 0.85), float(rng.uniform(0.5, 1.5)))
        return spec
    top = max(o.location[2] + o.size[2] / 2 for o in spec.objects if o.semantic_class != "ceiling") \
        if spec.family == "tabletop" else min((o.location[2] - o.size[2] / 2 for o in spec.objects
                                              if o.semantic_class == "ceiling"), default=2.6)
    z = top + 1.5 if spec.family == "tabletop" else top - 0.02
    spec.lights = [LightSpec("area", (cx, cy, z), energy=float(rng.uniform(150, 900)), size=float(rng.uniform(0.5, 1.5)))]
    for _ in range(int(rng.integers(0, 3))):
        spec.lights.append(LightSpec("point", (cx + rng.uniform(-1, 1), cy + rng.uniform(-1, 1), z - 0.8),
                                     energy=float(rng.uniform(30, 300)), size=0.1))
    spec.environment = EnvironmentSpec("uniform", (0.08, 0.08, 0.08))
    return spec


def cost(args) -> None:
    from render.spec import SceneSpec

    specs = []
    for i in range(args.scenes * 4):
        family = FAMILIES[i % len(FAMILIES)]
        if sum(s.family == family for s in specs) >= args.scenes:
            continue
        try:
            specs.append(sample_scene(scene_seed(2027, i), args.size, args.size, family=family))
        except Exception as err:  # noqa: BLE001 - counted
            print(f"  seed skipped: {type(err).__name__}: {err}", file=sys.stderr)
    smoke = RenderSettings(samples=args.smoke_spp)
    r = _renderer(smoke)
    times = {"old": [], "new materials": [], "new materials + light": []}
    clipped = {k: [] for k in times}
    for k, spec in enumerate(specs):
        old = SceneSpec.from_dict(spec.to_dict())
        rng = np.random.default_rng(k)
        for o in old.objects:
            o.material = legacy_material(rng)
            o.asset = None
        legacy_light(old, rng)
        new_materials = SceneSpec.from_dict(spec.to_dict())
        new_materials.lights, new_materials.environment = old.lights, old.environment
        variants = [("old", old, dataclasses.replace(smoke, auto_exposure=False)),
                    ("new materials", new_materials, dataclasses.replace(smoke, auto_exposure=False)),
                    ("new materials + light", spec, smoke)]
        for name, s, settings in (variants if k % 2 == 0 else variants[::-1]):
            rgb, sec, image = _rgb(r, settings, s)
            times[name].append(sec)
            clipped[name].append(lights.clipped_fractions(rgb)["clipped"])
    r.close()
    base = statistics.mean(times["old"])
    print(f"\nRGB cost per scene, {len(specs)} scenes ({args.scenes} per family), {args.size}x{args.size} px, "
          f"{args.smoke_spp} spp + denoiser (smoke preset), 1 Cycles thread, same scenes back to back")
    print("| variant | mean s/scene | median s/scene | ratio (mean) | mean clipped |\n|---|---:|---:|---:|---:|")
    for name, v in times.items():
        print(f"| {name} | {statistics.mean(v):.3f} | {statistics.median(v):.3f} | {statistics.mean(v) / base:.2f} | "
              f"{statistics.mean(clipped[name]):.3f} |")


def views(args) -> None:
    specs = scenes(args.views, args.width, args.height, base_seed=4242)
    r = _renderer(RenderSettings(samples=8))
    per_family: dict[str, dict] = {f: {"kinds": set(), "clipped": [], "white": [], "black": [], "ev": []} for f in FAMILIES}
    all_kinds: set[str] = set()
    for spec in specs:
        res = r.render(spec)
        ids, counts = np.unique(res.instance, return_counts=True)
        visible = {int(i) for i, c in zip(ids, counts) if i and c > 0.001 * res.instance.size}
        kinds = {spec.objects[i - 1].material.kind for i in visible}
        f = per_family[spec.family]
        f["kinds"] |= kinds
        all_kinds |= kinds
        for key, name in (("clipped", "clipped"), ("white", "clipped_white"), ("black", "clipped_black"), ("ev", "exposure_ev")):
            f[key].append(res.image[name])
    r.close()
    print(f"\nViews: {len(specs)} ({args.views} per family, base seed 4242), {args.width}x{args.height} px, 8 spp + denoiser, "
          f"metered")
    print("| family | views | visible material kinds | clipped p50 | p90 | max | share > 5% | white p90 | black p90 | EV p5..p95 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for fam, f in per_family.items():
        c = np.asarray(f["clipped"])
        if not len(c):
            continue
        ev = np.asarray(f["ev"])
        print(f"| {fam} | {len(c)} | {len(f['kinds'])} | {np.median(c):.4f} | {np.percentile(c, 90):.4f} | {c.max():.4f} | "
              f"{np.mean(c > 0.05):.2f} | {np.percentile(f['white'], 90):.4f} | {np.percentile(f['black'], 90):.4f} | "
              f"{np.percentile(ev, 5):+.1f}..{np.percentile(ev, 95):+.1f} |")
    print(f"distinct visible material kinds over all views: {len(all_kinds)}: {', '.join(sorted(all_kinds))}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("frontier")
    f.add_argument("--size", type=int, default=128)
    f.add_argument("--scenes", type=int, default=1, help="scenes per family")
    f.add_argument("--ref-spp", type=int, default=1024)
    f.add_argument("--families", default=",".join(FAMILIES), help="comma-separated families")
    f.add_argument("--presets", choices=("all", "core"), default="all")
    c = sub.add_parser("cost")
    c.add_argument("--size", type=int, default=64)
    c.add_argument("--scenes", type=int, default=6, help="scenes per family")
    c.add_argument("--smoke-spp", type=int, default=8)
    v = sub.add_parser("views")
    v.add_argument("--views", type=int, default=40, help="views per family")
    v.add_argument("--width", type=int, default=128)
    v.add_argument("--height", type=int, default=96)
    args = ap.parse_args()
    {"frontier": frontier, "cost": cost, "views": views}[args.cmd](args)


if __name__ == "__main__":
    main()
