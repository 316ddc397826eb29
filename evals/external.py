"""Convert an external held-out depth set in a standard layout into eval task shards.

Layout (NYUv2 / KITTI style; the common export of both benchmarks):

    SRC/rgb/<name>.png|jpg       8-bit RGB images
    SRC/depth/<name>.png         16-bit PNG, metric depth = value * depth_scale, 0 = no measurement
    SRC/depth/<name>.exr         or float EXR in meters (channel Z, Y, R or the only channel); <= 0, NaN = invalid

`depth_scale`: 0.001 for NYUv2-style PNGs in millimeters (the default), 1/256 for KITTI's
depth-completion PNGs. Names pair rgb and depth files by stem; an unpaired file is an error.
Each image becomes one `depth` eval sample: input = the photo, target = the depth codec's
encoding, prompt from `encode.prompts.make_prompt`, raw `depth.exr` with invalid pixels NaN,
and meta naming the source, the split ("eval") and the depth protocol the set is scored with
(`nyuv2`: 1e-3..10 m, Eigen crop; `kitti`: 1e-3..80 m, Garg crop).

    python -m evals.external SRC OUT --source nyuv2 --protocol nyuv2
    python -m evals.external SRC OUT --source kitti --protocol kitti --depth-scale 0.00390625
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from PIL import Image

from encode import codecs
from encode.prompts import make_prompt
from encode.sample import TaskSample, to_files
from formats.shards import ShardPaths, ShardWriter
from formats import exr
from evals.depth import PROTOCOLS

RGB_EXTS = (".png", ".jpg", ".jpeg")
DEPTH_EXTS = (".png", ".exr")


def _key(source: str, stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-]", "_", f"{source}_{stem}")


def read_depth(path: Path, depth_scale: float) -> np.ndarray:
    """Metric depth (float32 m, NaN invalid) from a 16-bit PNG (value * depth_scale, 0 invalid) or an EXR."""
    if path.suffix.lower() == ".exr":
        ch = exr.read_channels(path)
        name = next((c for c in ("Z", "Y", "R") if c in ch), None) or (next(iter(ch)) if len(ch) == 1 else None)
        if name is None:
            raise ValueError(f"{path}: EXR has channels {sorted(ch)}; expected Z, Y, R or a single channel")
        d = ch[name].astype(np.float32)
    else:
        with Image.open(path) as im:
            arr = np.asarray(im)
        if arr.dtype != np.uint16 and im.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise ValueError(f"{path}: depth PNG must be 16-bit single-channel (mode {im.mode}, dtype {arr.dtype})")
        d = arr.astype(np.float32) * np.float32(depth_scale)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(d) & (d > 0), d, np.nan).astype(np.float32)


def pair_files(src: Path) -> list[tuple[str, Path, Path]]:
    """(stem, rgb, depth) triples of SRC/rgb and SRC/depth, sorted by stem."""
    dirs = {name: src / name for name in ("rgb", "depth")}
    for name, d in dirs.items():
        if not d.is_dir():
            raise ValueError(f"{src}: missing the {name}/ directory (layout: {src}/rgb/*.png|jpg, {src}/depth/*.png|exr)")
    rgb = {p.stem: p for p in sorted(dirs["rgb"].iterdir()) if p.suffix.lower() in RGB_EXTS}
    depth = {p.stem: p for p in sorted(dirs["depth"].iterdir()) if p.suffix.lower() in DEPTH_EXTS}
    unpaired = sorted(set(rgb) ^ set(depth))
    if unpaired:
        raise ValueError(f"{src}: {len(unpaired)} files have no partner in rgb/ or depth/ (e.g. {unpaired[:3]})")
    if not rgb:
        raise ValueError(f"{src}: no images in rgb/ ({list(RGB_EXTS)}) and depth/ ({list(DEPTH_EXTS)})")
    return [(stem, rgb[stem], depth[stem]) for stem in sorted(rgb)]


def convert_depth_set(src: str | Path, out: str | Path, source: str, protocol: str = "nyuv2",
                      depth_scale: float = 0.001, per_shard: int = 256, preset: str = "default",
                      prefix: str = "eval") -> list[Path]:
    """Write eval shards (`<prefix>-000000.tar` ...) for the depth set at `src`. Returns the tar paths."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown depth protocol {protocol!r}; known: {sorted(PROTOCOLS)}")
    if not depth_scale > 0:
        raise ValueError(f"depth_scale must be > 0, got {depth_scale}")
    codec = codecs.get("depth", preset=preset)
    pairs = pair_files(Path(src))
    tars = []
    for shard, lo in enumerate(range(0, len(pairs), per_shard)):
        paths = ShardPaths.of(out, prefix, shard)
        with ShardWriter(paths) as writer:
            for i, (stem, rgb_path, depth_path) in enumerate(pairs[lo:lo + per_shard], start=lo):
                with Image.open(rgb_path) as im:
                    rgb = np.asarray(im.convert("RGB"))
                depth = read_depth(depth_path, depth_scale)
                if depth.shape != rgb.shape[:2]:
                    raise ValueError(f"{stem}: rgb {rgb.shape[:2]} and depth {depth.shape} sizes differ")
                meta = {"codec": codecs.spec(codec), "source": source, "split": "eval", "seed": i,
                        "depth_protocol": protocol, "origin": {"rgb": str(rgb_path), "depth": str(depth_path)},
                        "width": rgb.shape[1], "height": rgb.shape[0]}
                ts = TaskSample(_key(source, stem), "depth", codec.encode(depth),
                                make_prompt("depth", i, preset=preset), meta, rgb, {"depth": depth})
                writer.add(ts.key, to_files(ts), {"task": "depth", "source": source, "split": "eval"})
            writer.commit()
        tars.append(paths.tar)
    return tars


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--source", required=True, help="source name in the report (e.g. nyuv2)")
    ap.add_argument("--protocol", default="nyuv2", choices=sorted(PROTOCOLS))
    ap.add_argument("--depth-scale", type=float, default=0.001, help="meters per 16-bit PNG unit (NYUv2 mm: 0.001)")
    ap.add_argument("--per-shard", type=int, default=256)
    args = ap.parse_args(argv)
    tars = convert_depth_set(args.src, args.out, args.source, args.protocol, args.depth_scale, args.per_shard)
    print(f"wrote {len(tars)} shards to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
