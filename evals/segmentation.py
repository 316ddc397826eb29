"""Semantic segmentation: confusion matrix accumulated over the set, mIoU and pixel accuracy.

Truth pixels labeled `ignore_index` (vistune: 0, unlabeled) are left out. A prediction of 0
(nothing recognized) on a labeled pixel is a miss: it counts in the truth class's union and
against pixel accuracy. IoU per class = TP / (TP + FP + FN) over the whole set. Which classes
the mean runs over is a protocol setting (evals/protocols.py, `miou`):

    union    classes in the truth or the prediction (a class never seen and never predicted has
             no IoU): mmsegmentation, cityscapesScripts (the default)
    truth    classes present in the truth: detectron2's SemSegEvaluator
    classes  every class 1..num_classes of the list, an absent one counting 0: ADE20K's toolkit
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int = 0) -> np.ndarray:
    """(num_classes + 1) x (num_classes + 1) counts, rows = truth, columns = prediction (ids 0..num_classes).

    Rows of `ignore_index` stay zero. Ids outside [0, num_classes] are an error.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"confusion_matrix: prediction {pred.shape} and truth {gt.shape} differ in size")
    n = num_classes + 1
    g = gt.astype(np.int64).ravel()
    p = pred.astype(np.int64).ravel()
    for name, ids in (("prediction", p), ("truth", g)):
        if ids.size and (ids.min() < 0 or ids.max() >= n):
            raise ValueError(f"confusion_matrix: {name} ids must lie in [0, {num_classes}], "
                             f"got [{ids.min()}, {ids.max()}]")
    keep = g != ignore_index
    return np.bincount(g[keep] * n + p[keep], minlength=n * n).reshape(n, n)


def add_confusion(a: np.ndarray | None, b: np.ndarray) -> np.ndarray:
    """Sum two confusion matrices, padding the smaller one (sources may use different class counts)."""
    if a is None:
        return b.copy()
    n = max(a.shape[0], b.shape[0])
    out = np.zeros((n, n), np.int64)
    out[:a.shape[0], :a.shape[1]] += a
    out[:b.shape[0], :b.shape[1]] += b
    return out


def class_iou(conf: np.ndarray, ignore_index: int = 0) -> np.ndarray:
    """IoU per class id (NaN for the ignore id and for classes absent from truth and prediction)."""
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    if 0 <= ignore_index < len(iou):
        iou[ignore_index] = np.nan
    return iou


MIOU_CONVENTIONS = ("union", "truth", "classes")


def mean_iou(conf: np.ndarray, ignore_index: int = 0, convention: str = "union") -> float:
    """Mean IoU over the classes `convention` names (see the module docstring); NaN when there are none."""
    if convention not in MIOU_CONVENTIONS:
        raise ValueError(f"mean_iou: convention must be one of {list(MIOU_CONVENTIONS)}, got {convention!r}")
    iou = class_iou(conf, ignore_index)
    keep = np.ones(len(iou), bool)
    if 0 <= ignore_index < len(iou):
        keep[ignore_index] = False
    if convention == "truth":
        keep &= conf.sum(1) > 0
    elif convention == "classes":
        iou = np.nan_to_num(iou, nan=0.0)
    else:
        keep &= np.isfinite(iou)
    return float(np.mean(iou[keep])) if keep.any() else float("nan")


def pixel_accuracy(conf: np.ndarray) -> float:
    total = conf.sum()
    return float(np.trace(conf) / total) if total else float("nan")
