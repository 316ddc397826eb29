"""Synthetic composites with known masks: paste a cut-out onto a background, keep the cut as truth.

Used by tests and bench/annotate.py to measure a labeler against exact masks (IoU), since web
images come without ground truth. Pure numpy + Pillow resizing; the caller brings the images.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def paste(background: np.ndarray, foreground: np.ndarray, mask: np.ndarray, height_frac: float,
          center: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Paste `foreground` where `mask` is True onto `background`.

    Args:
        background: (H, W, 3) uint8.
        foreground: (h, w, 3) uint8, resized with `mask` so the cut-out is `height_frac` * H tall.
        mask: (h', w') bool cut-out shape (any size; nearest-neighbour resized, so the truth stays binary).
        height_frac: cut-out height over image height, in (0, 1].
        center: (x, y) of the cut-out's center as image fractions; clamped so it stays inside.

    Returns:
        (composite (H, W, 3) uint8, truth (H, W) bool).
    """
    if not 0 < height_frac <= 1:
        raise ValueError(f"height_frac must be in (0, 1], got {height_frac}")
    H, W = background.shape[:2]
    h = max(1, int(round(H * height_frac)))
    w = min(W, max(1, int(round(mask.shape[1] * h / mask.shape[0]))))
    cut = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.Resampling.NEAREST)) > 127
    fg = np.asarray(Image.fromarray(foreground).resize((w, h), Image.Resampling.LANCZOS))
    y0 = min(max(int(round(center[1] * H - h / 2)), 0), H - h)
    x0 = min(max(int(round(center[0] * W - w / 2)), 0), W - w)
    out, truth = background.copy(), np.zeros((H, W), bool)
    out[y0:y0 + h, x0:x0 + w][cut] = fg[cut]
    truth[y0:y0 + h, x0:x0 + w] = cut
    return out, truth


def ellipse_mask(height: int, width: int) -> np.ndarray:
    """A filled ellipse touching the edges of a (height, width) box."""
    yy, xx = np.mgrid[:height, :width]
    return ((xx + 0.5 - width / 2) / (width / 2)) ** 2 + ((yy + 0.5 - height / 2) / (height / 2)) ** 2 <= 1


def tint(grey: np.ndarray, rgb: tuple[float, float, float]) -> np.ndarray:
    """A greyscale texture (H, W) uint8 colored by per-channel gains in [0, 1]."""
    return np.clip(grey.astype(np.float32)[..., None] * np.asarray(rgb, np.float32), 0, 255).astype(np.uint8)


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.count_nonzero(pred | truth)
    return float(np.count_nonzero(pred & truth) / union) if union else 1.0
