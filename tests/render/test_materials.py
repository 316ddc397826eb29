"""Material specs (no bpy): seeded sampling per family, class-appropriate choices, validation."""

import dataclasses
import json

import numpy as np
import pytest

from render import materials
from render.materials import PROCEDURAL_KINDS, MaterialError, MaterialSpec, for_class, sample, validate


@pytest.mark.parametrize("kind", PROCEDURAL_KINDS)
def test_sample_is_seeded_valid_and_in_range(kind):
    a = [sample(kind, np.random.default_rng(s)) for s in range(30)]
    b = [sample(kind, np.random.default_rng(s)) for s in range(30)]
    assert a == b  # same seed, same material
    for m in a:
        validate(m)
        assert m.kind == kind and m.texture is None
        json.dumps(dataclasses.asdict(m))  # plain JSON
    # the seed varies colour, roughness and pattern placement
    assert len({m.color for m in a}) >= 25 and len({m.variant for m in a}) > 20
    if kind not in ("glass",):
        assert len({m.roughness for m in a}) > 20 and len({m.texture_scale for m in a}) > 20


def test_kind_specific_physics():
    rng = np.random.default_rng(0)
    assert all(sample("brushed_metal", rng).metallic == 1.0 for _ in range(10))
    assert all(sample("glass", rng).bump == 0.0 and 1.45 <= sample("glass", rng).ior <= 1.55 for _ in range(10))
    assert max(sample("marble", rng).roughness for _ in range(20)) <= 0.25  # polished
    assert min(sample("carpet", rng).roughness for _ in range(20)) >= 0.9


def test_for_class_suits_the_object():
    rng = np.random.default_rng(1)
    sofas = {for_class("sofa", rng).kind for _ in range(50)}
    assert sofas == {"fabric", "leather"}
    floors = {for_class("floor", rng).kind for _ in range(200)}
    assert {"wood", "tiles", "carpet"} <= floors and "glass" not in floors
    assert {for_class("no-such-class", rng).kind for _ in range(400)} == set(PROCEDURAL_KINDS)
    assert set(materials.CLASS_KINDS["wall"]) <= set(PROCEDURAL_KINDS)
    for weights in materials.CLASS_KINDS.values():
        assert set(weights) <= set(PROCEDURAL_KINDS)


@pytest.mark.parametrize("change, match", [
    (dict(kind="velvet"), r"material\.kind must be one of"),
    (dict(bump=1.5), r"material\.bump"),
    (dict(color=(0.5, 2.0, 0.1)), r"material\.color\[1\]"),
    (dict(texture_scale=0.0), r"material\.texture_scale"),
    (dict(variant=-1), r"material\.variant"),
    (dict(texture="checker"), r"material\.texture is only allowed"),
    (dict(kind="textured", texture="plaid"), r"material\.texture must be one of"),
    (dict(roughness=float("nan")), r"material\.roughness must be a finite number"),
])
def test_validate_names_the_field(change, match):
    with pytest.raises(MaterialError, match=match):
        validate(dataclasses.replace(MaterialSpec("wood"), **change))


def test_emissive_glows_and_validates():
    rng = np.random.default_rng(3)
    m = materials.emissive(rng, "fabric")
    assert m.kind == "fabric" and 2.0 <= m.emission <= 12.0
    validate(m)
    with pytest.raises(MaterialError, match=r"material\.emission"):
        validate(dataclasses.replace(m, emission=-1.0))
