"""Quality filters for labeler proposals, and painting the survivors into id maps.

`filter_instances` applies, in order: score, stability, area (too small / too large),
duplicate suppression (mask IoU against a higher-scoring kept mask: NMS), a count limit, and
overlap resolution (each pixel goes to the highest-scoring instance that claims it; an
instance left with too little of its own mask is dropped as occluded). Every dropped
proposal is counted under its reason, so per-image and per-job statistics say what was kept
and why. Pure numpy; no I/O.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

from annotate.labelers.base import Instance

DROP_REASONS = ("low_score", "unstable", "too_small", "too_large", "duplicate", "over_limit", "occluded")


@dataclass(frozen=True)
class FilterConfig:
    """Thresholds for `filter_instances`; each can be turned off (0, or 1 for the IoU/fractions).

    Attributes:
        min_score: drop proposals scoring below this.
        min_stability: drop proposals whose stability score is below this (unknown stability passes).
        min_area_frac: drop masks smaller than this fraction of the image (also applied after overlap resolution).
        max_area_frac: drop masks larger than this fraction of the image (a "mask" of the whole frame is no object).
        nms_iou: drop a mask whose IoU with a higher-scoring kept mask exceeds this (1 = off).
        max_instances: keep at most this many (highest scores first; uint16 ids allow 65535).
        min_visible_frac: after overlap resolution, drop an instance keeping less than this share of its mask.
    """

    min_score: float = 0.5
    min_stability: float = 0.8
    min_area_frac: float = 0.001
    max_area_frac: float = 0.98
    nms_iou: float = 0.7
    max_instances: int = 255
    min_visible_frac: float = 0.5

    def __post_init__(self) -> None:
        for name in ("min_score", "min_stability", "min_area_frac", "max_area_frac", "nms_iou", "min_visible_frac"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.min_area_frac > self.max_area_frac:
            raise ValueError(f"min_area_frac={self.min_area_frac} must be <= max_area_frac={self.max_area_frac}")
        if not 1 <= self.max_instances <= 65535:
            raise ValueError(f"max_instances must be in [1, 65535], got {self.max_instances}")


def filter_instances(instances: list[Instance], cfg: FilterConfig) -> tuple[list[Instance], dict]:
    """Filter proposals; returns (kept instances with non-overlapping masks, highest score first; stats).

    stats = {"candidates": n, "kept": k, "dropped": {reason: count}}.
    """
    dropped: Counter = Counter()
    if not instances:
        return [], {"candidates": 0, "kept": 0, "dropped": {}}
    image_area = instances[0].mask.size
    min_area = max(1, int(np.ceil(cfg.min_area_frac * image_area)))
    survivors = []
    for inst in instances:
        reason = first_failure(inst, cfg, min_area, image_area)
        if reason:
            dropped[reason] += 1
        else:
            survivors.append(inst)
    survivors.sort(key=lambda i: -i.score)  # stable: ties keep the labeler's order
    survivors = suppress_duplicates(survivors, cfg.nms_iou, dropped)
    dropped["over_limit"] += max(len(survivors) - cfg.max_instances, 0)
    kept = resolve_overlaps(survivors[:cfg.max_instances], cfg.min_visible_frac, min_area, dropped)
    return kept, {"candidates": len(instances), "kept": len(kept), "dropped": {k: v for k, v in dropped.items() if v}}


def first_failure(inst: Instance, cfg: FilterConfig, min_area: int, image_area: int) -> str | None:
    """The first per-proposal filter `inst` fails, or None."""
    if inst.score < cfg.min_score:
        return "low_score"
    if inst.stability is not None and inst.stability < cfg.min_stability:
        return "unstable"
    area = inst.area
    if area < min_area:
        return "too_small"
    if area > cfg.max_area_frac * image_area:
        return "too_large"
    return None


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """[x0, y0, x1, y1) of a non-empty mask (exclusive max, like array slicing)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def mask_iou(a: np.ndarray, box_a: tuple, b: np.ndarray, box_b: tuple) -> float:
    """IoU of two masks, computed only inside their boxes' intersection (0 when the boxes are disjoint)."""
    x0, y0 = max(box_a[0], box_b[0]), max(box_a[1], box_b[1])
    x1, y1 = min(box_a[2], box_b[2]), min(box_a[3], box_b[3])
    if x0 >= x1 or y0 >= y1:
        return 0.0
    inter = np.count_nonzero(a[y0:y1, x0:x1] & b[y0:y1, x0:x1])
    union = np.count_nonzero(a) + np.count_nonzero(b) - inter
    return inter / union if union else 0.0


def suppress_duplicates(ranked: list[Instance], iou: float, dropped: Counter) -> list[Instance]:
    """Greedy mask NMS over score-ranked proposals."""
    if iou >= 1.0:
        return ranked
    kept: list[tuple[Instance, tuple]] = []
    for inst in ranked:
        box = mask_box(inst.mask)
        if any(mask_iou(inst.mask, box, k.mask, kbox) > iou for k, kbox in kept):
            dropped["duplicate"] += 1
        else:
            kept.append((inst, box))
    return [inst for inst, _ in kept]


def resolve_overlaps(ranked: list[Instance], min_visible_frac: float, min_area: int, dropped: Counter) -> list[Instance]:
    """Give each pixel to the highest-scoring instance claiming it; drop the ones left too small."""
    if not ranked:
        return []
    claimed = np.zeros(ranked[0].mask.shape, bool)
    kept = []
    for inst in ranked:
        visible = inst.mask & ~claimed
        n_visible = int(np.count_nonzero(visible))
        if n_visible < min_area or n_visible < min_visible_frac * inst.area:
            dropped["occluded"] += 1
            continue
        claimed |= visible
        kept.append(replace(inst, mask=visible))
    return kept


def paint_maps(kept: list[Instance], class_ids: dict[str, int], shape: tuple[int, int],
               semantic: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Instance map (ids 1..N in `kept` order) and semantic map (uint16, 0 = unlabeled).

    `semantic` from the labeler is used as is; otherwise it is painted from the kept instances.
    """
    instance = np.zeros(shape, np.uint16)
    painted = np.zeros(shape, np.uint16)
    for i, inst in enumerate(kept, start=1):
        instance[inst.mask] = i
        painted[inst.mask] = class_ids[inst.class_name]
    return instance, (painted if semantic is None else semantic.astype(np.uint16))
