"""Procedural materials, skies and exposure in real Cycles renders (tiny images).

The ground truth must not see the materials: bump mapping changes the shading normal Blender's
Normal pass would report, so the GT pass replaces every material (renderer.py). Checked here
bit for bit: same depth, normals and ids with all 14 bumpy families as with flat grey.
"""

import dataclasses
import math

import numpy as np
import pytest

from render import lights, materials
from render.spec import CameraSpec, EnvironmentSpec, LightSpec, MaterialSpec, ObjectSpec, SceneSpec

bpy = pytest.importorskip("bpy")

from render.blender import BlenderRenderer, RenderSettings  # noqa: E402


@pytest.fixture(scope="module")
def renderer():
    r = BlenderRenderer(RenderSettings(samples=4, denoise=False))
    yield r
    r.close()


def _gallery(kinds, W=64, H=32, env=None, sun=True):
    """A floor and one sphere and one box per material kind, in a row in front of the camera."""
    rng = np.random.default_rng(7)
    objs = [ObjectSpec("box", (30.0, 30.0, 0.2), (0.0, 5.0, -0.1), material=materials.sample("concrete", rng),
                       semantic_class="floor")]
    for i, kind in enumerate(kinds):
        m = dataclasses.replace(materials.sample(kind, rng), bump=1.0 if kind != "glass" else 0.0)
        x = -3.0 + 6.0 * i / max(len(kinds) - 1, 1)
        objs.append(ObjectSpec("sphere", (0.4, 0.4, 0.4), (x, 4.0, 0.2), material=m, semantic_class="sphere"))
        objs.append(ObjectSpec("box", (0.3, 0.3, 0.5), (x, 5.0, 0.25), rotation=(0.0, 0.0, 0.5), material=m,
                               semantic_class="box"))
    env, sun_light = lights.daylight(np.random.default_rng(1)) if env is None else (env, None)
    cam = CameraSpec.from_focal_mm(W, H, 20.0, (0.0, 0.0, 1.0), (0.0, 5.0, 0.1))
    return SceneSpec(cam, objs, [sun_light] if sun and sun_light else [], env)


def test_ground_truth_ignores_materials_and_bump(renderer):
    spec = _gallery(materials.PROCEDURAL_KINDS)
    flat = SceneSpec.from_dict(spec.to_dict())
    for o in flat.objects:
        o.material = MaterialSpec("diffuse", (0.5, 0.5, 0.5))
    a, b = renderer.render(spec), renderer.render(flat)
    np.testing.assert_array_equal(a.depth, b.depth)
    np.testing.assert_array_equal(a.normals, b.normals)
    np.testing.assert_array_equal(a.instance, b.instance)
    np.testing.assert_array_equal(a.semantic, b.semantic)
    assert len(np.unique(a.instance)) >= 20  # most objects are in view
    assert not np.array_equal(a.rgb, b.rgb)  # the beauty pass does see them


@pytest.mark.parametrize("kind", materials.PROCEDURAL_KINDS)
def test_each_family_renders_with_texture(renderer, kind):
    rng = np.random.default_rng(3)
    m = materials.sample(kind, rng)
    m.texture_scale = min(m.texture_scale, 40.0)  # a pattern coarse enough for 48 px
    wall = ObjectSpec("box", (4.0, 0.2, 4.0), (0.0, 3.1, 1.0), material=m)
    cam = CameraSpec.from_focal_mm(48, 48, 35.0, (0.0, 0.0, 1.0), (0.0, 3.0, 1.0))
    env, sun = lights.daylight(np.random.default_rng(2), 40, 41)
    spec = SceneSpec(cam, [wall], [sun, LightSpec("point", (0.0, 1.0, 2.0), energy=50.0)], env)
    res = renderer.render(spec)
    assert (res.instance == 1).all()
    assert 5 < res.rgb.mean() < 250  # exposed, not black or white
    assert res.image["clipped"] < 0.05
    if kind not in ("glass", "plastic", "painted_metal", "rubber", "plaster"):  # near-uniform surfaces
        assert res.rgb.astype(float).std() > 1.0  # a visible pattern


def test_exposure_follows_the_light(renderer):
    """Metering: 64x the sun and sky gives the same picture at 6 stops less exposure."""
    env, sun = lights.daylight(np.random.default_rng(5), 30, 31)
    spec = _gallery(("wood", "brick", "fabric"), env=env, sun=False)
    spec.lights = [sun]
    dim = renderer.render(spec)
    bright_spec = SceneSpec.from_dict(spec.to_dict())
    bright_spec.lights[0].energy *= 64
    bright_spec.environment.strength *= 64
    bright = renderer.render(bright_spec)
    assert bright.image["exposure_ev"] == pytest.approx(dim.image["exposure_ev"] - 6.0, abs=0.05)
    assert abs(float(bright.rgb.mean()) - float(dim.rgb.mean())) < 2.0
    assert 40 < dim.rgb.mean() < 200 and dim.image["clipped"] < 0.05


@pytest.mark.parametrize("sky", lights.DAYLIGHT_SKIES)
def test_sky_sun_and_lamp_agree(renderer, sky):
    """Each sky is brightest towards render.lights.sun_direction (where the Sun lamp comes from):
    at a fixed exposure, a camera facing the sun's azimuth sees a brighter sky than one facing
    away, or than ones a quarter turn to either side."""
    env = EnvironmentSpec(sky, strength=0.05 if sky == "nishita" else 1.0, sun_elevation=math.radians(10.0),
                          sun_rotation=1.0)
    d = lights.sun_direction(env.sun_elevation, env.sun_rotation)
    means = []
    saved = renderer.settings
    renderer.settings = dataclasses.replace(saved, auto_exposure=False)
    try:
        for x, y in ((d[0], d[1]), (-d[0], -d[1]), (d[1], -d[0]), (-d[1], d[0])):
            cam = CameraSpec.from_focal_mm(16, 16, 50.0, (0.0, 0.0, 0.0), (x, y, 0.3))
            means.append(renderer.render_rgb(SceneSpec(cam, [], [], env)).mean())
    finally:
        renderer.settings = saved
    assert means[0] > 1.1 * max(means[1:])


def test_no_datablocks_accumulate(renderer):
    spec = _gallery(materials.PROCEDURAL_KINDS[:4], W=16, H=8)
    renderer.render(spec)
    counts = {k: len(getattr(bpy.data, k)) for k in ("objects", "meshes", "materials", "worlds", "images", "node_groups")}
    for _ in range(2):
        renderer.render(spec)
    assert counts == {k: len(getattr(bpy.data, k)) for k in counts}


def test_normals_agree_with_depth_on_a_sampled_room(renderer):
    """On a sampled, relit room with the new materials (bump included), the GT normals of flat
    surfaces (box-shaped objects: walls, floor, ceiling, slabs) agree with the normals of the GT
    depth's 3D points (cross product of neighbouring points) to within 0.05 deg at the median."""
    from render import camera
    from render.sampling import sample_scene, scene_seed

    spec = sample_scene(scene_seed(31, 0), 96, 72, family="indoor")
    assert any(o.material.bump > 0 for o in spec.objects)
    res = renderer.render(spec)
    rays = camera.pixel_rays(spec.camera.K(), 72, 96)
    pts = rays / rays[..., 2:3] * res.depth[..., None]  # planar z -> camera-frame points
    du, dv = pts[1:-1, 2:] - pts[1:-1, :-2], pts[2:, 1:-1] - pts[:-2, 1:-1]
    n = np.cross(dv, du)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    gt = res.normals[1:-1, 1:-1]
    inst = res.instance
    boxes = {i + 1 for i, o in enumerate(spec.objects) if o.shape == "box"}
    same = np.ones_like(inst[1:-1, 1:-1], bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            same &= inst[1 + dy:inst.shape[0] - 1 + dy, 1 + dx:inst.shape[1] - 1 + dx] == inst[1:-1, 1:-1]
    ok = same & np.isin(inst[1:-1, 1:-1], list(boxes)) & np.isfinite(gt).all(-1)
    assert ok.sum() > 500
    cos = np.abs(np.sum(n[ok] * gt[ok], -1))
    angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    assert np.median(angle) < 0.05 and np.percentile(angle, 90) < 0.5
