"""Quality filters: each proposal is kept or dropped under exactly one counted reason."""

import numpy as np
import pytest

from annotate.filters import FilterConfig, filter_instances, paint_maps
from annotate.labelers.base import Instance

H, W = 100, 100


def _box(x0, y0, x1, y1, score=0.9, stability=None, cls="object"):
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return Instance(mask, cls, score, stability)


def test_each_filter_drops_with_its_reason():
    proposals = [
        _box(0, 0, 30, 30, score=0.95),               # kept
        _box(1, 1, 30, 30, score=0.90),               # duplicate of the first (IoU 0.93)
        _box(50, 50, 80, 80, score=0.2),              # low_score
        _box(50, 0, 80, 30, score=0.9, stability=0.5),  # unstable
        _box(90, 90, 92, 92),                         # too_small (4 px < 0.1% of 10^4 = 10 px)
        _box(0, 0, 100, 100, score=0.99),             # too_large
        _box(20, 20, 45, 45, score=0.8),              # 25x25, loses 10x10 to the first: 84% visible, kept
        _box(25, 25, 35, 35, score=0.7),              # fully under the first two: occluded
        _box(60, 60, 95, 95, score=0.9, stability=0.95),  # kept
    ]
    kept, stats = filter_instances(proposals, FilterConfig(min_area_frac=0.001, max_area_frac=0.9, nms_iou=0.7))
    assert stats["dropped"] == {"duplicate": 1, "low_score": 1, "unstable": 1, "too_small": 1, "too_large": 1,
                                "occluded": 1}
    assert stats["candidates"] == len(proposals) == stats["kept"] + sum(stats["dropped"].values())
    assert [k.score for k in kept] == [0.95, 0.9, 0.8]  # highest score first
    union = np.zeros((H, W), int)
    for k in kept:
        union += k.mask
    assert union.max() == 1  # no pixel in two instances
    assert kept[2].area == 25 * 25 - 10 * 10  # the overlap went to the higher score


def test_limit_and_disabled_filters():
    proposals = [_box(10 * i, 0, 10 * i + 8, 8, score=0.5 + i / 100) for i in range(10)]
    kept, stats = filter_instances(proposals, FilterConfig(max_instances=3))
    assert stats["dropped"] == {"over_limit": 7} and [round(k.score, 2) for k in kept] == [0.59, 0.58, 0.57]
    twins = [_box(0, 0, 20, 20, 0.9), _box(0, 0, 20, 20, 0.8)]
    off = FilterConfig(nms_iou=1.0, min_visible_frac=0.0, min_area_frac=0.0)
    kept, stats = filter_instances(twins, off)
    assert stats["dropped"] == {"occluded": 1}  # identical masks: nothing left visible for the second


def test_paint_maps_ids_and_semantic():
    kept = [_box(0, 0, 10, 10, cls="cup"), _box(20, 20, 30, 30, cls="plate")]
    inst, sem = paint_maps(kept, {"unlabeled": 0, "cup": 1, "plate": 2}, (H, W))
    assert inst.dtype == np.uint16 and sem.dtype == np.uint16
    assert inst[5, 5] == 1 and inst[25, 25] == 2 and inst[50, 50] == 0
    assert sem[5, 5] == 1 and sem[25, 25] == 2 and sem[50, 50] == 0
    given = np.full((H, W), 7, np.uint16)
    assert (paint_maps(kept, {"cup": 1, "plate": 2}, (H, W), given)[1] == 7).all()  # a labeler's own map wins


def test_config_validation():
    with pytest.raises(ValueError, match="min_score must be in \\[0, 1\\], got 1.5"):
        FilterConfig(min_score=1.5)
    with pytest.raises(ValueError, match="max_instances"):
        FilterConfig(max_instances=0)
