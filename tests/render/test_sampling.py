"""Cameras and view checks of the sampler (render/sampling.py) and the per-view statistics of a shard (render/shard.py)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from render import layout, sampling
from render.shard import view_distribution, view_stats
from render.spec import CameraSpec, ObjectSpec

RIGS = {"indoor": {"person", "seated", "robot", "corner"}, "tabletop": {"standing", "sitting", "arm"},
        "outdoor": {"pedestrian", "car", "drone"}}


@pytest.mark.parametrize("family", sampling.FAMILIES)
def test_cameras_are_rigs_with_checked_views(family):
    specs = [sampling.sample_scene(sampling.scene_seed(41, i), 64, 48, family=family) for i in range(8)]
    for s in specs:
        vc = s.view_check
        assert vc["rig"] in RIGS[family] and 1 <= vc["attempts"] <= sampling.VIEW_ATTEMPTS
        assert sampling.FOCAL_RANGE_MM[0] - 1e-6 <= s.camera.focal_mm_35() <= sampling.FOCAL_RANGE_MM[1] + 1e-6
        z = s.camera.location[2]
        if vc["rig"] in ("person", "pedestrian"):
            assert 1.4 <= z <= 2.0
        if vc["rig"] == "car":
            assert 1.2 <= z <= 1.8
        if vc["rig"] == "drone":
            assert z >= 5.0
    assert sum(s.view_check["passed"] for s in specs) >= 6  # the search nearly always finds a good view


def test_a_wall_filling_the_view_fails_the_check():
    wall = ObjectSpec("box", (10.0, 0.2, 3.0), (0.0, 1.0, 1.5), semantic_class="wall")
    cam = CameraSpec.from_focal_mm(64, 48, 35.0, (0.0, 0.0, 1.5), (0.0, 1.0, 1.5))
    ok, stats = sampling.check_view(cam, [wall], "indoor")
    assert not ok and stats["largest_share"] == 1.0 and stats["visible"] == 1
    assert stats["depth_p95"] / stats["depth_p5"] < 1.5


def test_a_failing_search_keeps_the_best_view_and_says_so(monkeypatch):
    monkeypatch.setitem(sampling.VIEW_MIN_VISIBLE, "tabletop", 10_000)
    spec = sampling.sample_scene(3, 64, 48, family="tabletop")
    assert spec.view_check["passed"] is False and spec.view_check["attempts"] == sampling.VIEW_ATTEMPTS
    assert spec.view_check["estimate"]["visible"] >= 3


def test_culling_does_not_change_what_the_camera_sees():
    for i in range(4):
        rng = np.random.default_rng([8, i])
        draft = sampling.GENERATORS["indoor"](rng)
        spec = sampling.finish(rng, 64, 48, draft)
        assert len(spec.objects) + spec.view_check["culled"] == len(draft.objects)
        _, depth_all = layout.cast(spec.camera, draft.objects, 48, 36)  # the grid culling casts
        _, depth_kept = layout.cast(spec.camera, spec.objects, 48, 36)
        np.testing.assert_array_equal(depth_all, depth_kept)


def test_view_stats_and_their_distribution():
    inst = np.zeros((10, 10), np.uint16)
    inst[:7, :] = 1  # 70%
    inst[7:, :5] = 2
    inst[9, 9] = 3  # 1%
    depth = np.where(inst == 1, 2.0, 4.0).astype(np.float32)
    depth[9, 8] = np.inf
    inst[9, 8] = 0
    rgb = np.full((10, 10, 3), 128, np.uint8)
    rgb[0, :4] = 255
    rgb[1, 0] = 0
    obj = SimpleNamespace(material=SimpleNamespace(kind="wood"))
    spec = SimpleNamespace(objects=[obj, obj], view_check={"rig": "person", "attempts": 2, "passed": True})
    st = view_stats(spec, SimpleNamespace(instance=inst, depth=depth, rgb=rgb))
    assert st["visible"] == 3 and st["largest_share"] == pytest.approx(0.7)
    assert st["depth_p5"] == 2.0 and st["depth_p95"] == 4.0 and st["sky_share"] == pytest.approx(0.01)
    assert st["clipped_frac"] == pytest.approx(0.05) and st["material_kinds"] == "wood"
    st_gt = view_stats(spec, SimpleNamespace(instance=inst, depth=depth, rgb=None))
    assert math.isnan(st_gt["clipped_frac"])
    dist = view_distribution([{"family": "indoor", **st}, {"family": "outdoor", **st_gt}])
    assert dist["all"]["views"] == 2 and dist["indoor"]["largest_over_60"] == 1.0
    assert dist["outdoor"]["flat_depth"] == 0.0 and math.isnan(dist["outdoor"]["clipped_median"])


def test_a_rendered_shard_carries_the_view_columns(tmp_path):
    pytest.importorskip("bpy")
    import pyarrow.parquet as pq

    from render.blender import BlenderRenderer, RenderSettings
    from render.shard import RenderJobConfig, render_shard

    settings = RenderSettings(rgb=True, samples=1, denoise=False)
    cfg = RenderJobConfig(out=str(tmp_path), n_scenes=3, scenes_per_shard=3, width=24, height=18, seed=5,
                          render={"rgb": True, "samples": 1, "denoise": False})
    renderer = BlenderRenderer(settings)
    try:
        stats = render_shard(renderer, settings, cfg, 0)
    finally:
        renderer.close()
    table = pq.read_table(cfg.paths(0).parquet).to_pylist()
    assert len(table) == 3 and len(stats["views"]) == 3
    for row in table:
        assert row["visible"] >= 1 and 0 < row["largest_share"] <= 1 and row["depth_p5"] <= row["depth_p95"]
        assert 0 <= row["clipped"] <= 1 and row["n_material_kinds"] == len(row["material_kinds"].split(","))
        assert row["view_attempts"] >= 1 and row["camera_rig"]
    dist = view_distribution(stats["views"])["all"]
    assert dist["views"] == 3 and 0 <= dist["clipped_median"] <= 1


def test_new_scenes_normals_agree_with_depth():
    """On the new scenes' flat surfaces, the rendered normals are the normals of the rendered depth."""
    pytest.importorskip("bpy")
    from render import camera, shapes
    from render.blender import BlenderRenderer, RenderSettings

    renderer = BlenderRenderer(RenderSettings(rgb=False))
    try:
        for family in sampling.FAMILIES:
            spec = sampling.sample_scene(sampling.scene_seed(12, 0), 64, 48, family=family)
            res = renderer.render(spec)
            res.depth[~np.isfinite(res.depth)] = np.nan  # sky: no point, never compared
            pts = res.depth[..., None] * camera.pixel_rays(spec.camera.K(), 48, 64)  # camera-frame points
            dx, dy = pts[1:-1, 2:] - pts[1:-1, :-2], pts[2:, 1:-1] - pts[:-2, 1:-1]
            n = np.cross(dx, dy)
            with np.errstate(invalid="ignore"):
                n /= np.linalg.norm(n, axis=-1, keepdims=True)
            rendered = res.normals[1:-1, 1:-1]
            n *= np.sign(np.sum(n * rendered, -1, keepdims=True))
            ids = res.instance
            same = np.ones_like(ids[1:-1, 1:-1], bool)
            for a in (-1, 0, 1):
                for b in (-1, 0, 1):
                    same &= ids[1 + a:ids.shape[0] - 1 + a, 1 + b:ids.shape[1] - 1 + b] == ids[1:-1, 1:-1]
            flat = np.array([False] + [not shapes.build(o.shape, o.shape_params).smooth for o in spec.objects])
            c = pts[1:-1, 1:-1]
            fwd = np.cross(pts[1:-1, 2:] - c, pts[2:, 1:-1] - c)  # one-sided normals: equal on a plane,
            back = np.cross(c - pts[1:-1, :-2], c - pts[:-2, 1:-1])  # different across a crease of one object
            with np.errstate(invalid="ignore"):
                cos = np.sum(fwd * back, -1) / (np.linalg.norm(fwd, axis=-1) * np.linalg.norm(back, axis=-1))
                planar = cos > math.cos(math.radians(0.5))
            ok = same & flat[ids[1:-1, 1:-1]] & planar & np.isfinite(res.depth[1:-1, 1:-1])
            angle = np.degrees(np.arccos(np.clip(np.sum(n[ok] * rendered[ok], -1), -1, 1)))
            assert ok.sum() > 200, family
            assert np.median(angle) < 0.05 and np.percentile(angle, 99) < 0.5, (family, np.percentile(angle, [50, 99]))
    finally:
        renderer.close()
