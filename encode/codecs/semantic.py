"""Semantic class ids <-> RGB through a palette of maximally distinct colors.

Class id k is drawn in palette color k (id 0, unlabeled, is black). The class -> color map is
part of the codec's params (`palette`) and of the task prompt. Decoding assigns each pixel
the nearest palette color within `max_distance` (default: half the palette's minimum
pairwise distance, so every color has one answer), else unlabeled.

Bound: exact round trip for up to 256 classes (tests/encode/test_semantic.py); pixel
accuracy >= 99% for 32 classes under Gaussian noise of sigma 8/255.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from encode.codecs import validate
from encode.codecs.palette import distinct_colors, exact_indices, min_pairwise_distance, nearest_indices
from encode.codecs.registry import register


def _palette_param(palette: Sequence[Sequence[int]] | None, size: int, codec: str) -> np.ndarray:
    if palette is None:
        return distinct_colors(size)
    arr = np.asarray(palette)
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] != size:
        raise ValueError(f"{codec}: palette must be a list of {size} RGB triples, got shape {arr.shape}")
    if arr.min() < 0 or arr.max() > 255:
        raise ValueError(f"{codec}: palette values must lie in [0, 255]")
    if len(np.unique(arr, axis=0)) != size:
        raise ValueError(f"{codec}: palette colors must be distinct")
    return arr.astype(np.uint8)


@register("semantic")
class SemanticCodec:
    """(H, W) integer class ids in [0, num_classes] <-> RGB; 0 = unlabeled (black)."""

    name = "semantic"
    version = 1

    def __init__(self, num_classes: int = 255, palette: Sequence[Sequence[int]] | None = None,
                 max_distance: float | None = None) -> None:
        if not 1 <= int(num_classes) <= 1023:
            raise ValueError(f"semantic: num_classes must be in [1, 1023], got {num_classes}")
        self.num_classes = int(num_classes)
        self.palette = _palette_param(palette, self.num_classes + 1, self.name)
        self.min_distance = min_pairwise_distance(self.palette)
        self.max_distance = float(self.min_distance / 2 if max_distance is None else max_distance)
        if self.max_distance <= 0:
            raise ValueError(f"semantic: max_distance must be > 0, got {self.max_distance}")

    @property
    def params(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "palette": self.palette.tolist(),
                "max_distance": self.max_distance}

    def encode(self, ids: np.ndarray) -> np.ndarray:
        ids = validate.id_map(ids, self.name, self.num_classes)
        return self.palette[ids.astype(np.intp)]

    def decode(self, rgb: np.ndarray) -> np.ndarray:
        """RGB -> (H, W) uint16 class ids."""
        rgb = validate.rgb_image(rgb, self.name)
        idx = exact_indices(rgb, self.palette)
        miss = idx < 0
        if miss.any():
            idx[miss] = nearest_indices(rgb[miss][None], self.palette, self.max_distance)[0]
        return np.maximum(idx, 0).astype(np.uint16)
