"""Metric functions on hand-computed cases (tolerances stated per assertion)."""

import math

import numpy as np
import pytest

from evals import depth as dm
from evals import generation as gm
from evals import normals as nm
from evals import referring as rm
from evals import segmentation as sm
from evals.failure import EvalFailure
from evals.instance import MaskAP, color_confidence

TOL = 1e-6


# ---------------------------------------------------------------- depth
# gt row: three valid pixels, then sky (+inf), invalid (NaN) and 0 (never valid): only 1, 2, 4 m count.
GT = np.array([[1.0, 2.0, 4.0, np.inf, np.nan, 0.0]], np.float32)
PRED = np.array([[1.1, 2.0, 2.2, 5.0, 3.0, 3.0]], np.float32)
VALID = np.array([[True, True, True, False, False, False]])


def test_depth_metrics_hand_computed():
    p, g = PRED.astype(np.float64), GT.astype(np.float64)
    assert dm.valid_mask(GT, dm.PROTOCOLS["vistune"]).tolist() == VALID.tolist()
    # |p - g| / g = 0.1, 0, 0.45
    assert dm.abs_rel(p, g, VALID) == pytest.approx(0.55 / 3, abs=1e-6)
    # (p - g)^2 / g = 0.01, 0, 3.24 / 4
    assert dm.sq_rel(p, g, VALID) == pytest.approx(0.82 / 3, abs=1e-6)
    assert dm.rmse(p, g, VALID) == pytest.approx(math.sqrt(3.25 / 3), abs=1e-6)
    # |log10 p - log10 g| = log10 1.1 = 0.0413927, 0, log10(4 / 2.2) = 0.2596373
    assert dm.log10_error(p, g, VALID) == pytest.approx((0.0413927 + 0.2596373) / 3, abs=1e-6)
    # e = ln(p / g) = 0.0953102, 0, -0.5978370: mean -0.1675089, mean e^2 0.1221644 -> 100 sqrt(0.0941052)
    assert dm.silog(p, g, VALID) == pytest.approx(30.6766, abs=1e-3)
    # ratios 1.1, 1.0, 1.818: < 1.25 twice, < 1.5625 twice, < 1.953 three times
    assert dm.delta_accuracy(p, g, VALID, 1) == pytest.approx(2 / 3)
    assert dm.delta_accuracy(p, g, VALID, 2) == pytest.approx(2 / 3)
    assert dm.delta_accuracy(p, g, VALID, 3) == pytest.approx(1.0)


def test_depth_image_metrics_mask_clip_and_alignment():
    m = dm.depth_image_metrics(PRED, GT, dm.PROTOCOLS["vistune"])
    assert m["abs_rel"] == pytest.approx(0.55 / 3, abs=1e-6)
    assert m["coverage"] == 1.0 and m["n_pixels"] == 3
    # NYUv2 cap 10 m: a +inf ("no hit") prediction clips to 10 m -> |10 - 4| / 4 = 1.5 on that pixel
    gt = np.full((480, 640), 4.0, np.float32)
    pred = gt.copy()
    pred[240, 320] = np.inf
    m = dm.depth_image_metrics(pred, gt, dm.PROTOCOLS["nyuv2"])
    n = (471 - 45) * (601 - 41)  # Eigen crop
    assert m["n_pixels"] == n
    assert m["abs_rel"] == pytest.approx(1.5 / n, rel=1e-6)
    # an exact affine relation: pred = 2 g + 1 is 1 + 1/g off unaligned, exact after alignment
    gt = np.linspace(1, 5, 50, dtype=np.float32).reshape(5, 10)
    m = dm.depth_image_metrics(2 * gt + 1, gt, dm.PROTOCOLS["vistune"])
    assert m["abs_rel"] == pytest.approx(float(np.mean(1 + 1 / gt.astype(np.float64))), abs=1e-6)
    assert m["aligned/abs_rel"] < 1e-6 and m["aligned/delta1"] == 1.0
    assert (m["aligned/scale"], m["aligned/shift"]) == pytest.approx((0.5, -0.5), abs=1e-6)


def test_depth_nan_prediction_counts_at_min_depth_and_lowers_coverage():
    gt = np.full((4, 4), 2.0, np.float32)
    pred = gt.copy()
    pred[:2] = np.nan
    m = dm.depth_image_metrics(pred, gt, dm.PROTOCOLS["vistune"])
    # BTS / ZoeDepth: a missing prediction is min_depth (1e-3 m): |1e-3 - 2| / 2 on half the pixels
    assert m["coverage"] == 0.5 and m["n_pixels"] == 16
    assert m["abs_rel"] == pytest.approx(0.5 * (2 - 1e-3) / 2, rel=1e-9)
    assert m["delta1"] == 0.5
    # no answer at all is scored (the worst answer), not dropped
    m = dm.depth_image_metrics(np.full_like(gt, np.nan), gt, dm.PROTOCOLS["vistune"])
    assert m["coverage"] == 0.0 and m["abs_rel"] == pytest.approx((2 - 1e-3) / 2) and m["delta3"] == 0.0
    with pytest.raises(EvalFailure) as err:
        dm.depth_image_metrics(gt, np.full_like(gt, np.inf), dm.PROTOCOLS["vistune"])
    assert err.value.reason == "no_valid_truth"
    with pytest.raises(EvalFailure) as err:  # everything beyond KITTI's 80 m cap
        dm.depth_image_metrics(gt, np.full_like(gt, 90.0), dm.PROTOCOLS["kitti"])
    assert err.value.reason == "no_valid_truth"


def test_crops():
    assert dm.crop_mask((480, 640), "eigen").sum() == 426 * 560
    m = dm.crop_mask((375, 1242), "garg")
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    # int(0.40810811 * 375) = 153, int(0.99189189 * 375) = 371, int(0.03594771 * 1242) = 44, int(0.96405229 * 1242) = 1197
    assert (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) == (153, 371, 44, 1197)
    with pytest.raises(ValueError, match="crop must be one of"):
        dm.DepthProtocol("x", 0.0, 1.0, "center")
    with pytest.raises(ValueError, match="unknown depth protocol 'nyu'"):
        dm.get_protocol("nyu")


# ---------------------------------------------------------------- normals
def _tilt(deg):
    a = math.radians(deg)
    return [math.sin(a), 0.0, -math.cos(a)]


def test_normals_hand_computed():
    gt = np.array([[[0, 0, -1]] * 5], np.float32)
    pred = np.array([[_tilt(10), [0, 0, -2], _tilt(45), [np.nan] * 3, _tilt(20)]], np.float32)  # [0,0,-2]: not unit
    gt[0, 1] = _tilt(20)  # truth tilted 20 deg, prediction straight on: 20 deg
    gt[0, 4] = np.nan     # invalid truth: not counted
    err, valid = nm.angular_error_deg(pred, gt)
    assert valid.tolist() == [[True, True, True, True, False]]
    np.testing.assert_allclose(err[valid], [10, 20, 45, 180], atol=1e-4)  # invalid prediction: 180
    m = nm.normal_metrics(err[valid])
    assert m["mean_deg"] == pytest.approx(63.75, abs=1e-4)
    assert m["median_deg"] == pytest.approx(32.5, abs=1e-4)
    assert (m["within_11.25"], m["within_22.5"], m["within_30"]) == (25.0, 50.0, 50.0)


def test_angle_histogram_matches_exact_statistics(rng):
    errors = np.concatenate([rng.gamma(2.0, 8.0, 40000), np.full(100, 180.0)])
    hist = nm.AngleHistogram()
    for part in np.array_split(errors, 7):
        hist.add(part)
    exact, pooled = nm.normal_metrics(errors), hist.metrics()
    assert pooled["median_deg"] == pytest.approx(exact["median_deg"], abs=nm.BIN_DEG)
    for key in ("mean_deg", "within_11.25", "within_22.5", "within_30"):
        assert pooled[key] == pytest.approx(exact[key], abs=1e-9)
    assert pooled["pred_invalid"] == pytest.approx(100 / errors.size)


# ---------------------------------------------------------------- semantic
def test_semantic_miou_and_pixel_accuracy_with_ignore():
    gt = np.array([[1, 1, 2], [2, 0, 0], [1, 2, 2]])
    pred = np.array([[1, 2, 2], [2, 1, 0], [0, 2, 2]])  # (2,0): "unlabeled" predicted on a labeled pixel
    conf = sm.confusion_matrix(pred, gt, num_classes=2, ignore_index=0)
    # labeled pixels: class 1 -> predicted 1, 2, 0; class 2 -> 2, 2, 2, 2 (truth-0 pixels ignored)
    assert conf.tolist() == [[0, 0, 0], [1, 1, 1], [0, 0, 4]]
    # class 1: TP 1, FN 2 -> 1/3; class 2: TP 4, FP 1 -> 4/5
    np.testing.assert_allclose(sm.class_iou(conf)[1:], [1 / 3, 4 / 5])
    assert sm.mean_iou(conf) == pytest.approx((1 / 3 + 4 / 5) / 2)
    assert sm.pixel_accuracy(conf) == pytest.approx(5 / 7)
    # a class never in the truth but predicted has IoU 0; a class in neither is left out of the mean
    conf3 = sm.confusion_matrix(np.array([[3, 1]]), np.array([[1, 1]]), num_classes=4)
    iou = sm.class_iou(conf3)
    assert iou[1] == 0.5 and iou[3] == 0.0 and np.isnan(iou[2]) and np.isnan(iou[4])
    assert sm.mean_iou(conf3) == pytest.approx(0.25)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 2\]"):
        sm.confusion_matrix(np.array([[3]]), np.array([[1]]), num_classes=2)
    assert sm.add_confusion(conf, conf3).shape == (5, 5)


# ---------------------------------------------------------------- referring
def test_referring_ciou_giou_empty_counts_one():
    gt = [np.array([1, 1, 1, 0], bool), np.zeros(4, bool), np.zeros(4, bool)]
    pred = [np.array([1, 1, 0, 0], bool), np.zeros(4, bool), np.array([0, 0, 0, 1], bool)]
    iu = np.array([rm.intersection_union(p, g) for p, g in zip(pred, gt)])
    assert iu.tolist() == [[2, 3], [0, 0], [0, 1]]
    assert rm.ciou(iu[:, 0], iu[:, 1]) == pytest.approx(2 / 4)
    assert rm.giou(iu[:, 0], iu[:, 1]) == pytest.approx((2 / 3 + 1 + 0) / 3)  # empty/empty counts 1
    assert rm.ciou(np.array([0, 0]), np.array([0, 0])) == 0.0  # LISA: all-empty unions give cIoU 0, not NaN


# ---------------------------------------------------------------- instance (pycocotools)
def _ids(boxes, shape=(40, 40)):
    ids = np.zeros(shape, np.uint16)
    for k, (r0, r1, c0, c1) in enumerate(boxes, start=1):
        ids[r0:r1, c0:c1] = k
    return ids


def test_mask_ap_hand_computed():
    gt = _ids([(0, 10, 0, 10), (20, 30, 20, 30)])
    ap = MaskAP()
    ap.add(gt, gt)
    assert ap.metrics()["AP"] == pytest.approx(1.0)
    # one of two instances found exactly: precision 1 up to recall 0.5 -> 51 of COCO's 101 recall points
    ap = MaskAP()
    ap.add(gt, _ids([(0, 10, 0, 10)]))
    assert ap.metrics()["AP"] == pytest.approx(51 / 101, abs=1e-6)
    # IoU 0.64 (an 8x8 square inside a 10x10 one): a match at thresholds 0.50, 0.55, 0.60 of the ten
    # (0.50:0.05:0.95) -> AP 3/10, AP50 1, AP75 0
    ap = MaskAP()
    ap.add(_ids([(0, 10, 0, 10)]), _ids([(0, 8, 0, 8)]))
    m = ap.metrics()
    assert (m["AP"], m["AP50"], m["AP75"]) == pytest.approx((0.3, 1.0, 0.0), abs=1e-6)
    # no prediction at all: 0; no truth at all: undefined (NaN), not a free 0 or 1
    ap = MaskAP()
    ap.add(gt, np.zeros_like(gt))
    assert ap.metrics()["AP"] == 0.0
    ap = MaskAP()
    ap.add(np.zeros_like(gt), gt)
    assert math.isnan(ap.metrics()["AP"])


def test_mask_ap_ranks_by_score():
    # a false positive scored above the true positive costs precision at every recall level
    gt = _ids([(0, 10, 0, 10)])
    pred = _ids([(0, 10, 0, 10), (20, 30, 20, 30)])
    hi, lo = MaskAP(), MaskAP()
    hi.add(gt, pred, {1: 0.9, 2: 0.1})
    lo.add(gt, pred, {1: 0.1, 2: 0.9})
    assert hi.metrics()["AP"] == pytest.approx(1.0)
    assert lo.metrics()["AP"] == pytest.approx(0.5, abs=1e-6)


def test_color_confidence():
    palette = np.array([[0, 0, 0], [200, 0, 0]], np.uint8)
    ids = np.array([[1, 1]])
    rgb = np.array([[[200, 0, 0], [180, 0, 0]]], np.uint8)  # mean distance 10
    # purity 1 - 10 / 40 = 0.75, times size 2 / (2 + AREA_PRIOR_PX)
    from evals.instance import AREA_PRIOR_PX
    assert color_confidence(rgb, ids, palette, 40.0) == {1: pytest.approx(0.75 * 2 / (2 + AREA_PRIOR_PX))}


# ---------------------------------------------------------------- generation
def test_generation_measures(rng):
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert gm.ssim(img, img) == pytest.approx(1.0, abs=1e-9)
    assert gm.psnr(img, img) == math.inf
    a = np.full((8, 8, 3), 100, np.uint8)
    assert gm.psnr(a, a + 10) == pytest.approx(10 * math.log10(255 ** 2 / 100), abs=1e-9)  # 28.1308 dB
    assert gm.feature_distance(img, img) == 0.0
    blurred = np.clip(img.astype(float).reshape(32, 2, 32, 2, 3).mean((1, 3)).repeat(2, 0).repeat(2, 1), 0, 255)
    assert gm.feature_distance(img, blurred.astype(np.uint8)) > 0.05
    feats = rng.normal(size=(50, 4))
    assert gm.frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, 2.0, 0.0, 0.0])
    assert gm.frechet_distance(feats, feats + shift) == pytest.approx(5.0, abs=1e-6)  # same covariance: |d|^2


def test_win_rate():
    r = gm.win_rate({"a": 1.0, "b": 2.0, "c": 3.0, "d": 0.0}, {"a": 2.0, "b": 2.0, "c": 1.0})
    assert (r["n"], r["wins"], r["ties"], r["losses"]) == (3, 1, 1, 1)  # "d" has no base: not compared
    assert r["win_rate"] == pytest.approx(0.5)
    assert r["ci_low"] + r["ci_high"] == pytest.approx(1.0)  # symmetric around 0.5
    assert gm.win_rate({"a": 0.9}, {"a": 0.8}, lower_is_better=False)["win_rate"] == 1.0
    lo, hi = gm.wilson_interval(50, 100)
    assert (lo, hi) == pytest.approx((0.4038, 0.5962), abs=1e-4)
