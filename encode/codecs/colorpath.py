"""Piecewise-linear paths through the RGB cube, used to draw a scalar as a color.

A path is a polyline of axis-aligned segments between integer RGB points, so every integer
step along it is an exact 8-bit color: a path of L steps has L + 1 distinguishable levels.
Decoding projects a (possibly noisy) color onto the nearest point of the path, so a small
color error moves the decoded value a little along the path, never across to a far part.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

_BLACK, _WHITE = (0, 0, 0), (255, 255, 255)


@dataclass(frozen=True)
class ColorPath:
    """An axis-aligned polyline through the RGB cube with a reserved off-path color.

    Attributes:
        name: registry name.
        vertices: (V, 3) integer RGB vertices; consecutive vertices differ in one channel.
        reserved: the color that marks "invalid"; it must lie far from every path point.
    """

    name: str
    vertices: tuple[tuple[int, int, int], ...]
    reserved: tuple[int, int, int]

    def __post_init__(self) -> None:
        v = np.asarray(self.vertices, dtype=np.int64)
        if v.ndim != 2 or v.shape[1] != 3 or len(v) < 2:
            raise ValueError(f"path {self.name!r}: vertices must be (V>=2, 3), got {v.shape}")
        if v.min() < 0 or v.max() > 255:
            raise ValueError(f"path {self.name!r}: vertices must lie in [0, 255]")
        moves = np.count_nonzero(np.diff(v, axis=0), axis=1)
        if np.any(moves != 1):
            raise ValueError(f"path {self.name!r}: every segment must change exactly one channel")

    @functools.cached_property
    def segment_lengths(self) -> np.ndarray:
        return np.abs(np.diff(np.asarray(self.vertices, np.int64), axis=0)).sum(axis=1)

    @property
    def steps(self) -> int:
        """Number of integer steps L along the path (levels = L + 1)."""
        return int(self.segment_lengths.sum())

    @functools.cached_property
    def levels(self) -> np.ndarray:
        """(L + 1, 3) uint8: the exact color of every level, from the start to the end."""
        v = np.asarray(self.vertices, np.int64)
        out = [v[:1]]
        for a, b, n in zip(v[:-1], v[1:], self.segment_lengths):
            frac = np.arange(1, n + 1)[:, None] / n
            out.append(np.rint(a + (b - a) * frac).astype(np.int64))
        return np.concatenate(out).astype(np.uint8)

    def project(self, colors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest path point of each color.

        Args:
            colors: (N, 3) float colors in [0, 255].

        Returns:
            position: (N,) float32 in [0, L], the arc length of the nearest path point.
            distance: (N,) float32 Euclidean color distance to it.
        """
        p = np.asarray(colors, np.float32)
        v = np.asarray(self.vertices, np.float32)
        starts = np.concatenate([[0], np.cumsum(self.segment_lengths)[:-1]])
        best_d2 = np.full(len(p), np.inf, np.float32)
        best_pos = np.zeros(len(p), np.float32)
        channels = [np.ascontiguousarray(p[:, c]) for c in range(3)]
        squared: dict[tuple[int, float], np.ndarray] = {}  # (channel, value) -> (p_c - value)^2

        def sq(c: int, value: float) -> np.ndarray:
            if (c, value) not in squared:
                squared[c, value] = np.square(channels[c] - value)
            return squared[c, value]

        for a, b, n, s0 in zip(v[:-1], v[1:], self.segment_lengths, starts):
            axis = int(np.flatnonzero(b - a)[0])
            direction = np.float32(np.sign(b[axis] - a[axis]))
            along = np.clip((channels[axis] - a[axis]) * direction, 0, n)
            d2 = np.square(channels[axis] - (a[axis] + direction * along))
            for other in {0, 1, 2} - {axis}:
                d2 += sq(other, float(a[other]))
            closer = d2 < best_d2
            np.copyto(best_d2, d2, where=closer)
            np.copyto(best_pos, along + np.float32(s0), where=closer)
        return best_pos, np.sqrt(best_d2)

    def min_distance_to(self, color: tuple[int, int, int]) -> float:
        """Distance from `color` to the path (used to check the reserved color)."""
        return float(self.project(np.asarray([color], np.float64))[1][0])


class DiagonalPath(ColorPath):
    """The gray staircase from black to white: level k has channel sum k (3 x 255 steps, 766
    levels), e.g. (1, 0, 0), (1, 1, 0), (1, 1, 1), (2, 1, 1).

    Decoding is linear, as Marigold decodes its gray depth by the channel mean: the position of
    a color is its channel sum (clipped to [0, 765]) and its distance is the distance to the gray
    diagonal. So the decoded value of an average of colors is the average of their decoded values,
    which is what a generator's blur and uncertainty produce, and no color is ever far from a level.
    """

    def project(self, colors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = np.asarray(colors, np.float32)
        total = p.sum(axis=1)
        pos = np.clip(total, 0, self.steps)
        foot = (pos / np.float32(3.0))[:, None]
        return pos.astype(np.float32), np.sqrt(np.square(p - foot).sum(axis=1)).astype(np.float32)


def _staircase() -> tuple[tuple[int, int, int], ...]:
    """(0,0,0), (1,0,0), (1,1,0), (1,1,1), (2,1,1), ... (255,255,255): one channel per step."""
    return tuple(((k + 2) // 3, (k + 1) // 3, k // 3) for k in range(3 * 255 + 1))


def _snake27() -> tuple[tuple[int, int, int], ...]:
    """Boustrophedon Hamiltonian path over the 3x3x3 grid {0, 128, 255}^3, black to white."""
    grid = (0, 128, 255)
    plane = [(0, 0), (1, 0), (2, 0), (2, 1), (1, 1), (0, 1), (0, 2), (1, 2), (2, 2)]
    out = []
    for b in range(3):
        order = plane if b % 2 == 0 else plane[::-1]
        out.extend((grid[r], grid[g], grid[b]) for r, g in order)
    return tuple(out)


PATHS: dict[str, ColorPath] = {
    # The 7-edge Hamiltonian walk on the cube's edges used by Vision Banana:
    # black, red, yellow, green, cyan, blue, magenta, white. 1,785 steps, 1,786 levels.
    # Non-adjacent edges are >= 255 apart; the reserved mid-gray is 180 from every edge.
    "cube7": ColorPath(
        name="cube7",
        vertices=(_BLACK, (255, 0, 0), (255, 255, 0), (0, 255, 0), (0, 255, 255),
                  (0, 0, 255), (255, 0, 255), _WHITE),
        reserved=(128, 128, 128),
    ),
    # A longer path through the cube's interior: 26 segments, 3,315 steps. Non-adjacent
    # segments are >= 127 apart; the reserved color sits at a cell center, 90 from the path.
    "snake27": ColorPath(name="snake27", vertices=_snake27(), reserved=(64, 192, 64)),
    # The "hot" ramp black, red, yellow, white: 3 edges, 765 steps, 766 levels, luminance rising
    # monotonically along it. Colors of nearby levels average to a color near the average level
    # (the path never folds back), which is what a generator's blur and uncertainty produce.
    # The reserved blue is 255 from every edge.
    "hot": ColorPath(name="hot", vertices=(_BLACK, (255, 0, 0), (255, 255, 0), _WHITE), reserved=(0, 0, 255)),
    # The gray staircase (DiagonalPath): 765 steps, 766 levels, decoded linearly by the channel
    # sum. The reserved magenta is 208 from the gray diagonal.
    "gray": DiagonalPath(name="gray", vertices=_staircase(), reserved=(255, 0, 255)),
}


def get_path(name: str) -> ColorPath:
    try:
        return PATHS[name]
    except KeyError as err:
        raise ValueError(f"unknown color path {name!r}; known: {sorted(PATHS)}") from err
