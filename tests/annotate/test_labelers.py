"""Labeler registry and the offline U^2-Net-p backend on real photos and on composites with known masks."""

import numpy as np
import pytest

from annotate import labelers
from annotate.composites import ellipse_mask, iou, paste, tint
from annotate.labelers.base import MissingWeightsError, stability_score
from annotate.labelers.salient import saliency_to_instances

from .conftest import skdata


def test_registry_names_and_errors():
    assert "u2netp" in labelers.names()
    with pytest.raises(ValueError, match="unknown labeler 'nope'; known: .*u2netp"):
        labelers.get("nope")
    with pytest.raises(ValueError, match="already registered"):
        labelers.register("u2netp")(object)
    with pytest.raises(ValueError, match="bad parameters \\['colour'\\]"):
        labelers.get("u2netp", colour="red")


def test_missing_weights_say_where_to_put_them(tmp_path):
    with pytest.raises(MissingWeightsError, match=f"{tmp_path}/u2netp.onnx.*put u2netp.onnx there"):
        labelers.get("u2netp", weights=str(tmp_path / "u2netp.onnx"))


def _onnx_threads(**params) -> int:
    return labelers.get("u2netp", **params).session.get_session_options().intra_op_num_threads


def test_u2netp_threads_follow_the_cpus_the_process_is_given(monkeypatch):
    """onnxruntime's pool is sized by formats.cpus.thread_count (issue 19: 11), never the machine's cores:
    an explicit `threads` wins; 0 takes the launcher's OMP_NUM_THREADS (Ray: the actor's num_cpus),
    else the affinity mask / cgroup quota."""
    from formats import cpus

    assert _onnx_threads(threads=2) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _onnx_threads(threads=0) == cpus.thread_count(0) == 1
    assert _onnx_threads(threads=3) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(cpus, "available_cpus", lambda: 1)  # a one-core affinity mask or quota
    assert _onnx_threads() == 1
    with pytest.raises(ValueError, match="threads must be >= 0"):
        labelers.get("u2netp", threads=-1)


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "motorcycle"])
def test_u2netp_finds_the_subject_of_real_photos(u2netp, photos, name):
    rgb = photos[name]
    (result,) = u2netp.label([rgb])
    assert result.instances, "a salient object in every sample photo"
    main = max(result.instances, key=lambda i: i.area)
    frac = main.area / rgb.shape[0] / rgb.shape[1]
    assert 0.1 < frac < 0.8, frac  # non-trivial: neither a speck nor the whole frame
    assert main.mask.shape == rgb.shape[:2] and main.score > 0.8 and main.stability > 0.85
    assert not main.mask[:5, :5].any() or not main.mask[-5:, -5:].any()  # some background corner stays out


def test_u2netp_coffee_cup_in_the_middle(u2netp, photos):
    (result,) = u2netp.label([photos["coffee"]])
    mask = max(result.instances, key=lambda i: i.area).mask
    assert mask[200, 300] and not mask[380, 20] and not mask[10, 580]  # cup centre in; table corners out


def test_u2netp_iou_on_composites_with_known_masks(u2netp, photos):
    background = tint(np.asarray(skdata.grass()), (0.6, 0.9, 0.5))[:512, :512]
    shapes = {"horse": ~skdata.horse(), "ellipse": ellipse_mask(200, 300)}
    scores = []
    for shape in shapes.values():
        rgb, truth = paste(background, photos["coffee"], shape, 0.5, (0.45, 0.55))
        pred = np.zeros(truth.shape, bool)
        for inst in u2netp.label([rgb])[0].instances:
            pred |= inst.mask
        scores.append(iou(pred, truth))
    assert min(scores) > 0.85, scores  # measured ~0.96 (horse) and ~0.99 (ellipse)


def test_batches_of_mixed_sizes(u2netp, photos):
    batch = [photos["chelsea"], photos["coffee"][:200, :300]]
    results = u2netp.label(batch)
    assert [r.instances[0].mask.shape for r in results] == [(300, 451), (200, 300)]


def test_saliency_to_instances_components_and_stability():
    prob = np.zeros((50, 100), np.float32)
    prob[10:20, 10:20] = 0.95  # crisp square
    prob[30:45, 60:90] = 0.55  # faint blob: most of it sits inside the threshold band
    prob[30:35, 60:90] = 0.9
    insts = saliency_to_instances(prob, threshold=0.5, stability_offset=0.1)
    assert sorted(i.area for i in insts) == [100, 450]
    crisp = next(i for i in insts if i.area == 100)
    faint = next(i for i in insts if i.area == 450)
    assert crisp.stability == 1.0 and faint.stability == pytest.approx(150 / 450)
    assert stability_score(np.zeros((4, 4)), 0.5, 0.1) == 0.0
