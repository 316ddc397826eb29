"""Metric depth <-> RGB: a power transform to [0, 1], then a walk along a path in the RGB cube.

    t = 1 - (1 + (d / scale) ** shape) ** (-power)        d in [0, inf)  ->  t in [0, 1]
    level = round(t * L)                                   L steps along the color path

`+inf` (no hit) is t = 1, the end of the path; NaN, negative and -inf depths (invalid) are
drawn in the path's reserved color, far from every path color. Decoding projects each color
onto the nearest path point (continuously, so noise moves depth a little) or onto the
reserved color, whichever is nearer. The last `inf_margin` levels before the end are kept for
+inf: positions within them decode to +inf (so noisy sky stays sky) and finite depths beyond
them clamp to the deepest finite level (with the default, ~1e5 m; finite never becomes inf).

Default (`preset="default"`): shape 0.4, power 1.25, scale 9 m on the 7-edge cube walk.
Half-level quantization bounds the relative error (measured by `relative_error_bound`, see
tests/encode/test_depth.py): 0.48% over [0.1, 200] m and 0.84% over [0.02, 1000] m. The
shape parameter is what buys this: with shape 1 (the plain family 1 - (1 + d/s)^-p) the best
[0.1, 200] m bound on the same walk is 0.54% (p 0.17, s 0.19 m), and its tails are coarser
(1.8% at 0.02 m / 1000 m). The walk stays the 7-edge one because it is the most noise- and
JPEG-robust path (non-adjacent edges 255 apart, reserved gray 180 away); `path="snake27"`
(3,315 steps through the interior, 127 apart) halves the quantization error but is less
robust to chroma loss; `bench/codecs.py` prints both.

Preset `vb` is the published Vision Banana scheme: t = 1 - (1 + d/10)^-2 on the same walk,
1,786 levels. Its bound is looser: 6.8% over [0.1, 200] m, 30% over [0.02, 1000] m (the
transform spends most levels below 10 m and is near-linear below 1 m).

Speed: both directions are lookup tables. Encoding indexes a table by the top bits of the
float32 depth (8 exponent + 13 mantissa bits, 2^-13 relative bucket width, which adds at most
0.013% to the bound); decoding indexes a 2^24-entry table by the packed 24-bit color.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from encode.codecs import validate
from encode.codecs.colorpath import ColorPath, get_path
from encode.codecs.pixels import pack_rgb
from encode.codecs.registry import register

PRESETS: dict[str, dict[str, Any]] = {
    "default": {"path": "cube7", "scale": 9.0, "power": 1.25, "shape": 0.4, "inf_margin": 16},
    "vb": {"path": "cube7", "scale": 10.0, "power": 2.0, "shape": 1.0, "inf_margin": 0},
}

_MANTISSA_BITS = 13
_SHIFT = 23 - _MANTISSA_BITS
_INF_BITS = 0x7F800000


def depth_to_t(d: np.ndarray, scale: float, power: float, shape: float) -> np.ndarray:
    """The forward transform for finite d >= 0 (float64); +inf gives 1."""
    d = np.asarray(d, np.float64)
    with np.errstate(over="ignore"):
        return 1.0 - (1.0 + (d / scale) ** shape) ** (-power)


def t_to_depth(t: np.ndarray, scale: float, power: float, shape: float) -> np.ndarray:
    """Inverse of `depth_to_t` for t in [0, 1]; t = 1 gives +inf."""
    t = np.asarray(t, np.float64)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        d = scale * ((1.0 - t) ** (-1.0 / power) - 1.0) ** (1.0 / shape)
    return np.where(t >= 1.0, np.inf, np.maximum(d, 0.0))


def relative_error_bound(codec: "DepthCodec", lo: float, hi: float) -> float:
    """Worst relative error of a lossless round trip for depths in [lo, hi] (analytic).

    Every depth between two decision boundaries decodes to the level between them, so the
    worst case is at a boundary; the bucketed encoder can shift a boundary by one bucket.
    """
    p = codec.params
    L = codec.path.steps
    centers = t_to_depth(np.arange(L + 1) / L, p["scale"], p["power"], p["shape"])
    bounds = t_to_depth((np.arange(L) + 0.5) / L, p["scale"], p["power"], p["shape"])
    slack = 2.0 ** -_MANTISSA_BITS
    below, above = bounds[:-1] * (1 - slack), bounds[1:] * (1 + slack)
    c = centers[1:-1]
    last = L - p["inf_margin"] - 1  # the largest finite level; deeper finite depths clamp to it
    if hi > bounds[last - 1] and last < L - 1:
        below, above, c = below[:last], above[:last], c[:last]
        if hi > bounds[last]:
            return float("inf")
    keep = (above >= lo) & (below <= hi)
    below, above, c = np.maximum(below[keep], lo), np.minimum(above[keep], hi), c[keep]
    return float(np.max(np.maximum(np.abs(c - below) / below, np.abs(above - c) / above)))


@functools.lru_cache(maxsize=8)
def _tables(path_name: str, scale: float, power: float, shape: float, margin: int) -> tuple[np.ndarray, np.ndarray]:
    path = get_path(path_name)
    return _encode_table(path, scale, power, shape, margin), _decode_table(path, scale, power, shape, margin)


def _palette_rgba(path: ColorPath) -> np.ndarray:
    """Level colors plus the reserved color (index L + 1), packed as little-endian RGBA uint32."""
    rgba = np.zeros((path.steps + 2, 4), np.uint8)
    rgba[:-1, :3] = path.levels
    rgba[-1, :3] = path.reserved
    return rgba.view(np.uint32).ravel()


def _encode_table(path: ColorPath, scale: float, power: float, shape: float, margin: int) -> np.ndarray:
    """Packed color for every float32 bucket (bits >> _SHIFT), including sign and NaN buckets."""
    L = path.steps
    buckets = np.arange(1 << (32 - _SHIFT), dtype=np.uint64)
    mid = ((buckets << _SHIFT) | (1 << (_SHIFT - 1))).astype(np.uint32).view(np.float32)
    level = np.full(len(buckets), L + 1, np.int64)  # reserved: negative, NaN
    finite_pos = (buckets < (_INF_BITS >> _SHIFT))
    t = depth_to_t(mid[finite_pos].astype(np.float64), scale, power, shape)
    level[finite_pos] = np.minimum(np.rint(t * L), L - margin - 1).astype(np.int64)
    level[0] = 0  # +0.0 and denormals: depth 0
    level[_INF_BITS >> _SHIFT] = L  # +inf (the NaNs that share this bucket are fixed in encode)
    return _palette_rgba(path)[level]


def _decode_table(path: ColorPath, scale: float, power: float, shape: float, margin: int) -> np.ndarray:
    """Depth (float32) for every packed 24-bit color r << 16 | g << 8 | b."""
    L = path.steps
    out = np.empty(1 << 24, np.float32)
    reserved = np.asarray(path.reserved, np.float32)
    chunk = 1 << 20
    low = np.arange(chunk, dtype=np.int64)
    r_low, g, b = (low >> 16).astype(np.float32), ((low >> 8) & 255).astype(np.float32), (low & 255).astype(np.float32)
    for start in range(0, 1 << 24, chunk):
        r = r_low + np.float32(start >> 16)
        pos, dist = path.project(np.stack([r, g, b], axis=1))
        to_reserved = np.sqrt((r - reserved[0]) ** 2 + (g - reserved[1]) ** 2 + (b - reserved[2]) ** 2)
        d = t_to_depth(pos / np.float64(L), scale, power, shape)
        d[pos >= L - margin - 0.5] = np.inf
        d[to_reserved < dist] = np.nan
        out[start:start + chunk] = d
    return out


@register("depth")
class DepthCodec:
    """Planar metric depth (float, meters; +inf = no hit; NaN = invalid) <-> RGB."""

    name = "depth"
    version = 1

    def __init__(self, preset: str = "default", path: str | None = None, scale: float | None = None,
                 power: float | None = None, shape: float | None = None, inf_margin: int | None = None) -> None:
        if preset not in PRESETS:
            raise ValueError(f"depth: unknown preset {preset!r}; known: {sorted(PRESETS)}")
        base = PRESETS[preset]
        given = {"path": path, "scale": scale, "power": power, "shape": shape, "inf_margin": inf_margin}
        merged = {k: (base[k] if v is None else v) for k, v in given.items()}
        merged = {"path": str(merged["path"]), **{k: float(merged[k]) for k in ("scale", "power", "shape")},
                  "inf_margin": int(merged["inf_margin"])}
        for key in ("scale", "power", "shape"):
            if not np.isfinite(merged[key]) or merged[key] <= 0:
                raise ValueError(f"depth: {key} must be a finite number > 0, got {merged[key]}")
        self.path = get_path(merged["path"])
        if not 0 <= merged["inf_margin"] < self.path.steps // 4:
            raise ValueError(f"depth: inf_margin must be in [0, {self.path.steps // 4}), got {merged['inf_margin']}")
        self._preset = preset if merged == base else "custom"
        self._params = merged

    @property
    def params(self) -> dict[str, Any]:
        return {"preset": self._preset, **self._params} if self._preset != "custom" else {**self._params}

    @property
    def levels(self) -> int:
        return self.path.steps + 1

    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        p = self._params
        return _tables(p["path"], p["scale"], p["power"], p["shape"], p["inf_margin"])

    def encode(self, depth: np.ndarray) -> np.ndarray:
        """(H, W) float depth in meters -> (H, W, 3) uint8."""
        depth = validate.float_map(depth, self.name)
        enc, _ = self._tables()
        d32 = np.ascontiguousarray(depth, dtype=np.float32)
        bits = d32.view(np.uint32)
        packed = enc[bits >> _SHIFT]
        # NaNs with a tiny payload share the +inf bucket; send them to the reserved color.
        odd = np.flatnonzero((bits >> _SHIFT).ravel() == (_INF_BITS >> _SHIFT))
        if odd.size:
            bad = odd[np.isnan(d32.ravel()[odd])]
            packed.ravel()[bad] = _palette_rgba(self.path)[-1]
        return packed.view(np.uint8).reshape(*depth.shape, 4)[..., :3]

    def decode(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (H, W) float32 depth in meters (+inf, NaN as encoded)."""
        rgb = validate.rgb_image(rgb, self.name)
        _, dec = self._tables()
        return dec[pack_rgb(rgb)]
