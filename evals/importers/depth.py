"""Depth benchmarks on disk -> `Imported` depth samples (metric meters, NaN = no measurement).

Layouts (checked against the loaders of BTS, ZoeDepth and Marigold):

    depth-folder  SRC/rgb/<name>.png|jpg + SRC/depth/<name>.png (16-bit, value * depth_scale m, 0 = none)
                  or SRC/depth/<name>.exr (float m)
    nyuv2         SRC/nyu_depth_v2_labeled.mat (HDF5: images (N,3,W,H) uint8, rawDepths / depths (N,W,H) m, MATLAB's
                  transposed axes) + the Eigen test split: splits.mat (`testNdxs`, 1-based) or a text list
                  of 1-based indices (split=...)
    kitti         an Eigen split file (BTS: `<rgb path> <depth path> <focal>` per line, depth `None` =
                  no ground truth: skipped and counted), depth PNGs uint16 / 256 m, 0 = none
    diode         SRC/**/<name>.png + <name>_depth.npy ((H, W, 1) m) + <name>_depth_mask.npy; the
                  `indoors` / `outdoors` path component picks the scene type
    ibims         SRC/imagelist.txt, rgb/<name>.png, depth/<name>.png (uint16 * 50 / 65535 m),
                  mask_invalid/<name>.png and mask_transp/<name>.png (0 = not scored)
    eth3d         SRC/<scene>/images/dslr_images/<name>.JPG + SRC/<scene>/ground_truth_depth/dslr_images/<name>.JPG
                  (raw little-endian float32 H*W, inf = none; H, W from the image); or Marigold's copy
                  with the two trees under SRC/rgb/ and SRC/depth/
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import numpy as np

from evals.importers.common import (RGB_EXTS, BenchmarkError, Imported, flag, read_list, read_npy, read_png,
                                    read_rgb, require, same_size)
from formats import exr

log = logging.getLogger(__name__)


def _valid(d: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(d) & (d > 0), d, np.nan).astype(np.float32)


def read_depth_file(path: Path, depth_scale: float) -> np.ndarray:
    """Metric depth (float32 m, NaN invalid) from a 16-bit PNG (value * depth_scale, 0 invalid) or an EXR."""
    require(path, "a depth map")
    if path.suffix.lower() == ".exr":
        try:
            ch = exr.read_channels(path)
        except Exception as err:  # OpenEXR raises plain Exceptions for a damaged file
            raise BenchmarkError(f"{path}: not a readable EXR depth map ({err})") from err
        name = next((c for c in ("Z", "Y", "R") if c in ch), None) or (next(iter(ch)) if len(ch) == 1 else None)
        if name is None:
            raise BenchmarkError(f"{path}: EXR has channels {sorted(ch)}; expected Z, Y, R or a single channel")
        return _valid(ch[name].astype(np.float32))
    arr = read_png(path, "depth map", ("uint16",))
    return _valid(arr.astype(np.float32) * np.float32(depth_scale))


# ---------------------------------------------------------------- depth-folder


def depth_folder(src: Path, depth_scale: float = 0.001) -> Iterator[Imported]:
    """SRC/rgb + SRC/depth paired by stem (see the module docstring)."""
    if not depth_scale > 0:
        raise ValueError(f"depth_scale must be > 0, got {depth_scale}")
    for stem, rgb_path, depth_path in pair_files(src):
        rgb = read_rgb(rgb_path)
        depth = read_depth_file(depth_path, depth_scale)
        same_size(rgb, depth, depth_path)
        yield Imported(stem, "depth", rgb, depth, {"rgb": str(rgb_path), "depth": str(depth_path)})


def pair_files(src: Path) -> list[tuple[str, Path, Path]]:
    """(stem, rgb, depth) triples of SRC/rgb and SRC/depth, sorted by stem."""
    dirs = {name: src / name for name in ("rgb", "depth")}
    for name, d in dirs.items():
        if not d.is_dir():
            raise BenchmarkError(f"{d}: missing the {name}/ directory "
                                 f"(layout: {src}/rgb/*.png|jpg, {src}/depth/*.png|exr)")
    rgb = {p.stem: p for p in sorted(dirs["rgb"].iterdir()) if p.suffix.lower() in RGB_EXTS}
    depth = {p.stem: p for p in sorted(dirs["depth"].iterdir()) if p.suffix.lower() in (".png", ".exr")}
    unpaired = sorted(set(rgb) ^ set(depth))
    if unpaired:
        first = rgb.get(unpaired[0]) or depth.get(unpaired[0])
        raise BenchmarkError(f"{first}: {len(unpaired)} files have no partner in rgb/ or depth/ (e.g. {unpaired[:3]})")
    if not rgb:
        raise BenchmarkError(f"{src}: no images in rgb/ ({list(RGB_EXTS)}) and depth/ (.png, .exr)")
    return [(stem, rgb[stem], depth[stem]) for stem in sorted(rgb)]


# ---------------------------------------------------------------- NYUv2 (official labeled .mat)

NYU_MAT = "nyu_depth_v2_labeled.mat"


def nyu_test_indices(path: Path) -> list[int]:
    """0-based indices of the Eigen test split from splits.mat (`testNdxs`, 1-based) or a text list (1-based)."""
    require(path, "the NYUv2 split (splits.mat with testNdxs, or a text list of 1-based indices)")
    if path.suffix.lower() == ".mat":
        from scipy.io import loadmat

        try:
            ndx = loadmat(path).get("testNdxs")
        except (OSError, ValueError, NotImplementedError) as err:
            raise BenchmarkError(f"{path}: not a readable MATLAB split file ({err})") from err
        if ndx is None:
            raise BenchmarkError(f"{path}: has no testNdxs variable (the Eigen split's splits.mat has one)")
        values = [int(v) for v in np.asarray(ndx).ravel()]
    else:
        try:
            values = [int(tok) for line in read_list(path, "split list") for tok in line.split()]
        except ValueError as err:
            raise BenchmarkError(f"{path}: split list must hold 1-based integer indices ({err})") from err
    if not values or min(values) < 1:
        raise BenchmarkError(f"{path}: split indices must be 1-based (MATLAB), got min {min(values, default=None)}")
    return [v - 1 for v in values]


def nyuv2(src: Path, split: str | None = None, mat: str | None = None, depth_key: str = "rawDepths",
          black_border: bool = True) -> Iterator[Imported]:
    """The Eigen test images of the official labeled .mat (480x640) as BTS's extraction script
    (utils/extract_official_train_test_set_from_mat.py, which BTS, AdaBins and ZoeDepth evaluate on)
    makes them: the raw Kinect depth `rawDepths` (0 = none; `depth_key=depths` for the in-painted
    maps) and the photo with its 7-pixel projection border set to black (`black_border=false` keeps
    the .mat's white border). BTS stores the photo as JPEG and the depth in whole millimeters; here
    both stay lossless."""
    if depth_key not in ("rawDepths", "depths"):
        raise ValueError(f"depth_key must be 'rawDepths' or 'depths', got {depth_key!r}")
    black_border = flag(black_border, "black_border")
    import h5py

    mat_path = Path(mat) if mat else src / NYU_MAT
    split_path = Path(split) if split else src / "splits.mat"
    indices = nyu_test_indices(split_path)
    require(mat_path, "the official NYUv2 labeled .mat (HDF5)")
    try:
        f = h5py.File(mat_path, "r")
    except OSError as err:
        raise BenchmarkError(f"{mat_path}: not a readable HDF5 .mat (MATLAB v7.3) file ({err})") from err
    with f:
        for name in ("images", depth_key):
            if name not in f:
                raise BenchmarkError(f"{mat_path}: has no {name!r} dataset (has {sorted(f.keys())})")
        images, depths = f["images"], f[depth_key]
        n = images.shape[0]
        if images.ndim != 4 or images.shape[1] != 3 or depths.shape != (n, *images.shape[2:]):
            raise BenchmarkError(f"{mat_path}: images {images.shape} / {depth_key} {depths.shape} are not "
                                 f"(N, 3, W, H) / (N, W, H)")
        bad = [i + 1 for i in indices if i >= n]
        if bad:
            raise BenchmarkError(f"{split_path}: indices {bad[:3]} exceed the {n} images of {mat_path}")
        for i in indices:
            rgb = np.ascontiguousarray(np.asarray(images[i]).transpose(2, 1, 0)).astype(np.uint8)  # (3,W,H) -> (H,W,3)
            if black_border:
                rgb = bts_black_border(rgb)
            depth = _valid(np.asarray(depths[i], np.float32).T)
            yield Imported(f"{i + 1:04d}", "depth", rgb, depth, {"mat": f"{mat_path}[{i}]"},
                           {"nyu_index": i + 1, "depth_key": depth_key, "black_border": black_border})


def bts_black_border(rgb: np.ndarray) -> np.ndarray:
    """Black outside rows 7:474, cols 7:632 of the 480x640 frame (scaled to other sizes), as BTS writes it."""
    h, w = rgb.shape[:2]
    out = np.zeros_like(rgb)
    y0, y1, x0, x1 = round(7 / 480 * h), round(474 / 480 * h), round(7 / 640 * w), round(632 / 640 * w)
    out[y0:y1, x0:x1] = rgb[y0:y1, x0:x1]
    return out


# ---------------------------------------------------------------- KITTI (Eigen split)


def kitti(src: Path, split: str | None = None, rgb_root: str | None = None, depth_root: str | None = None,
          depth_scale: float = 1.0 / 256.0) -> Iterator[Imported]:
    """Lines `<rgb> <depth> [focal]` of the split file, paths relative to rgb_root / depth_root (default SRC).

    Depth `None` (no projected LiDAR for the frame; BTS's eigen_test_files_with_gt.txt has 45) is
    skipped and logged, as BTS and ZoeDepth skip it."""
    split_path = Path(split) if split else src / "eigen_test_files_with_gt.txt"
    rgb_dir, depth_dir = Path(rgb_root) if rgb_root else src, Path(depth_root) if depth_root else src
    for n, line in enumerate(read_list(split_path, "KITTI Eigen split file"), start=1):
        parts = line.split()
        if len(parts) < 2:
            raise BenchmarkError(f"{split_path}:{n}: expected '<rgb path> <depth path> [focal]', got {line!r}")
        if parts[1] == "None":
            log.info("%s:%d: no ground truth for %s (skipped, as BTS does)", split_path, n, parts[0])
            continue
        rgb_path, depth_path = rgb_dir / parts[0], depth_dir / parts[1]
        rgb = read_rgb(rgb_path)
        depth = read_depth_file(depth_path, depth_scale)
        same_size(rgb, depth, depth_path)
        extra = {"focal": float(parts[2])} if len(parts) > 2 else {}
        stem = parts[0].rsplit(".", 1)[0].replace("/", "_")
        yield Imported(stem, "depth", rgb, depth, {"rgb": str(rgb_path), "depth": str(depth_path)}, extra)


def kitti_skipped(src: Path, split: str | None = None) -> int:
    split_path = Path(split) if split else src / "eigen_test_files_with_gt.txt"
    return sum(1 for line in read_list(split_path, "KITTI Eigen split file") if line.split()[1:2] == ["None"])


# ---------------------------------------------------------------- DIODE

DIODE_SCENES = ("indoors", "outdoors", "all")


def diode(src: Path, scene_type: str = "indoors") -> Iterator[Imported]:
    """Every `<name>_depth.npy` under SRC with its `<name>.png` and `<name>_depth_mask.npy`."""
    if scene_type not in DIODE_SCENES:
        raise ValueError(f"scene_type must be one of {list(DIODE_SCENES)}, got {scene_type!r}")
    found = sorted(src.rglob("*_depth.npy"))
    if scene_type != "all":
        found = [p for p in found if scene_type in p.relative_to(src).parts]
    if not found:
        raise BenchmarkError(f"{src}: no DIODE '*_depth.npy' files under a {scene_type!r} directory "
                             f"(layout: val/{scene_type}/<scene>/<scan>/<name>.png, _depth.npy, _depth_mask.npy)")
    for depth_path in found:
        base = depth_path.name[:-len("_depth.npy")]
        rgb_path = depth_path.with_name(base + ".png")
        mask_path = depth_path.with_name(base + "_depth_mask.npy")
        rgb = read_rgb(rgb_path)
        depth = read_npy(depth_path, "DIODE depth").astype(np.float32)
        if depth.ndim == 3 and depth.shape[2] == 1:
            depth = depth[..., 0]
        mask = read_npy(mask_path, "DIODE depth mask")
        if depth.ndim != 2 or mask.shape != depth.shape:
            raise BenchmarkError(f"{depth_path}: depth {depth.shape} and mask {mask.shape} must be (H, W[, 1])")
        same_size(rgb, depth, depth_path)
        depth = _valid(np.where(mask.astype(bool), depth, np.nan))
        stem = str(depth_path.relative_to(src).with_name(base)).replace("/", "_")
        yield Imported(stem, "depth", rgb, depth, {"rgb": str(rgb_path), "depth": str(depth_path),
                                                   "mask": str(mask_path)},
                       {"scene_type": "indoors" if "indoors" in depth_path.parts else "outdoors"})


# ---------------------------------------------------------------- iBims-1 (ibims1_core_raw)

IBIMS_MAX_DEPTH = 50.0  # the PNGs store depth * 65535 / 50


def ibims(src: Path) -> Iterator[Imported]:
    """ibims1_core_raw: depth scored where mask_invalid and mask_transp are non-zero (ZoeDepth's loader)."""
    for name in read_list(src / "imagelist.txt", "iBims-1 image list"):
        rgb_path = src / "rgb" / f"{name}.png"
        rgb = read_rgb(rgb_path)
        depth_path = src / "depth" / f"{name}.png"
        raw = read_png(depth_path, "iBims-1 depth", ("uint16",)).astype(np.float64) * IBIMS_MAX_DEPTH / 65535.0
        same_size(rgb, raw, depth_path)
        keep = np.ones(raw.shape, bool)
        for mask_dir in ("mask_invalid", "mask_transp"):
            mask_path = src / mask_dir / f"{name}.png"
            mask = read_png(mask_path, f"iBims-1 {mask_dir}", ("uint8", "bool", "uint16"))
            same_size(rgb, mask, mask_path)
            keep &= mask > 0
        depth = _valid(np.where(keep, raw, np.nan).astype(np.float32))
        yield Imported(name, "depth", rgb, depth, {"rgb": str(rgb_path), "depth": str(depth_path)})


# ---------------------------------------------------------------- ETH3D (raw float depth)


def eth3d(src: Path) -> Iterator[Imported]:
    """ETH3D's high-res multi-view DSLR images with their `ground_truth_depth` binaries."""
    rgb_root, depth_root = (src / "rgb", src / "depth") if (src / "depth").is_dir() else (src, src)  # Marigold's copy
    found = sorted(depth_root.glob("*/ground_truth_depth/dslr_images/*"))
    if not found:
        raise BenchmarkError(f"{src}: no ETH3D '<scene>/ground_truth_depth/dslr_images/*' files "
                             f"(layout: <scene>/images/dslr_images/<name>.JPG + the same name under ground_truth_depth)")
    for depth_path in found:
        scene = depth_path.parents[2].name
        rgb_path = rgb_root / scene / "images" / "dslr_images" / depth_path.name
        rgb = read_rgb(rgb_path)
        h, w = rgb.shape[:2]
        try:
            data = depth_path.read_bytes()
        except OSError as err:
            raise BenchmarkError(f"{depth_path}: not readable ({err})") from err
        if len(data) != h * w * 4:
            raise BenchmarkError(f"{depth_path}: {len(data)} bytes; a raw float32 depth map for the "
                                 f"{w}x{h} image {rgb_path.name} has {h * w * 4}")
        depth = _valid(np.frombuffer(data, "<f4").reshape(h, w).copy())
        yield Imported(f"{scene}_{depth_path.stem}", "depth", rgb, depth,
                       {"rgb": str(rgb_path), "depth": str(depth_path)})
