"""Raw render samples <-> shard members (DESIGN.md "Raw shards"), without bpy.

Keys: `rgb.png` (8-bit sRGB), `depth.exr` (float32 planar z, +inf no hit), `normal.exr`
(float16 X/Y/Z camera frame, NaN invalid), `instance.png` and `semantic.png` (16-bit), and
`json` (seed, spec, K, extrinsics, class table, renderer settings, timings).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from render import exr

RAW_FORMAT_VERSION = 1


@dataclass
class RawRender:
    depth: np.ndarray
    normals: np.ndarray
    instance: np.ndarray
    semantic: np.ndarray
    meta: dict[str, Any]
    rgb: np.ndarray | None = None


_Z_RLE = 3  # zlib strategy: run-length matches only; id maps are flat regions (~2x smaller, a bit faster)


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    rle = arr.dtype == np.uint16  # 16-bit id maps; RGB images keep the default strategy
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=1,
                                                    **({"compress_type": _Z_RLE} if rle else {}))
    return buf.getvalue()


def read_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        if im.mode in ("I;16", "I;16B", "I"):
            return np.asarray(im).astype(np.uint16)
        return np.asarray(im.convert("RGB"))


def to_files(depth: np.ndarray, normals: np.ndarray, instance: np.ndarray, semantic: np.ndarray,
             meta: dict[str, Any], rgb: np.ndarray | None = None, tmp_dir: str | None = None) -> dict[str, bytes]:
    """Encode one rendered scene as shard members."""
    files = {
        "depth.exr": exr.to_bytes({"Z": depth.astype(np.float32)}, tmp_dir=tmp_dir),
        "normal.exr": _normal_exr(normals, tmp_dir),
        "instance.png": png_bytes(instance.astype(np.uint16)),
        "semantic.png": png_bytes(semantic.astype(np.uint16)),
        "json": json.dumps({"raw_format": RAW_FORMAT_VERSION, **meta}, sort_keys=True).encode(),
    }
    if rgb is not None:
        files["rgb.png"] = png_bytes(rgb)
    return files


_HALF_MIN_NORMAL = np.float32(2.0 ** -14)  # smallest normal float16


def _normal_exr(normals: np.ndarray, tmp_dir: str | None) -> bytes:
    # Components below float16's normal range are flushed to 0 first: numpy converts values that
    # land on float16 subnormals ~30x slower (axis-aligned walls are full of 1e-8 components),
    # and for a unit vector stored at float16 precision (~5e-4) they are 0 anyway.
    tiny = np.abs(normals) < _HALF_MIN_NORMAL  # False for NaN (no surface): kept
    half = np.where(tiny, np.float32(0.0), normals).astype(np.float16)  # one contiguous conversion
    return exr.to_bytes({"X": half[..., 0], "Y": half[..., 1], "Z": half[..., 2]}, half=True, tmp_dir=tmp_dir)


def from_sample(sample: dict[str, Any], tmp_dir: str | None = None) -> RawRender:
    """Decode a webdataset-style sample dict (bytes per extension) back to arrays."""
    meta = json.loads(sample["json"])
    depth = exr.from_bytes(sample["depth.exr"], tmp_dir)["Z"]
    n = exr.from_bytes(sample["normal.exr"], tmp_dir)
    normals = np.stack([n["X"], n["Y"], n["Z"]], axis=-1).astype(np.float32)
    rgb = read_png(sample["rgb.png"]) if "rgb.png" in sample else None
    return RawRender(depth, normals, read_png(sample["instance.png"]), read_png(sample["semantic.png"]), meta, rgb)
