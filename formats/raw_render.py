"""Raw render samples <-> shard members (docs/design.md "Raw shards"), without bpy.

Keys: `rgb.png` (8-bit sRGB), `depth.exr` (float32 planar z, +inf no hit), `normal.exr`
(float16 X/Y/Z camera frame, NaN invalid), `instance.png` and `semantic.png` (16-bit), and
`json` (seed, spec, K, extrinsics, class table, renderer settings, timings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from formats.members import (SampleError, depth_exr_bytes, json_bytes, normals_exr_bytes, png_bytes, read_depth_exr,
                             read_ids, read_json, read_normals_exr, read_rgb)

RAW_FORMAT_VERSION = 1
MEMBERS = ("depth.exr", "normal.exr", "instance.png", "semantic.png", "json")  # rgb.png is optional (render.rgb)


@dataclass
class RawRender:
    depth: np.ndarray
    normals: np.ndarray
    instance: np.ndarray
    semantic: np.ndarray
    meta: dict[str, Any]
    rgb: np.ndarray | None = None


def to_files(depth: np.ndarray, normals: np.ndarray, instance: np.ndarray, semantic: np.ndarray,
             meta: dict[str, Any], rgb: np.ndarray | None = None, tmp_dir: str | None = None) -> dict[str, bytes]:
    """Encode one rendered scene as shard members."""
    files = {
        "depth.exr": depth_exr_bytes(depth, tmp_dir),
        "normal.exr": normals_exr_bytes(normals, tmp_dir),
        "instance.png": png_bytes(instance.astype(np.uint16), rle=True),
        "semantic.png": png_bytes(semantic.astype(np.uint16), rle=True),
        "json": json_bytes({"raw_format": RAW_FORMAT_VERSION, **meta}),
    }
    if rgb is not None:
        files["rgb.png"] = png_bytes(rgb)
    return files


def from_sample(sample: dict[str, Any], tmp_dir: str | None = None) -> RawRender:
    """Decode a webdataset-style sample dict (bytes per extension) back to arrays.

    Raises SampleError naming the sample key and the member that is missing or undecodable.
    """
    key = sample.get("__key__", "?")
    missing = [m for m in MEMBERS if m not in sample]
    if missing:
        present = sorted(k for k in sample if not k.startswith("__"))
        raise SampleError(f"sample {key!r} lacks member(s) {missing} (has {present})")
    meta = read_json(sample["json"], f"{key}.json")
    depth = read_depth_exr(sample["depth.exr"], tmp_dir, f"sample {key!r} member 'depth.exr'")
    normals = read_normals_exr(sample["normal.exr"], tmp_dir, f"sample {key!r} member 'normal.exr'")
    rgb = read_rgb(sample["rgb.png"], f"{key}.rgb.png") if "rgb.png" in sample else None
    return RawRender(depth, normals, read_ids(sample["instance.png"], f"{key}.instance.png"),
                     read_ids(sample["semantic.png"], f"{key}.semantic.png"), meta, rgb)
