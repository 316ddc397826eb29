"""Seed -> SceneSpec: procedural indoor rooms, tabletop close-ups and outdoor scenes.

Every random choice flows from one `numpy.random.Generator` made from the scene seed, so
the same seed gives the same spec, byte for byte (floats are rounded before they enter the
spec, and `SceneSpec.to_json` is canonical). Sizes are metric and plausible per class;
focal lengths are drawn log-uniformly over 14-135 mm (35 mm equivalent) and recorded in K,
because a model asked for metric depth without intrinsics must see many lenses.
"""

from __future__ import annotations

import colorsys
import math
from typing import Callable

import numpy as np

from render import shapes
from render.spec import (CameraSpec, EnvironmentSpec, LightSpec, MaterialSpec, ObjectSpec, SceneSpec, inside_box,
                         validate)

FAMILIES = ("indoor", "tabletop", "outdoor")
FOCAL_RANGE_MM = (14.0, 135.0)

# class -> (min size, max size) in meters (x, y, z); the shape of the same name draws it.
INDOOR_FURNITURE: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "table": ((0.8, 0.6, 0.70), (2.0, 1.2, 0.80)),
    "chair": ((0.40, 0.40, 0.80), (0.55, 0.55, 1.00)),
    "stool": ((0.30, 0.30, 0.45), (0.45, 0.45, 0.75)),
    "shelf": ((0.60, 0.25, 1.20), (1.60, 0.45, 2.20)),
    "cabinet": ((0.50, 0.40, 0.60), (1.50, 0.60, 1.20)),
    "bed": ((1.40, 1.90, 0.40), (2.00, 2.20, 1.00)),
    "sofa": ((1.60, 0.80, 0.70), (2.60, 1.00, 0.90)),
    "lamp": ((0.25, 0.25, 1.20), (0.50, 0.50, 1.80)),
    "barrel": ((0.40, 0.40, 0.60), (0.70, 0.70, 1.00)),
    "column": ((0.30, 0.30, 2.00), (0.60, 0.60, 2.40)),
}
SMALL_OBJECTS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "vase": ((0.10, 0.10, 0.20), (0.25, 0.25, 0.50)),
    "bottle": ((0.06, 0.06, 0.20), (0.10, 0.10, 0.35)),
    "bowl": ((0.12, 0.12, 0.05), (0.30, 0.30, 0.12)),
    "mug": ((0.10, 0.08, 0.09), (0.14, 0.10, 0.12)),
    "plate": ((0.18, 0.18, 0.015), (0.30, 0.30, 0.03)),
    "monitor": ((0.45, 0.15, 0.35), (0.80, 0.25, 0.60)),
    "sphere": ((0.05, 0.05, 0.05), (0.25, 0.25, 0.25)),
    "box": ((0.05, 0.05, 0.05), (0.35, 0.30, 0.25)),
    "cylinder": ((0.05, 0.05, 0.05), (0.20, 0.20, 0.30)),
    "cone": ((0.05, 0.05, 0.08), (0.20, 0.20, 0.30)),
    "torus": ((0.08, 0.08, 0.02), (0.25, 0.25, 0.08)),
    "capsule": ((0.04, 0.04, 0.10), (0.10, 0.10, 0.30)),
    "gear": ((0.08, 0.08, 0.02), (0.25, 0.25, 0.06)),
    "pyramid": ((0.06, 0.06, 0.06), (0.25, 0.25, 0.25)),
    "prism": ((0.05, 0.05, 0.08), (0.20, 0.20, 0.30)),
    "wedge": ((0.08, 0.05, 0.04), (0.30, 0.20, 0.15)),
    "rock": ((0.05, 0.05, 0.04), (0.20, 0.20, 0.15)),
}
OUTDOOR_OBJECTS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "building": ((6.0, 6.0, 5.0), (30.0, 30.0, 60.0)),
    "tower": ((3.0, 3.0, 10.0), (8.0, 8.0, 50.0)),
    "tree": ((2.0, 2.0, 3.0), (8.0, 8.0, 15.0)),
    "rock": ((0.5, 0.5, 0.4), (4.0, 4.0, 3.0)),
    "fence": ((3.0, 0.10, 1.0), (10.0, 0.20, 2.0)),
    "column": ((0.5, 0.5, 3.0), (1.5, 1.5, 10.0)),
    "arch": ((4.0, 1.0, 4.0), (10.0, 2.0, 10.0)),
    "stairs": ((2.0, 2.0, 1.0), (5.0, 5.0, 3.0)),
    "pyramid": ((5.0, 5.0, 4.0), (20.0, 20.0, 15.0)),
    "barrel": ((0.6, 0.6, 0.9), (0.8, 0.8, 1.2)),
    "wedge": ((2.0, 2.0, 1.0), (6.0, 6.0, 3.0)),
    "sphere": ((1.0, 1.0, 1.0), (6.0, 6.0, 6.0)),
}
MATERIAL_WEIGHTS = {"diffuse": 0.35, "glossy": 0.2, "metal": 0.15, "glass": 0.1, "textured": 0.2}
TEXTURE_KINDS = ("checker", "noise", "bricks", "wave", "voronoi")


def _r(x: float, nd: int = 5) -> float:
    return float(round(float(x), nd))


def _v(x, nd: int = 5) -> tuple[float, float, float]:
    return tuple(_r(c, nd) for c in x)


def random_color(rng: np.random.Generator, saturation: tuple[float, float] = (0.0, 0.9)) -> tuple[float, float, float]:
    """A linear-RGB albedo from HSV (value kept in [0.05, 0.9]: no pure black or white)."""
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*saturation), rng.uniform(0.15, 0.95))
    to_linear = lambda c: (c / 12.92) if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4  # noqa: E731
    return _v([min(max(to_linear(c), 0.02), 0.9) for c in (r, g, b)], 4)


def random_material(rng: np.random.Generator, kinds: dict[str, float] = MATERIAL_WEIGHTS) -> MaterialSpec:
    names = list(kinds)
    p = np.asarray([kinds[k] for k in names], float)
    kind = names[int(rng.choice(len(names), p=p / p.sum()))]
    color = random_color(rng)
    if kind == "diffuse":
        return MaterialSpec(kind, color, roughness=_r(rng.uniform(0.6, 1.0), 3))
    if kind == "glossy":
        return MaterialSpec(kind, color, roughness=_r(rng.uniform(0.02, 0.3), 3))
    if kind == "metal":
        return MaterialSpec(kind, random_color(rng, (0.0, 0.4)), roughness=_r(rng.uniform(0.05, 0.5), 3), metallic=1.0)
    if kind == "glass":
        return MaterialSpec(kind, random_color(rng, (0.0, 0.3)), roughness=_r(rng.uniform(0.0, 0.1), 3),
                            ior=_r(rng.uniform(1.35, 1.6), 3))
    return MaterialSpec(kind, color, roughness=_r(rng.uniform(0.3, 0.9), 3), texture=str(rng.choice(TEXTURE_KINDS)),
                        texture_color=random_color(rng), texture_scale=_r(rng.uniform(2.0, 30.0), 3))


def focal_mm(rng: np.random.Generator, lo: float = FOCAL_RANGE_MM[0], hi: float = FOCAL_RANGE_MM[1]) -> float:
    return _r(math.exp(rng.uniform(math.log(lo), math.log(hi))), 3)


def _size(rng: np.random.Generator, bounds) -> tuple[float, float, float]:
    lo, hi = bounds
    return _v(rng.uniform(lo, hi), 4)


def _object(rng: np.random.Generator, cls: str, size, location, yaw: float = 0.0) -> ObjectSpec:
    return ObjectSpec(shape=cls, size=size, location=_v(location, 4), rotation=(0.0, 0.0, _r(yaw, 5)),
                      material=random_material(rng), semantic_class=cls, shape_params=shapes.sample_params(cls, rng))


def _slab(lo, hi, cls: str, material: MaterialSpec) -> ObjectSpec:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return ObjectSpec("box", _v(hi - lo, 4), _v((lo + hi) / 2, 4), material=material, semantic_class=cls)


def _footprint_radius(size) -> float:
    return 0.5 * math.hypot(size[0], size[1])


def _camera(rng: np.random.Generator, width: int, height: int, eye, yaw: float, pitch: float, f_mm: float) -> CameraSpec:
    direction = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])
    return CameraSpec.from_focal_mm(width, height, f_mm, _v(eye, 4), _v(np.asarray(eye) + direction, 5))


def _camera_clear(eye, objects: list[ObjectSpec], margin: float) -> bool:
    return not any(inside_box(eye, o, margin) for o in objects)


# ---------------------------------------------------------------- families


def indoor(rng: np.random.Generator, width: int, height: int) -> SceneSpec:
    W, D, H = rng.uniform(3.0, 9.0), rng.uniform(3.0, 9.0), rng.uniform(2.4, 3.6)
    t = 0.1
    wall = random_material(rng, {"diffuse": 0.6, "textured": 0.3, "glossy": 0.1})
    objects = [
        _slab((-t, -t, -t), (W + t, D + t, 0.0), "floor", random_material(rng, {"diffuse": 0.3, "textured": 0.5, "glossy": 0.2})),
        _slab((-t, -t, H), (W + t, D + t, H + t), "ceiling", random_material(rng, {"diffuse": 1.0})),
        _slab((-t, -t, 0.0), (0.0, D + t, H), "wall", wall),
        _slab((W, -t, 0.0), (W + t, D + t, H), "wall", wall),
        _slab((0.0, -t, 0.0), (W, 0.0, H), "wall", wall),
        _slab((0.0, D, 0.0), (W, D + t, H), "wall", wall),
    ]
    placed: list[tuple[float, float, float]] = []  # (x, y, radius) of floor items
    tables: list[ObjectSpec] = []
    for _ in range(int(rng.integers(3, 9))):
        cls = str(rng.choice(list(INDOOR_FURNITURE)))
        size = _size(rng, INDOOR_FURNITURE[cls])
        r = _footprint_radius(size)
        if 2 * r + 0.2 > min(W, D):
            continue
        for _attempt in range(30):
            x, y = rng.uniform(r + 0.05, W - r - 0.05), rng.uniform(r + 0.05, D - r - 0.05)
            if all(math.hypot(x - px, y - py) > r + pr + 0.05 for px, py, pr in placed):
                yaw = rng.integers(0, 4) * math.pi / 2 + rng.normal(0, 0.15)
                obj = _object(rng, cls, size, (x, y, size[2] / 2), yaw)
                objects.append(obj)
                placed.append((x, y, r))
                if cls in ("table", "cabinet"):
                    tables.append(obj)
                break
    for support in tables:
        for _ in range(int(rng.integers(0, 4))):
            objects.append(_on_top(rng, support, SMALL_OBJECTS))
    lights = [LightSpec("area", _v((rng.uniform(0.3, 0.7) * W, rng.uniform(0.3, 0.7) * D, H - 0.02), 4), (0.0, 0.0, 0.0),
                        energy=_r(rng.uniform(150, 900), 2), color=_warm_white(rng), size=_r(rng.uniform(0.5, 1.5), 3))]
    for _ in range(int(rng.integers(0, 3))):
        lights.append(LightSpec("point", _v((rng.uniform(0.5, W - 0.5), rng.uniform(0.5, D - 0.5), rng.uniform(1.0, H - 0.3)), 4),
                                energy=_r(rng.uniform(30, 300), 2), color=_warm_white(rng), size=_r(rng.uniform(0.02, 0.3), 3)))
    env = EnvironmentSpec("uniform", _v([rng.uniform(0.01, 0.15)] * 3, 4), strength=1.0)
    for _attempt in range(200):
        eye = (rng.uniform(0.3, W - 0.3), rng.uniform(0.3, D - 0.3), rng.uniform(0.4, min(2.0, H - 0.3)))
        if _camera_clear(eye, objects, 0.15):
            break
    else:
        raise RuntimeError("indoor: no free camera position found")
    cam = _camera(rng, width, height, eye, rng.uniform(0, 2 * math.pi), math.radians(rng.uniform(-35, 10)), focal_mm(rng))
    return SceneSpec(camera=cam, objects=objects, lights=lights, environment=env, family="indoor")


def _on_top(rng: np.random.Generator, support: ObjectSpec, classes) -> ObjectSpec:
    cls = str(rng.choice(list(classes)))
    size = _size(rng, classes[cls])
    if cls == "sphere":
        size = (size[0],) * 3
    sx, sy, sz = support.size
    local = np.array([rng.uniform(-0.4, 0.4) * sx, rng.uniform(-0.4, 0.4) * sy])
    yaw = support.rotation[2]
    c, s = math.cos(yaw), math.sin(yaw)
    x = support.location[0] + c * local[0] - s * local[1]
    y = support.location[1] + s * local[0] + c * local[1]
    z = support.location[2] + sz / 2 + size[2] / 2 + 0.001
    return _object(rng, cls, size, (x, y, z), rng.uniform(0, 2 * math.pi))


def tabletop(rng: np.random.Generator, width: int, height: int) -> SceneSpec:
    top_h = rng.uniform(0.7, 0.9)
    tw, td = rng.uniform(1.2, 3.0), rng.uniform(0.8, 2.0)
    table = _slab((-tw / 2, -td / 2, top_h - 0.04), (tw / 2, td / 2, top_h), "table",
                  random_material(rng, {"diffuse": 0.3, "textured": 0.5, "glossy": 0.2}))
    objects = [
        _slab((-15, -15, -0.1), (15, 15, 0.0), "floor", random_material(rng, {"diffuse": 0.5, "textured": 0.5})),
        table,
        _slab((-15, td / 2 + rng.uniform(0.2, 3.0), 0.0), (15, 15.1, 4.0), "wall", random_material(rng, {"diffuse": 1.0})),
    ]
    for _ in range(int(rng.integers(3, 11))):
        objects.append(_on_top(rng, table, SMALL_OBJECTS))
    lights = [LightSpec("area", _v((rng.uniform(-1, 1), rng.uniform(-1, 1), top_h + rng.uniform(1.0, 2.0)), 4),
                        energy=_r(rng.uniform(50, 400), 2), color=_warm_white(rng), size=_r(rng.uniform(0.3, 1.5), 3)),
              LightSpec("point", _v((rng.uniform(-2, 2), rng.uniform(-2, 0), top_h + rng.uniform(0.3, 1.5)), 4),
                        energy=_r(rng.uniform(10, 150), 2), color=_warm_white(rng), size=_r(rng.uniform(0.02, 0.2), 3))]
    env = EnvironmentSpec("uniform", _v([rng.uniform(0.02, 0.3)] * 3, 4), strength=1.0)
    for _attempt in range(200):
        dist = rng.uniform(0.3, 1.5)
        az = rng.uniform(-math.pi, 0) if rng.uniform() < 0.8 else rng.uniform(0, math.pi)
        eye = (dist * math.cos(az), dist * math.sin(az), top_h + rng.uniform(0.1, 0.8))
        if _camera_clear(eye, objects, 0.05):
            break
    else:
        raise RuntimeError("tabletop: no free camera position found")
    target = np.array([rng.uniform(-0.2, 0.2) * tw, rng.uniform(-0.2, 0.2) * td, top_h])
    d = target - np.asarray(eye)
    yaw, pitch = math.atan2(d[1], d[0]), math.atan2(d[2], math.hypot(d[0], d[1]))
    cam = _camera(rng, width, height, eye, yaw, pitch, focal_mm(rng, 20.0, 135.0))
    return SceneSpec(camera=cam, objects=objects, lights=lights, environment=env, family="tabletop")


def outdoor(rng: np.random.Generator, width: int, height: int) -> SceneSpec:
    objects = [_slab((-400, -400, -0.2), (400, 400, 0.0), "ground", random_material(rng, {"diffuse": 0.4, "textured": 0.6}))]
    heading = rng.uniform(0, 2 * math.pi)
    for _ in range(int(rng.integers(5, 21))):
        cls = str(rng.choice(list(OUTDOOR_OBJECTS)))
        size = _size(rng, OUTDOOR_OBJECTS[cls])
        if cls == "sphere":
            size = (size[0],) * 3
        # keep the camera's neighbourhood (within ~5 m of the origin) free of the footprint
        dist = max(math.exp(rng.uniform(math.log(4.0), math.log(150.0))), _footprint_radius(size) + 6.0)
        ang = heading + rng.uniform(-1.2, 1.2)
        z = size[2] / 2 - (0.3 * size[2] if cls == "sphere" else 0.0)
        objects.append(_object(rng, cls, size, (dist * math.cos(ang), dist * math.sin(ang), z), rng.uniform(0, 2 * math.pi)))
    elevation = math.radians(rng.uniform(10, 80))
    lights = [LightSpec("sun", (0.0, 0.0, 100.0), (_r(math.pi / 2 - elevation), 0.0, _r(rng.uniform(0, 2 * math.pi))),
                        energy=_r(rng.uniform(1.5, 6.0), 3), color=_warm_white(rng), size=_r(math.radians(rng.uniform(0.5, 5)), 5))]
    env = EnvironmentSpec("sky", color=_v((rng.uniform(0.05, 0.2), rng.uniform(0.1, 0.35), rng.uniform(0.4, 0.9)), 4),
                          horizon_color=_v((rng.uniform(0.5, 0.9),) * 2 + (rng.uniform(0.7, 1.0),), 4),
                          strength=_r(rng.uniform(0.5, 1.5), 3))
    for _attempt in range(200):
        eye = (rng.normal(0, 2), rng.normal(0, 2), math.exp(rng.uniform(math.log(1.0), math.log(30.0))))
        if _camera_clear(eye, objects, 0.5):
            break
    else:
        raise RuntimeError("outdoor: no free camera position found")
    if rng.uniform() < 0.75:  # frame one of the structures (long lenses then fill the view with it)
        target = objects[int(rng.integers(1, len(objects)))]
        aim = np.asarray(target.location) + [0.0, 0.0, rng.uniform(-0.3, 0.3) * target.size[2]]
        d = aim - np.asarray(eye)
        yaw = math.atan2(d[1], d[0]) + rng.normal(0, 0.05)
        pitch = min(max(math.atan2(d[2], math.hypot(d[0], d[1])), math.radians(-60)), math.radians(20))
    else:  # a look along the scene's heading, horizon in view
        yaw, pitch = heading + rng.uniform(-0.5, 0.5), math.radians(rng.uniform(-30, 15))
    cam = _camera(rng, width, height, eye, yaw, pitch, focal_mm(rng))
    return SceneSpec(camera=cam, objects=objects, lights=lights, environment=env, family="outdoor")


def _warm_white(rng: np.random.Generator) -> tuple[float, float, float]:
    warmth = rng.uniform(-0.15, 0.25)
    return _v((1.0, 1.0 - 0.3 * max(warmth, 0) + 0.1 * min(warmth, 0), 1.0 - 0.6 * max(warmth, 0)), 4)


GENERATORS: dict[str, Callable[[np.random.Generator, int, int], SceneSpec]] = {
    "indoor": indoor, "tabletop": tabletop, "outdoor": outdoor,
}


def sample_scene(seed: int, width: int = 256, height: int = 256, family: str | None = None,
                 families: tuple[str, ...] = FAMILIES) -> SceneSpec:
    """The scene for `seed`: family drawn from `families` unless given. Validated."""
    if family is not None and family not in GENERATORS:
        raise ValueError(f"unknown scene family {family!r}; known: {sorted(GENERATORS)}")
    unknown = sorted(set(families) - set(GENERATORS))
    if unknown:
        raise ValueError(f"unknown scene families {unknown}; known: {sorted(GENERATORS)}")
    rng = np.random.default_rng(seed)
    family = family or str(families[int(rng.integers(len(families)))])
    spec = GENERATORS[family](rng, width, height)
    spec.seed = int(seed)
    return validate(spec)


def scene_seed(base_seed: int, index: int) -> int:
    """Independent per-scene seeds from one job seed (numpy SeedSequence, stable across versions)."""
    return int(np.random.SeedSequence([int(base_seed), int(index)]).generate_state(1, dtype=np.uint64)[0]) >> 1
