"""Generation preserved: automatic measures for text-to-image and editing samples, and win rates.

Instruction tuning on vision targets must not cost the generator its original skill. We
compare the tuned checkpoint with its base on held-out generation samples, sample by sample
(same prompt, same seed), and report how often the tuned model is at least as close to the
real image as the base (a win rate with a 95% Wilson interval; ties count half).

Measures, and why:
- `feature_distance` (t2i and edit): L2 distance between hand-built image statistics of the
  generated and the real image: a joint color histogram (4^3 bins), a 2x2-pooled gradient
  orientation histogram (8 bins, magnitude weighted: layout and edges), and the radially
  averaged log power spectrum (16 bands: sharpness, blur, noise). These are what a generator
  loses first when fine-tuning damages it (color shift, blur, noise, collapsed texture).
  FID/CLIP-style distances need pretrained networks, which these machines cannot download;
  the measure takes any `features` callable, so a learned embedding can replace it.
- `frechet_distance` over the same features, generated set vs real set (FID's formula).
- `ssim` and `psnr` (edit only): an edit of a rendered scene has a pixel-aligned truth (the
  scene re-rendered with the edit applied), so structural similarity is meaningful there.
- A held-out denoising / flow-matching loss is the other honest measure; it needs the
  model's internals and is taken by the eval job when the train stage provides it.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np
from scipy import linalg, ndimage

from encode.resize import resize_rgb

HIST_LEVELS = 4
ORIENT_BINS = 8
SPECTRUM_BANDS = 16
FEATURE_SIZE = 128  # images are resized to this square side before features (comparable across sizes)


def _gray(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0


def color_histogram(rgb: np.ndarray) -> np.ndarray:
    q = (rgb.astype(np.int64) * HIST_LEVELS) // 256
    idx = (q[..., 0] * HIST_LEVELS + q[..., 1]) * HIST_LEVELS + q[..., 2]
    hist = np.bincount(idx.ravel(), minlength=HIST_LEVELS ** 3).astype(np.float64)
    return hist / hist.sum()


def orientation_histogram(gray: np.ndarray) -> np.ndarray:
    gy, gx = np.gradient(gray)
    mag = np.hypot(gx, gy)
    ang = np.mod(np.arctan2(gy, gx), np.pi)  # unsigned orientation
    bins = np.minimum((ang / np.pi * ORIENT_BINS).astype(np.int64), ORIENT_BINS - 1)
    h, w = gray.shape
    out = []
    for rows in (slice(0, h // 2), slice(h // 2, h)):
        for cols in (slice(0, w // 2), slice(w // 2, w)):
            out.append(np.bincount(bins[rows, cols].ravel(), weights=mag[rows, cols].ravel(), minlength=ORIENT_BINS))
    hist = np.concatenate(out)
    return hist / max(hist.sum(), 1e-12) * 4.0  # per-cell mass ~1, like the color block's total


def log_spectrum(gray: np.ndarray) -> np.ndarray:
    f = np.abs(np.fft.fftshift(np.fft.fft2(gray - gray.mean()))) ** 2
    h, w = gray.shape
    yy, xx = np.indices((h, w))
    r = np.hypot(yy - h / 2, xx - w / 2) / (min(h, w) / 2)
    band = np.minimum((r * SPECTRUM_BANDS).astype(np.int64), SPECTRUM_BANDS)
    power = np.bincount(band.ravel(), weights=f.ravel(), minlength=SPECTRUM_BANDS + 1)[:SPECTRUM_BANDS]
    count = np.bincount(band.ravel(), minlength=SPECTRUM_BANDS + 1)[:SPECTRUM_BANDS]
    # log10 of mean power per band, scaled so a 10x change in one band moves the vector by 0.1
    return 0.1 * np.log10(power / np.maximum(count, 1) + 1e-8)


def image_features(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> 1-D float64 feature vector (64 + 32 + 16)."""
    small = resize_rgb(rgb, (FEATURE_SIZE, FEATURE_SIZE))
    gray = _gray(small)
    return np.concatenate([color_histogram(small), orientation_histogram(gray), log_spectrum(gray)])


def feature_distance(a: np.ndarray, b: np.ndarray, features: Callable[[np.ndarray], np.ndarray] = image_features) -> float:
    return float(np.linalg.norm(features(a) - features(b)))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def ssim(a: np.ndarray, b: np.ndarray, sigma: float = 1.5) -> float:
    """Mean SSIM of the luma of two same-size images (Wang et al. 2004: Gaussian window sigma 1.5,
    K1 0.01, K2 0.03, dynamic range 1)."""
    if a.shape != b.shape:
        raise ValueError(f"ssim: images differ in size: {a.shape} vs {b.shape}")
    x, y = _gray(a), _gray(b)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    blur = lambda z: ndimage.gaussian_filter(z, sigma, truncate=3.5)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(s.mean())


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) of two (N, D) feature sets (N >= 2)."""
    if len(feats_a) < 2 or len(feats_b) < 2:
        return float("nan")
    mu_a, mu_b = feats_a.mean(0), feats_b.mean(0)
    # With fewer samples than feature dimensions the covariances are singular; a tiny ridge (as
    # pytorch-fid adds when sqrtm fails) keeps the square root defined and moves the result by ~1e-6.
    ridge = 1e-6 * np.eye(feats_a.shape[1])
    sa, sb = np.cov(feats_a, rowvar=False) + ridge, np.cov(feats_b, rowvar=False) + ridge
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sa @ sb)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(max(np.sum((mu_a - mu_b) ** 2) + np.trace(sa + sb - 2.0 * covmean), 0.0))


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def win_rate(tuned: dict[str, float], base: dict[str, float], lower_is_better: bool = True,
             tie_tol: float = 1e-9) -> dict[str, float]:
    """Pairwise comparison over the keys both dicts share (sample key -> measure).

    Returns wins / ties / losses of `tuned`, `win_rate` = (wins + ties / 2) / n and its 95% Wilson
    interval; `n` 0 when no sample is shared.
    """
    keys = sorted(set(tuned) & set(base))
    wins = ties = 0
    for k in keys:
        d = (base[k] - tuned[k]) if lower_is_better else (tuned[k] - base[k])
        if abs(d) <= tie_tol or (math.isinf(tuned[k]) and tuned[k] == base[k]):
            ties += 1
        elif d > 0:
            wins += 1
    n = len(keys)
    score = wins + 0.5 * ties
    lo, hi = wilson_interval(score, n)
    return {"n": float(n), "wins": float(wins), "ties": float(ties), "losses": float(n - wins - ties),
            "win_rate": score / n if n else float("nan"), "ci_low": lo, "ci_high": hi}
