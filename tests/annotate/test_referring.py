"""Referring expressions: each one fits exactly one instance, also among look-alikes."""

import numpy as np
import pytest

from annotate.referring import (COLOR_NAMES, Query, color_name, object_facts, referring_expressions, resolve)

H, W = 120, 240
RED, BLUE, GREEN = (210, 30, 30), (30, 40, 200), (40, 170, 60)


def _scene(objects):
    """objects: (class, color, x0, y0, x1, y1) boxes -> rgb, instance map, id -> class."""
    rgb = np.full((H, W, 3), 128, np.uint8)
    inst = np.zeros((H, W), np.uint16)
    classes = {}
    for i, (cls, color, x0, y0, x1, y1) in enumerate(objects, start=1):
        rgb[y0:y1, x0:x1] = color
        inst[y0:y1, x0:x1] = i
        classes[i] = cls
    return rgb, inst, classes


def _check_unique(rgb, inst, classes, exprs):
    facts = object_facts(rgb, inst, classes)
    for e in exprs:
        assert resolve(Query.from_dict(e["query"]), facts) == [e["instance_id"]], e


def test_look_alike_cups_need_more_than_class_or_color():
    # two identical red cups, left and right, and one blue plate between them
    rgb, inst, classes = _scene([("cup", RED, 10, 40, 50, 80), ("cup", RED, 190, 40, 230, 80),
                                 ("plate", BLUE, 100, 40, 140, 80)])
    exprs = referring_expressions(rgb, inst, classes, seed=0, per_instance=10)
    _check_unique(rgb, inst, classes, exprs)
    cup_texts = [e["expression"] for e in exprs if e["instance_id"] in (1, 2)]
    assert cup_texts, "the cups are describable by position"
    for text in cup_texts:
        assert text not in ("the cup", "cup", "the only cup", "the red cup", "red cup", "the cup that is red")
    left = [e for e in exprs if e["instance_id"] == 1]
    assert all(("left" in e["expression"]) for e in left)  # the only things that single out the left cup
    assert {e["template"].split("/")[0] for e in exprs if e["instance_id"] == 3} <= {
        "class", "color", "hpos", "vpos", "position", "color_position", "superlative", "relation"}


def test_relations_use_a_unique_anchor():
    # three look-alike cups; the plate sits under the middle one, level with the outer two
    rgb, inst, classes = _scene([("cup", RED, 10, 80, 40, 110), ("cup", RED, 105, 10, 135, 40),
                                 ("cup", RED, 200, 80, 230, 110), ("plate", BLUE, 95, 80, 145, 110)])
    facts = object_facts(rgb, inst, classes)
    assert resolve(Query("cup", relation="above", anchor=Query("plate")), facts) == [2]
    assert resolve(Query("cup", relation="left_of", anchor=Query("plate")), facts) == [1]
    assert resolve(Query("cup", superlative="rightmost"), facts) == [3]
    assert resolve(Query("cup", color="red"), facts) == [1, 2, 3]  # ambiguous: never emitted
    assert resolve(Query("plate", relation="below", anchor=Query("cup")), facts) == []  # anchor is not one thing
    exprs = referring_expressions(rgb, inst, classes, seed=1, per_instance=10)
    _check_unique(rgb, inst, classes, exprs)
    relations = {(e["instance_id"], e["query"]["relation"]) for e in exprs if "relation" in e["query"]}
    assert relations == {(1, "left_of"), (2, "above"), (3, "right_of")}


def test_loose_relation_is_checked_for_uniqueness():
    # both cups are higher than the plate, only cup 2 is over it: "the cup above the plate" could mean either
    rgb, inst, classes = _scene([("cup", RED, 10, 10, 40, 40), ("cup", RED, 105, 10, 135, 40),
                                 ("plate", BLUE, 95, 80, 145, 110)])
    facts = object_facts(rgb, inst, classes)
    assert resolve(Query("cup", relation="above", anchor=Query("plate")), facts) == [1, 2]
    exprs = referring_expressions(rgb, inst, classes, seed=0, per_instance=10)
    assert not any(e["query"].get("relation") == "above" for e in exprs)


def test_near_ties_are_not_described_as_superlatives():
    rgb, inst, classes = _scene([("cup", RED, 100, 10, 120, 30), ("cup", RED, 102, 80, 122, 100)])
    facts = object_facts(rgb, inst, classes)
    assert resolve(Query("cup", superlative="leftmost"), facts) == [1, 2]
    assert resolve(Query("cup", superlative="topmost"), facts) == [1]
    exprs = referring_expressions(rgb, inst, classes, seed=3, per_instance=10)
    _check_unique(rgb, inst, classes, exprs)
    assert not any("leftmost" in e["expression"] or "rightmost" in e["expression"] for e in exprs)


def test_identical_twins_get_no_expression():
    # same class, color, size and row, side by side in the same third of the image
    rgb, inst, classes = _scene([("cup", RED, 100, 50, 110, 60), ("cup", RED, 111, 50, 121, 60)])
    exprs = referring_expressions(rgb, inst, classes, seed=0, per_instance=10)
    _check_unique(rgb, inst, classes, exprs)
    assert exprs == []  # 4.6% apart, below the superlative margin, nothing else tells them apart


def test_deterministic_from_seed_and_templates_vary():
    rgb, inst, classes = _scene([("cup", RED, 10, 40, 50, 80), ("cup", GREEN, 190, 40, 230, 80),
                                 ("plate", BLUE, 100, 40, 140, 80), ("plate", BLUE, 100, 90, 140, 118)])
    runs = [referring_expressions(rgb, inst, classes, seed=s, per_instance=3) for s in range(12)]
    assert runs[0] == referring_expressions(rgb, inst, classes, seed=0, per_instance=3)
    assert len({tuple(e["expression"] for e in r) for r in runs}) > 3
    templates = {e["template"] for r in runs for e in r}
    assert len({t.split("/")[1] for t in templates}) == 3 and len({t.split("/")[0] for t in templates}) >= 5
    for r in runs:
        _check_unique(rgb, inst, classes, r)
    assert max(len(r) for r in runs) <= 4 * 3


def test_random_scenes_every_expression_is_unique():
    rng = np.random.default_rng(0)
    palette = [RED, BLUE, GREEN, (230, 220, 40), (20, 20, 20)]
    for trial in range(30):
        objects = []
        for _ in range(int(rng.integers(2, 7))):
            x0, y0 = int(rng.integers(0, W - 30)), int(rng.integers(0, H - 30))
            s = int(rng.integers(8, 30))
            objects.append((str(rng.choice(["cup", "plate", "box"])), palette[int(rng.integers(3))], x0, y0, x0 + s,
                            y0 + s))
        rgb, inst, classes = _scene(objects)
        present = {int(i) for i in np.unique(inst) if i}
        classes = {i: c for i, c in classes.items() if i in present}
        _check_unique(rgb, inst, classes, referring_expressions(rgb, inst, classes, seed=trial, per_instance=8))


@pytest.mark.parametrize("rgb,name", [((220, 30, 30), "red"), ((30, 40, 200), "blue"), ((40, 170, 60), "green"),
                                      ((240, 240, 240), "white"), ((10, 10, 10), "black"), ((128, 128, 128), "gray"),
                                      ((230, 220, 40), "yellow"), ((240, 140, 20), "orange"), ((120, 70, 30), "brown"),
                                      ((140, 40, 200), "purple"), ((240, 150, 190), "pink")])
def test_color_names(rgb, name):
    assert name in COLOR_NAMES
    assert color_name(np.tile(np.array(rgb, np.uint8), (50, 1))) == name


def test_mixed_colors_get_no_name():
    pixels = np.concatenate([np.tile([220, 30, 30], (50, 1)), np.tile([30, 40, 200], (50, 1))]).astype(np.uint8)
    assert color_name(pixels) is None
