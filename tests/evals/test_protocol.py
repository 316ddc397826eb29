"""Scoring protocols against references written here, independently, the way the field's code computes them:
BTS / ZoeDepth depth (missing prediction = min depth), Marigold / Depth Anything alignment, detectron2 mIoU,
LISA cIoU, DSINE angular RMSE; and order independence of every metric."""

import math
import random

import numpy as np
import pytest

from evals import Evaluator
from evals import depth as dm
from evals import normals as nm
from evals import protocols
from evals import referring as rm
from evals import segmentation as sm
from evals.instance import MaskAP
from tests.conftest import add_noise


# ---------------------------------------------------------------- references (field code, re-typed)
def bts_errors(gt, pred):
    """BTS / ZoeDepth `compute_errors` on already-masked 1-D arrays."""
    thresh = np.maximum(gt / pred, pred / gt)
    out = {f"delta{k}": float((thresh < 1.25 ** k).mean()) for k in (1, 2, 3)}
    out["abs_rel"] = float(np.mean(np.abs(gt - pred) / gt))
    out["sq_rel"] = float(np.mean(((gt - pred) ** 2) / gt))
    out["rmse"] = float(np.sqrt(((gt - pred) ** 2).mean()))
    out["log10"] = float(np.abs(np.log10(pred) - np.log10(gt)).mean())
    err = np.log(pred) - np.log(gt)
    out["silog"] = float(np.sqrt(np.mean(err ** 2) - np.mean(err) ** 2) * 100)
    return out


def zoedepth_image(gt, pred, min_depth, max_depth, crop):
    """ZoeDepth's `compute_metrics`: nan -> min, inf -> max, clip; valid = (min, max) inside the crop."""
    pred = pred.astype(np.float64).copy()
    gt = gt.astype(np.float64)
    pred[np.isnan(pred)] = min_depth
    pred[np.isinf(pred)] = max_depth
    pred = np.clip(pred, min_depth, max_depth)
    with np.errstate(invalid="ignore"):
        valid = (gt > min_depth) & (gt < max_depth)
    h, w = gt.shape
    mask = np.zeros_like(valid)
    if crop == "eigen":
        mask[int(45 / 480 * h):int(471 / 480 * h), int(41 / 640 * w):int(601 / 640 * w)] = True
    else:
        mask[:] = True
    valid &= mask
    return bts_errors(gt[valid], pred[valid])


def detectron2_miou(preds, gts, num_classes, ignore_label=0):
    """detectron2 SemSegEvaluator: conf[pred, gt] with the ignore label moved to the extra last bin;
    IoU over classes with truth pixels (acc_valid) and a non-empty union. Classes here are 1..num_classes."""
    n = num_classes  # our ids 1..n become 0..n-1; the ignore label becomes n
    conf = np.zeros((n + 1, n + 1), np.int64)
    for pred, gt in zip(preds, gts):
        pred = pred.astype(np.int64) - 1
        gt = gt.astype(np.int64) - 1
        pred[gt == ignore_label - 1] = n
        gt[gt == ignore_label - 1] = n
        conf += np.bincount((n + 1) * pred.reshape(-1) + gt.reshape(-1), minlength=(n + 1) ** 2).reshape(n + 1, n + 1)
    tp = conf.diagonal()[:-1].astype(float)
    pos_gt = np.sum(conf[:-1, :-1], axis=0).astype(float)
    pos_pred = np.sum(conf[:-1, :-1], axis=1).astype(float)
    acc_valid = pos_gt > 0
    union = pos_gt + pos_pred - tp
    iou_valid = acc_valid & (union > 0)
    return float(np.sum(tp[iou_valid] / union[iou_valid]) / np.sum(iou_valid))


def lisa_ciou(preds, gts):
    """LISA: AverageMeter sums of intersection and union (+1e-10 in the division)."""
    inter = sum(int(np.sum(p & g)) for p, g in zip(preds, gts))
    union = sum(int(np.sum(p | g)) for p, g in zip(preds, gts))
    return inter / (union + 1e-10)


# ---------------------------------------------------------------- depth
def _scene(rng, h=48, w=64):
    gt = rng.uniform(0.5, 12.0, (h, w)).astype(np.float32)  # some truth beyond NYUv2's 10 m cap
    gt[rng.random((h, w)) < 0.1] = np.nan
    pred = (gt * rng.uniform(0.7, 1.4, (h, w))).astype(np.float32)
    pred[rng.random((h, w)) < 0.05] = np.nan    # undecodable
    pred[rng.random((h, w)) < 0.02] = np.inf    # "no hit"
    return gt, pred


def test_depth_matches_zoedepth_with_the_min_depth_rule(rng):
    for name in ("nyuv2", "vistune", "kitti"):
        p = dm.get_protocol(name)
        gt, pred = _scene(rng)
        ours = dm.depth_image_metrics(pred, gt, p)
        ref = zoedepth_image(gt, pred, p.min_depth, p.max_depth, "eigen" if p.crop == "eigen" else "none") \
            if p.crop != "garg" else None
        if ref is None:  # garg: compare on the same mask (the crop itself is tested in test_metrics)
            valid = dm.valid_mask(gt, p)
            q = pred.astype(np.float64)
            q = np.clip(np.where(np.isnan(q), p.min_depth, np.where(np.isinf(q), p.max_depth, q)),
                        p.min_depth, p.max_depth)
            ref = bts_errors(gt[valid].astype(np.float64), q[valid].astype(np.float64))
        for k, v in ref.items():
            assert ours[k] == pytest.approx(v, rel=1e-9, abs=1e-12), (name, k)
        assert 0.9 < ours["coverage"] < 1.0
    # dropping the undecodable pixels (the old rule) would have scored better: the rule matters
    p = dm.get_protocol("nyuv2")
    gt, pred = _scene(rng)
    dropped = dm.depth_image_metrics(pred, np.where(np.isnan(pred), np.nan, gt), p)
    assert dm.depth_image_metrics(pred, gt, p)["abs_rel"] > dropped["abs_rel"] + 0.02


def test_aligned_fit_runs_on_the_raw_prediction_then_clips():
    """Marigold: lstsq on the raw prediction, then clip. pred = 2 g + 15 exceeds NYUv2's 10 m cap
    everywhere; fitting the clipped (constant 10 m) prediction could not undo it, the raw fit does."""
    gt = np.linspace(1.0, 9.0, 400, dtype=np.float32).reshape(20, 20)
    m = dm.depth_image_metrics(2 * gt + 15, gt, dm.DepthProtocol("t", 1e-3, 10.0))
    assert m["abs_rel"] > 1.0
    assert m["aligned/abs_rel"] < 1e-6 and (m["aligned/scale"], m["aligned/shift"]) == pytest.approx((0.5, -7.5))


def test_alignment_in_disparity_space_matches_a_depth_anything_style_reference(rng):
    """Depth Anything / MiDaS: fit s, t on disparity, cap the disparity at 1/max_depth, invert, score."""
    gt = rng.uniform(1.0, 8.0, (30, 40))
    disp = 3.0 / gt + 0.05 + rng.normal(0, 0.01, gt.shape)   # an affine-in-disparity model with noise
    pred = (1.0 / disp).astype(np.float32)
    p = dm.DepthProtocol("t", 1e-3, 10.0, alignment="disparity")
    m = dm.depth_image_metrics(pred, gt.astype(np.float32), p)
    x, y = 1.0 / pred.astype(np.float64).ravel(), 1.0 / gt.astype(np.float32).astype(np.float64).ravel()
    A = np.stack([x, np.ones_like(x)], 1)
    s, t = np.linalg.lstsq(A, y, rcond=None)[0]
    aligned = 1.0 / np.maximum(s * x + t, 1.0 / 10.0)
    ref = bts_errors(gt.astype(np.float32).astype(np.float64).ravel(), np.clip(aligned, 1e-3, 10.0))
    assert (m["aligned/scale"], m["aligned/shift"]) == pytest.approx((s, t), rel=1e-9)
    for k, v in ref.items():
        assert m[f"aligned/{k}"] == pytest.approx(v, rel=1e-9, abs=1e-12), k
    # the same prediction aligned in depth space fits worse (the relation is affine in disparity)
    m_depth = dm.depth_image_metrics(pred, gt.astype(np.float32), dm.DepthProtocol("t", 1e-3, 10.0))
    assert m["aligned/abs_rel"] < m_depth["aligned/abs_rel"]


# ---------------------------------------------------------------- semantic, referring, normals
def test_miou_conventions_against_detectron2_and_by_hand(rng):
    n = 5
    gts = [rng.integers(0, 4, (12, 16)) for _ in range(3)]           # classes 1..3 in truth, 0 ignored
    # every labeled pixel gets a class 1..n (detectron2 has no "nothing" answer); 4 and 5 are false classes
    preds = [np.where((rng.random(g.shape) < 0.7) & (g > 0), g, rng.integers(1, n + 1, g.shape)) for g in gts]
    conf = None
    for p, g in zip(preds, gts):
        conf = sm.add_confusion(conf, sm.confusion_matrix(p, g, n))
    assert sm.mean_iou(conf, convention="truth") == pytest.approx(detectron2_miou(preds, gts, n), rel=1e-12)
    iou = sm.class_iou(conf)
    assert sm.mean_iou(conf, convention="union") == pytest.approx(np.nanmean(iou[1:]))   # classes 1..5
    assert sm.mean_iou(conf, convention="classes") == pytest.approx(np.nan_to_num(iou[1:]).sum() / n)
    assert sm.mean_iou(conf, convention="union") < sm.mean_iou(conf, convention="truth")  # false classes count
    with pytest.raises(ValueError, match="convention must be one of"):
        sm.mean_iou(conf, convention="mmseg")


def test_ciou_against_lisa(rng):
    gts = [rng.random((10, 10)) < 0.3 for _ in range(4)] + [np.zeros((10, 10), bool)]
    preds = [rng.random((10, 10)) < 0.3 for _ in range(4)] + [np.zeros((10, 10), bool)]
    iu = np.array([rm.intersection_union(p, g) for p, g in zip(preds, gts)])
    assert rm.ciou(iu[:, 0], iu[:, 1]) == pytest.approx(lisa_ciou(preds, gts), rel=1e-9)
    empty = [np.zeros((4, 4), bool)] * 2
    assert rm.ciou(np.zeros(2), np.zeros(2)) == lisa_ciou(empty, empty) == 0.0


def test_normals_angular_rmse(rng):
    errors = rng.gamma(2.0, 8.0, 5000)
    hist = nm.AngleHistogram()
    for part in np.array_split(errors, 3):
        hist.add(part)
    assert hist.metrics()["rmse_deg"] == pytest.approx(math.sqrt(np.mean(errors ** 2)), rel=1e-12)
    assert nm.normal_metrics(errors)["rmse_deg"] == pytest.approx(math.sqrt(np.mean(errors ** 2)), rel=1e-12)


# ---------------------------------------------------------------- order independence
def _box_ids(boxes, shape=(20, 20)):
    ids = np.zeros(shape, np.uint16)
    for k, (r0, r1, c0, c1) in enumerate(boxes, start=1):
        ids[r0:r1, c0:c1] = k
    return ids


def test_mask_ap_does_not_depend_on_image_order():
    """Every prediction scores 1.0 (the tie the issue measured): pycocotools breaks ties by image id,
    so numbering images by arrival order moved AP; numbered by key, any order gives one AP."""
    images = []
    for i in range(6):
        gt = _box_ids([(0, 8, 0, 8)])
        pred = _box_ids([(0, 8, 0, 8)]) if i % 2 else _box_ids([(10, 18, 10, 18)])  # hits and false positives
        images.append((f"k{i}", gt, pred))
    values = set()
    for order in (images, images[::-1], images[2:] + images[:2]):
        ap = MaskAP()
        for key, gt, pred in order:
            ap.add(gt, pred, {1: 1.0}, key=key)
        values.add(ap.metrics()["AP"])
    assert len(values) == 1


def _keyed_noisy(batch):
    """A deterministic imperfect answer per sample (a function of its key, not of its position)."""
    return [add_noise(np.roll(s.target, 2, axis=1), 24.0, seed=sum(map(ord, s.key))) for s in batch]


def test_shuffling_the_samples_changes_no_metric():
    from tests.evals.samples import eval_samples

    samples = eval_samples(4)
    first = dict(Evaluator(_keyed_noisy, samples, batch_size=3).run())
    tasks = {k.split("/")[1] for k in first}
    assert {"depth", "normals", "semantic", "instance", "referring", "t2i", "edit"} <= tasks
    for seed in (1, 2):
        shuffled = samples[:]
        random.Random(seed).shuffle(shuffled)
        again = dict(Evaluator(_keyed_noisy, shuffled, batch_size=5).run())
        assert again.keys() == first.keys()
        for k, v in first.items():
            assert again[k] == v or (math.isnan(v) and math.isnan(again[k])), k


# ---------------------------------------------------------------- the protocol table
def test_protocol_table():
    assert protocols.get("nyuv2").crop == "eigen" and protocols.get("nyuv2").max_depth == 10.0
    assert protocols.get("kitti").crop == "garg" and protocols.get("kitti").max_depth == 80.0
    for name in ("nyuv2", "kitti", "diode", "ibims", "eth3d", "cityscapes", "ade20k", "default"):
        p = protocols.get(name)
        assert dm.get_protocol(name).max_depth == p.max_depth   # the depth metrics read the same table
        assert name in p.describe()
        assert p.prediction_region == ("center" if name == "default" else "full")
    assert protocols.of_sample({"depth_protocol": "kitti"}).name == "kitti"
    assert protocols.of_sample({"protocol": "nyuv2", "depth_protocol": "kitti"}).name == "nyuv2"
    assert protocols.of_sample({}).name == "default"
    with pytest.raises(ValueError, match="unknown protocol 'nyu'"):
        protocols.get("nyu")
    with pytest.raises(ValueError, match="miou must be one of"):
        protocols.Protocol("x", miou="mean")


def test_each_source_uses_its_protocols_miou_convention():
    """A source recording `ade20k` averages over every listed class (an absent one counts 0); the same
    predictions under the default protocol average over classes in truth or prediction only."""
    from tests.evals.samples import eval_samples

    from encode import codecs

    five = codecs.get("semantic", num_classes=5)   # a 5-class list; the scenes use classes 1..3
    sem = [s for s in eval_samples(2) if s.task == "semantic"]
    for s in sem:
        s.meta["codec"] = codecs.spec(five)
    answer = lambda batch: [five.encode(s.raw["semantic"]) for s in batch]  # noqa: E731  (perfect answers)
    plain = dict(Evaluator(answer, sem, references=False).run())
    for s in sem:
        s.meta["protocol"] = "ade20k"
    listed = dict(Evaluator(answer, sem, references=False).run())
    present = {int(c) for s in sem for c in np.unique(s.raw["semantic"]) if c}
    assert plain["model/semantic/all/miou"] == 1.0
    assert present == {1, 2, 3}
    assert listed["model/semantic/all/miou"] == pytest.approx(3 / 5)   # classes 4 and 5 count 0


def test_one_pixel_of_rounding_is_not_a_wrong_size():
    """A 375x1242 frame letterboxed into a 32 px square comes back 10 px high (9.66 exact): 3.4% off in
    aspect, but only the rounding of whole pixels; two pixels off, or a tiny image, is still wrong_size."""
    from evals.failure import EvalFailure
    from evals.scoring import check_prediction

    assert check_prediction(np.zeros((10, 32, 3), np.uint8), (375, 1242)).shape == (10, 32, 3)
    assert check_prediction(np.zeros((32, 10, 3), np.uint8), (1242, 375)).shape == (32, 10, 3)
    for bad in ((12, 32), (1, 2)):
        with pytest.raises(EvalFailure) as err:
            check_prediction(np.zeros((*bad, 3), np.uint8), (375, 1242) if bad[1] == 32 else (36, 48))
        assert err.value.reason == "wrong_size"
