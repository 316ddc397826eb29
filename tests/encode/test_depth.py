import numpy as np
import pytest

from encode import codecs
from encode.codecs.colorpath import PATHS
from encode.codecs.depth import depth_to_t, relative_error_bound, t_to_depth
from tests.conftest import add_noise, png_roundtrip


@pytest.fixture(scope="module")
def default():
    return codecs.get("depth")


@pytest.fixture(scope="module")
def vb():
    return codecs.get("depth", preset="vb")


def _dense(lo: float, hi: float, n: int = 1 << 20) -> np.ndarray:
    return np.geomspace(lo, hi, n).astype(np.float32).reshape(1024, -1)


@pytest.mark.parametrize("lo, hi, bound", [(0.1, 200.0, 0.006), (0.02, 1000.0, 0.02)])
def test_lossless_relative_error_within_bound(default, lo, hi, bound):
    d = _dense(lo, hi)
    back = default.decode(png_roundtrip(default.encode(d)))
    rel = np.abs(back.astype(np.float64) / d - 1)
    assert rel.max() <= bound
    # the analytic bound documented in the module is an upper bound of what we measure
    assert rel.max() <= relative_error_bound(default, lo, hi) + 1e-6


def test_special_values(default):
    d = np.array([[np.inf, np.nan, -1.0, -np.inf, 0.0, -0.0, 1e-30, 3e38]], np.float32)
    back = default.decode(png_roundtrip(default.encode(d)))
    assert back[0, 0] == np.inf
    assert np.isnan(back[0, 1:4]).all()  # NaN, negative and -inf never decode as valid depth
    assert back[0, 4] == 0 and back[0, 6] == 0
    assert np.isfinite(back[0, 7]) and back[0, 7] > 1e4  # huge finite depth stays finite (clamped)


def test_nan_with_tiny_payload_is_invalid(default):
    odd_nan = np.array([[0x7F800001, 0x7F8003FF, 0xFF800001]], np.uint32).view(np.float32)
    assert np.isnan(default.decode(default.encode(odd_nan))).all()


def test_float64_input(default):
    d = np.linspace(0.5, 20, 64 * 64).reshape(64, 64)
    back = default.decode(default.encode(d))
    assert np.max(np.abs(back / d - 1)) <= 0.006


def test_vb_round_trips_its_levels_exactly(vb):
    L = vb.path.steps
    assert vb.levels == 1786
    p = vb.params
    depth = t_to_depth(np.arange(L + 1) / L, p["scale"], p["power"], p["shape"]).astype(np.float32)
    rgb = vb.encode(depth[None])
    np.testing.assert_array_equal(rgb[0], vb.path.levels)
    back = vb.decode(vb.path.levels[None])[0]
    assert back[-1] == np.inf
    np.testing.assert_allclose(back[:-1], depth[:-1], rtol=1e-6)


def test_vb_scheme_is_the_published_one(vb):
    assert vb.params == {"preset": "vb", "path": "cube7", "scale": 10.0, "power": 2.0, "shape": 1.0, "inf_margin": 0}
    walk = [(0, 0, 0), (255, 0, 0), (255, 255, 0), (0, 255, 0), (0, 255, 255), (0, 0, 255), (255, 0, 255), (255, 255, 255)]
    assert [tuple(v) for v in vb.path.levels[::255]] == walk
    # f = 1 - (1 + d/10)^-2: at d = 10 m, f = 0.75 -> level round(0.75 * 1785) = 1339
    assert tuple(vb.encode(np.array([[10.0]], np.float32))[0, 0]) == tuple(vb.path.levels[1339])


def test_vb_bound_is_looser_as_documented(vb, default):
    assert relative_error_bound(vb, 0.1, 200) == pytest.approx(0.064, abs=0.002)
    assert relative_error_bound(default, 0.1, 200) < 0.003


@pytest.mark.parametrize("path", sorted(PATHS))
def test_decode_table_matches_direct_projection(path, rng):
    codec = codecs.get("depth", path=path)
    colors = rng.integers(0, 256, (4096, 3)).astype(np.uint8)
    got = codec.decode(colors[None])[0]
    pos, dist = codec.path.project(colors.astype(np.float32))
    to_reserved = np.linalg.norm(colors - np.asarray(codec.path.reserved), axis=1)
    p = codec.params
    want = t_to_depth(pos / codec.path.steps, p["scale"], p["power"], p["shape"])
    want = np.where(pos >= codec.path.steps - p["inf_margin"] - 0.5, np.inf, want)
    want = np.where(to_reserved < dist, np.nan, want)
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_reserved_color_is_far_from_the_path(path):
    p = PATHS[path]
    assert p.min_distance_to(p.reserved) > 85
    assert p.levels.shape == (p.steps + 1, 3)
    assert len(np.unique(p.levels, axis=0)) == p.steps + 1  # every level is a distinct color


def test_noise_on_smooth_ramp(default):
    # a smooth ramp 0.5 m -> 50 m, Gaussian color noise sigma 4/255
    d = np.geomspace(0.5, 50, 256 * 256).astype(np.float32).reshape(256, 256)
    back = default.decode(add_noise(default.encode(d), 4.0))
    abs_rel = np.mean(np.abs(back - d) / d)
    assert abs_rel <= 0.03


def test_noisy_sky_stays_sky(default):
    d = np.full((128, 128), np.inf, np.float32)
    back = default.decode(add_noise(default.encode(d), 4.0))
    assert np.isinf(back).mean() >= 0.999


@pytest.mark.parametrize("bad, match", [
    (np.zeros((4, 4), np.int32), "float dtype"),
    (np.zeros((4, 4, 1), np.float32), "shape"),
    (np.zeros((0, 4), np.float32), "shape"),
    ([[1.0]], "numpy"),
])
def test_encode_rejects_bad_input(default, bad, match):
    with pytest.raises(ValueError, match=match):
        default.encode(bad)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((4, 4, 3), np.float32), "uint8"),
    (np.zeros((4, 4, 4), np.uint8), "shape"),
    (np.zeros((4, 4), np.uint8), "shape"),
])
def test_decode_rejects_bad_input(default, bad, match):
    with pytest.raises(ValueError, match=match):
        default.decode(bad)


def test_bad_params():
    with pytest.raises(ValueError, match="preset"):
        codecs.get("depth", preset="turbo")
    with pytest.raises(ValueError, match="scale"):
        codecs.get("depth", scale=-1.0)
    with pytest.raises(ValueError, match="color path"):
        codecs.get("depth", path="spiral")


def _mixed_decode(codec, rng, ratio: float, n: int = 20000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth pairs a factor `ratio` apart (0.3-80 m), their colors averaged (what a generator's blur or
    uncertainty produces), decoded. Returns (d1, d2, decoded)."""
    d1 = np.exp(rng.uniform(np.log(0.3), np.log(80.0 / ratio), n)).astype(np.float32)
    d2 = (d1 * ratio).astype(np.float32)
    mix = (codec.encode(d1[None]).astype(np.float32) + codec.encode(d2[None]).astype(np.float32)) / 2
    return d1, d2, codec.decode(np.rint(mix).astype(np.uint8))[0]


def test_hot_ramp_round_trips_within_its_bound():
    hot = codecs.get("depth", preset="hot")
    assert hot.levels == 766 and PATHS["hot"].min_distance_to(PATHS["hot"].reserved) == 255
    d = _dense(0.1, 200.0)
    back = hot.decode(png_roundtrip(hot.encode(d)))
    assert np.abs(back.astype(np.float64) / d - 1).max() <= relative_error_bound(hot, 0.1, 200.0) + 1e-6 <= 0.012


def test_averaged_colors_stay_between_their_depths_on_the_monotone_ramp_only():
    """The learnability property: the average of two ramp colors decodes between the two depths,
    while folded paths send a quarter of such averages to an unrelated depth (issue 15's measurement)."""
    rng = np.random.default_rng(0)
    outside = {}
    for preset in ("hot", "gray", "default", "vb"):
        d1, d2, back = _mixed_decode(codecs.get("depth", preset=preset), rng, ratio=3.0)
        outside[preset] = np.mean(~((back >= 0.95 * d1) & (back <= 1.05 * d2)))
    assert outside["hot"] == 0.0 and outside["gray"] == 0.0
    assert outside["default"] > 0.15 and outside["vb"] > 0.15


def test_gray_staircase_round_trips_and_decodes_linearly():
    """`gray`: level k has channel sum k, decoding is the channel sum, so averaging colors averages
    the transformed depth exactly (up to rounding); NaN is the reserved magenta, +inf the white end."""
    gray = codecs.get("depth", preset="gray")
    levels = PATHS["gray"].levels.astype(np.int64)
    assert gray.levels == 766 and np.array_equal(levels.sum(axis=1), np.arange(766))
    assert np.all(np.abs(np.diff(levels, axis=0)).sum(axis=1) == 1)          # one channel per step
    assert PATHS["gray"].min_distance_to(PATHS["gray"].reserved) > 200
    d = _dense(0.1, 200.0)
    back = gray.decode(png_roundtrip(gray.encode(d)))
    assert np.abs(back.astype(np.float64) / d - 1).max() <= relative_error_bound(gray, 0.1, 200.0) + 1e-6 <= 0.012
    special = gray.decode(gray.encode(np.array([[np.inf, np.nan]], np.float32)))
    assert np.isposinf(special[0, 0]) and np.isnan(special[0, 1])
    # linear decode: the mean color of n depths decodes to the depth of the mean transformed value
    p = gray.params
    rng = np.random.default_rng(3)
    stack = np.exp(rng.uniform(np.log(0.3), np.log(50.0), (8, 1, 500))).astype(np.float32)
    colors = np.stack([gray.encode(x) for x in stack]).astype(np.float64)
    mean_t = np.stack([np.rint(depth_to_t(x, p["scale"], p["power"], p["shape"]) * 765) for x in stack]).mean(0)
    expect = t_to_depth(np.round(colors.mean(0)).sum(-1) / 765, p["scale"], p["power"], p["shape"])
    assert np.allclose(gray.decode(np.rint(colors.mean(0)).astype(np.uint8)), expect, rtol=1e-5)
    assert np.abs(np.round(colors.mean(0)).sum(-1) - mean_t).max() <= 1.5   # within rounding of the mean level


def test_canonical_camera_scale_round_trips_in_meters_and_keeps_special_values():
    rng = np.random.default_rng(5)
    d = np.exp(rng.uniform(np.log(0.2), np.log(80.0), (64, 64))).astype(np.float32)
    d[0, :4] = [np.inf, np.nan, -1.0, 0.0]
    for scale in (0.25, 1.7):
        codec = codecs.get("depth", preset="gray", camera_scale=scale)
        metric = codecs.get("depth", preset="gray")
        rgb = codec.encode(d)
        # the colors are the metric colors of the canonical camera's depth; decoding gives meters back
        assert np.array_equal(rgb, metric.encode(d * np.float32(scale)))
        back = codec.decode(rgb)
        fin = np.isfinite(d) & (d > 0)
        bound = relative_error_bound(metric, 0.05, 400.0)
        assert np.all(np.abs(back[fin] - d[fin]) / d[fin] <= bound + 1e-6)
        assert np.isposinf(back[0, 0]) and np.isnan(back[0, 1]) and np.isnan(back[0, 2])
        again = codecs.from_spec(codecs.spec(codec))  # the scale rides in the spec
        assert again.camera_scale == scale and np.array_equal(again.decode(rgb), back, equal_nan=True)
    assert "camera_scale" not in codecs.get("depth", preset="gray").params  # old specs unchanged


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_camera_scale_must_be_positive_and_finite(bad):
    with pytest.raises(ValueError, match="camera_scale"):
        codecs.get("depth", camera_scale=bad)
