"""Semantic, instance and mask codecs: exact round trips and robustness to generated-image noise."""

import numpy as np
import pytest

from encode import codecs
from encode.codecs.instance import relabel_instances
from encode.codecs.palette import distinct_colors, min_pairwise_distance
from tests.conftest import add_noise, png_roundtrip


def test_palette_is_deterministic_distinct_and_prefix_stable():
    p = distinct_colors(257)
    assert tuple(p[0]) == (0, 0, 0) and tuple(p[1]) == (255, 255, 255)
    assert len(np.unique(p, axis=0)) == 257
    np.testing.assert_array_equal(distinct_colors(33), p[:33])
    # reported minimum pairwise distances (RGB units) for the sizes we use
    assert min_pairwise_distance(distinct_colors(33)) >= 85
    assert min_pairwise_distance(p) >= 35


def test_semantic_256_classes_exact(rng):
    codec = codecs.get("semantic", num_classes=255)
    ids = rng.integers(0, 256, (128, 128)).astype(np.uint16)
    ids[0, :256 % 128] = 255
    np.testing.assert_array_equal(codec.decode(png_roundtrip(codec.encode(ids))), ids)


def test_semantic_32_classes_under_noise(rng):
    codec = codecs.get("semantic", num_classes=32)
    ids = np.kron(rng.integers(0, 33, (16, 16)), np.ones((16, 16), int)).astype(np.uint16)
    back = codec.decode(add_noise(codec.encode(ids), 8.0))
    assert (back == ids).mean() >= 0.99


def test_semantic_far_colors_are_unlabeled():
    codec = codecs.get("semantic", num_classes=8)
    rgb = codec.encode(np.full((4, 4), 3, np.uint8))
    rgb[0, 0] = np.clip(rgb[0, 0].astype(int) + 120, 0, 255)  # far from everything in this palette
    back = codec.decode(rgb)
    assert back[0, 0] in (0, 3) and (back.ravel()[1:] == 3).all()


def test_semantic_custom_palette_and_errors():
    pal = [(0, 0, 0), (255, 0, 0), (0, 0, 255)]
    codec = codecs.get("semantic", num_classes=2, palette=pal)
    assert codec.encode(np.array([[2]], np.uint8))[0, 0].tolist() == [0, 0, 255]
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 2\]"):
        codec.encode(np.array([[3]], np.uint8))
    with pytest.raises(ValueError, match="distinct"):
        codecs.get("semantic", num_classes=2, palette=[(0, 0, 0), (1, 1, 1), (1, 1, 1)])
    with pytest.raises(ValueError, match="integer dtype"):
        codec.encode(np.zeros((2, 2), np.float32))


def test_instance_256_exact(rng):
    codec = codecs.get("instance")
    ids = rng.integers(0, 257, (64, 64)).astype(np.uint16)
    ids[0, 0] = 256
    np.testing.assert_array_equal(codec.decode(png_roundtrip(codec.encode(ids))), ids)
    with pytest.raises(ValueError, match="ids must lie"):
        codec.encode(np.array([[257]], np.uint16))


def _discs(h: int, w: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    ids = np.zeros((h, w), np.uint16)
    for k in range(1, n + 1):
        cy, cx, r = rng.uniform(20, h - 20), rng.uniform(20, w - 20), rng.uniform(8, 18)
        ids[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = k
    return ids


def _iou_per_instance(a: np.ndarray, b: np.ndarray) -> list[float]:
    out = []
    for k in np.unique(a[a > 0]):
        inter = np.sum((a == k) & (b == k))
        out.append(inter / np.sum((a == k) | (b == k)))
    return out


def test_instance_noisy_decoding_groups_and_cleans():
    codec = codecs.get("instance")
    ids = _discs(256, 256, 12, seed=3)
    rgb = codec.encode(ids).astype(np.int16)
    # drift: a whole instance's color shifted by a few levels still groups into it
    rgb[ids == 1] += np.array([9, -7, 6], np.int16)
    # speckles: a few isolated pixels of a foreign palette color in the background
    rng = np.random.default_rng(0)
    for y, x in rng.integers(0, 256, (20, 2)):
        if ids[y, x] == 0:
            rgb[y, x] = codec.palette[200]
    noisy = add_noise(np.clip(rgb, 0, 255).astype(np.uint8), 8.0)
    back = codec.decode(noisy)
    ious = _iou_per_instance(ids, back)
    assert min(ious) >= 0.9 and np.mean(ious) >= 0.95
    assert not np.any(back == 200)  # speckles dropped (2e-4 of the image is 13 px here)
    assert ((back > 0) & (ids == 0)).mean() <= 0.001


def test_instance_split_parts_merge():
    codec = codecs.get("instance")
    ids = np.zeros((100, 100), np.uint16)
    ids[10:40, 10:40] = 1
    ids[10:40, 60:90] = 1  # one object split in two by an occluder
    ids[10:40, 45:55] = 2
    back = codec.decode(add_noise(codec.encode(ids), 6.0))
    assert set(np.unique(back)) == {0, 1, 2}
    assert ((back == 1) == (ids == 1)).mean() >= 0.99


def test_relabel_instances():
    ids = np.array([[0, 7, 7, 7], [3, 3, 0, 9]], np.uint16)
    new, mapping = relabel_instances(ids)
    assert mapping == {1: 7, 2: 3, 3: 9}
    np.testing.assert_array_equal(new, [[0, 1, 1, 1], [2, 2, 0, 3]])
    new, mapping = relabel_instances(ids, order="id")
    assert mapping == {1: 3, 2: 7, 3: 9}


def test_mask_round_trip_and_noise(rng):
    codec = codecs.get("mask")
    m = rng.random((128, 128)) > 0.5
    np.testing.assert_array_equal(codec.decode(png_roundtrip(codec.encode(m))), m)
    assert (codec.decode(add_noise(codec.encode(m), 8.0)) == m).mean() >= 0.999
    colored = codecs.get("mask", color=(255, 0, 0))
    assert colored.encode(np.array([[True]]))[0, 0].tolist() == [255, 0, 0]
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 1\]"):
        codec.encode(np.array([[2]], np.uint8))
    with pytest.raises(ValueError, match="must differ"):
        codecs.get("mask", color=(0, 0, 0))
