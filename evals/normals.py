"""Surface normal metrics: angular error in degrees, pooled over all valid pixels of a set.

As in the standard NYUv2 normals protocol (Fouhey et al.; Eigen & Fergus; Bae et al.), the
statistics are taken over every valid pixel of the evaluation set, not per image: mean and
median angle, angular RMSE (sqrt of the mean squared angle, as DSINE reports it), and the
percentage of pixels within 11.25, 22.5 and 30 degrees.

A pixel counts when its truth is a finite vector. A prediction that decodes as invalid (the
codec's reserved color, all-NaN) where the truth is valid scores the worst angle, 180
degrees, so declining to answer can never improve a score; the share of such pixels is
reported as `pred_invalid`.
"""

from __future__ import annotations

import numpy as np

THRESHOLDS_DEG = (11.25, 22.5, 30.0)
INVALID_PRED_DEG = 180.0
# Pooled statistics come from a histogram so a set of any size needs constant memory; the median
# is interpolated within a bin (error <= BIN_DEG / 2) and the thresholds fall on bin edges (exact).
BIN_DEG = 0.05
N_BINS = int(round(180.0 / BIN_DEG))


def angular_error_deg(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel angle between prediction and truth.

    Args:
        pred, gt: (H, W, 3) vectors (need not be unit; NaN or zero = invalid).

    Returns:
        (errors, valid): float64 (H, W) degrees, meaningful where `valid` (the truth is finite and
        non-zero); invalid predictions there are INVALID_PRED_DEG.
    """
    if pred.shape != gt.shape or gt.ndim != 3 or gt.shape[2] != 3:
        raise ValueError(f"angular_error_deg: need two (H, W, 3) maps of one size, got {pred.shape} and {gt.shape}")
    g = gt.astype(np.float64)
    p = pred.astype(np.float64)
    gn = np.linalg.norm(g, axis=2)
    pn = np.linalg.norm(p, axis=2)
    valid = np.isfinite(gn) & (gn > 0)
    pred_ok = np.isfinite(pn) & (pn > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.sum(p * g, axis=2) / (pn * gn)
    err = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    err = np.where(pred_ok, err, INVALID_PRED_DEG)
    return np.where(valid, err, np.nan), valid


class AngleHistogram:
    """Pooled angular-error statistics of many images in constant memory."""

    def __init__(self) -> None:
        self.counts = np.zeros(N_BINS, np.int64)
        self.total = 0.0
        self.total_sq = 0.0
        self.n = 0
        self.n_invalid_pred = 0
        self.within = {t: 0 for t in THRESHOLDS_DEG}

    def add(self, errors: np.ndarray) -> None:
        """Add the errors (degrees) of the valid pixels of one image."""
        e = np.asarray(errors, np.float64).ravel()
        self.counts += np.bincount(np.minimum((e / BIN_DEG).astype(np.int64), N_BINS - 1), minlength=N_BINS)
        self.total += float(e.sum())
        self.total_sq += float(np.sum(e * e))
        self.n += e.size
        self.n_invalid_pred += int(np.sum(e >= INVALID_PRED_DEG))
        for t in THRESHOLDS_DEG:
            self.within[t] += int(np.sum(e < t))

    def median(self) -> float:
        cum = np.cumsum(self.counts)
        half = self.n / 2.0
        i = int(np.searchsorted(cum, half))
        before = cum[i - 1] if i > 0 else 0
        return float((i + (half - before) / self.counts[i]) * BIN_DEG)

    def metrics(self) -> dict[str, float]:
        if self.n == 0:
            return {}
        out = {"mean_deg": self.total / self.n, "median_deg": self.median(),
               "rmse_deg": float(np.sqrt(self.total_sq / self.n))}
        for t in THRESHOLDS_DEG:
            out[f"within_{t:g}"] = 100.0 * self.within[t] / self.n
        out["pred_invalid"] = self.n_invalid_pred / self.n
        return out


def normal_metrics(errors: np.ndarray) -> dict[str, float]:
    """Exact statistics of a flat array of angular errors (degrees): the reference for AngleHistogram."""
    e = np.asarray(errors, np.float64).ravel()
    out = {"mean_deg": float(e.mean()), "median_deg": float(np.median(e)), "rmse_deg": float(np.sqrt(np.mean(e * e)))}
    for t in THRESHOLDS_DEG:
        out[f"within_{t:g}"] = float(100.0 * np.mean(e < t))
    return out
