"""Shard member codecs: bytes <-> arrays, chosen by the member's extension (webdataset's habit).

Every stage writes and reads its members through these functions, so a PNG, an EXR or a JSON
member means the same thing in a render, an annotate and a task shard:

    ext       array                                   writer / reader
    png       uint8 (H, W, 3) RGB, uint8 (H, W) grey,  png_bytes / read_image
              uint16 (H, W) ids (16-bit PNG)
    jpg       uint8 (H, W, 3) RGB                      jpeg_bytes / read_image
    exr       float32 channels by name                 formats.exr (depth: "Z"; normals: "X", "Y", "Z")
    json      a JSON object                            json_bytes / read_json
    txt       utf-8 text                               str.encode / read_text

`encode_member` / `decode_member` dispatch on the extension for code that handles members
generically (previews, inspection). Decoding is bounded: an image over MAX_PIXELS is refused
from its header, before any pixel is decoded.
"""

from __future__ import annotations

import io
import json
from typing import Any, Callable

import numpy as np
from PIL import Image

from formats import exr

MAX_PIXELS = 8192 * 8192  # decompression-bomb limit for shard members (checked before decoding)
_Z_RLE = 3  # zlib strategy: run-length matches only; id maps are flat regions (~2x smaller, a bit faster)
_HALF_MIN_NORMAL = np.float32(2.0 ** -14)  # smallest normal float16


class SampleError(ValueError):
    """A sample that is missing a member or holds an undecodable one."""


def png_bytes(arr: np.ndarray, compress_level: int = 1, rle: bool = False) -> bytes:
    """Lossless PNG of a uint8 RGB/grey or uint16 single-channel array.

    `rle` picks zlib's run-length strategy: id maps are flat regions, ~2x smaller and a bit faster.
    """
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=compress_level,
                                                    **({"compress_type": _Z_RLE} if rle else {}))
    return buf.getvalue()


def jpeg_bytes(rgb: np.ndarray, quality: int = 95, subsampling: int | None = None) -> bytes:
    """JPEG of a uint8 RGB array; `subsampling` 0 keeps full chroma (Pillow's default is 4:2:0)."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality,
                              **({"subsampling": subsampling} if subsampling is not None else {}))
    return buf.getvalue()


def read_image(data: bytes, what: str = "image") -> np.ndarray:
    """PNG/JPEG bytes -> uint8 RGB, uint8 grey for L/1 images, or uint16 for 16-bit single-channel PNGs (ids).

    Raises SampleError for undecodable data or an image over MAX_PIXELS (checked from the header,
    before any pixel is decoded).
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise SampleError(f"{what}: {im.width}x{im.height} exceeds the {MAX_PIXELS}-pixel limit")
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.asarray(im).astype(np.uint16)
            if im.mode == "L" or im.mode == "1":
                return np.asarray(im.convert("L"))
            return np.asarray(im.convert("RGB"))
    except SampleError:
        raise
    except Exception as err:  # Pillow raises many types for corrupt data
        raise SampleError(f"cannot decode {what}: {err}") from err


def read_rgb(data: bytes, what: str = "image") -> np.ndarray:
    """Image bytes -> (H, W, 3) uint8 RGB whatever the stored mode (grey is replicated)."""
    arr = read_image(data, what)
    if arr.ndim == 2:
        if arr.dtype != np.uint8:
            raise SampleError(f"{what}: a 16-bit single-channel image is not an RGB image")
        arr = np.repeat(arr[..., None], 3, axis=2)
    return arr


def read_ids(data: bytes, what: str = "id map") -> np.ndarray:
    """A 16-bit (or 8-bit) single-channel PNG -> (H, W) uint16."""
    arr = read_image(data, what)
    if arr.ndim != 2:
        raise SampleError(f"{what}: expected a single-channel id map, got shape {arr.shape}")
    return arr.astype(np.uint16)


def depth_exr_bytes(depth: np.ndarray, tmp_dir: str | None = None) -> bytes:
    """Planar depth (H, W) -> float32 single-channel EXR ("Z")."""
    return exr.to_bytes({"Z": depth.astype(np.float32)}, tmp_dir=tmp_dir)


def read_depth_exr(data: bytes, tmp_dir: str | None = None, what: str = "depth.exr") -> np.ndarray:
    """Depth EXR bytes -> (H, W) float32. Raises SampleError naming `what` when they are not a depth EXR."""
    try:
        return exr.channel(exr.from_bytes(data, tmp_dir, what), "Z", what)
    except exr.ExrError as err:
        raise SampleError(str(err)) from err


def normals_exr_bytes(normals: np.ndarray, tmp_dir: str | None = None) -> bytes:
    """Unit normals (H, W, 3) -> half-float EXR ("X", "Y", "Z"); NaN (no surface) is kept.

    Components below float16's normal range are flushed to 0 first: numpy converts values that
    land on float16 subnormals ~30x slower (axis-aligned walls are full of 1e-8 components), and
    for a unit vector stored at float16 precision (~5e-4) they are 0 anyway.
    """
    tiny = np.abs(normals) < _HALF_MIN_NORMAL  # False for NaN (no surface): kept
    half = np.where(tiny, np.float32(0.0), normals).astype(np.float16)  # one contiguous conversion
    return exr.to_bytes({"X": half[..., 0], "Y": half[..., 1], "Z": half[..., 2]}, half=True, tmp_dir=tmp_dir)


def read_normals_exr(data: bytes, tmp_dir: str | None = None, what: str = "normal.exr") -> np.ndarray:
    """Normals EXR bytes -> (H, W, 3) float32. Raises SampleError naming `what` when they are not a normals EXR."""
    try:
        n = exr.from_bytes(data, tmp_dir, what)
        return np.stack([exr.channel(n, c, what) for c in "XYZ"], axis=-1).astype(np.float32)
    except exr.ExrError as err:
        raise SampleError(str(err)) from err


def json_bytes(obj: dict[str, Any]) -> bytes:
    """A JSON member: sorted keys, so equal records are equal bytes."""
    return json.dumps(obj, sort_keys=True).encode()


def read_json(data: bytes, what: str = "json") -> dict[str, Any]:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise SampleError(f"{what}: bad json member: {err}") from err


def read_text(data: bytes, what: str = "txt") -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SampleError(f"{what}: not utf-8 text: {err}") from err


# The last extension component -> (encoder, decoder) for generic member handling.
MEMBER_CODECS: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    "png": (png_bytes, read_image),
    "jpg": (jpeg_bytes, read_image),
    "jpeg": (jpeg_bytes, read_image),
    "exr": (lambda channels: exr.to_bytes(channels), exr.from_bytes),
    "json": (json_bytes, read_json),
    "txt": (lambda text: text.encode("utf-8"), read_text),
}


def _codec(ext: str) -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    last = ext.rsplit(".", 1)[-1].lower()
    if last not in MEMBER_CODECS:
        raise SampleError(f"no member codec for extension {ext!r}; known: {sorted(MEMBER_CODECS)}")
    return MEMBER_CODECS[last]


def encode_member(ext: str, value: Any) -> bytes:
    """Encode `value` by the member's extension ('rgb.png', 'depth.exr', 'json', ...)."""
    return _codec(ext)[0](value)


def decode_member(ext: str, data: bytes) -> Any:
    """Decode a member's bytes by its extension; raises SampleError for unknown or bad data."""
    return _codec(ext)[1](data)
