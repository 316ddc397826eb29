"""Codec benchmark: speed on one core and round-trip error under storage and generation noise.

    python bench/codecs.py [--quick]

Speed: encode / decode megapixels per second at 512x512 and 1024x1024 (best of several runs,
tables built beforehand; numpy ops here are single-threaded). Error: lossless PNG, JPEG
quality 95 / 90 / 75 and Gaussian color noise sigma 2 / 4 / 8 (8-bit levels) on realistic
smooth maps: seeded analytic rooms and outdoor scenes (render/analytic.py), not white noise.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from encode import codecs  # noqa: E402
from encode.codecs.depth import relative_error_bound  # noqa: E402
from encode.codecs.palette import min_pairwise_distance  # noqa: E402
from render import analytic  # noqa: E402

CORRUPTIONS = ["png", "jpeg95", "jpeg90", "jpeg75", "noise2", "noise4", "noise8"]


def corrupt(rgb: np.ndarray, how: str, rng: np.random.Generator) -> np.ndarray:
    if how == "png" or how.startswith("jpeg"):
        buf = io.BytesIO()
        if how == "png":
            Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
        else:
            Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="JPEG", quality=int(how[4:]))
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    sigma = float(how[5:])
    return np.clip(rgb + rng.normal(0, sigma, rgb.shape), 0, 255).round().astype(np.uint8)


def mpx_per_s(fn, arg, pixels: int, repeats: int) -> float:
    fn(arg)  # warm: tables built, caches hot
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn(arg)
        best = min(best, time.perf_counter() - t)
    return pixels / best / 1e6


def scenes(size: int, n: int):
    for seed in range(n):
        yield analytic.demo_room(size, size, seed)[0]
        yield analytic.demo_outdoor(size, size, seed)[0]


def depth_error(codec, truths, how, rng) -> str:
    rels, sky_flips = [], []
    for t in truths:
        dec = codec.decode(corrupt(codec.encode(t.depth), how, rng))
        fin = np.isfinite(t.depth)
        ok = fin & np.isfinite(dec)
        rels.append(np.mean(np.abs(dec[ok] - t.depth[ok]) / t.depth[ok]) if ok.any() else np.nan)
        if (~fin).any():
            sky_flips.append(np.mean(np.isfinite(dec[~fin])))
    return f"AbsRel {np.mean(rels):.3%} sky->finite {np.mean(sky_flips):.1%}"


def normals_error(codec, truths, how, rng) -> str:
    errs = []
    for t in truths:
        dec = codec.decode(corrupt(codec.encode(t.normals), how, rng))
        ok = np.isfinite(t.normals[..., 0]) & np.isfinite(dec[..., 0])
        errs.append(np.degrees(np.arccos(np.clip(np.sum(dec[ok] * t.normals[ok], -1), -1, 1))))
    e = np.concatenate(errs)
    return f"mean {e.mean():.2f} deg, med {np.median(e):.2f}"


def ids_error(codec, maps, how, rng) -> str:
    acc = [np.mean(codec.decode(corrupt(codec.encode(m), how, rng)) == m) for m in maps]
    return f"pixel acc {np.mean(acc):.3%}"


def instance_error(codec, maps, how, rng) -> str:
    ious = []
    for m in maps:
        dec = codec.decode(corrupt(codec.encode(m), how, rng))
        for k in np.unique(m[m > 0]):
            ious.append(np.sum((dec == k) & (m == k)) / np.sum((dec == k) | (m == k)))
    return f"mean IoU {np.mean(ious):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer scenes and repeats")
    args = ap.parse_args()
    repeats, n_scenes, err_size = (3, 1, 256) if args.quick else (7, 3, 512)
    rng = np.random.default_rng(0)

    truths = list(scenes(err_size, n_scenes))
    sem_maps = [np.minimum(t.instance, 32).astype(np.uint16) for t in truths]  # 32 classes
    inst_maps = [t.instance.astype(np.uint16) for t in truths]
    mask_maps = [(t.instance == 2).astype(np.uint8) for t in truths]

    rows = [
        ("depth default (snake27)", codecs.get("depth"), [t.depth for t in truths], depth_error, truths),
        ("depth cube7, same t(d)", codecs.get("depth", path="cube7", inf_margin=16), None, depth_error, truths),
        ("depth vb", codecs.get("depth", preset="vb"), None, depth_error, truths),
        ("normals", codecs.get("normals"), [t.normals for t in truths], normals_error, truths),
        ("semantic (32 cls)", codecs.get("semantic", num_classes=32), sem_maps, ids_error, sem_maps),
        ("instance (256 max)", codecs.get("instance"), inst_maps, instance_error, inst_maps),
        ("mask", codecs.get("mask"), mask_maps, ids_error, mask_maps),
    ]

    print("Speed, one core, Mpx/s (best of %d)" % repeats)
    print(f"{'codec':<24}{'enc 512':>10}{'dec 512':>10}{'enc 1024':>10}{'dec 1024':>10}")
    for name, codec, samples, _, _ in rows:
        if samples is None:
            samples = rows[0][2]
        cells = []
        for size in (512, 1024):
            reps = int(np.ceil(size / err_size))
            target = np.tile(samples[0], (reps, reps) + (1,) * (samples[0].ndim - 2))[:size, :size]
            rgb = np.ascontiguousarray(codec.encode(target))  # as read back from a PNG
            cells += [mpx_per_s(codec.encode, target, size * size, repeats),
                      mpx_per_s(codec.decode, rgb, size * size, repeats)]
        print(f"{name:<24}" + "".join(f"{c:>10.1f}" for c in cells))

    print()
    print(f"Round-trip error on {len(truths)} analytic scenes at {err_size}x{err_size}")
    for name, codec, _, err_fn, data in rows:
        print(f"\n{name}  {codecs.spec(codec)['params']}" if name.startswith("depth") else f"\n{name}")
        for how in CORRUPTIONS:
            print(f"  {how:<8} {err_fn(codec, data, how, rng)}")
    print()
    for name, codec, *_ in rows[:3]:
        print(f"{name}: lossless bound {relative_error_bound(codec, 0.1, 200):.3%} over [0.1, 200] m, "
              f"{relative_error_bound(codec, 0.02, 1000):.3%} over [0.02, 1000] m")
    for n in (9, 33, 257):
        print(f"palette of {n - 1} classes/instances: min pairwise RGB distance "
              f"{min_pairwise_distance(codecs.get('semantic', num_classes=n - 1).palette):.1f}")


if __name__ == "__main__":
    main()
