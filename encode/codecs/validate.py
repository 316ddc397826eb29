"""Boundary checks shared by the codecs: a bad array gets a ValueError that names the problem."""

from __future__ import annotations

import numpy as np


def rgb_image(rgb: object, codec: str) -> np.ndarray:
    """Check a codec's RGB input: a uint8 array of shape (H, W, 3)."""
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"{codec}.decode: expected a numpy uint8 (H, W, 3) array, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"{codec}.decode: expected dtype uint8, got {rgb.dtype}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"{codec}.decode: expected shape (H, W, 3), got {rgb.shape}")
    return rgb


def float_map(x: object, codec: str, channels: int | None = None) -> np.ndarray:
    """Check a float target of shape (H, W) (channels=None) or (H, W, channels)."""
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{codec}.encode: expected a numpy float array, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise ValueError(f"{codec}.encode: expected a float dtype, got {x.dtype}")
    want = "(H, W)" if channels is None else f"(H, W, {channels})"
    ok = x.ndim == 2 if channels is None else (x.ndim == 3 and x.shape[2] == channels)
    if not ok or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{codec}.encode: expected shape {want}, got {x.shape}")
    return x


def id_map(x: object, codec: str, max_id: int) -> np.ndarray:
    """Check an integer id map of shape (H, W) with values in [0, max_id]."""
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{codec}.encode: expected a numpy integer (H, W) array, got {type(x).__name__}")
    if x.dtype.kind not in "ui" and x.dtype != np.bool_:
        raise ValueError(f"{codec}.encode: expected an integer dtype, got {x.dtype}")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{codec}.encode: expected shape (H, W), got {x.shape}")
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi > max_id:
        raise ValueError(f"{codec}.encode: ids must lie in [0, {max_id}], got values in [{lo}, {hi}]")
    return x
