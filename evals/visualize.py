"""Values -> pictures for the report's sample grid (pure numpy + matplotlib colormaps)."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps

from encode.sample import TaskSample
from evals.scoring import codec_of

INVALID_GRAY = np.array([128, 128, 128], np.uint8)
# Error-map color scale per task: (vmax, label). Fixed, so grids of different models compare.
ERROR_SCALE = {"depth": (0.5, "|pred - truth| / truth, 0 to 0.5"), "normals": (45.0, "angle, 0 to 45 deg"),
               "semantic": (1.0, "wrong class"), "instance": (1.0, "foreground disagrees"),
               "referring": (1.0, "wrong pixel"), "t2i": (0.5, "mean |RGB diff|, 0 to 0.5"),
               "edit": (0.5, "mean |RGB diff|, 0 to 0.5")}


def _colormap(values: np.ndarray, lo: float, hi: float, name: str) -> np.ndarray:
    t = np.clip((values - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    return (colormaps[name](np.nan_to_num(t))[..., :3] * 255).astype(np.uint8)


def depth_range(truth: np.ndarray) -> tuple[float, float]:
    """log-depth display range from the truth's finite positive values (2nd..98th percentile)."""
    ok = truth[np.isfinite(truth) & (truth > 0)]
    if ok.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(np.log(ok), [2, 98])
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def show_depth(depth: np.ndarray, rng: tuple[float, float]) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        img = _colormap(np.log(np.maximum(depth, 1e-6)), rng[0], rng[1], "turbo")
    img[np.isposinf(depth)] = 255          # sky / no hit: white
    img[np.isnan(depth)] = INVALID_GRAY
    return img


def show_normals(n: np.ndarray) -> np.ndarray:
    img = np.clip((1.0 - np.nan_to_num(n)) / 2.0 * 255.0, 0, 255).astype(np.uint8)
    img[~np.isfinite(n).all(-1)] = INVALID_GRAY
    return img


def show_values(sample: TaskSample, values: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """A decoded prediction or a truth map as an RGB picture (depth on the truth's range)."""
    task = sample.task
    if task == "depth":
        return show_depth(values, depth_range(truth))
    if task == "normals":
        return show_normals(values)
    if task in ("semantic", "instance"):
        palette = codec_of(sample).palette
        return palette[np.minimum(values.astype(np.int64), len(palette) - 1)]
    if task == "referring":
        return np.repeat((values.astype(bool) * 255).astype(np.uint8)[..., None], 3, axis=2)
    return values  # generation: already an image


def show_error(task: str, error: np.ndarray) -> np.ndarray:
    vmax = ERROR_SCALE[task][0]
    img = _colormap(error, 0.0, vmax, "inferno")
    img[np.isnan(error)] = 0
    return img
