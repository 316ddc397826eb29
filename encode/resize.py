"""Resolution policy: bring an image and its dense targets to the training size together.

Two modes, both producing a `size` x `size` square:

- `crop` (default): crop the largest centered (or seeded-random) square of whole source pixels,
  then scale it to `size`. No padding pixels; the image's border beyond the square is lost.
- `pad`: scale the whole image so its long side is `size` and pad the short side evenly
  (input black; depth NaN, normals NaN, ids 0, masks False: padding is *invalid*, never a value).

The input image is resampled with an antialiasing filter (Pillow bicubic over the crop box). Every
target is resampled by **nearest neighbour at pixel centers**: a target pixel is always one
source pixel's exact value, so depth is never interpolated across an occlusion edge (no flying
pixels), normals stay unit vectors and ids never blend into other ids. The intrinsics follow
the same pixel-center mapping: x' = (x + 0.5 - x0) * s - 0.5 + pad.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

MODES = ("crop", "pad")


@dataclass(frozen=True)
class ResizePolicy:
    size: int = 256
    mode: str = "crop"
    random_crop: bool = False  # crop position drawn from the sample seed instead of centered

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"resize mode {self.mode!r} not in {list(MODES)}")
        if not 8 <= self.size <= 8192:
            raise ValueError(f"resize size must be in [8, 8192], got {self.size}")


@dataclass(frozen=True)
class Geometry:
    """Source crop box (whole pixels) -> scaled -> placed at (pad_x, pad_y) in a size x size canvas."""
    x0: int
    y0: int
    crop_w: int
    crop_h: int
    out_w: int  # scaled crop size, before padding
    out_h: int
    pad_x: int
    pad_y: int
    size: int

    @property
    def scale(self) -> tuple[float, float]:
        return self.out_w / self.crop_w, self.out_h / self.crop_h


def plan(height: int, width: int, policy: ResizePolicy, seed: int = 0) -> Geometry:
    """The geometry that maps a `height` x `width` source to `policy.size` squared."""
    if height < 1 or width < 1:
        raise ValueError(f"cannot resize an empty image ({height}x{width})")
    n = policy.size
    if policy.mode == "crop":
        m = min(height, width)
        if policy.random_crop:
            rng = np.random.default_rng(seed)
            x0, y0 = int(rng.integers(0, width - m + 1)), int(rng.integers(0, height - m + 1))
        else:
            x0, y0 = (width - m) // 2, (height - m) // 2
        return Geometry(x0, y0, m, m, n, n, 0, 0, n)
    s = n / max(height, width)
    out_w, out_h = max(1, min(n, round(width * s))), max(1, min(n, round(height * s)))
    return Geometry(0, 0, width, height, out_w, out_h, (n - out_w) // 2, (n - out_h) // 2, n)


def resize_image(image: np.ndarray, geom: Geometry) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8, antialiased; padding black."""
    box = (geom.x0, geom.y0, geom.x0 + geom.crop_w, geom.y0 + geom.crop_h)
    scaled = np.asarray(Image.fromarray(image).resize((geom.out_w, geom.out_h), Image.BICUBIC, box=box))
    return _place(scaled, geom, 0)


def _source_index(n_out: int, start: int, n_crop: int) -> np.ndarray:
    """Nearest source index for each output pixel center."""
    centers = (np.arange(n_out) + 0.5) * (n_crop / n_out)
    return start + np.minimum(centers.astype(np.int64), n_crop - 1)


def resize_nearest(target: np.ndarray, geom: Geometry, fill) -> np.ndarray:
    """(H, W[, C]) target -> (size, size[, C]) by nearest neighbour at pixel centers; padding `fill`."""
    ys = _source_index(geom.out_h, geom.y0, geom.crop_h)
    xs = _source_index(geom.out_w, geom.x0, geom.crop_w)
    return _place(target[ys[:, None], xs[None, :]], geom, fill)


def _place(scaled: np.ndarray, geom: Geometry, fill) -> np.ndarray:
    if geom.out_w == geom.size and geom.out_h == geom.size:
        return np.ascontiguousarray(scaled)
    canvas = np.full((geom.size, geom.size) + scaled.shape[2:], fill, dtype=scaled.dtype)
    canvas[geom.pad_y:geom.pad_y + geom.out_h, geom.pad_x:geom.pad_x + geom.out_w] = scaled
    return canvas


def update_intrinsics(K: np.ndarray, geom: Geometry) -> np.ndarray:
    """K (pixels, pixel centers at integer coordinates) for the resized image."""
    sx, sy = geom.scale
    K2 = np.asarray(K, dtype=np.float64).copy()
    K2[0, 0] *= sx
    K2[0, 1] *= sx
    K2[1, 1] *= sy
    K2[0, 2] = (K2[0, 2] + 0.5 - geom.x0) * sx - 0.5 + geom.pad_x
    K2[1, 2] = (K2[1, 2] + 0.5 - geom.y0) * sy - 0.5 + geom.pad_y
    return K2
