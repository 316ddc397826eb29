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
A decoded NaN (the codec's "invalid" color, or a pixel no prediction covers) is not left out:
as in BTS and ZoeDepth, where a missing prediction is set to the minimum depth, it counts at
`min_depth`, so declining to answer never improves a score. The share of valid-truth pixels the
prediction does answer is reported as `coverage`.

The `aligned/` metrics fit a least-squares scale and shift to the raw (unclipped) prediction,
then clip, as Marigold does; in depth space (Marigold) or in disparity space (Depth Anything,
MiDaS: fit 1/p to 1/g, cap the disparity at 1/max_depth, invert), per the protocol's `alignment`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evals import protocols
from evals.failure import EvalFailure
from evals.protocols import CROPS

METRICS = ("abs_rel", "sq_rel", "rmse", "log10", "silog", "delta1", "delta2", "delta3")
LOWER_IS_BETTER = {"abs_rel": True, "sq_rel": True, "rmse": True, "log10": True, "silog": True,
                   "delta1": False, "delta2": False, "delta3": False}
ALIGNMENTS = protocols.ALIGNMENTS


@dataclass(frozen=True)
class DepthProtocol:
    """Which pixels count, where predictions are clipped and how the aligned fit runs, per dataset."""

    name: str
    min_depth: float
    max_depth: float
    crop: str = "none"
    alignment: str = "depth"

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise ValueError(f"depth protocol {self.name!r}: crop must be one of {list(CROPS)}, got {self.crop!r}")
        if not 0 <= self.min_depth < self.max_depth:
            raise ValueError(f"depth protocol {self.name!r}: need 0 <= min_depth < max_depth, "
                             f"got {self.min_depth}, {self.max_depth}")
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"depth protocol {self.name!r}: alignment must be one of {list(ALIGNMENTS)}, "
                             f"got {self.alignment!r}")


# Every benchmark of evals/protocols.py (nyuv2: Eigen crop 1e-3..10 m; kitti: Garg crop 1e-3..80 m;
# vistune / default: our renders, 1e-3..200 m, sky (+inf) excluded by the finiteness test).
PROTOCOLS: dict[str, DepthProtocol] = {
    name: DepthProtocol(name, p.min_depth, p.max_depth, p.crop, p.alignment) for name, p in protocols.PROTOCOLS.items()}


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


def penalized_prediction(pred: np.ndarray, protocol: DepthProtocol) -> np.ndarray:
    """What is scored: the clipped prediction with every NaN (no answer) at min_depth (BTS / ZoeDepth)."""
    p = pred.astype(np.float64)  # before the fill: min_depth in float32 would be 1.0000000475e-3
    return clip_prediction(np.where(np.isnan(p), protocol.min_depth, p), protocol)


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
    """Least-squares scale and shift (s, t) minimizing sum (s p + t - g)^2 over `valid`, in whatever
    space `pred` and `gt` are given (depth for Marigold; Depth Anything passes disparities, see
    `aligned_prediction`). A constant prediction gets s = 0, t = mean(g) (the minimum-norm solution
    of a singular system); no pixel to fit gets (0, 0)."""
    p, g = pred[valid].astype(np.float64), gt[valid].astype(np.float64)
    if p.size == 0:
        return 0.0, 0.0
    design = np.stack([p, np.ones_like(p)], axis=1)
    (s, t), *_ = np.linalg.lstsq(design, g, rcond=None)
    return float(s), float(t)


def aligned_prediction(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray,
                       protocol: DepthProtocol) -> tuple[np.ndarray, float, float]:
    """The affine-aligned prediction (clipped, NaN at min_depth) and its (scale, shift).

    The fit runs on the raw prediction (Marigold fits before clipping) over valid-truth pixels whose
    prediction is usable in the fit's space: finite depths (depth space), or finite disparities
    1/p, so +inf ("no hit") is disparity 0 and takes part (disparity space, Depth Anything / MiDaS:
    the aligned disparity is capped below at 1/max_depth before inverting).
    """
    p = pred.astype(np.float64)
    g = gt.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if protocol.alignment == "disparity":
            x, y = 1.0 / p, 1.0 / g
        else:
            x, y = p, g
        fit = valid & np.isfinite(x)
        s, t = align_affine(x, y, fit)
        mapped = s * x + t
        if protocol.alignment == "disparity":
            mapped = 1.0 / np.maximum(mapped, 1.0 / protocol.max_depth)
        else:
            mapped = np.where(np.isposinf(p), protocol.max_depth, mapped)  # no hit: the cap, as unaligned
    return penalized_prediction(np.where(np.isnan(p), np.nan, mapped), protocol), s, t


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
        pred: (H, W) decoded prediction in meters (+inf no hit, NaN no answer), same size as `gt`.
        gt: (H, W) raw truth in meters.
        protocol: the dataset's cap, crop and alignment space.
        valid_gt: the truth's valid mask when `gt` is a window of a larger frame (the protocol's crop
            is defined on the full frame); default `valid_mask(gt, protocol)`.

    Returns:
        METRICS over every valid-truth pixel (a NaN prediction counted at min_depth), `aligned/<metric>`
        for the aligned prediction (`aligned_prediction`), `aligned/scale` and `aligned/shift`,
        `coverage` (valid-truth pixels the prediction answers, i.e. decodes to a depth for) and `n_pixels`.

    Raises:
        EvalFailure: `no_valid_truth`.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"depth_image_metrics: prediction {pred.shape} and truth {gt.shape} differ in size")
    valid = valid_mask(gt, protocol) if valid_gt is None else valid_gt
    if not valid.any():
        raise EvalFailure("no_valid_truth", f"no truth pixel in ({protocol.min_depth}, {protocol.max_depth}) m "
                                            f"inside the {protocol.crop!r} crop")
    gt64 = gt.astype(np.float64)
    out = metric_set(penalized_prediction(pred, protocol), gt64, valid)
    aligned, s, t = aligned_prediction(pred, gt64, valid, protocol)
    out.update({f"aligned/{k}": v for k, v in metric_set(aligned, gt64, valid).items()})
    out["aligned/scale"], out["aligned/shift"] = s, t
    out["coverage"] = float(np.sum(valid & ~np.isnan(pred)) / valid.sum())
    out["n_pixels"] = float(valid.sum())
    return out
