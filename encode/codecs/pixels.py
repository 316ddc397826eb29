"""Packing 8-bit RGB pixels into one integer, the key of every color lookup table."""

from __future__ import annotations

import numpy as np


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> (...) uint32 r << 16 | g << 8 | b."""
    packed = rgb[..., 0].astype(np.uint32)
    packed <<= 8
    packed |= rgb[..., 1]
    packed <<= 8
    packed |= rgb[..., 2]
    return packed


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """Inverse of `pack_rgb`: (...) integer -> (..., 3) uint8."""
    packed = np.asarray(packed)
    return np.stack([packed >> 16, (packed >> 8) & 255, packed & 255], axis=-1).astype(np.uint8)
