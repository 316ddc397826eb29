"""Semantic importers on fixtures in each benchmark's layout: Cityscapes (leftImg8bit + gtFine
labelIds -> the 19 train ids of cityscapesScripts, everything else ignored) and ADE20K
(ADEChallengeData2016: 0 = other, ignored; 1..150). A perfect oracle row is mIoU = 1."""

import numpy as np
import pytest
from PIL import Image

from evals.importers import BenchmarkError, import_benchmark
from evals.importers.semantic import ADE20K_CLASSES, CITYSCAPES_CLASSES
from tests.evals.importer_checks import oracle_metrics

H, W = 32, 64

# cityscapesScripts labels.py, written out independently: label id -> train id (255 = ignored)
CITYSCAPES_REFERENCE = {0: 255, 1: 255, 4: 255, 6: 255, 7: 0, 8: 1, 9: 255, 11: 2, 12: 3, 13: 4, 14: 255, 17: 5,
                        19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 29: 255,
                        31: 16, 32: 17, 33: 18}


def write_cityscapes(root):
    rng = np.random.default_rng(11)
    ids = np.array(sorted(CITYSCAPES_REFERENCE), np.uint8)
    labels = {}
    for city, stem in (("frankfurt", "frankfurt_000000_000294"), ("lindau", "lindau_000001_000019")):
        (root / "leftImg8bit" / "val" / city).mkdir(parents=True)
        (root / "gtFine" / "val" / city).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
            root / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png")
        lab = rng.choice(ids, (H, W)).astype(np.uint8)
        Image.fromarray(lab).save(root / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png")
        labels[stem] = lab
    return labels


def test_cityscapes_label_ids_to_train_ids(tmp_path):
    labels = write_cityscapes(tmp_path)
    summary = import_benchmark("cityscapes", tmp_path, tmp_path / "out")
    assert summary.written == 2 and summary.protocol == "cityscapes"
    samples, flat = oracle_metrics(tmp_path / "out")
    for s in samples:
        lab = labels[s.key.removeprefix("cityscapes_")]
        train = np.vectorize(CITYSCAPES_REFERENCE.get)(lab)
        np.testing.assert_array_equal(s.raw["semantic"], np.where(train == 255, 0, train + 1))
        assert s.meta["class_table"] == CITYSCAPES_CLASSES and s.meta["protocol"] == "cityscapes"
        assert all(name in s.prompt for name in ("road", "motorcycle", "bicycle"))  # every class, not the present ones
    assert flat["model/semantic/cityscapes/miou"] == 1.0 and flat["model/semantic/cityscapes/n"] == 2
    (tmp_path / "gtFine" / "val" / "lindau" / "lindau_000001_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(BenchmarkError, match="lindau_000001_000019_gtFine_labelIds.png: missing"):
        import_benchmark("cityscapes", tmp_path, tmp_path / "out2")


def write_ade20k(root):
    rng = np.random.default_rng(12)
    (root / "images" / "validation").mkdir(parents=True)
    (root / "annotations" / "validation").mkdir(parents=True)
    ann = rng.integers(0, 151, (H, W)).astype(np.uint8)
    Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
        root / "images" / "validation" / "ADE_val_00000001.jpg", quality=95)
    Image.fromarray(ann).save(root / "annotations" / "validation" / "ADE_val_00000001.png")
    return ann


def test_ade20k_150_classes(tmp_path):
    ann = write_ade20k(tmp_path)
    summary = import_benchmark("ade20k", tmp_path, tmp_path / "out")
    assert summary.protocol == "ade20k"
    samples, flat = oracle_metrics(tmp_path / "out")
    np.testing.assert_array_equal(samples[0].raw["semantic"], ann)
    assert len(samples[0].meta["class_table"]) == 150 and samples[0].meta["class_table"][-1] == ADE20K_CLASSES[-1]
    assert flat["model/semantic/ade20k/miou"] == 1.0
    ann[0, 0] = 151
    Image.fromarray(ann).save(tmp_path / "annotations" / "validation" / "ADE_val_00000001.png")
    with pytest.raises(BenchmarkError, match="ADE_val_00000001.png: class id 151 outside 0..150"):
        import_benchmark("ade20k", tmp_path, tmp_path / "out2")
