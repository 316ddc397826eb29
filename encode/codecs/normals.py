"""Camera-frame unit normals <-> RGB, the Vision Banana convention in OpenCV axes.

    rgb = (1 - n) / 2 * 255        n in the camera frame: x right, y down, z forward

A normal facing the camera (n = (0, 0, -1)) is light blue (128, 128, 255); one facing left
(-x) is pinkish red (255, 128, 128); one facing up (-y) light green (128, 255, 128).
Decoding inverts the map and renormalizes. Invalid normals (all-NaN) are drawn mid-gray,
which decodes to a vector of length ~0: colors whose raw vector is shorter than 0.25 decode to
NaN. That radius is not the nearest-codeword midpoint (0.5, between the gray point and the unit
shell) on purpose: a generator unsure of a normal draws the average of the colors it weighs,
and the average of unit vectors is shorter than one but still points the way they agree on
(two normals 120 deg apart average to length 0.5, 140 deg apart to 0.34). Measured on the
smoke run's tuned model (90 held-out views, one-step answers): 2.0% of the pixels with a
defined truth came out between 0.25 and 0.5 long and none shorter; decoded as NaN they scored
the protocol's 180 deg and the pooled mean angle was 39.5 deg, renormalized 37.1. The radius
still keeps noisy gray gray: per-channel noise of sigma 8 levels leaves the reserved color
within 0.25 with probability 0.999.

Bound (8-bit rounding, tests/encode/test_normals.py): mean angular error <= 0.25 deg and
max <= 0.6 deg over random unit vectors on the visible hemisphere (measured ~0.16 / 0.38).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from encode.codecs import validate
from encode.codecs.registry import register

RESERVED = (128, 128, 128)
_MIN_DECODED_NORM = 0.25  # below: the reserved gray (see the module docstring for why not 0.5)


@register("normals")
class NormalsCodec:
    """(H, W, 3) float unit normals (NaN = invalid) <-> (H, W, 3) uint8."""

    name = "normals"
    version = 1

    def __init__(self, unit_tolerance: float = 0.05) -> None:
        if not 0 < unit_tolerance < 0.5:
            raise ValueError(f"normals: unit_tolerance must be in (0, 0.5), got {unit_tolerance}")
        self.unit_tolerance = float(unit_tolerance)

    @property
    def params(self) -> dict[str, Any]:
        return {"unit_tolerance": self.unit_tolerance}

    def encode(self, normals: np.ndarray) -> np.ndarray:
        """Unit vectors (|n| within `unit_tolerance` of 1, renormalized) or all-NaN -> RGB.

        Raises:
            ValueError: partly-NaN, infinite, or non-unit vectors (a zero vector is not "invalid").
        """
        n = validate.float_map(normals, self.name, channels=3).astype(np.float32)
        nan = np.isnan(n)
        invalid = nan.all(axis=2)
        if np.any(nan.any(axis=2) & ~invalid):
            raise ValueError("normals.encode: some vectors are partly NaN; invalid normals must be all-NaN")
        norm = np.sqrt(np.einsum("hwc,hwc->hw", n, n))
        bad = ~invalid & ~(np.abs(norm - 1) <= self.unit_tolerance)
        if np.any(bad):
            worst = norm[bad][0]
            raise ValueError(
                f"normals.encode: {int(bad.sum())} vectors are not unit length within "
                f"{self.unit_tolerance} (e.g. |n| = {worst:.4g}); normalize them or mark them all-NaN"
            )
        n[invalid] = 0.0
        norm[invalid] = 1.0
        rgb = np.clip(np.rint((1.0 - n / norm[..., None]) * 127.5), 0, 255).astype(np.uint8)
        rgb[invalid] = RESERVED
        return rgb

    def decode(self, rgb: np.ndarray) -> np.ndarray:
        """RGB -> (H, W, 3) float32 unit normals; NaN where the color is near the reserved gray."""
        rgb = validate.rgb_image(rgb, self.name)
        n = 1.0 - rgb.astype(np.float32) * np.float32(2.0 / 255.0)
        norm = np.sqrt(np.einsum("hwc,hwc->hw", n, n))
        with np.errstate(invalid="ignore", divide="ignore"):
            n /= norm[..., None]
        n[norm < _MIN_DECODED_NORM] = np.nan
        return n
