"""Image-editing pairs from the renderer: the same scene with one object's color, material or presence changed.

`edit_spec(spec, seed, visible)` picks a visible object whose class is unique in the scene (so
"the chair" names exactly one thing), changes it, and returns the edited spec with an
instruction. Rendering the edited spec with the same camera, lights and seed gives a pixel-aligned
(before, after) pair whose only difference is the edit: the editing data the paper's generator
keeps training on. Pure Python; no bpy.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from typing import Any

from render.spec import MaterialSpec, SceneSpec

STRUCTURAL = frozenset({"wall", "floor", "ceiling", "ground"})
COLORS = {  # linear RGB
    "red": (0.75, 0.03, 0.03), "green": (0.05, 0.5, 0.06), "blue": (0.03, 0.08, 0.7), "yellow": (0.85, 0.7, 0.04),
    "orange": (0.9, 0.25, 0.02), "purple": (0.3, 0.05, 0.55), "white": (0.85, 0.85, 0.85),
    "black": (0.02, 0.02, 0.02), "pink": (0.9, 0.3, 0.45), "teal": (0.02, 0.45, 0.4),
}
MATERIALS = {
    "shiny metal": MaterialSpec("metal", (0.9, 0.9, 0.9), roughness=0.08, metallic=1.0),
    "gold": MaterialSpec("metal", (0.95, 0.65, 0.2), roughness=0.15, metallic=1.0),
    "clear glass": MaterialSpec("glass", (0.95, 0.95, 0.95), roughness=0.0, ior=1.45),
    "glossy plastic": MaterialSpec("glossy", (0.6, 0.6, 0.6), roughness=0.05),
}
KINDS = ("recolor", "material", "remove")
TEMPLATES = {
    "recolor": ("Make the {cls} {color}.", "Change the color of the {cls} to {color}.", "Paint the {cls} {color}."),
    "material": ("Make the {cls} out of {material}.", "Turn the {cls} into {material}.",
                 "Change the {cls}'s material to {material}."),
    "remove": ("Remove the {cls}.", "Delete the {cls} from the scene.", "Take the {cls} out of the picture."),
}


def edit_spec(spec: SceneSpec, seed: int, visible: dict[int, float],
              min_visible: float = 0.01) -> tuple[SceneSpec, dict[str, Any]] | None:
    """An edited copy of `spec` and its record, or None when no object can be named unambiguously.

    Args:
        spec: the rendered scene.
        seed: the edit's seed (choice of object, kind, color and wording).
        visible: instance id (object index + 1) -> fraction of the image it covers.
        min_visible: objects covering less of the image are not edited (the edit would be invisible).
    """
    counts: dict[str, int] = {}
    for o in spec.objects:
        counts[o.semantic_class] = counts.get(o.semantic_class, 0) + 1
    candidates = [i for i, o in enumerate(spec.objects)
                  if o.semantic_class not in STRUCTURAL and counts[o.semantic_class] == 1
                  and visible.get(i + 1, 0.0) >= min_visible]
    if not candidates:
        return None
    rng = random.Random(seed)
    index = rng.choice(candidates)
    obj = spec.objects[index]
    supports = {o.support for o in spec.objects}
    kind = rng.choice([k for k in KINDS if k != "remove" or index not in supports])  # nothing left floating
    edited = copy.deepcopy(spec)
    fields: dict[str, Any] = {"cls": obj.semantic_class}
    if kind == "remove":
        edited.remove_object(index)
    elif kind == "recolor":
        name = rng.choice([c for c in COLORS if _far(COLORS[c], obj.material.color)])
        # Same material, new color (textures keep their pattern); clear glass has no color to change.
        kind_ = obj.material.kind if obj.material.kind != "glass" else "diffuse"
        edited.objects[index].material = dataclasses.replace(obj.material, kind=kind_, color=COLORS[name])
        fields["color"] = name
    else:
        name = rng.choice([m for m, mat in MATERIALS.items() if mat.kind != obj.material.kind])
        edited.objects[index].material = copy.deepcopy(MATERIALS[name])
        fields["material"] = name
    instruction = rng.choice(TEMPLATES[kind]).format(**fields)
    return edited, {"kind": kind, "object_index": index, "instance_id": index + 1, "instruction": instruction,
                    "seed": seed, **{k: v for k, v in fields.items() if k != "cls"}, "class": obj.semantic_class}


def _far(a, b, threshold: float = 0.25) -> bool:
    return sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5 > threshold
