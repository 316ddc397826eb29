"""Shard member codecs: one table by extension, bounded decoding, the normal-map writer's flush."""

import numpy as np
import pytest

from formats import members
from formats.members import SampleError


def test_images_over_the_pixel_limit_are_refused_before_decoding(monkeypatch):
    data = members.png_bytes(np.zeros((64, 64, 3), np.uint8))
    monkeypatch.setattr(members, "MAX_PIXELS", 32 * 32)
    with pytest.raises(SampleError, match="pixel limit"):
        members.read_image(data, "big.png")
    with pytest.raises(SampleError, match="cannot decode"):
        members.read_image(b"not an image", "junk.png")


def test_every_member_kind_round_trips_through_the_extension_table():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    ids = rng.integers(0, 60000, (6, 7)).astype(np.uint16)
    assert np.array_equal(members.decode_member("rgb.png", members.encode_member("rgb.png", rgb)), rgb)
    assert np.array_equal(members.decode_member("instance.png", members.encode_member("instance.png", ids)), ids)
    assert np.array_equal(members.read_ids(members.png_bytes(ids, rle=True)), ids)  # the render writer's strategy
    jpg = members.decode_member("rgb.jpg", members.encode_member("rgb.jpg", rgb))
    assert jpg.shape == rgb.shape and jpg.dtype == np.uint8
    assert members.decode_member("json", members.encode_member("json", {"b": 1, "a": [2]})) == {"a": [2], "b": 1}
    assert members.encode_member("json", {"b": 1, "a": 2}) == b'{"a": 2, "b": 1}'  # sorted: equal records, equal bytes
    assert members.decode_member("prompt.txt", members.encode_member("prompt.txt", "a cat")) == "a cat"
    with pytest.raises(SampleError, match="no member codec for extension 'mp4'"):
        members.encode_member("mp4", b"")


def test_depth_and_normal_exr_members_round_trip_within_their_precision():
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.1, 80, (5, 6)).astype(np.float32)
    depth[0, 0], depth[0, 1] = np.inf, np.nan
    back = members.read_depth_exr(members.depth_exr_bytes(depth))
    assert np.array_equal(back, depth, equal_nan=True)  # float32: exact, inf and NaN kept
    n = rng.normal(size=(5, 6, 3)).astype(np.float32)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    n[1, 1] = np.nan
    n[2, 2] = (1e-8, 0.0, -1.0)  # a component below float16's normal range is flushed to exactly 0
    back = members.read_normals_exr(members.normals_exr_bytes(n))
    assert np.isnan(back[1, 1]).all() and back[2, 2].tolist() == [0.0, 0.0, -1.0]
    ok = ~np.isnan(n[..., 0])
    assert np.abs(back[ok] - n[ok]).max() < 1e-3  # half precision
