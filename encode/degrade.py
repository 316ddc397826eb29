"""Seeded image degradations for the restoration tasks (input = degraded, target = clean).

Each function takes a clean (H, W, 3) uint8 sRGB image and a seed and returns the degraded
uint8 image plus the parameters it drew (stored in the sample's metadata):

- `denoise`: heteroscedastic sensor noise in linear light: x + N(0, read^2 + shot * x), with
  read noise sigma in [2, 25]/255 and shot gain in [0, 0.02], then back to sRGB (the noise model
  of the camera-pipeline literature, e.g. Brooks et al. 2019 "Unprocessing Images").
- `lowlight`: exposure scaled by a factor in [0.03, 0.25] in linear light, a mild gamma shift, then
  the same sensor noise at a higher read level (dark images are noisy) and 8-bit quantization,
  so lost shadow detail must be hallucinated plausibly (as LOL-style pairs require).
- `derain`: 1-3 layers of rain streaks (sparse drops motion-blurred by a line kernel of length
  8-40 px at an angle within +-25 degrees of vertical), screen-blended with brightness 0.5-0.9,
  plus a faint haze veil (rain-streak synthesis of Rain100L/H style datasets).

Pure numpy + scipy; deterministic from the seed.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy import ndimage

from formats.registry import Registry

Degradation = Callable[[np.ndarray, int], tuple[np.ndarray, dict[str, Any]]]
DEGRADATIONS: Registry[Degradation] = Registry("degradation")


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


# Lookup tables: the transfer functions' powers dominate the degradations' cost at 512 px.
_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
_LUT_SIZE = 1 << 16
_TO_SRGB = linear_to_srgb((np.arange(_LUT_SIZE) + 0.5) / _LUT_SIZE).astype(np.float32)


def _linear(image: np.ndarray) -> np.ndarray:
    """uint8 sRGB -> float32 linear (exact, by table)."""
    return _TO_LINEAR[image]


def _srgb(lin: np.ndarray) -> np.ndarray:
    """float linear -> float32 sRGB in [0, 1], by a 65,536-entry table (error < 1e-4 before 8-bit rounding)."""
    idx = np.clip(lin * _LUT_SIZE, 0, _LUT_SIZE - 1).astype(np.int32)
    return _TO_SRGB[idx]


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _sensor_noise(lin: np.ndarray, rng: np.random.Generator, read: float, shot: float) -> np.ndarray:
    std = np.sqrt(np.float32(read ** 2) + np.float32(shot) * np.maximum(lin, 0.0))
    return lin + rng.standard_normal(lin.shape, dtype=np.float32) * std


def _check(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"degradations take (H, W, 3) uint8 images, got {image.shape} {image.dtype}")
    return image.astype(np.float32) * np.float32(1 / 255)


@DEGRADATIONS.register("denoise")
def denoise(image: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    rng = np.random.default_rng([seed, 1])
    read, shot = float(rng.uniform(2, 25) / 255), float(rng.uniform(0.0, 0.02))
    _check(image)
    out = _srgb(_sensor_noise(_linear(image), rng, read, shot))
    return _to_uint8(out), {"read_sigma": read, "shot_gain": shot}


@DEGRADATIONS.register("lowlight")
def lowlight(image: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    rng = np.random.default_rng([seed, 2])
    exposure, gamma = float(rng.uniform(0.03, 0.25)), float(rng.uniform(0.9, 1.3))
    read, shot = float(rng.uniform(0.5, 4) / 255), float(rng.uniform(0.0, 0.004))
    _check(image)
    lin = np.power(_linear(image) * np.float32(exposure), np.float32(gamma))
    out = _srgb(_sensor_noise(lin, rng, read, shot))
    return _to_uint8(out), {"exposure": exposure, "gamma": gamma, "read_sigma": read, "shot_gain": shot}


def _line_kernel(length: int, angle: float) -> np.ndarray:
    """A normalized anti-aliased line of `length` px at `angle` radians from vertical."""
    size = length | 1
    k = np.zeros((size, size), np.float32)
    c = size // 2
    t = np.linspace(-length / 2, length / 2, 4 * length)
    ys, xs = c + t * np.cos(angle), c + t * np.sin(angle)
    np.add.at(k, (np.clip(np.rint(ys).astype(int), 0, size - 1), np.clip(np.rint(xs).astype(int), 0, size - 1)), 1.0)
    return k / k.sum()


@DEGRADATIONS.register("derain")
def derain(image: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    rng = np.random.default_rng([seed, 3])
    x = _check(image)
    h, w = x.shape[:2]
    angle = float(np.deg2rad(rng.uniform(-25, 25)))
    layers = int(rng.integers(1, 4))
    rain = np.zeros((h, w), np.float32)
    for _ in range(layers):
        density = rng.uniform(0.002, 0.02)
        length = int(rng.integers(8, 41))
        drops = (rng.random((h, w)) < density).astype(np.float32) * rng.uniform(0.6, 1.0, (h, w)).astype(np.float32)
        streaks = ndimage.convolve(drops, _line_kernel(length, angle + rng.normal(0, 0.05)), mode="wrap")
        rain = np.maximum(rain, streaks / max(float(streaks.max()), 1e-6))
    brightness = float(rng.uniform(0.5, 0.9))
    haze = float(rng.uniform(0.0, 0.15))
    alpha = np.clip(rain * brightness, 0.0, 1.0)[..., None]
    out = 1.0 - (1.0 - x) * (1.0 - alpha)  # screen blend: streaks only brighten
    out = out * (1 - haze) + haze * 0.85
    return _to_uint8(out), {"angle_deg": float(np.rad2deg(angle)), "layers": layers, "brightness": brightness,
                            "haze": haze}


def degrade(kind: str, image: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Apply degradation `kind` to `image`, seeded; returns the degraded image and the drawn parameters."""
    return DEGRADATIONS.get(kind)(image, seed)
