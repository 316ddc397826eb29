import json

import numpy as np
import pytest

from encode import codecs


def test_all_five_codecs_registered():
    assert codecs.names() == ["depth", "instance", "mask", "normals", "semantic"]


@pytest.mark.parametrize("name", ["depth", "instance", "mask", "normals", "semantic"])
def test_spec_is_json_and_rebuilds_the_same_codec(name):
    codec = codecs.get(name)
    desc = json.loads(json.dumps(codecs.spec(codec)))
    again = codecs.from_spec(desc)
    assert again.params == codec.params and again.version == codec.version
    assert isinstance(again, codecs.Codec)


def test_version_mismatch_is_an_error():
    desc = codecs.spec(codecs.get("mask"))
    desc["version"] += 1
    with pytest.raises(ValueError, match="version"):
        codecs.from_spec(desc)


def test_unknown_codec_and_params():
    with pytest.raises(ValueError, match="unknown codec 'albedo'"):
        codecs.get("albedo")
    with pytest.raises(ValueError, match="bad parameters"):
        codecs.get("mask", colour=(1, 2, 3))


def test_register_twice_raises():
    with pytest.raises(ValueError, match="already registered"):
        codecs.register("depth")(object)


def test_custom_depth_params_are_reported():
    c = codecs.get("depth", scale=5.0)
    assert c.params["scale"] == 5.0 and "preset" not in c.params
    assert codecs.get("depth", **c.params).params == c.params
    np.testing.assert_array_equal(codecs.get("depth").encode(np.ones((2, 2), np.float32)),
                                  codecs.get("depth", preset="default").encode(np.ones((2, 2), np.float32)))
