"""Instance ids <-> RGB: each instance a distinct palette color on a black background.

Instance id k (1..max_instances) is drawn in palette color k; 0 (no instance) is black.
Instance ids are per image: `relabel_instances` compacts arbitrary ids to 1..K first (by
area, so the largest object gets the most distinct color).

Decoding has two paths (`mode`):
- `exact`: every pixel is a palette color (a lossless image): ids are read back exactly.
- `robust`: for generated (noisy) images, following the paper's decoder: pixels within
  `background_distance` (14) of black are background; a first pass finds the palette colors
  drawn as solid parts, then every pixel takes the nearest of those within half their minimum
  distance (at least `max_distance`); connected parts smaller than `min_area_fraction` (2e-4) of the image
  are dropped as speckle; parts that vanish under a 3x3 erosion (one-pixel fringes where two
  instances blend) are dropped; parts of one color merge into one instance.
- `auto` (default): exact when every pixel is a palette color, else robust.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from encode.codecs import validate
from encode.codecs.palette import distinct_colors, exact_indices, min_pairwise_distance, nearest_indices
from encode.codecs.registry import register

_MODES = ("auto", "exact", "robust")


def relabel_instances(ids: np.ndarray, order: str = "area") -> tuple[np.ndarray, dict[int, int]]:
    """Map the nonzero ids of an (H, W) map to 1..K.

    Args:
        ids: integer instance map, 0 = none.
        order: "area" (largest first, ties by id) or "id" (ascending).

    Returns:
        The relabeled uint16 map and {new_id: old_id}.
    """
    if order not in ("area", "id"):
        raise ValueError(f"relabel_instances: order must be 'area' or 'id', got {order!r}")
    uniq, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    nonzero = uniq != 0
    old = uniq[nonzero]
    rank = np.lexsort((old, -counts[nonzero])) if order == "area" else np.arange(len(old))
    new_of_uniq = np.zeros(len(uniq), np.int64)
    new_of_uniq[np.flatnonzero(nonzero)[rank]] = np.arange(1, len(old) + 1)
    relabeled = new_of_uniq[inverse].reshape(ids.shape).astype(np.uint16)
    return relabeled, {int(i + 1): int(old[r]) for i, r in enumerate(rank)}


@register("instance")
class InstanceCodec:
    """(H, W) integer instance ids in [0, max_instances] <-> RGB."""

    name = "instance"
    version = 1

    def __init__(self, max_instances: int = 256, mode: str = "auto", background_distance: float = 14.0,
                 max_distance: float | None = None, min_area_fraction: float = 2e-4) -> None:
        if not 1 <= int(max_instances) <= 1023:
            raise ValueError(f"instance: max_instances must be in [1, 1023], got {max_instances}")
        if mode not in _MODES:
            raise ValueError(f"instance: mode must be one of {_MODES}, got {mode!r}")
        if not 0 <= min_area_fraction < 1:
            raise ValueError(f"instance: min_area_fraction must be in [0, 1), got {min_area_fraction}")
        self.max_instances = int(max_instances)
        self.mode = mode
        self.palette = distinct_colors(self.max_instances + 1)
        self.background_distance = float(background_distance)
        self.max_distance = float(min_pairwise_distance(self.palette) / 2 if max_distance is None else max_distance)
        self.min_area_fraction = float(min_area_fraction)

    @property
    def params(self) -> dict[str, Any]:
        return {"max_instances": self.max_instances, "mode": self.mode,
                "background_distance": self.background_distance, "max_distance": self.max_distance,
                "min_area_fraction": self.min_area_fraction}

    def encode(self, ids: np.ndarray) -> np.ndarray:
        ids = validate.id_map(ids, self.name, self.max_instances)
        return self.palette[ids.astype(np.intp)]

    def decode(self, rgb: np.ndarray) -> np.ndarray:
        """RGB -> (H, W) uint16 instance ids (palette indices; 0 = none)."""
        rgb = validate.rgb_image(rgb, self.name)
        idx = exact_indices(rgb, self.palette)
        if self.mode == "exact" or (self.mode == "auto" and idx.min() >= 0):
            if idx.min() < 0:
                raise ValueError(f"instance.decode(mode='exact'): {int((idx < 0).sum())} pixels are not palette colors")
            return idx.astype(np.uint16)
        return self._decode_robust(rgb)

    def _decode_robust(self, rgb: np.ndarray) -> np.ndarray:
        near_black = np.sum(rgb.astype(np.float32) ** 2, axis=2) <= self.background_distance ** 2
        # Pass 1 finds which palette colors are really drawn (as solid parts); pass 2 snaps every
        # pixel to the nearest of those. The full palette at 256 instances has colors ~38 apart,
        # so noisy pixels snap to wrong neighbors; the colors present are usually far apart.
        first = self._clean(nearest_indices(rgb, self.palette, self.max_distance), near_black)
        present = np.union1d(np.unique(first), [0])
        if len(present) == 1:
            return first
        sub = self.palette[present]
        reach = max(self.max_distance, min_pairwise_distance(sub) / 2)
        idx = nearest_indices(rgb, sub, reach)
        return self._clean(np.where(idx >= 0, present[np.maximum(idx, 0)], -1), near_black)

    def _clean(self, idx: np.ndarray, background: np.ndarray) -> np.ndarray:
        """Drop speckle (parts under `min_area_fraction`) and one-pixel fringes; merge same colors."""
        idx = np.where(background | (idx < 0), 0, idx)
        min_area = self.min_area_fraction * idx.size
        out = np.zeros(idx.shape, np.uint16)
        for k, box in enumerate(ndimage.find_objects(idx), start=1):
            if box is None:
                continue
            mask = idx[box] == k
            parts, n = ndimage.label(mask)
            area = np.bincount(parts.ravel(), minlength=n + 1)
            survives = ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), border_value=1)
            keep = np.zeros(n + 1, bool)
            keep[np.unique(parts[survives])] = True
            keep &= area >= min_area
            keep[0] = False
            out[box][keep[parts]] = k
        return out
