"""Referring segmentation: cIoU and gIoU, as LISA (Lai et al. 2024) and the RefCOCO papers report them.

    cIoU = sum_i |P_i & G_i| / sum_i |P_i | G_i|        (cumulative: large objects weigh more)
    gIoU = mean_i |P_i & G_i| / |P_i | G_i|             (per sample)

A sample whose target is empty and whose prediction is empty has IoU 1 in gIoU (LISA adds 1.0
where the union is 0), and adds nothing to cIoU; a set whose unions are all empty has cIoU 0
(LISA divides by the union plus 1e-10).
"""

from __future__ import annotations

import numpy as np


def intersection_union(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    if pred.shape != gt.shape:
        raise ValueError(f"intersection_union: prediction {pred.shape} and truth {gt.shape} differ in size")
    p, g = pred.astype(bool), gt.astype(bool)
    return int(np.sum(p & g)), int(np.sum(p | g))


def sample_iou(intersection: int, union: int) -> float:
    return 1.0 if union == 0 else intersection / union


def ciou(intersections: np.ndarray, unions: np.ndarray) -> float:
    total = float(np.sum(unions))
    return float(np.sum(intersections)) / total if total > 0 else 0.0


def giou(intersections: np.ndarray, unions: np.ndarray) -> float:
    if len(unions) == 0:
        return float("nan")
    return float(np.mean([sample_iou(i, u) for i, u in zip(intersections, unions)]))
