"""Referring importers: RefCOCO-family refs (the refer API's pickle, read by a data-only unpickler,
or its JSON conversion) + COCO instances, and LISA's ReasonSeg JSON polygons. One sample per
expression; a perfect oracle row is cIoU = gIoU = 1. A pickle that names any global is refused
before it can run anything."""

import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from evals.importers import BenchmarkError, import_benchmark
from evals.importers.referring import safe_load_pickle
from tests.evals.importer_checks import oracle_metrics

H, W = 40, 60


def write_refcoco(root, as_json=False):
    rng = np.random.default_rng(21)
    img_dir = root / "images" / "mscoco" / "images" / "train2014"
    img_dir.mkdir(parents=True)
    (root / "refcocog").mkdir()
    images = [{"id": 9, "file_name": "COCO_train2014_000000000009.jpg", "height": H, "width": W}]
    Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(img_dir / images[0]["file_name"], quality=95)
    rle = mask_utils.encode(np.asfortranarray((rng.random((H, W)) > 0.7).astype(np.uint8)))
    anns = [{"id": 101, "image_id": 9, "category_id": 1, "segmentation": [[5, 5, 25, 5, 25, 20, 5, 20]]},
            {"id": 102, "image_id": 9, "category_id": 2,
             "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}}]
    refs = [{"ref_id": 1, "ann_id": 101, "image_id": 9, "split": "val", "category_id": 1,
             "file_name": "COCO_train2014_000000000009_101.jpg",
             "sentences": [{"sent": "The red box on the left", "sent_id": 11, "raw": "The red box on the left."},
                           {"sent": "left box", "sent_id": 12, "raw": "left box"}]},
            {"ref_id": 2, "ann_id": 102, "image_id": 9, "split": "val", "category_id": 2,
             "sentences": [{"sent": "the speckles", "sent_id": 13}]},
            {"ref_id": 3, "ann_id": 101, "image_id": 9, "split": "train", "category_id": 1,
             "sentences": [{"sent": "train only", "sent_id": 14}]}]
    (root / "refcocog" / "instances.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                                   "categories": [{"id": 1}, {"id": 2}]}))
    if as_json:
        (root / "refcocog" / "refs.json").write_text(json.dumps(refs))
    else:
        with open(root / "refcocog" / "refs(umd).p", "wb") as fh:
            pickle.dump(refs, fh, protocol=2)
    truth = {"1": np.zeros((H, W), bool), "2": mask_utils.decode(rle).astype(bool)}
    truth["1"][5:20, 5:25] = True  # the rectangle x in [5, 25), y in [5, 20): pycocotools' pixel rule
    return truth


def test_refcocog_pickle_and_instances(tmp_path):
    truth = write_refcoco(tmp_path)
    summary = import_benchmark("refcoco", tmp_path, tmp_path / "out", {"dataset": "refcocog", "split": "val"})
    assert summary.written == 3 and summary.protocol == "refcocog"     # one per sentence of the val refs
    samples, flat = oracle_metrics(tmp_path / "out")
    assert [s.key for s in samples] == ["refcocog_1_11", "refcocog_1_12", "refcocog_2_13"]
    for s in samples:
        np.testing.assert_array_equal(s.raw["mask"], truth[s.key.split("_")[1]])
    assert samples[0].meta["expression"] == "the red box on the left"   # LISA: sent.strip().lower()
    assert "the red box on the left" in samples[0].prompt
    assert flat["model/referring/refcocog/ciou"] == 1.0 and flat["model/referring/refcocog/giou"] == 1.0


def test_refs_json_conversion(tmp_path):
    write_refcoco(tmp_path, as_json=True)
    import_benchmark("refcoco", tmp_path, tmp_path / "out", {"refs": str(tmp_path / "refcocog" / "refs.json")})
    samples, flat = oracle_metrics(tmp_path / "out")
    assert len(samples) == 3 and flat["model/referring/refcocog/ciou"] == 1.0


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_refs_pickle_is_refused(tmp_path):
    write_refcoco(tmp_path)
    marker = tmp_path / "pwned"
    refs = tmp_path / "refcocog" / "refs(umd).p"
    refs.write_bytes(pickle.dumps([{"ref_id": 1, "payload": _Exploit(marker)}], protocol=2))
    with pytest.raises(BenchmarkError, match=r"refs\(umd\).p: refused .*global (posix|os)\.system is not allowed"):
        import_benchmark("refcoco", tmp_path, tmp_path / "out")
    assert not marker.exists()
    refs.write_bytes(pickle.dumps([{"ref_id": 1}], protocol=0)[:-3])  # truncated
    with pytest.raises(BenchmarkError, match=r"refs\(umd\).p: refused or unreadable pickle"):
        safe_load_pickle(refs)
    refs.write_bytes(pickle.dumps([{"ref_id": 1, "sentences": [], "split": b"val", "t": (1, 2.5, None, True)}]))
    assert safe_load_pickle(refs)[0]["t"] == (1, 2.5, None, True)     # builtin containers and scalars load


def write_reasonseg(root):
    root.mkdir(parents=True)
    rng = np.random.default_rng(22)
    Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "1234.jpg", quality=95)
    anno = {"text": ["What in this kitchen keeps food cold?", "the fridge"], "is_sentence": True,
            "shapes": [{"label": "target", "points": [[10, 5], [50, 5], [50, 35], [10, 35]], "shape_type": "polygon"},
                       {"label": "ignore", "points": [[20, 10], [30, 10], [30, 20], [20, 20]], "shape_type": "polygon"},
                       {"label": "flag", "points": [[0, 0], [59, 0], [59, 39]], "shape_type": "polygon"}]}
    (root / "1234.json").write_text(json.dumps(anno))


def test_reasonseg_polygons(tmp_path):
    write_reasonseg(tmp_path / "val")
    summary = import_benchmark("reasonseg", tmp_path / "val", tmp_path / "out")
    assert summary.written == 1 and summary.protocol == "reasonseg"
    samples, flat = oracle_metrics(tmp_path / "out")
    s = samples[0]
    expected = np.zeros((H, W), bool)
    expected[5:36, 10:51] = True                                      # filled with its outline (cv2 fillPoly+polylines)
    expected[10:21, 20:31] = False                                    # the smaller ignore polygon is drawn on top
    np.testing.assert_array_equal(s.raw["mask"], expected)
    assert s.meta["ignore_pixels"] == 11 * 11 and s.meta["expression"] == "What in this kitchen keeps food cold?"
    assert s.meta["is_sentence"] is True and len(s.meta["all_texts"]) == 2
    assert flat["model/referring/reasonseg/ciou"] == 1.0 and flat["model/referring/reasonseg/giou"] == 1.0
    anno = json.loads((tmp_path / "val" / "1234.json").read_text())
    anno["text"] = ["Where would you sit in this caf\u00e9?"]
    (tmp_path / "val" / "1234.json").write_bytes(json.dumps(anno, ensure_ascii=False).encode("cp1252"))
    import_benchmark("reasonseg", tmp_path / "val", tmp_path / "out_cp1252")  # LISA's cp1252 fallback
    assert oracle_metrics(tmp_path / "out_cp1252")[0][0].meta["expression"].endswith("caf\u00e9?")
    (tmp_path / "val" / "1234.json").write_text("{not json")
    with pytest.raises(BenchmarkError, match="1234.json: not readable JSON"):
        import_benchmark("reasonseg", tmp_path / "val", tmp_path / "out2")
