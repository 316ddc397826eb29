"""Material specs and their seeded sampling (no bpy): what each object's surface is made of.

A `MaterialSpec` names a material family (`kind`) and its parameters; the Blender adapter
(render/blender/materials.py) turns each kind into a procedural shader-node tree, so the same
spec gives the same pixels. The procedural families (`PROCEDURAL_KINDS`: wood, marble, tiles, ...)
each have a seeded parameter sampler (`sample(kind, rng)`): colour, secondary colour (grain, vein,
grout, mortar, weave), roughness, bump strength and pattern scale within plausible ranges.
`for_class(semantic_class, rng)` picks a family that suits the object (a floor is wood, tiles,
carpet, concrete or marble; a sofa fabric or leather) and samples it.

Colours are linear RGB in [0, 1]. `texture_scale` is the pattern frequency in repeats per meter
of the object's own (metric) coordinates; `variant` offsets the pattern so two objects of the same
family do not look identical; `bump` in [0, 1] scales the bump-mapped relief (shading only: the
ground-truth normals are the geometric ones, see render/blender/renderer.py).

Kind "pbr" is a user's texture set (render/assets.py: albedo, roughness and normal images).
The older flat kinds (`LEGACY_KINDS`: diffuse, glossy, metal, textured with a checker/noise/...
`texture`) stay valid for hand-written specs and edits.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

Vec3 = tuple[float, float, float]

PROCEDURAL_KINDS = ("wood", "marble", "tiles", "brick", "concrete", "plaster", "fabric", "leather", "carpet",
                    "painted_metal", "brushed_metal", "plastic", "glass", "rubber")
LEGACY_KINDS = ("diffuse", "glossy", "metal", "textured")
USER_KINDS = ("pbr",)  # a user's PBR texture set (render/assets.py): `images` names its files
MATERIAL_KINDS = PROCEDURAL_KINDS + LEGACY_KINDS + USER_KINDS  # every kind a spec may name
PBR_ROLES = ("albedo", "roughness", "normal")
TEXTURES = ("checker", "noise", "bricks", "wave", "voronoi")  # kind "textured" only
MAX_TEXTURE_SCALE = 2000.0  # repeats per meter (fabric threads are ~300)


@dataclass
class MaterialSpec:
    kind: str = "diffuse"
    color: Vec3 = (0.8, 0.8, 0.8)  # linear RGB in [0, 1]
    roughness: float = 0.5
    metallic: float = 0.0
    ior: float = 1.45
    texture: str | None = None  # only for kind "textured"
    texture_color: Vec3 = (0.1, 0.1, 0.1)  # the secondary colour: grain, vein, grout, mortar, weave
    texture_scale: float = 5.0  # pattern repeats per meter
    bump: float = 0.0  # relief strength in [0, 1] (shading only)
    variant: int = 0  # pattern offset in [0, 9999]
    images: dict[str, str] | None = None  # kind "pbr" only: role (albedo, roughness, normal) -> image path
    emission: float = 0.0  # glow strength (W/m^2-ish, Blender's Emission Strength) in `color`: lamp shades, screens


class MaterialError(ValueError):
    """An invalid material spec; the message names the offending field."""


def validate(m: MaterialSpec, where: str = "material") -> MaterialSpec:
    """Check every field of `m`; raise MaterialError naming the first bad one (prefixed by `where`)."""
    if m.kind not in MATERIAL_KINDS:
        raise MaterialError(f"{where}.kind must be one of {list(MATERIAL_KINDS)}, got {m.kind!r}")
    for name in ("color", "texture_color"):
        _vec01(getattr(m, name), f"{where}.{name}")
    for name, lo, hi in (("roughness", 0, 1), ("metallic", 0, 1), ("ior", 1, 4), ("bump", 0, 1), ("emission", 0, 1000)):
        _num(getattr(m, name), f"{where}.{name}", lo, hi)
    _num(m.texture_scale, f"{where}.texture_scale", 0, MAX_TEXTURE_SCALE)
    if m.texture_scale <= 0:
        raise MaterialError(f"{where}.texture_scale must be > 0, got {m.texture_scale}")
    if not isinstance(m.variant, int) or isinstance(m.variant, bool) or not 0 <= m.variant <= 9999:
        raise MaterialError(f"{where}.variant must be an integer in [0, 9999], got {m.variant!r}")
    if m.kind == "pbr":
        if not isinstance(m.images, dict) or not isinstance(m.images.get("albedo"), str) \
                or not set(m.images) <= set(PBR_ROLES) or not all(isinstance(v, str) for v in m.images.values()):
            raise MaterialError(f"{where}.images must map roles {list(PBR_ROLES)} (albedo required) to image paths "
                                f"for kind 'pbr', got {m.images!r}")
    elif m.images is not None:
        raise MaterialError(f"{where}.images is only allowed for kind 'pbr', got {m.images!r} for {m.kind!r}")
    if m.kind == "textured":
        if m.texture not in TEXTURES:
            raise MaterialError(f"{where}.texture must be one of {list(TEXTURES)}, got {m.texture!r}")
    elif m.texture is not None:
        raise MaterialError(f"{where}.texture is only allowed for kind 'textured', got {m.texture!r} for {m.kind!r}")
    return m


def _num(x, where: str, lo: float, hi: float) -> None:
    if not isinstance(x, (int, float, np.floating, np.integer)) or isinstance(x, bool) or not math.isfinite(x):
        raise MaterialError(f"{where} must be a finite number, got {x!r}")
    if not lo <= x <= hi:
        raise MaterialError(f"{where} must be >= {lo} and <= {hi}, got {x}")


def _vec01(v, where: str) -> None:
    if not isinstance(v, (tuple, list)) or len(v) != 3:
        raise MaterialError(f"{where} must be 3 numbers, got {v!r}")
    for i, x in enumerate(v):
        _num(x, f"{where}[{i}]", 0, 1)


# ---------------------------------------------------------------- sampling


def _r(x: float, nd: int = 4) -> float:
    return float(round(float(x), nd))


def hsv_linear(h: float, s: float, v: float) -> Vec3:
    """An sRGB-space HSV colour -> linear RGB, clipped to [0.002, 0.92] (no perfect black or white)."""
    to_linear = lambda c: (c / 12.92) if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4  # noqa: E731
    return tuple(_r(min(max(to_linear(c), 0.002), 0.92)) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _hsv(rng: np.random.Generator, h: tuple[float, float], s: tuple[float, float], v: tuple[float, float]) -> Vec3:
    return hsv_linear(rng.uniform(*h), rng.uniform(*s), rng.uniform(*v))


def _scaled(color: Vec3, factor: float) -> Vec3:
    return tuple(_r(min(max(c * factor, 0.005), 0.92)) for c in color)


def _any_hue(rng, s=(0.0, 0.9), v=(0.2, 0.95)) -> Vec3:
    return _hsv(rng, (0.0, 1.0), s, v)


def _wood(rng):
    base = _hsv(rng, (0.04, 0.11), (0.35, 0.75), (0.25, 0.8))
    return dict(color=base, texture_color=_scaled(base, rng.uniform(0.35, 0.65)), roughness=(0.3, 0.75),
                bump=(0.05, 0.3), scale=(1.5, 6.0))


def _marble(rng):
    dark = rng.uniform() < 0.25
    base = _hsv(rng, (0.0, 1.0), (0.0, 0.15), (0.1, 0.3) if dark else (0.75, 0.95))
    vein = _hsv(rng, (0.0, 1.0), (0.0, 0.3), (0.75, 0.95) if dark else (0.2, 0.55))
    return dict(color=base, texture_color=vein, roughness=(0.03, 0.25), bump=(0.0, 0.05), scale=(1.0, 4.0))


def _tiles(rng):
    base = _any_hue(rng, (0.0, 0.6), (0.35, 0.95))
    grout = _hsv(rng, (0.0, 1.0), (0.0, 0.1), (0.2, 0.9))
    return dict(color=base, texture_color=grout, roughness=(0.05, 0.4), bump=(0.3, 0.8), scale=(2.0, 8.0))


def _brick(rng):
    base = _hsv(rng, (0.0, 0.09), (0.35, 0.75), (0.3, 0.75))
    mortar = _hsv(rng, (0.05, 0.15), (0.0, 0.2), (0.5, 0.85))
    return dict(color=base, texture_color=mortar, roughness=(0.7, 0.95), bump=(0.3, 0.8), scale=(1.5, 3.0))


def _concrete(rng):
    base = _hsv(rng, (0.05, 0.15), (0.0, 0.12), (0.4, 0.8))
    return dict(color=base, texture_color=_scaled(base, rng.uniform(0.6, 0.85)), roughness=(0.7, 0.95),
                bump=(0.1, 0.4), scale=(2.0, 12.0))


def _plaster(rng):
    base = _any_hue(rng, (0.0, 0.25), (0.7, 0.97))
    return dict(color=base, texture_color=_scaled(base, rng.uniform(0.85, 0.95)), roughness=(0.8, 1.0),
                bump=(0.02, 0.15), scale=(4.0, 20.0))


def _fabric(rng):
    base = _any_hue(rng, (0.1, 0.85), (0.2, 0.9))
    return dict(color=base, texture_color=_scaled(base, rng.uniform(0.55, 0.85)), roughness=(0.8, 1.0),
                bump=(0.1, 0.35), scale=(80.0, 300.0))


def _leather(rng):
    base = _hsv(rng, (0.0, 0.1), (0.3, 0.8), (0.08, 0.55)) if rng.uniform() < 0.8 else _any_hue(rng, (0.3, 0.8), (0.1, 0.6))
    return dict(color=base, texture_color=_scaled(base, rng.uniform(0.6, 0.85)), roughness=(0.3, 0.6),
                bump=(0.1, 0.35), scale=(20.0, 80.0))


def _carpet(rng):
    base = _any_hue(rng, (0.05, 0.7), (0.2, 0.85))
    return dict(color=base, texture_color=_scaled(base, rng.uniform(0.6, 0.9)), roughness=(0.9, 1.0),
                bump=(0.2, 0.5), scale=(100.0, 300.0))


def _painted_metal(rng):
    base = _any_hue(rng, (0.3, 0.95), (0.25, 0.95))
    return dict(color=base, texture_color=_hsv(rng, (0.0, 1.0), (0.0, 0.1), (0.4, 0.7)), roughness=(0.15, 0.5),
                bump=(0.02, 0.12), scale=(10.0, 40.0), metallic=0.0)


def _brushed_metal(rng):
    base = {0: _hsv(rng, (0.0, 1.0), (0.0, 0.05), (0.6, 0.95)), 1: _hsv(rng, (0.1, 0.14), (0.4, 0.7), (0.75, 0.95)),
            2: _hsv(rng, (0.03, 0.07), (0.4, 0.7), (0.6, 0.9))}[int(rng.choice(3, p=[0.7, 0.15, 0.15]))]
    return dict(color=base, texture_color=_scaled(base, 0.8), roughness=(0.15, 0.45), bump=(0.02, 0.1),
                scale=(150.0, 600.0), metallic=1.0)


def _plastic(rng):
    base = _any_hue(rng, (0.0, 0.95), (0.15, 0.95))
    return dict(color=base, texture_color=_scaled(base, 0.9), roughness=(0.05, 0.5), bump=(0.0, 0.04),
                scale=(10.0, 50.0))


def _glass(rng):
    tint = _hsv(rng, (0.0, 1.0), (0.0, 0.25), (0.85, 1.0))
    return dict(color=tint, texture_color=tint, roughness=(0.0, 0.05), bump=(0.0, 0.0), scale=(1.0, 1.0),
                ior=rng.uniform(1.45, 1.55))


def _rubber(rng):
    base = _hsv(rng, (0.0, 1.0), (0.0, 0.3), (0.05, 0.3)) if rng.uniform() < 0.7 else _any_hue(rng, (0.4, 0.9), (0.3, 0.8))
    return dict(color=base, texture_color=_scaled(base, 0.8), roughness=(0.6, 0.9), bump=(0.02, 0.12),
                scale=(20.0, 80.0))


_SAMPLERS = {"wood": _wood, "marble": _marble, "tiles": _tiles, "brick": _brick, "concrete": _concrete,
             "plaster": _plaster, "fabric": _fabric, "leather": _leather, "carpet": _carpet,
             "painted_metal": _painted_metal, "brushed_metal": _brushed_metal, "plastic": _plastic,
             "glass": _glass, "rubber": _rubber}
assert tuple(_SAMPLERS) == PROCEDURAL_KINDS


def sample(kind: str, rng: np.random.Generator) -> MaterialSpec:
    """A seeded MaterialSpec of procedural family `kind` (colour, roughness, bump, scale, variant)."""
    if kind not in _SAMPLERS:
        raise MaterialError(f"material kind must be one of {list(PROCEDURAL_KINDS)}, got {kind!r}")
    p = _SAMPLERS[kind](rng)
    rough, bump, scale = p["roughness"], p["bump"], p["scale"]
    return MaterialSpec(
        kind=kind, color=p["color"], texture_color=p["texture_color"], roughness=_r(rng.uniform(*rough), 3),
        metallic=float(p.get("metallic", 0.0)), ior=_r(p.get("ior", 1.45), 3), bump=_r(rng.uniform(*bump), 3),
        texture_scale=_r(math.exp(rng.uniform(math.log(scale[0]), math.log(scale[1]))), 3),
        variant=int(rng.integers(0, 10000)))


# Which families suit which object (weights; unlisted classes use DEFAULT_KINDS).
CLASS_KINDS: dict[str, dict[str, float]] = {
    "wall": {"plaster": 0.5, "brick": 0.15, "concrete": 0.15, "tiles": 0.1, "wood": 0.1},
    "floor": {"wood": 0.35, "tiles": 0.2, "carpet": 0.2, "concrete": 0.1, "marble": 0.15},
    "ceiling": {"plaster": 0.85, "concrete": 0.15},
    "ground": {"concrete": 0.6, "brick": 0.2, "tiles": 0.2},
    "table": {"wood": 0.55, "marble": 0.15, "painted_metal": 0.1, "plastic": 0.1, "glass": 0.1},
    "chair": {"wood": 0.35, "fabric": 0.2, "leather": 0.15, "plastic": 0.15, "painted_metal": 0.15},
    "stool": {"wood": 0.5, "painted_metal": 0.2, "plastic": 0.2, "brushed_metal": 0.1},
    "shelf": {"wood": 0.6, "painted_metal": 0.25, "plastic": 0.15},
    "cabinet": {"wood": 0.55, "painted_metal": 0.25, "plastic": 0.2},
    "bed": {"fabric": 0.8, "leather": 0.1, "wood": 0.1},
    "sofa": {"fabric": 0.65, "leather": 0.35},
    "lamp": {"brushed_metal": 0.35, "painted_metal": 0.3, "plastic": 0.2, "glass": 0.15},
    "vase": {"glass": 0.35, "marble": 0.2, "plastic": 0.15, "painted_metal": 0.15, "concrete": 0.15},
    "bottle": {"glass": 0.6, "plastic": 0.3, "brushed_metal": 0.1},
    "bowl": {"plastic": 0.3, "glass": 0.2, "wood": 0.2, "marble": 0.15, "brushed_metal": 0.15},
    "mug": {"plastic": 0.4, "painted_metal": 0.2, "glass": 0.2, "marble": 0.2},
    "plate": {"plastic": 0.4, "marble": 0.2, "glass": 0.2, "wood": 0.2},
    "monitor": {"plastic": 0.7, "brushed_metal": 0.3},
    "stairs": {"concrete": 0.4, "wood": 0.3, "marble": 0.2, "tiles": 0.1},
    "arch": {"brick": 0.4, "concrete": 0.4, "marble": 0.2},
    "building": {"brick": 0.35, "concrete": 0.35, "plaster": 0.2, "tiles": 0.1},
    "tower": {"concrete": 0.5, "brick": 0.3, "brushed_metal": 0.2},
    "tree": {"wood": 0.5, "fabric": 0.5},  # bark grain / leafy canopy stand-in until a foliage shader exists
    "rock": {"concrete": 0.7, "marble": 0.3},
    "fence": {"wood": 0.5, "painted_metal": 0.4, "brushed_metal": 0.1},
    "column": {"marble": 0.4, "concrete": 0.4, "plaster": 0.2},
    "barrel": {"wood": 0.4, "painted_metal": 0.4, "plastic": 0.2},
    "box": {"wood": 0.3, "plastic": 0.3, "painted_metal": 0.2, "fabric": 0.2},
}
DEFAULT_KINDS: dict[str, float] = {k: 1.0 for k in PROCEDURAL_KINDS}


def choose_kind(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.asarray([weights[k] for k in names], float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def emissive(rng: np.random.Generator, kind: str = "plastic") -> MaterialSpec:
    """A glowing surface (a lamp shade, a lit screen): material `kind` that also emits warm light."""
    m = sample(kind, rng)
    m.color = hsv_linear(rng.uniform(0.06, 0.14), rng.uniform(0.05, 0.4), rng.uniform(0.85, 1.0))
    m.emission = _r(rng.uniform(2.0, 12.0), 3)
    return m


def for_class(semantic_class: str, rng: np.random.Generator) -> MaterialSpec:
    """A plausible procedural material for an object of `semantic_class` (seeded by `rng`)."""
    return sample(choose_kind(rng, CLASS_KINDS.get(semantic_class, DEFAULT_KINDS)), rng)
