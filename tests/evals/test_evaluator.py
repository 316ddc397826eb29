"""The evaluator on real eval shards with hand-made predict functions (oracle, noisy, constant, broken)."""

import dataclasses
import math

import numpy as np
import pytest

from tests.conftest import add_noise
from tests.evals.samples import eval_samples
from evals import Evaluator, oracle_predict
from evals.scoring import HEADLINE


def _run(predict_fn, samples, **kw):
    ev = Evaluator(predict_fn, samples, batch_size=3, **kw)
    flat = dict(ev.run())
    return ev.result, flat


def test_reads_eval_split_only(samples, eval_shard):
    assert len(samples) == 14
    assert {s.task for s in samples} == set(HEADLINE)
    assert all("codec" in s.meta or s.task in ("t2i", "edit") for s in samples)


def test_perfect_prediction_scores_the_codec_oracle_exactly(samples):
    res, flat = _run(oracle_predict, samples)
    model = {k.split("/", 1)[1]: v for k, v in flat.items() if k.startswith("model/")}
    oracle = {k.split("/", 1)[1]: v for k, v in flat.items() if k.startswith("oracle/")}
    assert model.keys() == oracle.keys() and len(model) > 50
    for k in model:
        assert (model[k] == oracle[k]) or (math.isnan(model[k]) and math.isnan(oracle[k])), k
    # the oracle is near-perfect, bounded by the codecs' documented round-trip errors
    assert flat["oracle/depth/all/abs_rel"] < 0.005 and flat["oracle/depth/all/delta1"] == 1.0
    assert flat["oracle/normals/all/mean_deg"] < 0.6
    assert flat["oracle/semantic/all/miou"] == 1.0 and flat["oracle/instance/all/AP"] == pytest.approx(1.0)
    assert flat["oracle/referring/all/giou"] == 1.0 and flat["oracle/edit/all/ssim"] == pytest.approx(1.0)
    assert not res.failures
    # per source rows exist and "all" pools them
    assert flat["model/depth/room/n"] + flat["model/depth/outdoor/n"] == flat["model/depth/all/n"] == 2


def test_corrupted_prediction_scores_worse_in_the_expected_direction(samples):
    # misaligned by 3 px and noisy: every task must get worse, whatever its codec's robustness
    noisy = lambda batch: [add_noise(np.roll(s.target, 3, axis=1), 16.0, seed=i) for i, s in enumerate(batch)]  # noqa: E731
    _, flat = _run(noisy, samples)
    for task, (metric, lower_better) in HEADLINE.items():
        m, o = flat[f"model/{task}/all/{metric}"], flat[f"oracle/{task}/all/{metric}"]
        assert (m > o) if lower_better else (m < o), (task, metric, m, o)


def test_constant_prediction_equals_the_baseline_row(samples):
    # the baseline itself as the model: both rows must agree exactly (same path, same numbers)
    ev = Evaluator(lambda b: b, samples)  # placeholder to fit the baseline the same way
    base = ev.baseline
    _, flat = _run(base.predict, samples, baseline=base)
    for k, v in flat.items():
        if k.startswith("model/"):
            ref = flat["baseline/" + k.split("/", 1)[1]]
            assert v == ref or (math.isnan(v) and math.isnan(ref)), k
    # and the oracle beats the baseline on every headline metric
    for task, (metric, lower_better) in HEADLINE.items():
        b, o = flat[f"baseline/{task}/all/{metric}"], flat[f"oracle/{task}/all/{metric}"]
        assert (o < b) if lower_better else (o > b), (task, b, o)


def test_bad_predictions_are_counted_failures(samples):
    def broken(batch):
        out = []
        for s in batch:
            if s.task == "depth" and s.meta["source"] == "room":
                out.append(s.target[:, : s.target.shape[1] // 2])      # wrong aspect ratio
            elif s.task == "depth":
                out.append(np.broadcast_to(np.array([64, 192, 64], np.uint8), s.target.shape).copy())  # all "invalid"
            elif s.task == "normals" and s.meta["source"] == "room":
                out.append(s.target.astype(np.float32))                # not uint8
            else:
                out.append(s.target)
        return out

    res, flat = _run(broken, samples)
    # an all-"invalid" depth answer is scored at the minimum depth (BTS), with coverage 0; not dropped
    assert flat["model/depth/all/failed"] == 1 and flat["model/depth/all/n"] == 1
    assert flat["model/depth/outdoor/coverage"] == 0.0 and flat["model/depth/outdoor/delta3"] == 0.0
    assert "abs_rel" not in res.metrics["model"]["depth"]["room"]  # no average over nothing
    assert flat["model/normals/all/failed"] == 1 and flat["model/normals/all/n"] == 1
    reasons = sorted(f["reason"] for f in res.failures)
    assert reasons == ["bad_prediction", "wrong_size"]
    assert flat["oracle/depth/all/failed"] == 0  # the references are unaffected


def test_resized_prediction_is_scored_at_truth_size(samples):
    # a prediction at twice the resolution, same aspect: decoded, then brought to the truth's size
    up = lambda batch: [np.repeat(np.repeat(s.target, 2, 0), 2, 1) for s in batch]  # noqa: E731
    _, flat = _run(up, samples)
    assert flat["model/depth/all/abs_rel"] == pytest.approx(flat["oracle/depth/all/abs_rel"], abs=1e-4)
    assert flat["model/semantic/all/miou"] == 1.0 and flat["model/depth/all/failed"] == 0


def test_center_square_region(samples):
    from evals.scoring import center_square

    crop = lambda batch: [s.target[center_square(s.target.shape)] for s in batch]  # noqa: E731
    res, flat = _run(crop, samples, prediction_region="center_square")
    assert flat["model/depth/all/abs_rel"] == flat["oracle/depth/all/abs_rel"] < 0.005
    assert not res.failures
    # full-frame predictions under center_square are the wrong size
    res, flat = _run(oracle_predict, samples, prediction_region="center_square")
    assert flat["model/depth/all/failed"] == 2


def test_contract_errors(samples):
    with pytest.raises(ValueError, match="returned 1 images for 3 samples"):
        list(Evaluator(lambda b: [b[0].target], samples, batch_size=3).run())
    samples[0].meta["split"] = "train"
    with pytest.raises(ValueError, match="not from the eval split"):
        Evaluator(oracle_predict, samples)
    with pytest.raises(ValueError, match="unknown protocol .nyu.; known"):
        Evaluator(oracle_predict, samples[1:], depth_protocol="nyu")


def test_missing_truth_and_codec_are_failures(samples):
    depth = [s for s in samples if s.task == "depth"]
    del depth[0].raw["depth"]
    del depth[1].meta["codec"]
    res, _ = _run(oracle_predict, depth, references=False)
    assert sorted(f["reason"] for f in res.failures) == ["decode_error", "missing_truth"]


def test_depth_protocol_from_meta_and_override(samples):
    depth = [s for s in samples if s.task == "depth"]
    for s in depth:
        s.meta["depth_protocol"] = "nyuv2"
    ev = Evaluator(oracle_predict, depth, depth_protocols={"outdoor": "kitti"})
    dict(ev.run())
    assert ev.result.protocols == {"room": "nyuv2", "outdoor": "kitti"}


def test_pixel_baseline_knows_the_layout_but_not_the_image():
    """Rooms of one layout (floor below, far wall above) with per-scene scale: the per-pixel median
    depth and mean normal are the layout's, so they beat the constant answers on a new room of that
    layout, and they are the same whatever the input image says."""
    from evals.reference import Baseline

    train = [s for s in eval_samples(6) if s.meta["source"] == "room"]
    base = Baseline.fit(train, origin="three rooms")
    depths = np.stack([s.raw["depth"] for s in train if s.task == "depth"])
    np.testing.assert_array_equal(base.pixel_statistic("depth"), np.nanmedian(depths, axis=0).astype(np.float32))
    normal = base.pixel_statistic("normals")
    assert normal.shape == (*depths.shape[1:], 3) and np.allclose(np.linalg.norm(normal, axis=-1), 1, atol=1e-5)
    test = [s for s in eval_samples(8)[-14:] if s.meta["source"] == "room" and s.task in ("depth", "normals")]
    _, flat = _run(base.predict_pixel, test, baseline=base)
    assert flat["pixel_baseline/depth/all/abs_rel"] == flat["model/depth/all/abs_rel"]  # the same path, same numbers
    assert flat["pixel_baseline/depth/all/abs_rel"] < flat["baseline/depth/all/abs_rel"]
    assert flat["pixel_baseline/normals/all/mean_deg"] < flat["baseline/normals/all/mean_deg"]
    blind = [dataclasses.replace(s, input=np.zeros_like(s.input), key=s.key + "blind") for s in test]
    assert [p.tobytes() for p in base.predict_pixel(blind)] == [p.tobytes() for p in base.predict_pixel(test)]
