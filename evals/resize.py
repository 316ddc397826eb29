"""Bring a decoded prediction to the raw target's size without skewing it.

Policy (the evaluator applies it after decoding, so values are resampled, never colors: a
blend of two depth colors is not a depth in between):
- The prediction must have the truth's aspect ratio (within ASPECT_TOLERANCE). A prediction of
  another shape is a `wrong_size` failure, never stretched.
- Ids and masks (semantic, instance, referring) use nearest neighbor: labels do not blend.
- Depth and normals use bilinear interpolation (pixel centers aligned, as
  torch's `align_corners=False`) where all four source neighbors are finite; where any is +inf
  or NaN (sky, invalid) the nearest neighbor is taken, so no value is invented across a
  foreground / sky edge. Normals are renormalized after interpolation.
"""

from __future__ import annotations

import numpy as np

from evals.failure import EvalFailure

ASPECT_TOLERANCE = 0.02
KINDS = ("nearest", "bilinear")


def check_aspect(pred_hw: tuple[int, int], target_hw: tuple[int, int]) -> None:
    """Raise EvalFailure('wrong_size') unless the two sizes share an aspect ratio."""
    (ph, pw), (th, tw) = pred_hw, target_hw
    if min(ph, pw, th, tw) <= 0:
        raise EvalFailure("wrong_size", f"empty image: prediction {ph}x{pw}, truth {th}x{tw}")
    ratio = (pw / ph) / (tw / th)
    if abs(ratio - 1.0) > ASPECT_TOLERANCE:
        raise EvalFailure("wrong_size", f"prediction is {ph}x{pw} (HxW), truth {th}x{tw}: aspect ratios differ "
                                        f"by {abs(ratio - 1):.1%} (> {ASPECT_TOLERANCE:.0%}); refusing to stretch")


def _source_coords(n_out: int, n_in: int) -> np.ndarray:
    return np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)


def resize_nearest(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, ...) -> (H, W, ...) by nearest neighbor (pixel centers)."""
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
    return np.where(finite, blend, resize_nearest(v, size)).astype(values.dtype)


def resize_prediction(values: np.ndarray, size: tuple[int, int], kind: str) -> np.ndarray:
    """Resize a decoded value map to `size` (H, W) by `kind`; the same size is returned as is."""
    if kind not in KINDS:
        raise ValueError(f"resize_prediction: kind must be one of {list(KINDS)}, got {kind!r}")
    if values.shape[:2] == tuple(size):
        return values
    if kind == "nearest":
        return resize_nearest(values, size)
    return resize_bilinear_finite(values, size)
