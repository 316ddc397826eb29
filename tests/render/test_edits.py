"""Edit pairs: the edited spec differs in exactly one named, unambiguous object."""

import pytest

from render.edits import STRUCTURAL, edit_spec
from render.sampling import sample_scene
from render.spec import validate


def _visible(spec):
    return {i + 1: 0.05 for i in range(len(spec.objects))}


@pytest.mark.parametrize("seed", range(40))
def test_one_object_changes_and_the_instruction_names_it(seed):
    spec = sample_scene(seed, 64, 64)
    made = edit_spec(spec, seed, _visible(spec))
    if made is None:
        classes = [o.semantic_class for o in spec.objects if o.semantic_class not in STRUCTURAL]
        assert all(classes.count(c) > 1 for c in classes)
        return
    edited, rec = made
    validate(edited)  # renderable: e.g. a recolored textured material keeps its texture
    cls = spec.objects[rec["object_index"]].semantic_class
    assert cls not in STRUCTURAL and cls in rec["instruction"]
    assert sum(o.semantic_class == cls for o in spec.objects) == 1
    if rec["kind"] == "remove":
        assert len(edited.objects) == len(spec.objects) - 1
        assert cls not in {o.semantic_class for o in edited.objects}
    else:
        changed = [i for i, (a, b) in enumerate(zip(spec.objects, edited.objects)) if a != b]
        assert changed == [rec["object_index"]]
        assert edited.objects[rec["object_index"]].material != spec.objects[rec["object_index"]].material
    assert edit_spec(spec, seed, _visible(spec))[1] == rec  # seeded


def test_invisible_objects_are_not_edited():
    spec = sample_scene(3, 64, 64)
    assert edit_spec(spec, 0, {}) is None
