"""Annotate benchmark: throughput per core, where the time goes, and mask quality against known truth.

    python bench/annotate.py [--size 512] [--images 24] [--quick]

Prints, on this machine, with the offline `u2netp` labeler (U^2-Net-p through onnxruntime):
- images per second on one core for decode + label + write at SIZE px (longer side), measured
  in one warm process pinned to one core with one onnxruntime thread, on JPEGs made from
  scikit-image's sample photos (the same loop `vistune annotate` workers run: decode, label,
  filter, referring expressions, PNG/JSON encoding, tar + Parquet shard write);
- the share of that time in decode, model (including its pre/post-processing), post (quality
  filters, id maps, referring expressions) and write (PNG/JSON encoding, tar, Parquet);
- the Ray job end to end (`run_annotate`, one worker per core, embedded Ray), split into
  actor start-up and steady state, in images per second per core;
- IoU of the kept masks (union of instances, after the quality filters) against exact truth on
  synthetic composites: cut-outs of sample photos (a horse silhouette and an ellipse) pasted
  onto tinted textures (grass, brick, gravel), SIZE x SIZE.
Absolute numbers vary with the machine and its load; ratios within one run are what to compare.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = str(Path(__file__).resolve().parents[1])
sys.path.insert(0, ROOT)

from annotate import labelers  # noqa: E402
from formats import raw_label as raw  # noqa: E402
from annotate.composites import ellipse_mask, iou, paste, tint  # noqa: E402
from annotate.imageio import DecodePolicy  # noqa: E402
from annotate.process import AnnotateSettings, UnitStats, annotate_unit  # noqa: E402
from annotate.sources import plan_units  # noqa: E402
from formats.shards import ShardPaths, ShardWriter, iter_samples  # noqa: E402


def sample_photos() -> dict[str, np.ndarray]:
    from skimage import data

    return {"astronaut": data.astronaut(), "chelsea": data.chelsea(), "coffee": data.coffee(),
            "motorcycle": data.stereo_motorcycle()[0], "rocket": data.rocket()}


def write_inputs(folder: Path, n: int) -> None:
    """n JPEGs from the sample photos (flipped / cropped variants so no two are identical)."""
    photos = list(sample_photos().values())
    for i in range(n):
        rgb = photos[i % len(photos)]
        variant = i // len(photos)
        if variant % 2:
            rgb = rgb[:, ::-1]
        if variant >= 2:
            rgb = rgb[variant * 4:, variant * 4:]
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="JPEG", quality=92)
        (folder / f"{i:04d}.jpg").write_bytes(buf.getvalue())


def one_core_loop(folder: Path, out: Path, size: int) -> dict:
    """decode + label + write of every image in `folder`, pinned to one core, one model thread."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    labeler = labelers.get("u2netp", threads=1)
    settings = AnnotateSettings(decode=DecodePolicy(resize="max_side", size=size), batch_size=8)
    (unit,) = plan_units(str(folder), images_per_shard=10**6)
    labeler.label([np.zeros((size, size, 3), np.uint8)])  # warm-up: onnxruntime's first run allocates
    stats = UnitStats()
    t0 = time.perf_counter()
    with ShardWriter(ShardPaths.of(out, "bench", 0)) as writer:
        for sample in annotate_unit(unit, labeler, settings, stats):
            t1 = time.perf_counter()
            writer.add(sample.key, sample.files, sample.row)
            stats.timings["write_s"] += time.perf_counter() - t1
        t1 = time.perf_counter()
        writer.commit()
        stats.timings["write_s"] += time.perf_counter() - t1
    wall = time.perf_counter() - t0
    return {"images": stats.written, "wall_s": wall, "timings": dict(stats.timings)}


def ray_job(folder: Path, out: Path, size: int, workers: int) -> dict:
    import ray

    from pipelines.annotate_job import config_from_dict, run_annotate

    n = len(list(folder.glob("*.jpg")))
    cfg = config_from_dict({"out": str(out), "source": str(folder), "images_per_shard": max(n // (2 * workers), 1),
                            "workers": workers, "decode": {"size": size}})
    ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR")
    try:
        summary = run_annotate(cfg, progress=False)
    finally:
        ray.shutdown()
    return summary


def composite_iou(size: int, quick: bool) -> list[tuple[str, float]]:
    """IoU of the annotate pipeline's kept masks vs the pasted cut-out, per composite."""
    from skimage import data

    backgrounds = {"grass": tint(data.grass(), (0.6, 0.9, 0.5)), "brick": tint(data.brick(), (0.9, 0.7, 0.6)),
                   "gravel": tint(data.gravel(), (0.8, 0.8, 0.8))}
    photos = sample_photos()
    foregrounds = {k: photos[k] for k in (("coffee",) if quick else ("astronaut", "coffee", "chelsea"))}
    shapes = {"horse": ~data.horse(), "ellipse": ellipse_mask(200, 300)}
    labeler = labelers.get("u2netp", threads=1)
    settings = AnnotateSettings(decode=DecodePolicy(resize="none"))
    scores = []
    with tempfile.TemporaryDirectory() as tmp:
        truths = {}
        for bname, bg in backgrounds.items():
            bg = np.asarray(Image.fromarray(bg).resize((size, size), Image.Resampling.BILINEAR))
            for fname, fg in foregrounds.items():
                for sname, shape in shapes.items():
                    name = f"{bname}-{fname}-{sname}"
                    rgb, truth = paste(bg, fg, shape, 0.5, (0.45, 0.55))
                    Image.fromarray(rgb).save(Path(tmp, f"{name}.png"))
                    truths[name] = truth
        (unit,) = plan_units(tmp, images_per_shard=10**6)
        for sample in annotate_unit(unit, labeler, settings, UnitStats()):
            label = raw.from_sample({"__key__": sample.key, **sample.files})
            name = Path(sample.row["source_path"]).stem
            scores.append((name, iou(label.instance > 0, truths[name])))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="longer side after resizing (px)")
    parser.add_argument("--images", type=int, default=24, help="images for the throughput runs")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="Ray job workers (one per core)")
    parser.add_argument("--quick", action="store_true", help="8 images, fewer composites")
    args = parser.parse_args()
    n = 8 if args.quick else args.images

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "in")
        folder.mkdir()
        write_inputs(folder, n)
        loop = one_core_loop(folder, Path(tmp, "loop"), args.size)
        job = ray_job(folder, Path(tmp, "job"), args.size, args.workers)
        samples = sum(1 for tar in Path(tmp, "job").glob("*.tar") for _ in iter_samples(tar))
    scores = composite_iou(args.size, args.quick)

    t = loop["timings"]
    parts = {k: t.get(f"{k}_s", 0.0) for k in ("decode", "model", "post", "write")}
    accounted = sum(parts.values())
    print(f"annotate benchmark: u2netp (ONNX, CPU), {args.size} px longer side, {loop['images']} JPEGs "
          f"from scikit-image sample photos")
    print()
    print("| measurement | value |")
    print("|---|---|")
    print(f"| one core, decode + label + write | {loop['images'] / loop['wall_s']:.2f} images/s "
          f"({1000 * loop['wall_s'] / loop['images']:.0f} ms/image) |")
    for k, v in parts.items():
        print(f"| share of time: {k} | {v / loop['wall_s']:.1%} ({1000 * v / loop['images']:.1f} ms/image) |")
    print(f"| share of time: other (reading files, batching) | {(loop['wall_s'] - accounted) / loop['wall_s']:.1%} |")
    steady = job["timings"]
    worker_s = sum(steady.get(f"{k}_s", 0.0) for k in ("decode", "model", "post", "write"))
    print(f"| Ray job, {job['workers']} workers: wall incl. Ray + actor start | {job['wall_s']:.1f} s for "
          f"{job['written']} images = {job['written'] / job['wall_s'] / job['workers']:.2f} images/s/core |")
    print(f"| Ray job: worker time per image (steady state) | {1000 * worker_s / max(job['written'], 1):.0f} ms "
          f"= {job['written'] / max(worker_s, 1e-9):.2f} images/s/core |")
    print(f"| Ray job: samples in shards | {samples} of {n} |")
    values = [s for _, s in scores]
    print(f"| IoU vs known masks, {len(values)} composites | mean {statistics.mean(values):.3f}, "
          f"median {statistics.median(values):.3f}, min {min(values):.3f} |")
    print()
    print("| composite (background-foreground-shape) | IoU |")
    print("|---|---|")
    for name, score in sorted(scores):
        print(f"| {name} | {score:.3f} |")


if __name__ == "__main__":
    main()
