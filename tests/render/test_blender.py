"""Real Cycles renders at tiny resolutions against analytic ground truth (render/analytic.py)."""

import math

import numpy as np
import pytest

from render import analytic, camera
from render.spec import CameraSpec, LightSpec, ObjectSpec, SceneSpec, rotation_matrix

bpy = pytest.importorskip("bpy")

from render.blender import BlenderRenderer, RenderSettings  # noqa: E402


@pytest.fixture(scope="module")
def renderer():
    r = BlenderRenderer(RenderSettings(rgb=False))
    yield r
    r.close()


def _scene(objects, W=64, H=48, cx=None, cy=None, eye=(0.0, 0.0, 1.0), target=(0.0, 5.0, 1.0), fx=55.0):
    cam = CameraSpec(W, H, fx, fx, W / 2 if cx is None else cx, H / 2 if cy is None else cy, eye, target)
    return SceneSpec(camera=cam, objects=objects, lights=[LightSpec("point", (0.0, 0.0, 3.0), energy=100.0)])


def _truth(spec, primitives):
    c = spec.camera
    return analytic.render(analytic.AnalyticScene(primitives), c.K(), c.world_to_camera(), c.height, c.width)


def _angle_deg(a, b):
    return np.degrees(np.arccos(np.clip(np.sum(a.astype(np.float64) * b, -1), -1, 1)))


def test_fronto_parallel_plane(renderer):
    wall = ObjectSpec("box", (40.0, 0.2, 40.0), (0.0, 6.1, 1.0))  # near face: the plane y = 6
    spec = _scene([wall])
    res = renderer.render(spec)
    truth = _truth(spec, [analytic.Plane((0, 6.0, 0), (0, -1, 0))])
    assert np.all(res.instance == 1)
    np.testing.assert_allclose(res.depth, truth.depth, rtol=1e-4)
    assert _angle_deg(res.normals, truth.normals).max() <= 0.5


def test_tilted_plane(renderer):
    rot = (math.radians(25.0), math.radians(-10.0), math.radians(35.0))
    thickness = 0.1
    center = np.array([0.3, 5.0, 0.8])
    slab = ObjectSpec("box", (30.0, 30.0, thickness), tuple(center), rotation=rot)
    n = rotation_matrix(rot) @ np.array([0.0, 0.0, 1.0])
    if n @ (np.array([0.0, 0.0, 1.0]) - center) < 0:  # the face the camera sees
        n = -n
    spec = _scene([slab])
    res = renderer.render(spec)
    truth = _truth(spec, [analytic.Plane(tuple(center + n * thickness / 2), tuple(n))])
    hit = np.isfinite(truth.depth) & (res.instance == 1)
    assert hit.mean() > 0.5
    np.testing.assert_allclose(res.depth[hit], truth.depth[hit], rtol=1e-4)
    assert _angle_deg(res.normals[hit], truth.normals[hit]).max() <= 0.5


def test_sphere_and_ids(renderer):
    spec = _scene([ObjectSpec("box", (40.0, 0.2, 40.0), (0.0, 8.1, 1.0), semantic_class="wall"),
                   ObjectSpec("sphere", (1.2, 1.2, 1.2), (0.4, 4.0, 1.1), semantic_class="sphere")], W=96, H=72)
    res = renderer.render(spec)
    truth = _truth(spec, [analytic.Plane((0, 8.0, 0), (0, -1, 0)), analytic.Sphere((0.4, 4.0, 1.1), 0.6)])
    # ids: exactly the spec's objects, agreeing with the analytic silhouette up to edge pixels
    assert set(np.unique(res.instance)) == {1, 2}
    assert (res.instance == truth.instance).mean() >= 0.995
    table = spec.class_table()
    assert {table[i - 1] for i in np.unique(res.semantic)} == {"wall", "sphere"}
    # depth and normals where the surface is not grazing (the pixel center is 0.005 px exact)
    rays = camera.pixel_rays(spec.camera.K(), 72, 96)
    cos = -np.sum(truth.normals * rays, -1) / np.linalg.norm(rays, axis=-1)
    ok = (res.instance == truth.instance) & (cos > 0.2)
    np.testing.assert_allclose(res.depth[ok], truth.depth[ok], rtol=1e-4)
    assert _angle_deg(res.normals[ok], truth.normals[ok]).max() <= 0.5


def test_projection_with_off_center_principal_point(renderer):
    W, H = 80, 60
    spec = _scene([ObjectSpec("sphere", (1.0, 1.0, 1.0), (0.7, 9.0, 1.4))], W=W, H=H, cx=31.0, cy=35.5, fx=70.0)
    res = renderer.render(spec)
    uv, z = camera.project(np.array([[0.7, 9.0, 1.4]]), spec.camera.K(), spec.camera.world_to_camera())
    ys, xs = np.nonzero(res.instance == 1)
    assert len(xs) >= 4
    centroid = np.array([xs.mean() + 0.5, ys.mean() + 0.5])  # pixel centers
    assert np.linalg.norm(centroid - uv[0]) <= 0.5
    assert res.depth[res.instance == 1].min() == pytest.approx(z[0] - 0.5, rel=2e-3)


def test_sky_is_inf_and_normals_invalid(renderer):
    spec = _scene([ObjectSpec("box", (0.5, 0.5, 0.5), (0.0, 5.0, 1.0))])
    res = renderer.render(spec)
    miss = res.instance == 0
    assert miss.any() and np.isinf(res.depth[miss]).all() and np.isnan(res.normals[miss]).all()
    assert np.isfinite(res.depth[~miss]).all()


def test_ground_truth_is_deterministic_and_memory_is_flat(renderer):
    from render.sampling import sample_scene

    spec = sample_scene(11, 48, 40)
    a = renderer.render(spec)
    counts = {k: len(getattr(bpy.data, k)) for k in ("objects", "meshes", "materials", "lights", "node_groups")}
    for seed in range(12, 16):
        renderer.render(sample_scene(seed, 48, 40))
    b = renderer.render(sample_scene(11, 48, 40))
    np.testing.assert_array_equal(a.depth, b.depth)
    np.testing.assert_array_equal(a.instance, b.instance)
    np.testing.assert_array_equal(a.semantic, b.semantic)
    np.testing.assert_array_equal(a.normals, b.normals)
    # every datablock of a scene is removed before the next one: nothing accumulates
    assert counts == {k: len(getattr(bpy.data, k)) for k in counts}
    assert len(bpy.data.objects) == 0 and len(bpy.data.meshes) == 0


def test_in_memory_passes_equal_blenders_own_exr(renderer, tmp_path):
    """The engine hook copies exactly what Blender itself would write: same values, rows top-down."""
    from formats import exr
    from render.blender.builder import build_scene, clear_scene
    from render.blender.renderer import _GT_PASSES
    from render.sampling import sample_scene

    spec = sample_scene(5, 40, 30, families=("outdoor",))  # sky and ground: hits and misses
    res = renderer.render(spec)  # leaves the ground-truth settings (override material, 1 spp) in place
    build_scene(renderer.scene, spec, shading=False)
    settings = renderer.scene.render.image_settings
    settings.media_type, settings.file_format = "MULTI_LAYER_IMAGE", "OPEN_EXR_MULTILAYER"
    settings.color_depth, settings.exr_codec = "32", "NONE"
    try:
        _, _, passes = renderer._render(str(tmp_path / "gt.exr"), _GT_PASSES)
    finally:
        clear_scene(renderer.scene)
    written = exr.read_channels(tmp_path / "gt.exr")
    np.testing.assert_array_equal(passes["Depth"][..., 0], written["ViewLayer.Depth.Z"])
    for k, c in enumerate("RGB"):
        np.testing.assert_array_equal(passes["normal"][..., k], written[f"ViewLayer.normal.{c}"])
    np.testing.assert_array_equal(passes["Object Index"][..., 0], written["ViewLayer.Object Index.X"])
    hit = np.isfinite(res.depth)
    assert hit.any() and (~hit).any()
    np.testing.assert_array_equal(res.depth[hit], written["ViewLayer.Depth.Z"][hit])
    # normals: unit length, facing the camera (n . ray < 0 in the OpenCV frame)
    np.testing.assert_allclose(np.linalg.norm(res.normals[hit], axis=-1), 1.0, atol=1e-5)
    rays = camera.pixel_rays(spec.camera.K(), 30, 40)
    assert (np.sum(res.normals[hit] * rays[hit], -1) < 1e-6).all()


def test_timings_and_missing_pass(renderer):
    from render.blender.builder import build_scene, clear_scene
    from render.blender.renderer import RenderError

    spec = _scene([ObjectSpec("box", (40.0, 0.2, 40.0), (0.0, 6.1, 1.0))], W=16, H=12)
    t = renderer.render(spec).timings
    assert 0 < t["gt_cycles_s"] <= t["gt_render_s"]
    build_scene(renderer.scene, spec, shading=False)
    try:
        with pytest.raises(RenderError, match="NoSuchPass"):
            renderer._render(None, ("Depth", "NoSuchPass"))
    finally:
        clear_scene(renderer.scene)


def test_scratch_directories_of_dead_workers_are_reaped(tmp_path):
    from render.blender.renderer import scratch_directory

    dead = tmp_path / "vistune-blender-999999999-abc"  # above any pid_max: no such process
    dead.mkdir()
    (dead / "rgb.png").write_bytes(b"x")
    live_other = tmp_path / "vistune-blender-1-abc"  # pid 1 runs (init); never reaped
    live_other.mkdir()
    unrelated = tmp_path / "vistune-blender-notapid"
    unrelated.mkdir()
    mine = scratch_directory(str(tmp_path))
    assert not dead.exists() and live_other.exists() and unrelated.exists()
    import os

    assert os.path.basename(mine).startswith(f"vistune-blender-{os.getpid()}-")


# Last: a second BlenderRenderer resets Blender (read_factory_settings), invalidating the fixture's scene.
def test_rgb_pass():
    r = BlenderRenderer(RenderSettings(samples=4, denoise=False))
    try:
        res = r.render(_scene([ObjectSpec("box", (40.0, 0.2, 40.0), (0.0, 6.1, 1.0))], W=32, H=24))
    finally:
        r.close()
    assert res.rgb.shape == (24, 32, 3) and res.rgb.dtype == np.uint8
    assert res.rgb.mean() > 5  # lit
    assert res.timings["rgb_render_s"] > 0 and res.timings["gt_render_s"] > 0
