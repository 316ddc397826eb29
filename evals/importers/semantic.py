"""Semantic segmentation benchmarks -> `Imported` semantic samples (vistune ids: 0 = not scored).

    cityscapes  SRC/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png and
                SRC/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png; label ids map to the 19
                train ids of cityscapesScripts' labels.py (everything else is 255, ignored), stored
                as train id + 1 so that vistune's 0 is the ignore label
    ade20k      ADEChallengeData2016: SRC/images/<split>/<stem>.jpg and SRC/annotations/<split>/<stem>.png
                (uint8: 0 = "other", ignored; 1..150 the SceneParsing classes, already vistune's ids)
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from evals.importers.common import BenchmarkError, Imported, read_png, read_rgb, require, same_size

# cityscapesScripts helpers/labels.py: (label id, train id, name) of the 19 evaluated classes.
CITYSCAPES_TRAIN = ((7, "road"), (8, "sidewalk"), (11, "building"), (12, "wall"), (13, "fence"), (17, "pole"),
                    (19, "traffic light"), (20, "traffic sign"), (21, "vegetation"), (22, "terrain"), (23, "sky"),
                    (24, "person"), (25, "rider"), (26, "car"), (27, "truck"), (28, "bus"), (31, "train"),
                    (32, "motorcycle"), (33, "bicycle"))
CITYSCAPES_CLASSES = [name for _, name in CITYSCAPES_TRAIN]
CITYSCAPES_LUT = np.zeros(256, np.uint16)  # label id -> train id + 1; 0 = ignore (train id 255)
for _train_id, (_label_id, _) in enumerate(CITYSCAPES_TRAIN):
    CITYSCAPES_LUT[_label_id] = _train_id + 1

ADE20K_CLASSES = [
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
    "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel",
    "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool",
    "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture",
    "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag"]
assert len(ADE20K_CLASSES) == 150


def cityscapes_ids(label_ids: np.ndarray) -> np.ndarray:
    """gtFine labelIds -> vistune ids (train id + 1, 0 = ignored)."""
    return CITYSCAPES_LUT[label_ids.astype(np.int64)]


def cityscapes(src: Path, split: str = "val") -> Iterator[Imported]:
    img_root = require(src / "leftImg8bit" / split, f"Cityscapes leftImg8bit/{split}/ directory")
    gt_root = require(src / "gtFine" / split, f"Cityscapes gtFine/{split}/ directory")
    images = sorted(img_root.glob("*/*_leftImg8bit.png"))
    if not images:
        raise BenchmarkError(f"{img_root}: no '<city>/*_leftImg8bit.png' images")
    for img_path in images:
        stem = img_path.name[:-len("_leftImg8bit.png")]
        gt_path = gt_root / img_path.parent.name / f"{stem}_gtFine_labelIds.png"
        rgb = read_rgb(img_path)
        labels = read_png(gt_path, "Cityscapes gtFine labelIds", ("uint8",))
        same_size(rgb, labels, gt_path)
        yield Imported(stem, "semantic", rgb, cityscapes_ids(labels), {"rgb": str(img_path), "semantic": str(gt_path)})


def ade20k(src: Path, split: str = "validation") -> Iterator[Imported]:
    img_root = require(src / "images" / split, f"ADE20K images/{split}/ directory")
    gt_root = require(src / "annotations" / split, f"ADE20K annotations/{split}/ directory")
    images = sorted(p for p in img_root.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not images:
        raise BenchmarkError(f"{img_root}: no images")
    for img_path in images:
        gt_path = gt_root / f"{img_path.stem}.png"
        rgb = read_rgb(img_path)
        ids = read_png(gt_path, "ADE20K annotation", ("uint8",))
        same_size(rgb, ids, gt_path)
        if int(ids.max()) > len(ADE20K_CLASSES):
            raise BenchmarkError(f"{gt_path}: class id {int(ids.max())} outside 0..{len(ADE20K_CLASSES)}")
        yield Imported(img_path.stem, "semantic", rgb, ids.astype(np.uint16),
                       {"rgb": str(img_path), "semantic": str(gt_path)})
