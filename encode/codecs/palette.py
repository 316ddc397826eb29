"""Maximally distinct color palettes and nearest-palette-color decoding.

The palette is a greedy farthest-point sequence in RGB: black first (background / unlabeled),
then each next color is the grid color farthest from all colors chosen so far. The sequence
has the prefix property: the first K colors are the palette for K - 1 classes, so adding
classes never recolors existing ones.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
from scipy.spatial import cKDTree

from encode.codecs.pixels import pack_rgb, unpack_rgb

MAX_COLORS = 1024
_GRID = np.arange(0, 256, 17)  # 16 values per channel, 0 and 255 included


@functools.lru_cache(maxsize=1)
def _sequence() -> np.ndarray:
    candidates = np.array(list(itertools.product(_GRID, repeat=3)), np.float64)
    chosen = [0]  # black
    d2 = np.sum(candidates ** 2, axis=1)
    for _ in range(MAX_COLORS - 1):
        nxt = int(np.argmax(d2))  # first index among ties: deterministic
        chosen.append(nxt)
        d2 = np.minimum(d2, np.sum((candidates - candidates[nxt]) ** 2, axis=1))
    return candidates[chosen].astype(np.uint8)


def distinct_colors(n: int) -> np.ndarray:
    """The first `n` colors of the sequence, (n, 3) uint8; index 0 is black."""
    if not 1 <= n <= MAX_COLORS:
        raise ValueError(f"palette size must be in [1, {MAX_COLORS}], got {n}")
    return _sequence()[:n].copy()


def min_pairwise_distance(colors: np.ndarray) -> float:
    """Smallest Euclidean RGB distance between two palette colors."""
    dist, _ = cKDTree(np.asarray(colors, np.float64)).query(np.asarray(colors, np.float64), k=2)
    return float(dist[:, 1].min())


def exact_indices(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Palette index of every pixel whose color is exactly a palette color, else -1."""
    keys = pack_rgb(palette)
    order = np.argsort(keys)
    sorted_keys = keys[order]
    packed = pack_rgb(rgb)
    where = np.clip(np.searchsorted(sorted_keys, packed), 0, len(keys) - 1)
    return np.where(sorted_keys[where] == packed, order[where], -1)


def nearest_indices(rgb: np.ndarray, palette: np.ndarray, max_distance: float) -> np.ndarray:
    """Index of the nearest palette color within `max_distance` of each pixel, else -1.

    Works on the distinct colors of the image, so a clean image costs one sort.
    """
    uniq, inverse = np.unique(pack_rgb(rgb).ravel(), return_inverse=True)
    colors = unpack_rgb(uniq).astype(np.float64)
    dist, idx = cKDTree(palette.astype(np.float64)).query(colors, k=1)
    idx = np.where(dist <= max_distance, idx, -1)
    return idx[inverse].reshape(rgb.shape[:2])
