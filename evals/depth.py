"""Metric depth metrics: no scale or shift alignment (the model must get meters right).

Definitions follow the common evaluation code of the field (Eigen et al. 2014; BTS, AdaBins,
Depth Anything, Metric3D): with p the prediction and g the ground truth over the valid pixels,

    AbsRel = mean |p - g| / g            SqRel = mean (p - g)^2 / g
    RMSE   = sqrt(mean (p - g)^2)         log10 = mean |log10 p - log10 g|
    SILog  = 100 * sqrt(mean(e^2) - mean(e)^2),  e = ln p - ln g       (BTS / KITTI benchmark form)
    delta_k = fraction of pixels with max(p / g, g / p) < 1.25^k

The valid mask comes from the truth alone (finite, min_depth < g < max_depth, inside the
protocol's crop); predictions are clipped to [min_depth, max_depth] (+inf, "no hit", clips to
the cap) before scoring, and each image is scored on its own and then averaged over images.
A decoded NaN (the codec's "invalid" color) cannot be clipped to anything meaningful: such
pixels are left out and counted as lost `coverage`, reported beside the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evals.failure import EvalFailure

METRICS = ("abs_rel", "sq_rel", "rmse", "log10", "silog", "delta1", "delta2", "delta3")
LOWER_IS_BETTER = {"abs_rel": True, "sq_rel": True, "rmse": True, "log10": True, "silog": True,
                   "delta1": False, "delta2": False, "delta3": False}
CROPS = ("none", "eigen", "garg")


@dataclass(frozen=True)
class DepthProtocol:
    """Which pixels count and where predictions are clipped, per dataset."""

    name: str
    min_depth: float
    max_depth: float
    crop: str = "none"

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise ValueError(f"depth protocol {self.name!r}: crop must be one of {list(CROPS)}, got {self.crop!r}")
        if not 0 <= self.min_depth < self.max_depth:
            raise ValueError(f"depth protocol {self.name!r}: need 0 <= min_depth < max_depth, "
                             f"got {self.min_depth}, {self.max_depth}")


# NYUv2 and KITTI as published; `vistune` for our renders: the depth codec's documented bound
# holds on [0.1, 200] m, and sky (+inf) is excluded by the finiteness test.
PROTOCOLS: dict[str, DepthProtocol] = {
    "nyuv2": DepthProtocol("nyuv2", 1e-3, 10.0, "eigen"),
    "kitti": DepthProtocol("kitti", 1e-3, 80.0, "garg"),
    "vistune": DepthProtocol("vistune", 1e-3, 200.0, "none"),
}


def get_protocol(name: str) -> DepthProtocol:
    try:
        return PROTOCOLS[name]
    except KeyError as err:
        raise ValueError(f"unknown depth protocol {name!r}; known: {sorted(PROTOCOLS)}") from err


def crop_mask(shape: tuple[int, int], crop: str) -> np.ndarray:
    """The evaluation crop as a bool mask.

    `eigen`: rows 45:471, cols 41:601 of NYUv2's 480x640 frame (Eigen et al.), scaled to other sizes.
    `garg`: rows 0.4081-0.9919, cols 0.0359-0.9641 of the frame (Garg et al., as in BTS / Monodepth2).
    """
    h, w = shape
    mask = np.zeros((h, w), bool)
    if crop == "none":
        mask[:] = True
    elif crop == "eigen":
        mask[round(45 / 480 * h):round(471 / 480 * h), round(41 / 640 * w):round(601 / 640 * w)] = True
    elif crop == "garg":
        mask[int(0.40810811 * h):int(0.99189189 * h), int(0.03594771 * w):int(0.96405229 * w)] = True
    else:
        raise ValueError(f"crop must be one of {list(CROPS)}, got {crop!r}")
    return mask


def valid_mask(gt: np.ndarray, protocol: DepthProtocol) -> np.ndarray:
    """Pixels whose truth counts: finite, inside (min_depth, max_depth), inside the crop."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(gt) & (gt > protocol.min_depth) & (gt < protocol.max_depth)
    return ok & crop_mask(gt.shape, protocol.crop)


def clip_prediction(pred: np.ndarray, protocol: DepthProtocol) -> np.ndarray:
    """Clip to the cap (+inf -> max_depth, 0 -> min_depth); NaN stays NaN."""
    return np.clip(pred.astype(np.float64), protocol.min_depth, protocol.max_depth)


def abs_rel(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    p, g = pred[valid], gt[valid]
    return float(np.mean(np.abs(p - g) / g))


def sq_rel(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    p, g = pred[valid], gt[valid]
    return float(np.mean((p - g) ** 2 / g))


def rmse(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred[valid] - gt[valid]) ** 2)))


def log10_error(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    return float(np.mean(np.abs(np.log10(pred[valid]) - np.log10(gt[valid]))))


def silog(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    """Scale-invariant log error x 100 (BTS); max(0, .) guards the float rounding of a perfect fit."""
    e = np.log(pred[valid]) - np.log(gt[valid])
    return float(100.0 * np.sqrt(max(np.mean(e ** 2) - np.mean(e) ** 2, 0.0)))


def delta_accuracy(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, order: int = 1) -> float:
    ratio = np.maximum(pred[valid] / gt[valid], gt[valid] / pred[valid])
    return float(np.mean(ratio < 1.25 ** order))


def align_affine(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> tuple[float, float]:
    """Least-squares scale and shift (s, t) minimizing sum (s p + t - g)^2 over `valid` (depth space,
    as Marigold and Depth Anything's affine-invariant evaluation do). A constant prediction gets s = 0,
    t = mean(g) (the minimum-norm solution of a singular system)."""
    p, g = pred[valid].astype(np.float64), gt[valid].astype(np.float64)
    design = np.stack([p, np.ones_like(p)], axis=1)
    (s, t), *_ = np.linalg.lstsq(design, g, rcond=None)
    return float(s), float(t)


def metric_set(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """All METRICS of one image (pred already clipped, `valid` non-empty)."""
    out = {"abs_rel": abs_rel(pred, gt, valid), "sq_rel": sq_rel(pred, gt, valid), "rmse": rmse(pred, gt, valid),
           "log10": log10_error(pred, gt, valid), "silog": silog(pred, gt, valid)}
    for k in (1, 2, 3):
        out[f"delta{k}"] = delta_accuracy(pred, gt, valid, k)
    return out


def depth_image_metrics(pred: np.ndarray, gt: np.ndarray, protocol: DepthProtocol,
                        valid_gt: np.ndarray | None = None) -> dict[str, float]:
    """Metric and affine-aligned metrics of one image.

    Args:
        pred: (H, W) decoded prediction in meters (+inf no hit, NaN invalid), same size as `gt`.
        gt: (H, W) raw truth in meters.
        protocol: the dataset's cap and crop.
        valid_gt: the truth's valid mask when `gt` is a window of a larger frame (the protocol's crop
            is defined on the full frame); default `valid_mask(gt, protocol)`.

    Returns:
        METRICS, `aligned/<metric>` for the affine-aligned prediction (clipped again after the fit),
        `coverage` (valid-truth pixels the prediction decodes to a depth for) and `n_pixels`.

    Raises:
        EvalFailure: `no_valid_truth` or `no_valid_pixels`.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"depth_image_metrics: prediction {pred.shape} and truth {gt.shape} differ in size")
    valid_gt = valid_mask(gt, protocol) if valid_gt is None else valid_gt
    if not valid_gt.any():
        raise EvalFailure("no_valid_truth", f"no truth pixel in ({protocol.min_depth}, {protocol.max_depth}) m "
                                            f"inside the {protocol.crop!r} crop")
    valid = valid_gt & ~np.isnan(pred)
    if not valid.any():
        raise EvalFailure("no_valid_pixels", f"the prediction decodes to NaN (invalid) on all "
                                             f"{int(valid_gt.sum())} valid truth pixels")
    clipped = clip_prediction(pred, protocol)
    gt64 = gt.astype(np.float64)
    out = metric_set(clipped, gt64, valid)
    # Fit on the clipped prediction (+inf has no finite value to fit with), then clip the result again.
    s, t = align_affine(clipped, gt64, valid)
    aligned = clip_prediction(s * clipped + t, protocol)
    out.update({f"aligned/{k}": v for k, v in metric_set(aligned, gt64, valid).items()})
    out["aligned/scale"], out["aligned/shift"] = s, t
    out["coverage"] = float(valid.sum() / valid_gt.sum())
    out["n_pixels"] = float(valid.sum())
    return out
