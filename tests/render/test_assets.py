"""Optional user assets: a folder the test writes (a cube .glb exported by Blender, a 4x4 PNG texture
set, tiny .hdr and .exr skies) scanned, swapped into specs and rendered by real Cycles."""

import os

import numpy as np
import pytest

from render import assets
from render.assets import AssetConfig, AssetError
from render.spec import CameraSpec, EnvironmentSpec, LightSpec, MaterialSpec, ObjectSpec, SceneSpec, SpecError, validate

bpy = pytest.importorskip("bpy")

from render.blender import BlenderRenderer, RenderSettings  # noqa: E402


def _png(path, rgb):
    from PIL import Image

    Image.fromarray(np.full((4, 4, 3), rgb, np.uint8)).save(path)


def _sky(path, rgb, fmt):
    img = bpy.data.images.new("sky", 8, 4, float_buffer=True)
    img.pixels.foreach_set(np.tile([*rgb, 1.0], 32).astype(np.float32))
    img.filepath_raw, img.file_format = str(path), fmt
    img.save()
    bpy.data.images.remove(img)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Written before the module's renderer exists (its factory reset would not matter either)."""
    root = tmp_path_factory.mktemp("assets")
    for sub in ("models", "textures/redbrick", "textures/nothing", "hdris"):
        os.makedirs(root / sub)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    mesh = bpy.data.meshes.new("cube")
    v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    mesh.from_pydata(v.tolist(), [], quads)
    obj = bpy.data.objects.new("cube", mesh)
    obj.location, obj.scale = (5.0, 0.0, 2.0), (0.5, 1.0, 2.0)  # the transform is baked, then normalized away
    bpy.context.scene.collection.objects.link(obj)
    bpy.ops.export_scene.gltf(filepath=str(root / "models" / "cube.glb"), export_format="GLB")
    _png(root / "textures/redbrick/redbrick_albedo.png", (200, 20, 20))
    _png(root / "textures/redbrick/redbrick_roughness.png", (128, 128, 128))
    _png(root / "textures/redbrick/redbrick_normal.png", (128, 128, 255))
    _png(root / "textures/nothing/readme_mask.png", (0, 0, 0))  # no albedo: skipped
    _sky(root / "hdris/blue.hdr", (0.05, 0.1, 0.8), "HDR")
    _sky(root / "hdris/green.exr", (0.05, 0.6, 0.1), "OPEN_EXR")
    (root / "hdris/notes.txt").write_text("not an image")
    return assets.scan(str(root))


def test_scan_finds_what_is_there(library, tmp_path):
    assert [os.path.basename(p) for p in library.models] == ["cube.glb"]
    assert [os.path.basename(p) for p in library.hdris] == ["blue.hdr", "green.exr"]
    assert len(library.texture_sets) == 1 and set(library.texture_sets[0]) == {"albedo", "roughness", "normal"}
    assert len(library.skipped) == 1 and "nothing" in library.skipped[0] and "no albedo" in library.skipped[0]
    with pytest.raises(AssetError, match="is not a directory"):
        assets.scan(str(tmp_path / "missing"))
    with pytest.raises(AssetError, match="holds no models"):
        assets.scan(str(tmp_path))
    with pytest.raises(AssetError, match="p_model"):
        AssetConfig(root=str(tmp_path), p_model=1.5)


def _scene(objects, env=None, lights=None, W=48, H=36):
    cam = CameraSpec.from_focal_mm(W, H, 35.0, (0.0, 0.0, 1.0), (0.0, 5.0, 1.0))
    return SceneSpec(cam, objects, lights if lights is not None else [LightSpec("point", (0.0, 1.0, 3.0), energy=300.0)],
                     env or EnvironmentSpec("uniform", (0.2, 0.2, 0.2)))


def test_apply_swaps_assets_in_and_validates(library):
    objs = [ObjectSpec("box", (20.0, 20.0, 0.2), (0.0, 5.0, -0.1), semantic_class="floor"),
            ObjectSpec("sphere", (0.5, 0.5, 0.5), (0.0, 4.0, 0.25), semantic_class="vase")]
    spec = _scene(objs, EnvironmentSpec("hosek_wilkie"), [LightSpec("sun"), LightSpec("area")])
    out = assets.apply(spec, library, np.random.default_rng(0), AssetConfig(library.root, 1.0, 1.0, 1.0))
    validate(out)
    assert out.objects[0].asset is None and out.objects[1].asset == library.models[0]  # floors stay floors
    assert all(o.material.kind == "pbr" for o in out.objects)
    assert out.environment.kind == "hdri" and [x.kind for x in out.lights] == ["area"]
    assert spec.objects[1].asset is None  # the input is not changed
    none = assets.apply(spec, library, np.random.default_rng(0), AssetConfig(library.root, 0.0, 0.0, 0.0))
    assert none.to_json() == spec.to_json()
    out.objects[1].asset = library.root + "/models/missing.glb"
    with pytest.raises(SpecError, match=r"objects\[1\]\.asset: no such file"):
        validate(out)


@pytest.fixture(scope="module")
def renderer(library):
    r = BlenderRenderer(RenderSettings(samples=4, denoise=False))
    yield r
    r.close()


def test_model_renders_with_exact_ground_truth(library, renderer):
    """The exported cube, fitted into a box's bounding box, is that box: same depth, normals, ids."""
    box = ObjectSpec("box", (1.0, 0.6, 0.8), (0.2, 4.0, 0.9), rotation=(0.0, 0.0, 0.4), semantic_class="box")
    model = ObjectSpec("box", box.size, box.location, box.rotation, semantic_class="box", asset=library.models[0])
    a, b = renderer.render(_scene([box])), renderer.render(_scene([model]))
    assert (a.instance == 1).sum() > 100
    np.testing.assert_array_equal(a.instance, b.instance)
    hit = a.instance == 1
    np.testing.assert_allclose(b.depth[hit], a.depth[hit], rtol=1e-5)
    assert np.degrees(np.arccos(np.clip(np.sum(a.normals[hit] * b.normals[hit], -1), -1, 1))).max() < 0.1
    assert len(bpy.data.objects) == 0 and len(bpy.data.meshes) == 0  # the import left nothing behind


def test_texture_set_and_hdri_render(library, renderer):
    wall = ObjectSpec("box", (6.0, 0.2, 6.0), (0.0, 4.1, 1.0),
                      material=assets.pbr_material(library.texture_sets[0], np.random.default_rng(1)))
    res = renderer.render(_scene([wall]))
    r, g, b = res.rgb.reshape(-1, 3).mean(0)
    assert r > 2 * g and r > 2 * b  # the red albedo image
    for path, channel in zip(library.hdris, (2, 1)):  # blue .hdr, green .exr: the sky seen past a small box
        env = assets.hdri_environment(path, np.random.default_rng(0))
        res = renderer.render(_scene([ObjectSpec("box", (0.2, 0.2, 0.2), (0.0, 5.0, 1.0))], env, []))
        sky = res.rgb[res.instance == 0].astype(float).mean(0)
        assert sky.argmax() == channel
    assert [i for i in bpy.data.images if i.source == "FILE"] == []  # removed with their scene


def test_render_job_checks_the_asset_folder(tmp_path):
    from render.shard import RenderJobConfig

    with pytest.raises(AssetError, match="is not a directory"):
        RenderJobConfig(out=str(tmp_path), n_scenes=1, assets={"root": str(tmp_path / "nope")})
    with pytest.raises(Exception, match="p_hdri"):
        RenderJobConfig(out=str(tmp_path), n_scenes=1, assets={"p_hdri": 2})
    RenderJobConfig(out=str(tmp_path), n_scenes=1)  # procedural only by default
