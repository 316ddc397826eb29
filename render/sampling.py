"""Seed -> SceneSpec: furnished rooms, cluttered tabletops and streets or countryside, seen by plausible cameras.

Every random choice flows from one `numpy.random.Generator` made from the scene seed, so the same
seed gives the same spec, byte for byte (floats are rounded before they enter the spec, and
`SceneSpec.to_json` is canonical). Sizes are metric and plausible per class.

Composition (render/layout.py does the geometry): a room is a rectangle or an L with a door and
windows cut into its walls (the sky shows through); shelves, cabinets, sofas, beds and desks stand
with their backs to the walls, a table stands in the free floor with chairs facing it, small objects
rest on tables, desks, cabinets and in shelf compartments (rows of books), clutter groups stand on
the floor, pictures hang on the walls. Every object records what it rests on (`support`) or that it
hangs; no two objects interpenetrate (bounding boxes, shelf compartments and wall openings excepted).
Outdoors, a street (road, sidewalks, rows of buildings, trees, poles, signs, benches, parked cars)
or countryside (houses, tree clusters, fences, rocks, poles, cars) at real scales.

Cameras are rigs per family: a standing or seated person, a robot and a high corner camera indoors;
a person at the table or a robot arm above it; a pedestrian, a car or a drone outdoors. Focal lengths
are drawn log-uniformly over 14-135 mm (35 mm equivalent) and recorded in K. Each candidate view is
checked before rendering with a coarse ray cast against the objects' proxy boxes (render/layout.py):
enough visible instances, no instance filling most of the view, a real depth range; a failing view
is redrawn (up to `VIEW_ATTEMPTS`) and the search is recorded in `spec.view_check`. Small objects the chosen
view cannot see (out of frame, or hidden) are then left out: they would cost render time and show only
in shadows and reflections. Materials are drawn for the objects that stay, lights last (render/lights.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from render import layout, lights, materials, shapes
from render.layout import Layout, Surface
from render.spec import CameraSpec, ObjectSpec, SceneSpec, inside_box, validate

FAMILIES = ("indoor", "tabletop", "outdoor")
LIGHT_STREAM = 0x11647  # the lights' own random stream: render/lights.py `relight` (bench/render_frontier.py uses it too)
FOCAL_RANGE_MM = (14.0, 135.0)
VIEW_ATTEMPTS = 40
# What a view must show, from the coarse ray cast (its grid undercounts small objects).
VIEW_MIN_VISIBLE = {"indoor": 14, "tabletop": 10, "outdoor": 10}
VIEW_MAX_SHARE = 0.45
VIEW_MIN_DEPTH_RATIO = 1.7
VIEW_MAX_SKY = 0.6
# Unseen objects smaller than this (bounding radius, m) are left out of the spec (render/layout.py: cull_unseen).
CULL_RADIUS = {"indoor": 1.5, "tabletop": 1.0, "outdoor": 8.0}

Size = tuple[tuple[float, float, float], tuple[float, float, float]]

# class -> (min size, max size) in meters (x, y, z); the shape of the same name draws it.
INDOOR_FURNITURE: dict[str, Size] = {
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
    "desk": ((1.00, 0.55, 0.72), (1.80, 0.80, 0.78)),
}
SMALL_OBJECTS: dict[str, Size] = {
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
    "book": ((0.12, 0.17, 0.02), (0.22, 0.30, 0.06)),  # lying flat
}
# Weights favour what is cheap to render: a vase is ~1,700 triangles, a book 12 (Cycles' sync costs per triangle).
SMALL_WEIGHTS = {"vase": 0.6, "bottle": 1.0, "bowl": 1.0, "mug": 2.0, "plate": 1.5, "monitor": 0.4, "sphere": 0.6,
                 "box": 1.5, "cylinder": 0.6, "cone": 0.3, "torus": 0.3, "capsule": 0.3, "gear": 0.3, "pyramid": 0.3,
                 "prism": 0.3, "wedge": 0.3, "rock": 0.4, "book": 3.0}
OUTDOOR_OBJECTS: dict[str, Size] = {
    "building": ((6.0, 8.0, 5.0), (25.0, 20.0, 60.0)),
    "tower": ((3.0, 3.0, 10.0), (8.0, 8.0, 40.0)),
    "tree": ((2.0, 2.0, 4.0), (7.0, 7.0, 12.0)),
    "rock": ((0.5, 0.5, 0.4), (3.0, 3.0, 2.0)),
    "fence": ((3.0, 0.10, 1.0), (10.0, 0.20, 1.8)),
    "column": ((0.5, 0.5, 3.0), (1.2, 1.2, 8.0)),
    "arch": ((4.0, 1.0, 4.0), (10.0, 2.0, 10.0)),
    "stairs": ((2.0, 2.0, 1.0), (5.0, 5.0, 3.0)),
    "pyramid": ((5.0, 5.0, 4.0), (20.0, 20.0, 15.0)),
    "barrel": ((0.6, 0.6, 0.9), (0.8, 0.8, 1.2)),
    "wedge": ((2.0, 2.0, 1.0), (6.0, 6.0, 3.0)),
    "sphere": ((1.0, 1.0, 1.0), (6.0, 6.0, 6.0)),
    "car": ((3.8, 1.7, 1.4), (5.0, 2.0, 1.9)),
    "pole": ((0.25, 0.25, 5.0), (0.35, 0.35, 9.0)),
    "sign": ((0.5, 0.1, 2.2), (0.9, 0.1, 3.0)),
    "bench": ((1.5, 0.6, 0.8), (2.2, 0.7, 0.95)),
}
# Families of material (render/materials.py) for the classes this module adds; the rest use materials.CLASS_KINDS.
CLASS_KINDS: dict[str, dict[str, float]] = {
    "door": {"wood": 0.6, "painted_metal": 0.3, "plastic": 0.1},
    "window": {"painted_metal": 0.4, "wood": 0.4, "plastic": 0.2},
    "picture": {"wood": 0.4, "painted_metal": 0.3, "plastic": 0.2, "fabric": 0.1},
    "book": {"fabric": 0.4, "leather": 0.3, "plastic": 0.3},
    "car": {"painted_metal": 0.85, "plastic": 0.15},
    "pole": {"painted_metal": 0.5, "brushed_metal": 0.3, "concrete": 0.2},
    "road": {"concrete": 1.0},
    "sidewalk": {"tiles": 0.4, "concrete": 0.4, "brick": 0.2},
    "bench": {"wood": 0.6, "painted_metal": 0.4},
    "sign": {"painted_metal": 1.0},
    "desk": {"wood": 0.6, "painted_metal": 0.2, "plastic": 0.2},
    "ground": {"concrete": 0.3, "carpet": 0.3, "fabric": 0.2, "brick": 0.2},  # rough grass-like stand-ins
}


def _r(x: float, nd: int = 5) -> float:
    return float(round(float(x), nd))


def _v(x, nd: int = 5) -> tuple[float, float, float]:
    return tuple(_r(c, nd) for c in x)


def material_for(cls: str, rng: np.random.Generator) -> materials.MaterialSpec:
    """A procedural material family that suits `cls`, with seeded parameters (render/materials.py)."""
    weights = CLASS_KINDS.get(cls)
    if weights is None:
        return materials.for_class(cls, rng)
    return materials.sample(materials.choose_kind(rng, weights), rng)


def focal_mm(rng: np.random.Generator, lo: float = FOCAL_RANGE_MM[0], hi: float = FOCAL_RANGE_MM[1]) -> float:
    return _r(math.exp(rng.uniform(math.log(lo), math.log(hi))), 3)


def _size(rng: np.random.Generator, bounds: Size) -> tuple[float, float, float]:
    lo, hi = bounds
    return _v(rng.uniform(lo, hi), 4)


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.asarray([weights[k] for k in names], float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _obj(rng: np.random.Generator, cls: str, size, location, yaw: float = 0.0, shape: str | None = None,
         support: int | None = None, hangs: bool = False, params: dict | None = None) -> ObjectSpec:
    shape = shape or cls
    params = shapes.sample_params(shape, rng) if params is None else params
    # The material is drawn in `finish`, for the objects the view keeps (most of a street is out of view).
    return ObjectSpec(shape=shape, size=_v(size, 4), location=_v(location, 4), rotation=(0.0, 0.0, _r(yaw, 5)),
                      semantic_class=cls, shape_params=params, support=support, hangs=hangs)


def _slab(rng: np.random.Generator, lo, hi, cls: str, support: int | None = None) -> ObjectSpec:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return _obj(rng, cls, hi - lo, (lo + hi) / 2, shape="box", support=support, params={})


def _ghost(lo, hi) -> ObjectSpec:
    """A virtual obstacle (kept out of the spec): door clearance, the space in front of a window."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return ObjectSpec("box", tuple(hi - lo), tuple((lo + hi) / 2), semantic_class="ghost")


def _ghost_at(center, yaw: float, size) -> ObjectSpec:
    return ObjectSpec("box", tuple(size), tuple(center), rotation=(0.0, 0.0, yaw), semantic_class="ghost")


def _yaw_facing(v) -> float:
    """The yaw that turns an object's local -y (its front: chairs, cabinets, monitors) toward direction v."""
    return math.atan2(-v[0], v[1]) + math.pi


def _local_to_world(o: ObjectSpec, p) -> np.ndarray:
    c, s = math.cos(layout.yaw_of(o)), math.sin(layout.yaw_of(o))
    return np.asarray(o.location) + np.array([c * p[0] - s * p[1], s * p[0] + c * p[1], p[2]])


# ---------------------------------------------------------------- resting things on surfaces


def place_on(lay: Layout, rng: np.random.Generator, parent_index: int, surface: Surface, cls: str, size,
             yaw_rel: float | None = None, near=None, spread: float = 0.15, tries: int = 8,
             shape: str | None = None) -> int | None:
    """Rest a new `cls` object on `surface` of object `parent_index` (free spot, fully on the surface)."""
    parent = lay.objects[parent_index]
    if size[2] > surface.clearance - 0.01:
        return None
    for attempt in range(tries):
        yaw = rng.uniform(0, 2 * math.pi) if yaw_rel is None else yaw_rel
        c, s = math.cos(yaw), math.sin(yaw)
        hx = abs(c) * size[0] / 2 + abs(s) * size[1] / 2
        hy = abs(s) * size[0] / 2 + abs(c) * size[1] / 2
        (x0, x1), (y0, y1) = surface.x, surface.y
        if x1 - x0 < 2 * hx + 0.002 or y1 - y0 < 2 * hy + 0.002:
            return None
        if near is None or attempt >= tries // 2:  # then anywhere on the surface
            x, y = rng.uniform(x0 + hx, x1 - hx), rng.uniform(y0 + hy, y1 - hy)
        else:
            x = float(np.clip(near[0] + rng.normal(0, spread), x0 + hx, x1 - hx))
            y = float(np.clip(near[1] + rng.normal(0, spread), y0 + hy, y1 - hy))
        center = _local_to_world(parent, (x, y, surface.z + size[2] / 2 + 0.0005))
        o = _obj(rng, cls, size, center, layout.yaw_of(parent) + yaw, shape=shape, support=parent_index)
        index = lay.add(o)
        if index is not None:
            return index
    return None


def _small_size(rng: np.random.Generator, cls: str) -> tuple[float, float, float]:
    size = _size(rng, SMALL_OBJECTS[cls])
    if cls == "sphere":
        return (size[0],) * 3
    return size


def fill_surface(lay: Layout, rng: np.random.Generator, parent_index: int, surface: Surface, density: float,
                 weights: dict[str, float] = SMALL_WEIGHTS) -> None:
    """Clutter groups on a surface: a few centers, objects scattered around them, some stacked."""
    area = (surface.x[1] - surface.x[0]) * (surface.y[1] - surface.y[0])
    n = int(min(rng.poisson(density * area) + 1, 40))
    centers = [(rng.uniform(*surface.x), rng.uniform(*surface.y)) for _ in range(int(rng.integers(2, 6)))]
    for _ in range(n):
        cls = _pick(rng, weights)
        near = centers[int(rng.integers(len(centers)))]
        index = place_on(lay, rng, parent_index, surface, cls, _small_size(rng, cls), near=near, spread=0.2,
                         shape=_shape_of(cls))
        if index is not None and cls in ("book", "plate", "box") and rng.uniform() < 0.35:
            _stack_on(lay, rng, index, cls)


SHAPE_OF = {"book": "box", "desk": "table", "picture": "box", "road": "box", "sidewalk": "box"}  # class -> shape


def _shape_of(cls: str) -> str:
    return SHAPE_OF.get(cls, cls)


def _stack_on(lay: Layout, rng: np.random.Generator, index: int, cls: str) -> None:
    """A pile: books on a book, a bowl or mug on a plate, a smaller box on a box."""
    base = lay.objects[index]
    top = layout.surfaces(base)[0]
    for _ in range(int(rng.integers(1, 4))):
        child_cls = {"book": "book", "plate": str(rng.choice(["bowl", "mug", "sphere"])), "box": "box"}[cls]
        size = _small_size(rng, child_cls)
        if child_cls in ("book", "box"):
            size = (min(size[0], base.size[0]), min(size[1], base.size[1]), size[2])
        child = place_on(lay, rng, index, top, child_cls, size, yaw_rel=rng.normal(0, 0.15), tries=3,
                         shape=_shape_of(child_cls))
        if child is None or child_cls not in ("book", "box"):
            return
        base, index = lay.objects[child], child
        top = layout.surfaces(base)[0]


def fill_shelf(lay: Layout, rng: np.random.Generator, shelf_index: int) -> None:
    """Rows of upright books in a shelf's compartments, with an ornament here and there."""
    shelf = lay.objects[shelf_index]
    for surface in layout.surfaces(shelf)[:-1]:
        if rng.uniform() < 0.35:
            continue
        x = surface.x[0] + rng.uniform(0.0, 0.15)
        end = surface.x[0] + (surface.x[1] - surface.x[0]) * rng.uniform(0.3, 1.0)
        depth = surface.y[1] - surface.y[0]
        while x < end - 0.03:
            if rng.uniform() < 0.12:  # a gap, or an ornament in it
                cls = str(rng.choice(["vase", "box", "bowl", "sphere"]))
                size = _small_size(rng, cls)
                sub = Surface(surface.z, (x, min(x + size[0] + 0.05, surface.x[1])), surface.y, surface.clearance)
                place_on(lay, rng, shelf_index, sub, cls, size, yaw_rel=0.0, tries=2)
                x += size[0] + 0.05
                continue
            t = rng.uniform(0.02, 0.06)
            h = min(rng.uniform(0.16, 0.32), surface.clearance - 0.02)
            d = min(rng.uniform(0.12, 0.24), depth - 0.01)
            if h < 0.1 or x + t > surface.x[1]:
                break
            sub = Surface(surface.z, (x, x + t + 0.002), (surface.y[0], surface.y[0] + d + 0.002), surface.clearance)
            index = place_on(lay, rng, shelf_index, sub, "book", (t, d, h), yaw_rel=0.0, tries=1, shape="box")
            x += t + (rng.uniform(0.0, 0.006) if index is not None else 0.02)
    fill_surface(lay, rng, shelf_index, layout.surfaces(shelf)[-1], 4.0)


# ---------------------------------------------------------------- indoor


def _room_polygon(rng: np.random.Generator) -> np.ndarray:
    """A counter-clockwise rectangle, or an L (a corner notched out)."""
    W, D = rng.uniform(3.5, 8.0), rng.uniform(3.5, 8.0)
    if rng.uniform() < 0.35:
        nw, nd = rng.uniform(0.3, 0.5) * W, rng.uniform(0.3, 0.5) * D
        return np.array([(0, 0), (W, 0), (W, D - nd), (W - nw, D - nd), (W - nw, D), (0, D)], float)
    return np.array([(0, 0), (W, 0), (W, D), (0, D)], float)


def _inside(poly: np.ndarray, p, margin: float = 0.0) -> bool:
    """Point in a rectilinear CCW polygon, at least `margin` from its edges."""
    x, y = p
    inside = False
    for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, 0)):
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            inside = not inside
        t = np.clip(np.dot(np.subtract(p, (x0, y0)), (x1 - x0, y1 - y0)) / ((x1 - x0) ** 2 + (y1 - y0) ** 2), 0, 1)
        if math.hypot(x - (x0 + t * (x1 - x0)), y - (y0 + t * (y1 - y0))) < margin:
            return False
    return inside


class Wall:
    """One wall of a room: from p to q (counter-clockwise), inward normal n."""

    def __init__(self, p, q) -> None:
        self.p, self.q = np.asarray(p, float), np.asarray(q, float)
        self.length = float(np.linalg.norm(self.q - self.p))
        self.u = (self.q - self.p) / self.length
        self.n = np.array([-self.u[1], self.u[0]])
        self.yaw = math.atan2(self.u[1], self.u[0])
        self.openings: list[tuple[float, float, float, float]] = []  # (s0, s1, z0, z1) in meters along the wall

    def at(self, s: float, off: float) -> np.ndarray:
        return self.p + self.u * s + self.n * off


def _walls(lay: Layout, rng: np.random.Generator, poly: np.ndarray, H: float, t: float) -> list[Wall]:
    walls = [Wall(p, q) for p, q in zip(poly, np.roll(poly, -1, 0))]
    door_wall = int(rng.choice([i for i, w in enumerate(walls) if w.length >= 1.6] or [0]))
    window_walls = set(rng.permutation(len(walls))[: int(rng.integers(0, 3))].tolist())
    for i, w in enumerate(walls):
        prev, nxt = walls[i - 1], walls[(i + 1) % len(walls)]
        ext0 = t if np.cross(prev.u, w.u) > 0 else 0.0  # convex corner: close it
        ext1 = t if np.cross(w.u, nxt.u) > 0 else 0.0
        L = w.length + ext0 + ext1
        params = {"door": 0, "windows": 0}
        if i == door_wall:
            dw = min(rng.uniform(0.8, 1.0), 0.38 * L)
            params.update(door=1, door_at=(ext0 + rng.uniform(0.3 + dw / 2, w.length - 0.3 - dw / 2)) / L,
                          door_width=dw / L, door_height=min(rng.uniform(2.0, 2.15) / H, 0.9))
        if i in window_walls and w.length >= 1.6:
            ww = min(rng.uniform(0.7, 1.6), 0.3 * L)
            params.update(windows=int(rng.integers(1, 3)) if w.length > 4 else 1,
                          window_at=(ext0 + rng.uniform(0.25 + ww / 2, max(w.length / 2, 0.3 + ww / 2))) / L,
                          window_width=ww / L, sill=rng.uniform(0.75, 1.0) / H,
                          window_top=min(rng.uniform(2.0, 2.3), H - 0.25) / H)
        params = _clip_params("wall", params)
        center = w.p + w.u * (L / 2 - ext0) - w.n * t / 2
        wall_index = lay.add(_obj(rng, "wall", (L, t, H), (*center, H / 2), w.yaw, params=params), check=False)
        wall = lay.objects[-1]
        for x0, x1, z0, z1 in shapes.wall_openings(params):
            s0, s1 = x0 * L - ext0, x1 * L - ext0
            w.openings.append((s0, s1, z0 * H, z1 * H))
            mid = _local_to_world(wall, ((x0 + x1 - 1) / 2 * L, 0.0, (z0 + z1 - 1) / 2 * H))
            size = ((x1 - x0) * L, t, (z1 - z0) * H)
            cls = "door" if z0 == 0 else "window"
            lay.add(_obj(rng, cls, size, mid, w.yaw, hangs=True), check=False)
            ghost_depth = 0.9 if cls == "door" else 0.35
            lo_z = 0.0 if cls == "door" else z0 * H - 0.05
            lay.add(_ghost_at((*w.at((s0 + s1) / 2, ghost_depth / 2 + 0.001), (lo_z + z1 * H) / 2), w.yaw,
                              (s1 - s0 + 0.2, ghost_depth, z1 * H - lo_z)), check=False, ghost=True)
        del wall_index
    return walls


def _clip_params(shape: str, params: dict) -> dict:
    spec = shapes.info(shape).params
    return {k: (int(v) if spec[k].integer else _r(min(max(v, spec[k].lo), spec[k].hi), 5)) for k, v in params.items()}


WALL_FURNITURE = {"shelf": 3.0, "cabinet": 2.0, "sofa": 1.0, "bed": 0.5, "desk": 1.5, "lamp": 0.6, "barrel": 0.3}


def _against_walls(lay: Layout, rng: np.random.Generator, walls: list[Wall], floor: int) -> list[int]:
    """Furniture with its back to the walls, a chair at each desk; returns the indices placed."""
    placed = []
    for w in walls:
        s = rng.uniform(0.0, 0.6)
        while s < w.length - 0.4:
            cls = _pick(rng, WALL_FURNITURE)
            size = _size(rng, INDOOR_FURNITURE[cls])
            if size[0] > w.length - s:
                s += 0.3
                continue
            yaw = _yaw_facing(w.n) + (math.pi if cls == "bed" else 0.0)
            gap = rng.uniform(0.005, 0.04)
            center = w.at(s + size[0] / 2, size[1] / 2 + gap)
            shape, params = ("table", {**shapes.sample_params("table", rng), "round": 0}) if cls == "desk" else (cls, None)
            index = lay.add(_obj(rng, cls, size, (*center, size[2] / 2), yaw, shape=shape, support=floor, params=params))
            if index is None:
                s += 0.3
                continue
            placed.append(index)
            if cls == "desk":
                _chair_at(lay, rng, index, w.n, floor)
            s += size[0] + rng.uniform(0.02, 0.8)
    return placed


def _chair_at(lay: Layout, rng: np.random.Generator, table_index: int, side, floor: int, offset: float = 0.0) -> None:
    """A chair on `side` (a world direction) of a table, facing it."""
    table = lay.objects[table_index]
    side = np.asarray(side, float) / np.linalg.norm(side)
    local = np.array([[math.cos(-layout.yaw_of(table)), -math.sin(-layout.yaw_of(table))],
                      [math.sin(-layout.yaw_of(table)), math.cos(-layout.yaw_of(table))]]) @ side
    reach = abs(local[0]) * table.size[0] / 2 + abs(local[1]) * table.size[1] / 2
    size = _size(rng, INDOOR_FURNITURE["chair"])
    along = np.array([-side[1], side[0]]) * offset
    center = np.asarray(table.location[:2]) + side * (reach + size[1] / 2 + rng.uniform(0.03, 0.25)) + along
    yaw = _yaw_facing(-side) + rng.normal(0, 0.12)
    lay.add(_obj(rng, "chair", size, (*center, size[2] / 2), yaw, support=floor))


def _free_spot(rng: np.random.Generator, poly: np.ndarray, margin: float) -> np.ndarray:
    lo, hi = poly.min(0), poly.max(0)
    for _ in range(50):
        p = rng.uniform(lo + margin, hi - margin)
        if _inside(poly, p, margin):
            return p
    return (lo + hi) / 2


def _center_group(lay: Layout, rng: np.random.Generator, poly: np.ndarray, floor: int) -> list[int]:
    """A table in the free floor with chairs around it (and a second, smaller one sometimes)."""
    tables = []
    for k in range(int(rng.integers(1, 3))):
        size = _size(rng, INDOOR_FURNITURE["table"])
        if k:
            size = (size[0] * 0.6, size[1] * 0.7, rng.uniform(0.4, 0.5))  # a coffee table
        for _ in range(15):
            c = _free_spot(rng, poly, 0.9)
            yaw = rng.integers(0, 4) * math.pi / 2 + rng.normal(0, 0.1)
            index = lay.add(_obj(rng, "table", size, (*c, size[2] / 2), yaw, support=floor))
            if index is not None:
                tables.append(index)
                break
        else:
            continue
        if k:
            continue
        t = lay.objects[-1]
        ax = np.array([math.cos(yaw), math.sin(yaw)])
        ay = np.array([-ax[1], ax[0]])
        for side, span in ((ay, t.size[0]), (-ay, t.size[0]), (ax, t.size[1]), (-ax, t.size[1])):
            if rng.uniform() < 0.8:
                n = 2 if span > 1.3 else 1
                for j in range(n):
                    _chair_at(lay, rng, tables[0], side, floor, offset=(j - (n - 1) / 2) * span / n)
    return tables


def _floor_clutter(lay: Layout, rng: np.random.Generator, poly: np.ndarray, floor: int) -> None:
    """Groups on the floor: box piles, barrels, vases, stools, lamps near the walls."""
    for _ in range(int(rng.integers(2, 6))):
        c = _free_spot(rng, poly, 0.3)
        for _ in range(int(rng.integers(1, 4))):
            cls = _pick(rng, {"box": 3.0, "vase": 1.0, "barrel": 0.7, "stool": 1.0, "lamp": 0.5, "rock": 0.3})
            bounds = INDOOR_FURNITURE.get(cls) or SMALL_OBJECTS[cls]
            size = _size(rng, bounds)
            if cls in ("box", "vase"):
                size = _v(np.asarray(size) * rng.uniform(1.0, 2.5), 4)
            p = c + rng.normal(0, 0.35, 2)
            index = lay.add(_obj(rng, cls, size, (*p, size[2] / 2), rng.uniform(0, 2 * math.pi), support=floor))
            if index is not None and cls == "box" and rng.uniform() < 0.5:
                _stack_on(lay, rng, index, "box")


def _pictures(lay: Layout, rng: np.random.Generator, walls: list[Wall]) -> None:
    for w in walls:
        for _ in range(int(rng.integers(0, 3))):
            size = (rng.uniform(0.3, 1.2), rng.uniform(0.02, 0.04), rng.uniform(0.25, 0.9))
            s = rng.uniform(size[0] / 2 + 0.1, max(w.length - size[0] / 2 - 0.1, size[0] / 2 + 0.1))
            c = w.at(s, size[1] / 2 + 0.001)
            lay.add(_obj(rng, "picture", size, (*c, rng.uniform(1.3, 1.8)), w.yaw, shape="box", hangs=True, params={}))


def indoor(rng: np.random.Generator) -> Draft:
    """The indoor scene before its camera and lights: objects and the camera rigs' poses."""
    poly = _room_polygon(rng)
    H, t = rng.uniform(2.5, 3.2), 0.12
    lo, hi = poly.min(0), poly.max(0)
    lay = Layout()
    floor = lay.add(_slab(rng, (lo[0] - t, lo[1] - t, -0.1), (hi[0] + t, hi[1] + t, 0.0), "floor"), check=False)
    lay.add(_slab(rng, (lo[0] - t, lo[1] - t, H), (hi[0] + t, hi[1] + t, H + 0.1), "ceiling"), check=False)
    walls = _walls(lay, rng, poly, H, t)
    if len(poly) == 6:  # the notch of an L is outside: nothing stands there
        lay.add(_ghost((poly[3][0], poly[2][1], 0.0), (hi[0] + t, hi[1] + t, H)), check=False, ghost=True)
    for a, b in (((-20, -20), (lo[0], 20)), ((hi[0], -20), (20, 20)), ((-20, -20), (20, lo[1])), ((-20, hi[1]), (20, 20))):
        lay.add(_ghost((*a, 0.0), (*b, H)), check=False, ghost=True)  # nothing beyond the walls
    supports = _against_walls(lay, rng, walls, floor) + _center_group(lay, rng, poly, floor)
    _floor_clutter(lay, rng, poly, floor)
    _pictures(lay, rng, walls)
    for index in supports:
        o = lay.objects[index]
        if o.shape == "shelf":
            fill_shelf(lay, rng, index)
        elif o.semantic_class in ("table", "desk", "cabinet"):
            fill_surface(lay, rng, index, layout.surfaces(o)[0], rng.uniform(3, 8))
    objects = lay.objects
    def pose(rng: np.random.Generator) -> tuple[str, np.ndarray, np.ndarray]:
        rig = _pick(rng, {"person": 0.5, "seated": 0.15, "robot": 0.25, "corner": 0.1})
        eye_h = {"person": (1.45, 1.75), "seated": (1.1, 1.3), "robot": (0.4, 1.0), "corner": (H - 0.5, H - 0.25)}[rig]
        xy = _free_spot(rng, poly, 0.3)
        if rig == "corner":
            k = int(rng.integers(len(poly)))
            xy = poly[k] + (np.mean(poly, 0) - poly[k]) / np.linalg.norm(np.mean(poly, 0) - poly[k]) * 0.4
        eye = np.array([*xy, rng.uniform(*eye_h)])
        return rig, eye, _aim(rng, eye, objects, rig)

    return Draft("indoor", objects, pose)


def _aim(rng: np.random.Generator, eye: np.ndarray, objects: list[ObjectSpec], rig: str) -> np.ndarray:
    """A look-at point: an object of interest (offset a little), or just ahead at the rig's usual tilt."""
    pitch_range = {"person": (-30, 5), "seated": (-25, 5), "robot": (-20, 10), "corner": (-45, -20),
                   "pedestrian": (-12, 8), "car": (-5, 3), "drone": (-50, -15), "standing": (-60, -30),
                   "arm": (-80, -40), "sitting": (-50, -20)}[rig]
    if rng.uniform() < 0.7:
        cands = [o for o in objects if o.semantic_class not in layout.STRUCTURE and not o.hangs]
        if cands:
            o = cands[int(rng.integers(len(cands)))]
            target = np.asarray(o.location) + rng.normal(0, 0.2, 3) * np.asarray(o.size)
            d = target - eye
            pitch = math.degrees(math.atan2(d[2], math.hypot(d[0], d[1])))
            if pitch_range[0] - 10 <= pitch <= pitch_range[1] + 10 and np.linalg.norm(d) > 0.3:
                return target
    yaw = rng.uniform(0, 2 * math.pi)
    pitch = math.radians(rng.uniform(*pitch_range))
    return eye + np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])


# ---------------------------------------------------------------- views


Pose = Callable[[np.random.Generator], tuple[str, np.ndarray, np.ndarray]]


def check_view(camera: CameraSpec, objects: list[ObjectSpec], family: str,
               proxies: tuple[np.ndarray, ...] | None = None) -> tuple[bool, dict]:
    """Does the view show enough (coarse ray cast, render/layout.py)? (passed, estimated statistics)."""
    ids, depth = layout.cast(camera, objects, proxies=proxies)
    stats = layout.view_stats(ids, depth)
    ratio = stats["depth_p95"] / stats["depth_p5"] if math.isfinite(stats["depth_p5"]) else 0.0
    ok = (stats["visible"] >= VIEW_MIN_VISIBLE[family] and stats["largest_share"] <= VIEW_MAX_SHARE
          and ratio >= VIEW_MIN_DEPTH_RATIO and stats["sky_share"] <= VIEW_MAX_SKY)
    return ok, {k: _r(v, 4) for k, v in stats.items()}


def _score(stats: dict, family: str) -> float:
    ratio = stats["depth_p95"] / stats["depth_p5"] if math.isfinite(stats["depth_p5"]) else 0.0
    return (min(stats["visible"] / VIEW_MIN_VISIBLE[family], 1.0) - max(stats["largest_share"] - VIEW_MAX_SHARE, 0)
            - max(VIEW_MIN_DEPTH_RATIO - ratio, 0) - max(stats["sky_share"] - VIEW_MAX_SKY, 0))


@dataclass
class Draft:
    """A scene without its camera: what `finish` searches a view of."""

    family: str
    objects: list[ObjectSpec]
    pose: Pose  # rng -> (rig name, eye, look-at point)


def finish(rng: np.random.Generator, width: int, height: int, draft: Draft) -> SceneSpec:
    """Search a camera (rig pose, focal length) whose view passes `check_view` (the best one if none does),
    leave out the small objects it cannot see, and record the search in `view_check`."""
    family, objects, pose = draft.family, draft.objects, draft.pose
    best = None
    proxies = layout.proxy_arrays(objects)
    boxes = np.stack([layout.aabb(o) for o in objects])
    for attempt in range(1, VIEW_ATTEMPTS + 1):
        rig, eye, target = pose(rng)
        f = focal_mm(rng)
        near = np.flatnonzero(np.all((boxes[:, 0] - 0.1 <= eye) & (eye <= boxes[:, 1] + 0.1), 1))
        if any(inside_box(eye, objects[k], 0.1) for k in near):
            continue
        try:
            camera = CameraSpec.from_focal_mm(width, height, f, _v(eye, 4), _v(target, 4))
            camera.world_to_camera()
        except ValueError:
            continue
        ok, stats = check_view(camera, objects, family, proxies)
        score = 1e9 if ok else _score(stats, family)
        if best is None or score > best[0]:
            best = (score, camera, {"rig": rig, "passed": ok, "estimate": stats})
        if ok:
            break
    if best is None:
        raise RuntimeError(f"{family}: no free camera position found in {VIEW_ATTEMPTS} attempts")
    _, camera, record = best
    record["attempts"] = attempt
    objects, record["culled"] = layout.cull_unseen(camera, objects, CULL_RADIUS[family], proxies=proxies)
    for o in objects:
        o.material = material_for(o.semantic_class, rng)
    return SceneSpec(camera=camera, objects=objects, family=family, view_check=record)


# ---------------------------------------------------------------- tabletop


def tabletop(rng: np.random.Generator) -> Draft:
    """The tabletop scene before its camera and lights: objects and the camera rigs' poses."""
    lay = Layout()
    floor = lay.add(_slab(rng, (-6, -6, -0.1), (6, 6, 0.0), "floor"), check=False)
    back = rng.uniform(0.02, 1.5)
    size = (_r(rng.uniform(1.2, 2.4), 4), _r(rng.uniform(0.7, 1.2), 4), _r(rng.uniform(0.72, 0.78), 4))
    wall_y = size[1] / 2 + back
    lay.add(_slab(rng, (-6, wall_y, 0.0), (6, wall_y + 0.12, 3.0), "wall"), check=False)
    if rng.uniform() < 0.5:  # a corner: a side wall
        x = rng.choice([-1, 1]) * (size[0] / 2 + rng.uniform(0.05, 1.5))
        lo, hi = (x, -6, 0.0), (x + 0.12 * np.sign(x), wall_y, 3.0)
        lay.add(_slab(rng, np.minimum(lo, hi), np.maximum(lo, hi), "wall"), check=False)
    params = {**shapes.sample_params("table", rng), "round": 0}  # a round top would leave only its inscribed square
    table = lay.add(_obj(rng, "table", size, (0.0, 0.0, size[2] / 2), 0.0, support=floor, params=params))
    for side in ((0, -1), (1, 0), (-1, 0)):
        if rng.uniform() < 0.5:
            _chair_at(lay, rng, table, side, floor)
    for _ in range(int(rng.integers(0, 3))):  # furniture behind: a shelf or cabinet against the wall
        cls = _pick(rng, {"shelf": 1.0, "cabinet": 1.0, "lamp": 0.3})
        s = _size(rng, INDOOR_FURNITURE[cls])
        c = (rng.uniform(-3, 3), wall_y - s[1] / 2 - 0.01, s[2] / 2)
        index = lay.add(_obj(rng, cls, s, c, math.pi, support=floor))
        if index is not None and cls == "shelf":
            fill_shelf(lay, rng, index)
    top = layout.surfaces(lay.objects[table])[0]
    fill_surface(lay, rng, table, top, rng.uniform(12, 24))
    objects = lay.objects
    top_h = size[2]
    kids = [o for o in objects if o.support == table]

    def pose(rng: np.random.Generator) -> tuple[str, np.ndarray, np.ndarray]:
        rig = _pick(rng, {"standing": 0.4, "sitting": 0.3, "arm": 0.3})
        target = np.asarray(kids[int(rng.integers(len(kids)))].location if kids else (0.0, 0.0, top_h))
        pitch = math.radians(rng.uniform(*{"standing": (-60, -25), "sitting": (-45, -15), "arm": (-80, -35)}[rig]))
        dist = rng.uniform(*{"standing": (0.8, 1.8), "sitting": (0.5, 1.2), "arm": (0.3, 0.8)}[rig])
        az = rng.uniform(-math.pi + 0.3, -0.3)  # from the open side of the table
        d = np.array([math.cos(pitch) * math.cos(az), math.cos(pitch) * math.sin(az), math.sin(pitch)])
        eye = target - d * dist
        eye[2] = max(eye[2], top_h + 0.08)
        return rig, eye, target

    return Draft("tabletop", objects, pose)


# ---------------------------------------------------------------- outdoor


def _street(lay: Layout, rng: np.random.Generator, ground: int) -> tuple[float, float]:
    """A road along x with sidewalks, buildings, trees, poles, signs, benches and cars; (road half width, walk)."""
    half, walk, length = rng.uniform(3.0, 7.0), rng.uniform(2.0, 5.0), 90.0
    road = lay.add(_slab(rng, (-length, -half, 0.0), (length, half, 0.02), "road", support=ground), check=False)
    walks = [lay.add(_slab(rng, (-length, sgn * half if sgn > 0 else -half - walk, 0.0),
                           (length, half + walk if sgn > 0 else -half, 0.15), "sidewalk", support=ground), check=False)
             for sgn in (1, -1)]
    for sgn, walk_index in zip((1, -1), walks):
        x = -length + rng.uniform(0, 10)
        while x < length - 5:  # a row of facades, some gaps
            s = _size(rng, OUTDOOR_OBJECTS["building"])
            y = sgn * (half + walk + rng.uniform(0.0, 3.0) + s[1] / 2)
            lay.add(_obj(rng, "building", s, (x + s[0] / 2, y, s[2] / 2), 0.0, support=ground))
            x += s[0] + (rng.uniform(2, 12) if rng.uniform() < 0.3 else rng.uniform(0.0, 0.5))
        x = -length + rng.uniform(0, 8)
        while x < length - 2:  # street furniture along the curb
            cls = _pick(rng, {"tree": 3.0, "pole": 2.0, "sign": 1.0, "bench": 0.7, "barrel": 0.5})
            s = _size(rng, OUTDOOR_OBJECTS[cls])
            off = {"tree": 0.5 + s[1] / 2, "pole": 0.4, "sign": 0.4, "bench": walk - s[1] / 2 - 0.2, "barrel": 0.5}[cls]
            y = sgn * (half + min(off, walk - 0.2))
            yaw = 0.0 if sgn < 0 else math.pi
            lay.add(_obj(rng, cls, s, (x, y, 0.15 + s[2] / 2), yaw, support=walk_index))
            x += rng.uniform(4, 14)
        x = -length + rng.uniform(0, 10)
        while x < length - 5:  # parked cars
            s = _size(rng, OUTDOOR_OBJECTS["car"])
            y = sgn * (half - s[1] / 2 - rng.uniform(0.1, 0.4))
            lay.add(_obj(rng, "car", s, (x, y, 0.02 + s[2] / 2), rng.normal(0, 0.03) + (math.pi if sgn < 0 else 0), support=road))
            x += s[0] + rng.uniform(0.8, 12)
    for _ in range(int(rng.integers(0, 6))):  # moving traffic
        s = _size(rng, OUTDOOR_OBJECTS["car"])
        lane = rng.choice([-1, 1]) * half / 2
        lay.add(_obj(rng, "car", s, (rng.uniform(-60, 60), lane, 0.02 + s[2] / 2), (math.pi if lane > 0 else 0.0)
                     + rng.normal(0, 0.03), support=road))
    return half, walk


def _countryside(lay: Layout, rng: np.random.Generator, ground: int) -> None:
    """Houses, tree clusters, fences, rocks, power poles and a few cars on open ground."""
    for _ in range(int(rng.integers(3, 9))):
        c = rng.uniform(-50, 50, 2)
        s = (rng.uniform(6, 14), rng.uniform(6, 12), rng.uniform(4, 9))
        lay.add(_obj(rng, "building", s, (*c, s[2] / 2), rng.uniform(0, math.pi), support=ground))
    for _ in range(int(rng.integers(3, 7))):  # clusters of trees
        c = rng.uniform(-50, 50, 2)
        for _ in range(int(rng.integers(3, 10))):
            s = _size(rng, OUTDOOR_OBJECTS["tree"])
            p = c + rng.normal(0, 6, 2)
            lay.add(_obj(rng, "tree", s, (*p, s[2] / 2), rng.uniform(0, 2 * math.pi), support=ground))
    for _ in range(int(rng.integers(1, 4))):  # fence lines
        start, heading = rng.uniform(-40, 40, 2), rng.uniform(0, math.pi)
        u = np.array([math.cos(heading), math.sin(heading)])
        for k in range(int(rng.integers(3, 10))):
            s = _size(rng, OUTDOOR_OBJECTS["fence"])
            p = start + u * k * (s[0] + 0.05)
            lay.add(_obj(rng, "fence", s, (*p, s[2] / 2), heading, support=ground))
    line, heading = rng.uniform(-30, 30, 2), rng.uniform(0, math.pi)
    for k in range(-6, 7):  # a line of poles
        s = _size(rng, OUTDOOR_OBJECTS["pole"])
        p = line + np.array([math.cos(heading), math.sin(heading)]) * k * rng.uniform(25, 40)
        lay.add(_obj(rng, "pole", s, (*p, s[2] / 2), heading, support=ground))
    for _ in range(int(rng.integers(8, 25))):
        cls = _pick(rng, {"rock": 3.0, "car": 1.0, "barrel": 1.0, "sign": 0.5, "bench": 0.5, "column": 0.3,
                          "stairs": 0.2, "arch": 0.2, "tower": 0.3, "wedge": 0.3})
        s = _size(rng, OUTDOOR_OBJECTS[cls])
        p = rng.uniform(-40, 40, 2)
        lay.add(_obj(rng, cls, s, (*p, s[2] / 2), rng.uniform(0, 2 * math.pi), support=ground))


def outdoor(rng: np.random.Generator) -> Draft:
    """The outdoor scene before its camera and lights: objects and the camera rigs' poses."""
    lay = Layout()
    ground = lay.add(_slab(rng, (-400, -400, -0.2), (400, 400, 0.0), "ground"), check=False)
    street = rng.uniform() < 0.65
    half = walk = 0.0
    if street:
        half, walk = _street(lay, rng, ground)
    else:
        _countryside(lay, rng, ground)
    objects = lay.objects
    def pose(rng: np.random.Generator) -> tuple[str, np.ndarray, np.ndarray]:
        rig = _pick(rng, {"pedestrian": 0.45, "car": 0.35, "drone": 0.2})
        h = {"pedestrian": (1.5, 1.8), "car": (1.2, 1.6), "drone": (5.0, 30.0)}[rig]
        x = rng.uniform(-40, 40)
        if street:
            y = {"pedestrian": rng.choice([-1, 1]) * (half + rng.uniform(0.3, walk - 0.3)),
                 "car": rng.uniform(-half / 2, half / 2), "drone": rng.uniform(-half, half)}[rig]
        else:  # near the middle, looking across the land
            x, y = rng.uniform(-25, 25, 2)
        eye = np.array([x, y, rng.uniform(*h) + (0.15 if street and abs(y) > half else 0.0)])
        if street and (rig == "car" or (rig == "pedestrian" and rng.uniform() < 0.5)):  # along the street
            yaw = rng.choice([0.0, math.pi]) + rng.normal(0, 0.15 if rig == "car" else 0.5)
            pitch = math.radians(rng.uniform(-5, 3) if rig == "car" else rng.uniform(-12, 8))
            return rig, eye, eye + [math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)]
        return rig, eye, _aim(rng, eye, objects, rig)

    return Draft("outdoor", objects, pose)


GENERATORS: dict[str, Callable[[np.random.Generator], Draft]] = {
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
    spec = finish(rng, width, height, GENERATORS[family](rng))
    spec = lights.relight(spec, np.random.default_rng([seed, LIGHT_STREAM]))
    spec.seed = int(seed)
    return validate(spec)


def scene_seed(base_seed: int, index: int) -> int:
    """Independent per-scene seeds from one job seed (numpy SeedSequence, stable across versions)."""
    return int(np.random.SeedSequence([int(base_seed), int(index)]).generate_state(1, dtype=np.uint64)[0]) >> 1
