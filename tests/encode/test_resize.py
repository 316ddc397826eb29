"""Resolution policy: targets keep exact source values, intrinsics follow the pixels."""

import numpy as np
import pytest

from encode.resize import (ResizePolicy, aspect_mismatch, fit_square, plan, resize_image, resize_nearest,
                           resize_prediction, resize_values_nearest, update_intrinsics)
from render import analytic, camera


def _project(K, ext, p):
    uv, z = camera.project(np.asarray(p, dtype=np.float64)[None], K, ext)
    return uv[0]


@pytest.mark.parametrize("mode", ["crop", "pad"])
@pytest.mark.parametrize("hw", [(48, 64), (64, 40), (37, 91)])
def test_intrinsics_follow_a_projected_point(mode, hw):
    h, w = hw
    K = camera.intrinsics(w, h, 30.0)
    ext = camera.look_at((0, -5, 1.5), (0, 0, 1))
    geom = plan(h, w, ResizePolicy(size=32, mode=mode))
    K2 = update_intrinsics(K, geom)
    for p in [(0.3, 0.2, 1.1), (-0.4, 0.5, 0.8), (0, 0, 1)]:
        uv = _project(K, ext, p)
        uv2 = _project(K2, ext, p)
        sx, sy = geom.scale
        # the pixel-center mapping x' = (x + 0.5 - x0) * s - 0.5 + pad, exactly
        expected = ((uv[0] + 0.5 - geom.x0) * sx - 0.5 + geom.pad_x, (uv[1] + 0.5 - geom.y0) * sy - 0.5 + geom.pad_y)
        np.testing.assert_allclose(uv2, expected, atol=1e-9)


def test_resized_depth_matches_a_ray_cast_with_the_new_intrinsics():
    """Nearest sampling at pixel centers: output depths are source depths (no blending across
    edges), and they agree with the scene ray-cast at the new resolution through K' except on
    occlusion edges (2x downscale: the chosen source pixel is half a source pixel off)."""
    scene = analytic.AnalyticScene([analytic.Room((0, 0, 0), (6, 5, 3)), analytic.Box((2, 2, 0), (3, 3, 1)),
                                    analytic.Sphere((4, 3, 1), 0.5)])
    h, w = 64, 96
    K = camera.intrinsics(w, h, 24.0)
    ext = camera.look_at((1, 0.8, 1.5), (4, 3.5, 0.8))
    truth = analytic.render(scene, K, ext, h, w)
    geom = plan(h, w, ResizePolicy(size=32, mode="crop"))
    d2 = resize_nearest(truth.depth, geom, np.nan)
    assert set(np.unique(d2)) <= set(np.unique(truth.depth))
    recast = analytic.render(scene, update_intrinsics(K, geom), ext, 32, 32).depth
    rel = np.abs(d2 - recast) / recast
    assert np.median(rel) < 0.01, np.median(rel)
    assert np.mean(rel < 0.03) > 0.9, np.mean(rel < 0.03)


def test_no_new_ids_and_padding_is_invalid():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5, (30, 50)).astype(np.uint16)
    depth = rng.uniform(1, 5, (30, 50)).astype(np.float32)
    geom = plan(30, 50, ResizePolicy(size=40, mode="pad"))
    ids2 = resize_nearest(ids, geom, 0)
    d2 = resize_nearest(depth, geom, np.nan)
    assert ids2.shape == (40, 40) and set(np.unique(ids2)) <= set(np.unique(ids))
    # 30x50 -> 24x40 placed at rows 8..32: the padding is invalid depth and id 0
    assert np.isnan(d2[:geom.pad_y]).all() and np.isnan(d2[geom.pad_y + geom.out_h:]).all()
    assert (ids2[:geom.pad_y] == 0).all()
    assert np.isfinite(d2[geom.pad_y:geom.pad_y + geom.out_h]).all()
    img = rng.integers(0, 255, (30, 50, 3)).astype(np.uint8)
    assert resize_image(img, geom).shape == (40, 40, 3)


def test_random_crop_is_seeded_and_in_bounds():
    p = ResizePolicy(size=16, mode="crop", random_crop=True)
    assert plan(40, 100, p, seed=1) == plan(40, 100, p, seed=1)
    crops = {plan(40, 100, p, seed=s).x0 for s in range(20)}
    assert len(crops) > 5 and all(0 <= x <= 60 for x in crops)


def test_bad_policy():
    with pytest.raises(ValueError, match="resize mode"):
        ResizePolicy(mode="stretch")


def test_fit_square_center_crops_then_resizes():
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, 10:50] = 200  # exactly the centered 40x40 square
    assert (fit_square(img, 20, nearest=True) == 200).all()
    small = img[:20, :20]
    assert fit_square(small, 20, nearest=False) is small  # already at the resolution: untouched


def test_prediction_values_resize_without_inventing_values_across_invalid_pixels():
    ids = np.arange(16, dtype=np.uint16).reshape(4, 4)
    big = resize_values_nearest(ids, (8, 8))
    assert big.shape == (8, 8) and (big[::2, ::2] == ids).all()
    depth = np.array([[1.0, 2.0], [np.inf, 4.0]])
    up = resize_prediction(depth, (4, 4), "bilinear")
    assert np.isinf(up[3, 0]) and up[1, 2] == 2.0  # a +inf neighbor: the nearest value, never a blend with it
    assert up[1, 3] == 2.5  # four finite neighbors: bilinear
    assert resize_prediction(depth, (2, 2), "nearest") is depth
    with pytest.raises(ValueError, match="kind must be one of"):
        resize_prediction(depth, (4, 4), "bicubic")


def test_aspect_mismatch_refuses_to_stretch():
    assert aspect_mismatch((32, 48), (64, 96)) is None
    assert "aspect ratios differ" in aspect_mismatch((32, 32), (64, 96))
    assert "empty image" in aspect_mismatch((0, 32), (64, 96))
