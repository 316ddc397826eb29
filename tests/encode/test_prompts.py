import pytest

from encode.codecs.palette import distinct_colors
from encode.prompts import TEMPLATES, make_prompt


def test_deterministic_and_paraphrased():
    assert make_prompt("depth", 7) == make_prompt("depth", 7)
    for task in TEMPLATES:
        assert len(TEMPLATES[task]) >= 3
    fields = {"class_names": ["wall", "floor"], "palette": distinct_colors(3), "expression": "the red cup"}
    seen = {make_prompt("semantic", s, **fields) for s in range(40)}
    assert len(seen) == len(TEMPLATES["semantic"])


def test_prompts_state_the_scheme():
    assert "black" in make_prompt("depth", 0) and "white" in make_prompt("depth", 1)
    assert "Vision Banana" in make_prompt("depth", 0, preset="vb")
    sem = make_prompt("semantic", 3, class_names=["wall", "floor"], palette=distinct_colors(3))
    assert "wall rgb(255, 255, 255)" in sem and "floor rgb(" in sem
    ref = make_prompt("referring", 1, expression="the cup left of the lamp", color=(255, 0, 0))
    assert "the cup left of the lamp" in ref and "rgb(255, 0, 0)" in ref
    assert "blue" in make_prompt("normals", 2) or "(1 - n) / 2" in make_prompt("normals", 2)


def test_errors():
    with pytest.raises(ValueError, match="unknown task"):
        make_prompt("albedo", 0)
    with pytest.raises(ValueError, match="expression"):
        make_prompt("referring", 0)
    with pytest.raises(ValueError, match="preset"):
        make_prompt("depth", 0, preset="jet")
