"""The one resize module: every resampling of images and targets in encode, train and evals.

Encode (`plan` + `resize_image` / `resize_nearest`): bring an image and its dense targets to the
training size together. Two modes, both producing a `size` x `size` square:

- `crop` (default): crop the largest centered (or seeded-random) square of whole source pixels,
  then scale it to `size`. No padding pixels; the image's border beyond the square is lost.
- `pad`: scale the whole image so its long side is `size` and pad the short side evenly
  (input black; depth NaN, normals NaN, ids 0, masks False: padding is *invalid*, never a value).

The input image is resampled with an antialiasing filter (Pillow bicubic over the crop box). Every
target is resampled by **nearest neighbour at pixel centers**: a target pixel is always one
source pixel's exact value, so depth is never interpolated across an occlusion edge (no flying
pixels), normals stay unit vectors and ids never blend into other ids. The intrinsics follow
the same pixel-center mapping: x' = (x + 0.5 - x0) * s - 0.5 + pad.

Train (`fit_square`): a task sample at another size than the model's is center-cropped to a
square and resized, photos bilinear, codec-colored vision targets nearest (a blend of two
palette colors is another class).

Evals (`aspect_mismatch`, `resize_prediction`): a decoded prediction is brought to the raw
target's size without skewing it. Values are resampled after decoding, never colors (a blend of
two depth colors is not a depth in between):
- The prediction must have the truth's aspect ratio (within ASPECT_TOLERANCE). A prediction of
  another shape is a `wrong_size` failure, never stretched.
- Ids and masks (semantic, instance, referring) use nearest neighbor: labels do not blend.
- Depth and normals use bilinear interpolation (pixel centers aligned, as
  torch's `align_corners=False`) where all four source neighbors are finite; where any is +inf
  or NaN (sky, invalid) the nearest neighbor is taken, so no value is invented across a
  foreground / sky edge. The caller renormalizes normals after interpolation.
Generated photos are compared at a common size with `resize_rgb` (bilinear).

(annotate downscales web photos itself, Lanczos, in `annotate/imageio.py`: annotate may not
import encode.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

# ---------------------------------------------------------------- encode: image and targets to the training size

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
    """(H, W[, C]) target -> (size, size[, C]) through `geom`'s crop and scale, by nearest neighbour at
    pixel centers; padding `fill`."""
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


# ---------------------------------------------------------------- train: samples at the model resolution


def _square_crop(img: Image.Image) -> Image.Image:
    w, h = img.size
    m = min(w, h)
    x0, y0 = (w - m) // 2, (h - m) // 2
    return img.crop((x0, y0, x0 + m, y0 + m)) if (w, h) != (m, m) else img


def fit_square(image: np.ndarray, resolution: int, nearest: bool) -> np.ndarray:
    """(H, W, 3) uint8 -> (R, R, 3) uint8: center square crop, then resize (nearest or bilinear)."""
    if image.shape[:2] == (resolution, resolution):
        return image
    img = _square_crop(Image.fromarray(image))
    return np.asarray(img.resize((resolution, resolution), Image.NEAREST if nearest else Image.BILINEAR))


# ---------------------------------------------------------------- evals: decoded predictions at the truth's size

ASPECT_TOLERANCE = 0.02
PREDICTION_KINDS = ("nearest", "bilinear")


def aspect_mismatch(pred_hw: tuple[int, int], target_hw: tuple[int, int]) -> str | None:
    """Why `pred_hw` cannot be resized to `target_hw` (empty, or another aspect ratio); None if it can."""
    (ph, pw), (th, tw) = pred_hw, target_hw
    if min(ph, pw, th, tw) <= 0:
        return f"empty image: prediction {ph}x{pw}, truth {th}x{tw}"
    ratio = (pw / ph) / (tw / th)
    if abs(ratio - 1.0) > ASPECT_TOLERANCE:
        return (f"prediction is {ph}x{pw} (HxW), truth {th}x{tw}: aspect ratios differ "
                f"by {abs(ratio - 1):.1%} (> {ASPECT_TOLERANCE:.0%}); refusing to stretch")
    return None


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) uint8 photo -> (H, W, 3) uint8, bilinear (Pillow), `size` = (H, W): generated vs real images."""
    return np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), Image.BILINEAR))


def _source_coords(n_out: int, n_in: int) -> np.ndarray:
    return np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)


def resize_values_nearest(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, ...) -> (H, W, ...) by nearest neighbor (pixel centers); `size` = (H, W), no crop, no padding."""
    h, w = values.shape[:2]
    rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(np.int64), w - 1)
    return values[rows[:, None], cols[None, :]]


def resize_bilinear_finite(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear where the 4 neighbors are finite, nearest elsewhere. (h, w) or (h, w, C) float."""
    h, w = values.shape[:2]
    y, x = _source_coords(size[0], h), _source_coords(size[1], w)
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (y - y0)[:, None], (x - x0)[None, :]
    v = values.astype(np.float64)
    corners = [v[y0[:, None], x0[None, :]], v[y0[:, None], x1[None, :]], v[y1[:, None], x0[None, :]],
               v[y1[:, None], x1[None, :]]]
    if v.ndim == 3:
        wy, wx = wy[..., None], wx[..., None]
    with np.errstate(invalid="ignore"):
        blend = ((1 - wy) * (1 - wx) * corners[0] + (1 - wy) * wx * corners[1]
                 + wy * (1 - wx) * corners[2] + wy * wx * corners[3])
    finite = np.logical_and.reduce([np.isfinite(c) for c in corners])
    if v.ndim == 3:
        finite = finite.all(axis=-1, keepdims=True)
    return np.where(finite, blend, resize_values_nearest(v, size)).astype(values.dtype)


def resize_prediction(values: np.ndarray, size: tuple[int, int], kind: str) -> np.ndarray:
    """Resize a decoded value map to `size` (H, W) by `kind`; the same size is returned as is."""
    if kind not in PREDICTION_KINDS:
        raise ValueError(f"resize_prediction: kind must be one of {list(PREDICTION_KINDS)}, got {kind!r}")
    if values.shape[:2] == tuple(size):
        return values
    if kind == "nearest":
        return resize_values_nearest(values, size)
    return resize_bilinear_finite(values, size)
