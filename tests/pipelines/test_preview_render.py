"""`vistune preview` of render shards: a contact sheet (RGB | depth | normals | instances) of real renders."""

import numpy as np
import pytest
from PIL import Image

from encode import render_preview as rp
from formats.shards import ShardWriter, read_rows
from pipelines.cli import main
from render.shard import RenderedScene, RenderJobConfig, scene_key, write_scene
from render.spec import CameraSpec, LightSpec, ObjectSpec, SceneSpec

bpy = pytest.importorskip("bpy")

W, H, CELL = 48, 36, 48  # a panel is the render itself: no resampling between the data and the sheet


def _spec(location, look_at):
    objects = [ObjectSpec("box", (20.0, 20.0, 0.1), (0.0, 0.0, -0.05), semantic_class="floor"),
               ObjectSpec("box", (8.0, 0.2, 3.0), (0.0, 4.0, 1.5), semantic_class="wall"),
               ObjectSpec("box", (0.6, 0.6, 0.6), (-0.8, 2.5, 0.3)),
               ObjectSpec("sphere", (0.5, 0.5, 0.5), (0.5, 2.0, 0.25)),
               ObjectSpec("cylinder", (0.4, 0.4, 0.8), (1.2, 3.0, 0.4))]
    return SceneSpec(camera=CameraSpec.from_focal_mm(W, H, 35.0, location, look_at), objects=objects,
                     lights=[LightSpec("point", (0.0, 1.0, 2.5), energy=300.0)], family="custom")


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    """One real render shard: a near view (camera 1.5 m from the objects) and a far one (8 m, sky above the wall)."""
    from render.blender import BlenderRenderer, RenderSettings

    root = tmp_path_factory.mktemp("renders")
    cfg = RenderJobConfig(out=str(root), n_scenes=2, scenes_per_shard=2, width=W, height=H,
                          render={"samples": 1, "denoise": False})
    settings = RenderSettings(samples=1, denoise=False)
    specs = [_spec((0.0, 0.8, 0.9), (0.0, 3.0, 0.4)), _spec((0.0, -6.0, 1.2), (0.0, 3.0, 0.9))]
    r = BlenderRenderer(settings)
    try:
        with ShardWriter(cfg.paths(0)) as writer:
            for i, spec in enumerate(specs):
                write_scene(writer, settings, cfg, RenderedScene(i, i, spec, r.render(spec)))
            writer.commit()
    finally:
        r.close()
    return root


def _panels(sheet: np.ndarray, row: int) -> list[np.ndarray]:
    y = rp.HEADER + row * (H + rp.CAPTION)
    return [sheet[y:y + H, c * CELL:(c + 1) * CELL] for c in range(4)]


def test_preview_of_render_shards_writes_a_sheet_of_the_data(shard, tmp_path):
    out = tmp_path / "preview"
    assert main(["preview", f"roots=[{shard}]", f"out={out}", "views=2", f"cell={CELL}"]) == 0
    sheet = np.asarray(Image.open(out / "renders.png").convert("RGB"))
    assert sheet.shape == (rp.HEADER + 2 * (H + rp.CAPTION), 4 * CELL, 3)  # rows x 4 panels, caption under each
    page = (out / "index.html").read_text()
    rows = read_rows(shard / "render-000000.parquet")
    assert "renders.png" in page and all(r["key"] in page for r in rows)
    assert all(f"{r['visible']} visible instances" in page for r in rows)

    views = rp.load_views([str(shard / "render-000000.parquet")], 2)
    assert [v.key for v in views] == [scene_key(0), scene_key(1)]
    near, far = views
    assert np.nanmedian(near.render.depth) < 0.5 * np.nanmedian(far.render.depth[np.isfinite(far.render.depth)])
    lo, hi = rp.depth_range([v.render.depth for v in views])
    lum = []
    for r, view in enumerate(views):
        rgb, depth, normals, ids = _panels(sheet, r)
        d = view.render.depth
        np.testing.assert_array_equal(rgb, view.render.rgb)
        np.testing.assert_array_equal(depth, rp.depth_panel(d, lo, hi))
        np.testing.assert_array_equal(normals, rp.normals_panel(view.render.normals))
        # no-hit pixels (sky) hatched, every hit pixel on the ramp (never a hatch colour)
        hatch = np.isin(depth.reshape(-1, 3).view([("", np.uint8)] * 3).ravel(),
                        np.array(rp.NO_HIT, np.uint8).view([("", np.uint8)] * 3).ravel()).reshape(d.shape)
        np.testing.assert_array_equal(hatch, ~np.isfinite(d))
        lum.append(depth[np.isfinite(d)].astype(float).mean())
        # one colour per instance, black background
        inst = view.render.instance
        present = np.unique(inst[inst > 0])
        colours = {tuple(c) for c in ids[inst > 0]}
        assert len(colours) == len(present) >= 4 and (0, 0, 0) not in colours
        assert all(len({tuple(c) for c in ids[inst == i]}) == 1 for i in present)
        assert (ids[inst == 0] == 0).all()
        share = np.bincount(inst.ravel())[1:] / inst.size
        assert view.row["visible"] == int(np.sum(share > 0.001))  # the caption's number is the data's
    assert (~np.isfinite(far.render.depth)).any() and np.isfinite(near.render.depth).all()
    assert lum[0] > lum[1] + 20  # near is brighter on the log ramp than far
    assert not np.array_equal(_panels(sheet, 0)[1], _panels(sheet, 1)[1])


def test_preview_kinds_and_bad_roots(shard, tmp_path, capsys):
    assert main(["preview", f"roots=[{shard}]", f"out={tmp_path / 'p'}", "kind=render", "views=1", f"cell={CELL}"]) == 0
    assert Image.open(tmp_path / "p" / "renders.png").size == (4 * CELL, rp.HEADER + H + rp.CAPTION)
    assert main(["preview", f"roots=[{shard}]", f"out={tmp_path / 'q'}", "kind=frames"]) == 2
    assert "preview.kind" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["preview", f"roots=[{empty}]", f"out={tmp_path / 'r'}"]) == 2
    assert "no Parquet files" in capsys.readouterr().err
    import pyarrow as pa
    import pyarrow.parquet as pq

    other = tmp_path / "other"
    other.mkdir()
    pq.write_table(pa.table({"x": [1]}), other / "x.parquet")
    assert main(["preview", f"roots=[{other}]", f"out={tmp_path / 's'}"]) == 2
    assert "neither a task manifest" in capsys.readouterr().err
