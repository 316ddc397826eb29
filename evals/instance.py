"""Instance segmentation: COCO-style mask AP computed by pycocotools (not a hand-written AP).

vistune's instance task is class-agnostic (every instance of the prompt's target in its own
color), so all instances share one category. A generated image carries no confidence per
instance; `color_confidence` derives one from how cleanly each decoded instance is drawn (mean
distance of its pixels to its palette color) and how large it is (a few stray pixels of a
colour are more likely noise than an object), so AP's ranking has a meaning.

AP must not depend on the order images are added: pycocotools breaks score ties by image id, so
`MaskAP` numbers the images by their sample key (then by content) when it scores, never by the
order they arrived in.
"""

from __future__ import annotations

import contextlib
import hashlib
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


AREA_PRIOR_PX = 16.0  # an instance of this many pixels gets half the confidence of a huge one


def color_confidence(rgb: np.ndarray, ids: np.ndarray, palette: np.ndarray, max_distance: float) -> dict[int, float]:
    """Per decoded instance: purity x size, in [0, 1].

    purity = 1 - mean(|rgb - palette[id]|) / max_distance (clipped to [0, 1]);
    size = area / (area + AREA_PRIOR_PX), area in pixels of `ids` (the prediction's own resolution).
    """
    out = {}
    scale = max(float(max_distance), 1e-6)
    for k, m in instance_masks(ids).items():
        dist = np.linalg.norm(rgb[m].astype(np.float64) - palette[k].astype(np.float64), axis=1)
        purity = float(np.clip(1.0 - dist.mean() / scale, 0.0, 1.0))
        area = float(m.sum())
        out[k] = purity * area / (area + AREA_PRIOR_PX)
    return out


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


@dataclass
class _Image:
    key: str
    digest: str
    shape: tuple[int, int]
    gts: list[tuple[dict, float]]      # (RLE, area)
    dts: list[tuple[dict, float]]      # (RLE, score)


@dataclass
class MaskAP:
    """Collect truth and predicted instances image by image; `metrics()` runs COCOeval."""

    images: list[_Image] = field(default_factory=list)

    def add(self, gt_ids: np.ndarray, pred_ids: np.ndarray, scores: dict[int, float] | None = None,
            key: str | None = None) -> None:
        """One image: truth and predicted id maps of one size; `scores` per predicted id (default 1);
        `key` names the image (its sample key) so the set is scored the same in any order."""
        if gt_ids.shape != pred_ids.shape:
            raise ValueError(f"MaskAP.add: prediction {pred_ids.shape} and truth {gt_ids.shape} differ in size")
        digest = hashlib.sha1(np.ascontiguousarray(gt_ids).tobytes() + np.ascontiguousarray(pred_ids).tobytes()
                              + repr(sorted((scores or {}).items())).encode()).hexdigest()
        gts = [(_rle(m), float(m.sum())) for m in instance_masks(gt_ids).values()]
        dts = [(_rle(m), 1.0 if scores is None else float(scores.get(k, 1.0)))
               for k, m in instance_masks(pred_ids).items()]
        self.images.append(_Image("" if key is None else str(key), digest, gt_ids.shape[:2], gts, dts))

    def _dataset(self) -> tuple[list[dict], list[dict], list[dict]]:
        """COCO images, truth and detections, images numbered in (key, content) order."""
        images, gts, dts = [], [], []
        for image_id, im in enumerate(sorted(self.images, key=lambda im: (im.key, im.digest)), start=1):
            images.append({"id": image_id, "height": im.shape[0], "width": im.shape[1]})
            for rle, area in im.gts:
                gts.append({"id": len(gts) + 1, "image_id": image_id, "category_id": 1, "segmentation": rle,
                            "area": area, "bbox": list(mask_utils.toBbox(rle)), "iscrowd": 0})
            for rle, score in im.dts:
                dts.append({"image_id": image_id, "category_id": 1, "segmentation": dict(rle), "score": score})
        return images, gts, dts

    def metrics(self) -> dict[str, float]:
        """COCO mask AP / AR; NaN where undefined (no truth instance at all)."""
        if not self.images:
            return {}
        images, gts, dts = self._dataset()
        if not gts:
            return {name: float("nan") for name in STAT_NAMES}
        gt = COCO()
        gt.dataset = {"images": images, "annotations": gts, "categories": [{"id": 1, "name": "object"}]}
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and tables
            gt.createIndex()
            if not dts:
                return {name: 0.0 for name in STAT_NAMES}
            dt = gt.loadRes(dts)
            ev = COCOeval(gt, dt, iouType="segm")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        # COCOeval writes -1 where a bucket (e.g. small objects) has no truth: undefined, not zero.
        return {name: (float(v) if v >= 0 else float("nan")) for name, v in zip(STAT_NAMES, ev.stats)}
