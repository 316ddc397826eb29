"""Scene layouts (render/layout.py, render/sampling.py): no interpenetration, everything rests on something
or hangs, cavities and proxies behave, the coarse ray cast agrees with the analytic one."""

import math

import numpy as np
import pytest

from render import analytic, layout, sampling
from render.spec import CameraSpec, ObjectSpec

LAYOUTS_PER_FAMILY = 70  # x 3 families: a few hundred layouts


def _box(size, loc, yaw=0.0, cls="box", shape="box", params=None):
    return ObjectSpec(shape, tuple(size), tuple(loc), (0.0, 0.0, yaw), semantic_class=cls, shape_params=params or {})


def _drafts(family, n, base=31):
    return [sampling.GENERATORS[family](np.random.default_rng([base, i])) for i in range(n)]


@pytest.fixture(scope="module")
def drafts():
    return {f: _drafts(f, LAYOUTS_PER_FAMILY) for f in sampling.FAMILIES}


def test_touching_is_not_colliding_and_overlap_is():
    a = _box((1, 1, 1), (0, 0, 0.5))
    assert not layout.collide(a, _box((1, 1, 1), (1.0, 0, 0.5)))  # side by side
    assert not layout.collide(a, _box((0.2, 0.2, 0.2), (0, 0, 1.1)))  # resting on top
    assert layout.collide(a, _box((1, 1, 1), (0.99, 0, 0.5)))
    # rotated 45 deg: the corner reaches 0.707 from the center, the axis-aligned boxes would not say so
    diamond = _box((1, 1, 1), (1.2, 0, 0.5), yaw=math.pi / 4)
    assert layout.collide(a, diamond)
    assert not layout.collide(a, _box((1, 1, 1), (1.22, 0, 0.5), yaw=math.pi / 4))


def test_cavities_shelf_compartments_and_wall_openings():
    shelf = _box((1.0, 0.4, 2.0), (0, 0, 1.0), shape="shelf", cls="shelf",
                 params={"shelves": 4, "board": 0.03, "side": 0.04, "back": 1})
    inner = layout.surfaces(shelf)[0]
    book = _box((0.04, 0.2, 0.25), (0, -0.05, inner.z + 1.0 + 0.125 + 0.001), cls="book")
    assert layout.boxes_overlap(shelf, book) and not layout.collide(shelf, book)
    too_tall = _box((0.04, 0.2, 0.6), (0, -0.05, inner.z + 1.0 + 0.3 + 0.001), cls="book")
    assert layout.collide(shelf, too_tall)  # pokes through the board above
    wall = _box((4.0, 0.12, 2.6), (0, 0, 1.3), shape="wall", cls="wall",
                params={"door": 1, "door_at": 0.3, "door_width": 0.22, "door_height": 0.8, "windows": 0})
    x0, x1, z0, z1 = layout.shapes.wall_openings(wall.shape_params)[0]
    door = _box(((x1 - x0) * 4.0, 0.12, (z1 - z0) * 2.6), (((x0 + x1) / 2 - 0.5) * 4.0, 0, (z0 + z1) / 2 * 2.6),
                cls="door", shape="door")
    assert layout.boxes_overlap(wall, door) and not layout.collide(wall, door)
    assert layout.collide(wall, _box((0.5, 0.5, 0.5), (1.5, 0, 1.0)))  # solid part of the wall
    plate = _box((0.28, 0.28, 0.03), (0, 0, 0.8), shape="plate", cls="plate", params={"rim": 0.25, "lift": 0.6})
    well = layout.surfaces(plate)[0]
    assert well.z == pytest.approx(0.0) and 0.05 < well.x[1] < 0.07  # halfway up, the well's inscribed square
    mug = _box((0.1, 0.08, 0.1), (0, 0, 0.8 + 0.05 + 0.0005), cls="mug", shape="mug")
    assert layout.boxes_overlap(plate, mug) and not layout.collide(plate, mug)  # its foot sits in the well
    assert layout.collide(plate, _box((0.1, 0.08, 0.1), (0.1, 0, 0.8 + 0.05 + 0.0005), cls="mug", shape="mug"))


def test_no_interpenetration_in_sampled_layouts(drafts):
    for family, ds in drafts.items():
        for d in ds:
            pairs = layout.colliding_pairs(d.objects)
            assert not pairs, (family, [(d.objects[i].semantic_class, d.objects[j].semantic_class) for i, j in pairs])


def test_every_object_rests_on_a_support_or_hangs(drafts):
    for family, ds in drafts.items():
        for d in ds:
            for i, o in enumerate(d.objects):
                if o.semantic_class in layout.STRUCTURE and o.support is None:
                    continue
                if o.hangs:
                    assert o.semantic_class in ("window", "door", "picture"), (family, o.semantic_class)
                    continue
                assert o.support is not None and o.support < i, (family, i, o.semantic_class)
                parent = d.objects[o.support]
                bottom = o.location[2] - o.size[2] / 2
                center = layout.to_local(parent, np.array([[o.location[0], o.location[1], bottom]]))[0]
                on = [s for s in layout.surfaces(parent) if abs(center[2] - s.z) <= 2e-3
                      and s.x[0] - 1e-3 <= center[0] <= s.x[1] + 1e-3 and s.y[0] - 1e-3 <= center[1] <= s.y[1] + 1e-3]
                assert on, (family, o.semantic_class, "on", parent.semantic_class, center)


def test_pictures_and_windows_hang_on_walls(drafts):
    for d in drafts["indoor"]:
        walls = [o for o in d.objects if o.semantic_class == "wall"]
        for o in d.objects:
            if o.hangs:  # touching or inside a wall: grown by 2 mm it overlaps one
                grown = ObjectSpec("box", tuple(np.add(o.size, 0.004)), o.location, o.rotation)
                assert any(layout.boxes_overlap(grown, w) for w in walls), o.semantic_class


def test_layouts_are_dense_and_varied(drafts):
    n = {f: np.median([len(d.objects) for d in ds]) for f, ds in drafts.items()}
    assert n["indoor"] >= 40 and n["tabletop"] >= 20 and n["outdoor"] >= 40, n
    rooms = [sum(o.semantic_class == "wall" for o in d.objects) for d in drafts["indoor"]]
    assert {4, 6} <= set(rooms)  # rectangles and L-shapes
    classes = {o.semantic_class for ds in drafts.values() for d in ds for o in d.objects}
    assert {"door", "window", "picture", "book", "chair", "shelf", "car", "pole", "road", "sidewalk", "tree",
            "building", "fence"} <= classes


def test_coarse_cast_matches_the_analytic_ray_cast():
    cam = CameraSpec.from_focal_mm(64, 48, 30.0, (0.3, -5.0, 1.4), (0.0, 0.0, 0.8))
    objects = [_box((10, 10, 0.1), (0, 0, -0.05), cls="floor"), _box((1.0, 0.6, 1.2), (-0.8, 0.5, 0.6)),
               _box((0.5, 0.5, 0.5), (0.9, -0.4, 0.25))]
    ids, depth = layout.cast(cam, objects, 64, 48)
    prims = [analytic.Box(tuple(np.subtract(o.location, np.divide(o.size, 2))), tuple(np.add(o.location, np.divide(o.size, 2))))
             for o in objects]
    truth = analytic.render(analytic.AnalyticScene(prims), cam.K(), cam.world_to_camera(), 48, 64)
    assert (ids == truth.instance).mean() >= 0.995  # up to pixels on an edge
    same = ids == truth.instance
    np.testing.assert_allclose(depth[same & (ids > 0)], truth.depth[same & (ids > 0)], rtol=1e-4)
    stats = layout.view_stats(ids, depth)
    assert stats["visible"] == 3 and 0 < stats["largest_share"] < 1


def test_proxies_see_through_a_shelf_and_a_window():
    cam = CameraSpec.from_focal_mm(32, 24, 60.0, (0.0, -3.0, 1.0), (0.0, 0.0, 1.0))
    shelf = _box((1.2, 0.4, 2.0), (0, 0, 1.0), shape="shelf", cls="shelf",
                 params={"shelves": 3, "board": 0.03, "side": 0.04, "back": 1})
    ids, _ = layout.cast(cam, [shelf], 32, 24)
    assert 0 < (ids == 1).mean() < 1  # boards and back seen, plus the gaps between the boards
    no_back = _box((1.2, 0.4, 2.0), (0, 0, 1.0), shape="shelf", cls="shelf",
                   params={"shelves": 3, "board": 0.03, "side": 0.04, "back": 0})
    ids, _ = layout.cast(cam, [no_back], 32, 24)
    assert (ids == 0).mean() > 0.3


def test_culling_keeps_supports_consistent():
    for i in range(6):
        spec = sampling.sample_scene(sampling.scene_seed(5, i), 64, 48)  # validated: supports are in range
        for o in spec.objects:
            if o.support is not None:
                assert spec.objects[o.support].semantic_class in layout.SUPPORTING
        assert spec.view_check["attempts"] >= 1 and spec.view_check["culled"] >= 0
