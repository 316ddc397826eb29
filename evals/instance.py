"""Instance segmentation: COCO-style mask AP computed by pycocotools (not a hand-written AP).

vistune's instance task is class-agnostic (every instance of the prompt's target in its own
color), so all instances share one category. A generated image carries no confidence per
instance; `color_confidence` derives one from how cleanly each decoded instance is drawn
(mean distance of its pixels to its palette color), so AP's ranking has a meaning and does
not depend on the order of images.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

# COCOeval.stats order for iouType="segm".
STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100",
              "AR_small", "AR_medium", "AR_large")


def instance_masks(ids: np.ndarray) -> dict[int, np.ndarray]:
    """Instance id map (0 = none) -> {id: bool mask}."""
    return {int(k): ids == k for k in np.unique(ids) if k != 0}


def color_confidence(rgb: np.ndarray, ids: np.ndarray, palette: np.ndarray, max_distance: float) -> dict[int, float]:
    """Per decoded instance: 1 - mean(|rgb - palette[id]|) / max_distance, clipped to [0, 1]."""
    out = {}
    scale = max(float(max_distance), 1e-6)
    for k, m in instance_masks(ids).items():
        dist = np.linalg.norm(rgb[m].astype(np.float64) - palette[k].astype(np.float64), axis=1)
        out[k] = float(np.clip(1.0 - dist.mean() / scale, 0.0, 1.0))
    return out


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


@dataclass
class MaskAP:
    """Collect truth and predicted instances image by image; `metrics()` runs COCOeval."""

    images: list[dict] = field(default_factory=list)
    gts: list[dict] = field(default_factory=list)
    dts: list[dict] = field(default_factory=list)

    def add(self, gt_ids: np.ndarray, pred_ids: np.ndarray, scores: dict[int, float] | None = None) -> None:
        """One image: truth and predicted id maps of one size; `scores` per predicted id (default 1)."""
        if gt_ids.shape != pred_ids.shape:
            raise ValueError(f"MaskAP.add: prediction {pred_ids.shape} and truth {gt_ids.shape} differ in size")
        image_id = len(self.images) + 1
        h, w = gt_ids.shape
        self.images.append({"id": image_id, "height": h, "width": w})
        for m in instance_masks(gt_ids).values():
            rle = _rle(m)
            self.gts.append({"id": len(self.gts) + 1, "image_id": image_id, "category_id": 1, "segmentation": rle,
                             "area": float(m.sum()), "bbox": list(mask_utils.toBbox(rle)), "iscrowd": 0})
        for k, m in instance_masks(pred_ids).items():
            score = 1.0 if scores is None else float(scores.get(k, 1.0))
            self.dts.append({"image_id": image_id, "category_id": 1, "segmentation": _rle(m), "score": score})

    def metrics(self) -> dict[str, float]:
        """COCO mask AP / AR; NaN where undefined (no truth instance at all)."""
        if not self.images:
            return {}
        if not self.gts:
            return {name: float("nan") for name in STAT_NAMES}
        gt = COCO()
        gt.dataset = {"images": self.images, "annotations": self.gts, "categories": [{"id": 1, "name": "object"}]}
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and tables
            gt.createIndex()
            if not self.dts:
                return {name: 0.0 for name in STAT_NAMES}
            dt = gt.loadRes([dict(d) for d in self.dts])
            ev = COCOeval(gt, dt, iouType="segm")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        # COCOeval writes -1 where a bucket (e.g. small objects) has no truth: undefined, not zero.
        return {name: (float(v) if v >= 0 else float("nan")) for name, v in zip(STAT_NAMES, ev.stats)}
