"""Binary masks (referring expressions) <-> one color on black.

Decoding keeps a pixel when it lies nearer the mask color than the background color
(projection past the midpoint), so it is exact on clean images and robust to noise.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from encode.codecs import validate
from encode.codecs.registry import register


def _color(value: Sequence[int], what: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != (3,) or arr.min() < 0 or arr.max() > 255:
        raise ValueError(f"mask: {what} must be an RGB triple in [0, 255], got {list(np.ravel(arr))}")
    return arr.astype(np.uint8)


@register("mask")
class MaskCodec:
    """(H, W) bool mask <-> RGB (`color` on `background`)."""

    name = "mask"
    version = 1

    def __init__(self, color: Sequence[int] = (255, 255, 255), background: Sequence[int] = (0, 0, 0)) -> None:
        self.color = _color(color, "color")
        self.background = _color(background, "background")
        if np.array_equal(self.color, self.background):
            raise ValueError("mask: color and background must differ")

    @property
    def params(self) -> dict[str, Any]:
        return {"color": self.color.tolist(), "background": self.background.tolist()}

    def encode(self, mask: np.ndarray) -> np.ndarray:
        mask = validate.id_map(mask, self.name, 1)
        return np.where(mask.astype(bool)[..., None], self.color, self.background).astype(np.uint8)

    def decode(self, rgb: np.ndarray) -> np.ndarray:
        """RGB -> (H, W) bool."""
        rgb = validate.rgb_image(rgb, self.name)
        axis = self.color.astype(np.float32) - self.background
        along = (rgb.astype(np.float32) - self.background) @ axis
        return along > 0.5 * float(axis @ axis)
