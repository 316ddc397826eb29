import numpy as np
import pytest

from encode import codecs
from tests.conftest import add_noise, png_roundtrip


@pytest.fixture(scope="module")
def codec():
    return codecs.get("normals")


def _hemisphere(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v[:, 2] = -np.abs(v[:, 2])  # visible: facing the camera (n . view ray < 0 on the axis)
    return v.astype(np.float32).reshape(512, -1, 3)


def _angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.einsum("...k,...k", a.astype(np.float64), b), -1, 1)))


def test_round_trip_angular_error(codec):
    n = _hemisphere(512 * 512)
    back = codec.decode(png_roundtrip(codec.encode(n)))
    ang = _angles(back, n)
    assert ang.mean() <= 0.25
    assert ang.max() <= 0.6
    np.testing.assert_allclose(np.linalg.norm(back, axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("normal, color", [
    ((0, 0, -1), (128, 128, 255)),   # facing the camera: light blue
    ((-1, 0, 0), (255, 128, 128)),   # facing left: pinkish red
    ((0, -1, 0), (128, 255, 128)),   # facing up (OpenCV y is down): light green
])
def test_convention(codec, normal, color):
    n = np.array(normal, np.float32).reshape(1, 1, 3)
    assert tuple(codec.encode(n)[0, 0]) == color
    # 0 is not an 8-bit level of (1 - n) / 2 (it falls between 127 and 128): 0.0039 off, 0.22 deg
    np.testing.assert_allclose(codec.decode(codec.encode(n))[0, 0], normal, atol=0.004)


def test_invalid_stays_invalid(codec):
    n = _hemisphere(512 * 4)
    n[0, :10] = np.nan
    back = codec.decode(png_roundtrip(codec.encode(n)))
    assert np.isnan(back[0, :10]).all()
    assert np.isfinite(back[0, 10:]).all() and np.isfinite(back[1:]).all()
    # noise does not turn the reserved color into a valid normal
    assert np.isnan(codec.decode(add_noise(codec.encode(n), 8.0))[0, :10]).all()


def test_slightly_off_unit_is_renormalized(codec):
    n = np.array([[[0.0, 0.0, -1.03]]], np.float32)
    assert tuple(codec.encode(n)[0, 0]) == (128, 128, 255)


@pytest.mark.parametrize("bad, match", [
    (np.array([[[0.0, 0.0, 0.0]]], np.float32), "unit length"),
    (np.array([[[np.nan, 0.0, -1.0]]], np.float32), "partly NaN"),
    (np.array([[[0.0, 0.0, 2.0]]], np.float32), "unit length"),
    (np.array([[[np.inf, 0.0, 0.0]]], np.float32), "unit length"),
    (np.zeros((2, 2), np.float32), "shape"),
    (np.zeros((2, 2, 3), np.uint8), "float dtype"),
])
def test_bad_input(codec, bad, match):
    with pytest.raises(ValueError, match=match):
        codec.encode(bad)


def test_decode_bad_input(codec):
    with pytest.raises(ValueError, match="uint8"):
        codec.decode(np.zeros((2, 2, 3), np.int16))


@pytest.mark.parametrize("apart_deg", [60.0, 120.0, 140.0])
def test_average_of_two_normal_colors_decodes_to_their_bisector(codec, apart_deg):
    # what a generator unsure between two normals draws: the mean of their colors, a vector
    # shorter than one (cos(apart / 2)) that still points along the bisector
    half = np.radians(apart_deg / 2)
    a = np.array([np.sin(half), 0.0, -np.cos(half)], np.float32)
    b = np.array([-np.sin(half), 0.0, -np.cos(half)], np.float32)
    colors = codec.encode(np.stack([a, b]).reshape(1, 2, 3)).astype(np.float64)
    mean_color = np.rint(colors.mean(axis=1, keepdims=True)).astype(np.uint8)
    back = codec.decode(mean_color)[0, 0]
    assert np.isfinite(back).all()
    assert _angles(back, np.array([0.0, 0.0, -1.0])) < 1.0


def test_reserved_gray_with_noise_stays_invalid_over_many_pixels(codec):
    n = np.full((64, 64, 3), np.nan, np.float32)
    back = codec.decode(add_noise(codec.encode(n), 8.0, seed=3))
    assert np.isnan(back).all(-1).mean() >= 0.99
