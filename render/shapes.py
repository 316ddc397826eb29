"""Procedural shape generators: numpy triangle meshes, no bpy.

Every shape is a registered generator `params -> Mesh`. `build(name, params)` returns the mesh
normalized to the unit bounding box [-0.5, 0.5]^3 (flat shapes keep zero thickness), so an
`ObjectSpec` scales it to its metric `size` and places the box center at `location`; the
parameters only change proportions and structure (leg count, steps, teeth, seeds).

Meshes are built from a few exact builders (boxes, lathes of a profile, extruded polygons,
radially displaced spheres) and are closed and consistently oriented (outward normals): each
part is watertight on its own; a shape may be a union of intersecting parts, which renders
correctly because only the outer surface is ever visible. `tests/render/test_shapes.py` checks
that for every registered shape.

Shading: `Mesh.smooth` shapes are shaded smooth with edges sharper than `Mesh.sharp_angle`
kept sharp (the Blender adapter marks them), so a cylinder's rim stays crisp while its side is
smooth, and the normal ground truth matches what the beauty pass shows.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from formats.registry import Registry


@dataclass
class Mesh:
    vertices: np.ndarray  # (N, 3) float64
    faces: np.ndarray  # (M, 3) int64, counter-clockwise seen from outside
    smooth: bool = False
    sharp_angle: float = 40.0  # degrees; only used when smooth


@dataclass(frozen=True)
class Param:
    """A shape parameter: its default and the closed range `sample_params` draws from."""

    default: float
    lo: float
    hi: float
    integer: bool = False

    def check(self, shape: str, name: str, value) -> float:
        ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.integer:
            ok_type = ok_type and float(value).is_integer()
        if not ok_type or not math.isfinite(value) or not self.lo <= value <= self.hi:
            kind = "an integer" if self.integer else "a number"
            raise ValueError(f"{shape}.{name} must be {kind} in [{self.lo}, {self.hi}], got {value!r}")
        return int(value) if self.integer else float(value)


@dataclass(frozen=True)
class ShapeInfo:
    name: str
    generate: Callable[..., Mesh]
    params: dict[str, Param] = field(default_factory=dict)
    category: str = "procedural"  # "primitive" or "procedural"
    closed: bool = True

    @property
    def defaults(self) -> dict[str, float]:
        return {k: p.default for k, p in self.params.items()}


SHAPES: Registry[ShapeInfo] = Registry("shape")
PRIMITIVES = ("box", "sphere", "cylinder", "cone", "torus", "plane")
SEGMENTS = 48  # around the axis of revolved shapes: 7.5 degrees between faces
# Small tableware (vase, bottle, bowl, mug, plate): 32 segments and coarser profiles. Cycles' scene sync
# costs per triangle; a dense tabletop of 48-segment vases cost 4x the rest of the scene.
SMALL_SEGMENTS = 32


def register(info: ShapeInfo) -> ShapeInfo:
    """Register a shape under `info.name` (twice is an error)."""
    return SHAPES.add(info.name, info)


def shape(name: str, category: str = "procedural", closed: bool = True, **params: Param):
    """Decorator: register `fn(**params) -> Mesh` as the generator of shape `name`."""

    def deco(fn: Callable[..., Mesh]) -> Callable[..., Mesh]:
        register(ShapeInfo(name, fn, dict(params), category, closed))
        return fn

    return deco


def names() -> list[str]:
    """The registered shape names, sorted."""
    return SHAPES.names()


def info(name: str) -> ShapeInfo:
    """The registered shape `name`; ValueError naming the known shapes otherwise."""
    if name not in SHAPES:
        raise ValueError(f"unknown shape {name!r}; known shapes: {names()}")
    return SHAPES.get(name)


def check_params(name: str, params: dict | None) -> dict[str, float]:
    """Defaults merged with `params`, each checked; raises ValueError naming the bad parameter."""
    spec = info(name)
    params = dict(params or {})
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise ValueError(f"{name}: unknown parameter(s) {unknown}; known: {sorted(spec.params)}")
    return {k: p.check(name, k, params.get(k, p.default)) for k, p in spec.params.items()}


def sample_params(name: str, rng: np.random.Generator) -> dict[str, float]:
    """Uniform draws in each parameter's range, in declaration order (deterministic for a seed)."""
    out = {}
    for k, p in info(name).params.items():
        if p.integer:
            out[k] = int(rng.integers(int(p.lo), int(p.hi) + 1))
        else:
            out[k] = float(round(rng.uniform(p.lo, p.hi), 4))
    return out


def build(name: str, params: dict | None = None) -> Mesh:
    """The mesh of shape `name`, normalized to the bounding box [-0.5, 0.5]^3."""
    mesh = info(name).generate(**check_params(name, params))
    return normalize(mesh)


def normalize(mesh: Mesh) -> Mesh:
    v = np.asarray(mesh.vertices, np.float64)
    lo, hi = v.min(0), v.max(0)
    extent = hi - lo
    scale = np.where(extent > 1e-12, 1.0 / np.where(extent > 1e-12, extent, 1.0), 0.0)
    return Mesh((v - (lo + hi) / 2) * scale, np.asarray(mesh.faces, np.int64), mesh.smooth, mesh.sharp_angle)


# ---------------------------------------------------------------- builders


def merge(*meshes: Mesh, smooth: bool | None = None) -> Mesh:
    """Concatenate parts (each closed on its own) into one mesh."""
    verts, faces, offset = [], [], 0
    for m in meshes:
        verts.append(np.asarray(m.vertices, np.float64))
        faces.append(np.asarray(m.faces, np.int64) + offset)
        offset += len(m.vertices)
    smooth = any(m.smooth for m in meshes) if smooth is None else smooth
    return Mesh(np.concatenate(verts), np.concatenate(faces), smooth)


def box_part(lo, hi) -> Mesh:
    """An axis-aligned box from corner `lo` to corner `hi`."""
    (x0, y0, z0), (x1, y1, z1) = lo, hi
    v = np.array([[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)], np.float64)
    # vertex index = 4*ix + 2*iy + iz
    f = [(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5),  # -x, +x
         (0, 4, 5), (0, 5, 1), (2, 3, 7), (2, 7, 6),  # -y, +y
         (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)]  # -z, +z
    return Mesh(v, np.array(f, np.int64), False)


def lathe(profile, segments: int = SEGMENTS, center=(0.0, 0.0), phase: float = 0.0, smooth: bool = True) -> Mesh:
    """Revolve a (radius, z) profile about the vertical axis through `center`.

    The profile runs from the bottom up over the shape (for a hollow shape: up the outside,
    over the rim and down the inside). An end with radius 0 becomes a pole; an end with a
    positive radius is closed by a flat cap (facing down at the start, up at the end).
    """
    prof = np.asarray(profile, np.float64)
    if len(prof) < 2 or np.any(prof[:, 0] < 0) or np.any(prof[1:-1, 0] <= 0):
        raise ValueError("lathe profile needs >= 2 points with radius > 0 except at the ends")
    theta = phase + 2 * np.pi * np.arange(segments) / segments
    ring_dirs = np.stack([np.cos(theta), np.sin(theta)], 1)
    radius, height = prof[:, 0], prof[:, 1]
    pole = radius == 0  # only the ends can be poles
    counts = np.where(pole, 1, segments)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    count = int(counts.sum())
    verts = np.empty((count, 3))
    rings = np.empty((len(prof), segments), np.int64)  # vertex index of each profile point at each angle
    for i in np.flatnonzero(pole):
        verts[starts[i]] = (center[0], center[1], height[i])
        rings[i] = starts[i]
    ring = np.flatnonzero(~pole)
    rings[ring] = starts[ring, None] + np.arange(segments)
    xy = np.asarray(center, np.float64) + radius[ring, None, None] * ring_dirs  # (rings, segments, 2)
    ring_rows = (starts[ring, None] + np.arange(segments)).ravel()
    verts[ring_rows, :2] = xy.reshape(-1, 2)
    verts[ring_rows, 2] = np.repeat(height[ring], segments)
    j, j1 = np.arange(segments), (np.arange(segments) + 1) % segments
    a, b, c, d = rings[:-1][:, j], rings[:-1][:, j1], rings[1:][:, j1], rings[1:][:, j]  # (bands, segments)
    acd, abc = np.stack([a, c, d], -1), np.stack([a, b, c], -1)  # (bands, segments, 3)
    faces = []
    for i in range(len(prof) - 1):  # a band between two rings: two triangles per segment; one next to a pole
        if not pole[i] and not pole[i + 1]:
            faces += [acd[i], abc[i]]
        else:
            faces.append(abc[i] if pole[i + 1] else acd[i])
    verts = [verts]
    for end, up in ((0, False), (len(prof) - 1, True)):
        if radius[end] > 0:
            verts.append(np.array([[center[0], center[1], height[end]]]))
            cap = np.full(segments, count)
            ring = rings[end]
            faces.append(np.stack([cap, ring[j], ring[j1]], 1) if up else np.stack([cap, ring[j1], ring[j]], 1))
            count += 1
    return Mesh(np.concatenate(verts), np.concatenate(faces).astype(np.int64), smooth)


def polygon_area(poly) -> float:
    p = np.asarray(poly, np.float64)
    return 0.5 * float(np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1]))


def triangulate(poly) -> np.ndarray:
    """Ear-clipping triangulation of a simple polygon (counter-clockwise); (n-2, 3) indices."""
    p = np.asarray(poly, np.float64)
    xs, ys = p[:, 0].tolist(), p[:, 1].tolist()
    alive = np.ones(len(p), bool)
    idx = list(range(len(p)))
    tris = []

    def cross(o, a, b):  # z of (a - o) x (b - o) for points given by index; b may be an (n, 2) array
        return (xs[a] - xs[o]) * (b[..., 1] - ys[o]) - (ys[a] - ys[o]) * (b[..., 0] - xs[o])

    while len(idx) > 3:
        for k in range(len(idx)):
            i0, i1, i2 = idx[k - 1], idx[k], idx[(k + 1) % len(idx)]
            if (xs[i1] - xs[i0]) * (ys[i2] - ys[i0]) - (ys[i1] - ys[i0]) * (xs[i2] - xs[i0]) <= 1e-14:
                continue  # reflex or degenerate corner: not an ear
            alive[[i0, i1, i2]] = False
            rest = p[alive]
            alive[[i0, i2]] = True
            if np.any((cross(i0, i1, rest) >= 0) & (cross(i1, i2, rest) >= 0) & (cross(i2, i0, rest) >= 0)):
                alive[i1] = True
                continue  # another vertex inside the candidate ear
            tris.append((i0, i1, i2))
            idx.pop(k)
            break
        else:
            raise ValueError("triangulate: no ear found (polygon not simple or not counter-clockwise)")
    tris.append(tuple(idx))
    tris = np.asarray(tris, np.int64)
    # A self-intersecting outline still yields "ears"; their areas then disagree with the outline's.
    a, b, c = p[tris[:, 0]], p[tris[:, 1]], p[tris[:, 2]]
    total = 0.5 * float(np.abs((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])).sum())
    if not abs(total - polygon_area(p)) <= 1e-9 * max(total, 1e-300):
        raise ValueError("triangulate: polygon is not simple (its triangles do not tile it)")
    return tris


def extrude(poly, z0: float = 0.0, z1: float = 1.0, axes: str = "xyz") -> Mesh:
    """A prism: the 2D polygon extruded from z0 to z1, then axes relabelled.

    `axes` names where the polygon's (u, v) and the extrusion axis go, e.g. "xzy" draws the
    polygon in the x-z plane and extrudes along y.
    """
    p = np.asarray(poly, np.float64)
    if polygon_area(p) < 0:
        p = p[::-1]
    n = len(p)
    tris = triangulate(p)
    verts = np.concatenate([np.column_stack([p, np.full(n, z0)]), np.column_stack([p, np.full(n, z1)])])
    i, i1 = np.arange(n), (np.arange(n) + 1) % n
    sides = np.concatenate([np.stack([i, i1, i1 + n], 1), np.stack([i, i1 + n, i + n], 1)])
    faces = np.concatenate([tris[:, ::-1], tris + n, sides])
    return _relabel(Mesh(verts, faces, False), axes)


def _relabel(mesh: Mesh, axes: str) -> Mesh:
    """Place local (u, v, w) on the world axes named by `axes`, keeping orientation outward."""
    order = ["xyz".index(a) for a in axes]
    verts = np.zeros_like(mesh.vertices)
    verts[:, order] = mesh.vertices
    odd = sum(1 for i in range(3) for j in range(i + 1, 3) if order[i] > order[j]) % 2
    faces = mesh.faces[:, ::-1] if odd else mesh.faces
    return Mesh(verts, faces, mesh.smooth, mesh.sharp_angle)


def ring_extrude(outer, inner, z0: float = 0.0, z1: float = 1.0) -> Mesh:
    """A prism with a hole: outer and inner loops with the same vertex count, matched by index."""
    o, q = np.asarray(outer, np.float64), np.asarray(inner, np.float64)
    n = len(o)
    layers = [np.column_stack([o, np.full(n, z0)]), np.column_stack([o, np.full(n, z1)]),
              np.column_stack([q, np.full(n, z0)]), np.column_stack([q, np.full(n, z1)])]
    ob, ot, ib, it = (np.arange(n) + k * n for k in range(4))
    s = lambda a: np.roll(a, -1)  # noqa: E731  next vertex around the loop
    faces = [np.stack([ob, s(ob), s(ot)], 1), np.stack([ob, s(ot), ot], 1),  # outer wall
             np.stack([ib, s(it), s(ib)], 1), np.stack([ib, it, s(it)], 1),  # inner wall (faces the axis)
             np.stack([ot, s(ot), s(it)], 1), np.stack([ot, s(it), it], 1),  # top ring
             np.stack([ob, s(ib), s(ob)], 1), np.stack([ob, ib, s(ib)], 1)]  # bottom ring
    return Mesh(np.concatenate(layers), np.concatenate(faces), False)


def icosphere(subdivisions: int = 3) -> Mesh:
    """A unit sphere from a subdivided icosahedron (uniform triangles, no poles)."""
    verts, faces = _icosphere(subdivisions)
    return Mesh(verts.copy(), faces.copy(), True)


@functools.lru_cache(maxsize=8)
def _icosphere(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    t = (1 + 5 ** 0.5) / 2
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
         (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
         (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
         (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.asarray(x, np.float64) / np.linalg.norm(x) for x in v]
    faces = f
    for _ in range(subdivisions):
        midpoint: dict[tuple[int, int], int] = {}

        def mid(a: int, b: int) -> int:
            key = (min(a, b), max(a, b))
            if key not in midpoint:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                midpoint[key] = len(verts) - 1
            return midpoint[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.asarray(verts), np.asarray(faces, np.int64)


def displace(mesh: Mesh, seed: int, amount: float, waves: int = 12, min_radius: float = 0.35) -> Mesh:
    """Radially displace a unit sphere mesh by smooth random waves (star-shaped, so still closed)."""
    rng = np.random.default_rng(seed)
    dirs = mesh.vertices / np.linalg.norm(mesh.vertices, axis=1, keepdims=True)
    axes = rng.normal(size=(waves, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    freq = rng.uniform(1.0, 4.5, waves)
    phase = rng.uniform(0, 2 * np.pi, waves)
    amp = rng.uniform(0.5, 1.0, waves) / freq
    noise = np.sin(dirs @ axes.T * freq + phase) @ amp / np.sum(amp) * 2.0
    radius = np.maximum(1.0 + amount * noise, min_radius)
    return Mesh(dirs * radius[:, None], mesh.faces, True)


def regular_polygon(sides: int, radius: float = 1.0, phase: float = 0.0) -> np.ndarray:
    a = phase + 2 * np.pi * np.arange(sides) / sides
    return radius * np.stack([np.cos(a), np.sin(a)], 1)


def _cylinder_part(x: float, y: float, r: float, z0: float, z1: float, segments: int = 24) -> Mesh:
    return lathe([(r, z0), (r, z1)], segments, center=(x, y))


def _legs(x0, x1, y0, y1, w, z0, z1) -> list[Mesh]:
    """Four square legs of width w at the corners of [x0, x1] x [y0, y1]."""
    return [box_part((x, y, z0), (x + w, y + w, z1)) for x in (x0, x1 - w) for y in (y0, y1 - w)]


# ---------------------------------------------------------------- primitives

P = Param


@shape("box", category="primitive")
def _box() -> Mesh:
    return box_part((0, 0, 0), (1, 1, 1))


@shape("sphere", category="primitive")
def _sphere() -> Mesh:
    a = np.linspace(-np.pi / 2, np.pi / 2, SEGMENTS // 2 + 1)
    prof = np.column_stack([np.cos(a), np.sin(a)])
    prof[[0, -1], 0] = 0.0  # exact poles
    return lathe(prof)


@shape("cylinder", category="primitive")
def _cylinder() -> Mesh:
    return lathe([(1, 0), (1, 1)])


@shape("cone", category="primitive", top=P(0.0, 0.0, 0.6))
def _cone(top: float) -> Mesh:
    return lathe([(1, 0), (top, 1)])


@shape("torus", category="primitive", minor=P(0.35, 0.15, 0.6))
def _torus(minor: float) -> Mesh:
    n_major, n_minor = SEGMENTS, SEGMENTS // 2
    u = 2 * np.pi * np.arange(n_major) / n_major
    v = 2 * np.pi * np.arange(n_minor) / n_minor
    uu, vv = np.meshgrid(u, v, indexing="ij")
    r = 1 + minor * np.cos(vv)
    verts = np.stack([r * np.cos(uu), r * np.sin(uu), minor * np.sin(vv)], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(n_major), np.arange(n_minor), indexing="ij")
    a = i * n_minor + j
    b = ((i + 1) % n_major) * n_minor + j
    c = ((i + 1) % n_major) * n_minor + (j + 1) % n_minor
    d = i * n_minor + (j + 1) % n_minor
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return Mesh(verts, faces, True)


@shape("plane", category="primitive", closed=False)
def _plane() -> Mesh:
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float64)
    return Mesh(v, np.array([(0, 1, 2), (0, 2, 3)], np.int64), False)


# ---------------------------------------------------------------- revolved objects


def _arc(r: float, z: float, start: float, stop: float, n: int) -> list[tuple[float, float]]:
    a = np.linspace(start, stop, n)
    return [(max(r * math.cos(t), 0.0), z + r * math.sin(t)) for t in a]


@shape("capsule", cap=P(0.3, 0.15, 0.45))
def _capsule(cap: float) -> Mesh:
    # Hemispherical ends of height `cap` (a fraction of the total height) around a straight side.
    lower = [(math.sin(t), cap * (1 - math.cos(t))) for t in np.linspace(0, np.pi / 2, 9)]
    upper = [(math.cos(t), 1 - cap + cap * math.sin(t)) for t in np.linspace(0, np.pi / 2, 9)]
    prof = [(0.0, 0.0)] + lower[1:] + upper[:-1] + [(0.0, 1.0)]
    return lathe(prof)


@shape("barrel", bulge=P(0.12, 0.0, 0.25), hoops=P(2, 0, 3, integer=True))
def _barrel(bulge: float, hoops: int) -> Mesh:
    z = np.linspace(0, 1, 17)
    r = 1 - bulge * (2 * z - 1) ** 2
    body = lathe(np.column_stack([r, z]))
    parts = [body]
    for k in range(hoops):  # metal bands, slightly proud of the staves
        zc = (k + 1) / (hoops + 1)
        rc = 1 - bulge * (2 * zc - 1) ** 2
        parts.append(lathe([(rc + 0.02, zc - 0.025), (rc + 0.02, zc + 0.025)], SEGMENTS))
    return merge(*parts)


@shape("vase", belly=P(0.35, 0.2, 0.6), neck=P(0.45, 0.25, 0.8), lip=P(0.7, 0.4, 1.0), wall=P(0.06, 0.03, 0.12))
def _vase(belly: float, neck: float, lip: float, wall: float) -> Mesh:
    # Outer radius: a smooth curve through foot, belly (r = 1), neck and lip; hollow with a mouth.
    zs = np.linspace(0, 1, 13)
    knots_z = [0.0, belly, 0.8, 1.0]
    knots_r = [0.55, 1.0, neck, lip]
    outer = np.interp(zs, knots_z, knots_r)
    outer = np.convolve(np.pad(outer, 1, mode="edge"), np.ones(3) / 3, mode="valid")  # soften the knots
    inner = np.maximum(outer - wall, 0.05)
    floor = 0.08
    above = zs > floor + 1e-9
    prof = [(0.0, 0.0)] + list(zip(outer, zs)) + list(zip(inner[above][::-1], zs[above][::-1]))
    prof += [(float(np.interp(floor, zs, inner)), floor), (0.0, floor)]
    return lathe(prof, SMALL_SEGMENTS)


@shape("bottle", neck=P(0.35, 0.2, 0.5), shoulder=P(0.6, 0.45, 0.75))
def _bottle(neck: float, shoulder: float) -> Mesh:
    prof = [(0.0, 0.0), (0.95, 0.0), (1.0, 0.03), (1.0, shoulder)]
    for t in np.linspace(0, 1, 8)[1:]:  # rounded shoulder into the neck
        prof.append((neck + (1 - neck) * math.cos(t * np.pi / 2), shoulder + 0.15 * math.sin(t * np.pi / 2)))
    prof += [(neck, 0.93), (neck * 1.15, 0.94), (neck * 1.15, 1.0), (0.0, 1.0)]
    return lathe(prof, SMALL_SEGMENTS)


@shape("bowl", wall=P(0.08, 0.04, 0.15), foot=P(0.45, 0.3, 0.6))
def _bowl(wall: float, foot: float) -> Mesh:
    outer = [(foot, 0.0)] + [(math.sin(t), 1 - math.cos(t)) for t in np.linspace(0.6, np.pi / 2, 7)]
    # inner surface: a smaller arc, back down to the center
    inner = [(max(math.sin(t) * (1 - wall), 0.0), wall + (1 - wall) * (1 - math.cos(t)))
             for t in np.linspace(np.pi / 2, 0, 8)]
    prof = [(0.0, 0.0)] + outer + [(1 - wall / 2, 1.0)] + inner[:-1] + [(0.0, wall)]
    return lathe(prof, SMALL_SEGMENTS)


@shape("plate", rim=P(0.25, 0.15, 0.4), lift=P(0.6, 0.3, 0.9))
def _plate(rim: float, lift: float) -> Mesh:
    well = 1 - rim
    prof = [(0.0, 0.0), (well * 0.8, 0.0), (well, 0.25), (1.0, 1.0), (0.98, 1.0), (well, lift * 0.5 + 0.25),
            (well * 0.8, 0.5), (0.0, 0.5)]
    return lathe(prof, SMALL_SEGMENTS)


@shape("mug", wall=P(0.08, 0.05, 0.15), handle=P(0.35, 0.25, 0.45))
def _mug(wall: float, handle: float) -> Mesh:
    body = lathe([(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (1 - wall, 1.0), (1 - wall, 0.08), (0.0, 0.08)], SMALL_SEGMENTS)
    t = 0.12  # handle bar thickness
    x0, x1 = 0.95, 1.0 + handle
    grip = [box_part((x0, -t, 0.75), (x1, t, 0.75 + t)), box_part((x1 - t, -t, 0.25), (x1, t, 0.75 + t)),
            box_part((x0, -t, 0.25), (x1, t, 0.25 + t))]
    return merge(body, *grip, smooth=True)


@shape("lamp", shade=P(0.3, 0.2, 0.45), shade_top=P(0.6, 0.3, 1.0), base=P(0.6, 0.4, 1.0))
def _lamp(shade: float, shade_top: float, base: float) -> Mesh:
    foot = lathe([(base, 0.0), (base, 0.03), (base * 0.8, 0.06)])
    pole = lathe([(0.04, 0.05), (0.04, 1 - shade + 0.05)], 16)
    hat = lathe([(1.0, 1 - shade), (shade_top, 1.0)])
    return merge(foot, pole, hat)


@shape("column", flutes=P(0, 0, 24, integer=True), taper=P(0.1, 0.0, 0.2), plinth=P(0.08, 0.03, 0.15))
def _column(flutes: int, taper: float, plinth: float) -> Mesh:
    base = box_part((-1, -1, 0), (1, 1, plinth))
    cap = box_part((-1, -1, 1 - plinth), (1, 1, 1))
    r = 0.78
    if flutes >= 6:  # fluted shaft: a star-like polygon extruded (no taper)
        a = np.arange(2 * flutes) * np.pi / flutes
        rr = np.where(np.arange(2 * flutes) % 2 == 0, r, r * 0.9)
        shaft = extrude(np.stack([rr * np.cos(a), rr * np.sin(a)], 1), plinth * 0.5, 1 - plinth * 0.5)
    else:
        shaft = lathe([(r, plinth * 0.5), (r * (1 - taper), 1 - plinth * 0.5)])
    return merge(base, shaft, cap, smooth=flutes < 6)


@shape("tower", sides=P(24, 4, 24, integer=True), taper=P(0.15, 0.0, 0.35), roof=P(0.15, 0.0, 0.3))
def _tower(sides: int, taper: float, roof: float) -> Mesh:
    top = 1 - roof
    prof = [(1.0, 0.0), (1 - taper, top), (1 - taper + 0.08, top), (1 - taper + 0.08, top + 0.02)]
    prof += [(0.0, 1.0)] if roof > 0.01 else [(0.0, top + 0.02)]
    return lathe(prof, sides, phase=np.pi / sides, smooth=sides > 8)


@shape("tree", kind=P(0, 0, 1, integer=True), trunk=P(0.3, 0.15, 0.45), layers=P(3, 2, 5, integer=True),
       seed=P(0, 0, 2**31 - 1, integer=True))
def _tree(kind: int, trunk: float, layers: int, seed: int) -> Mesh:
    t = lathe([(0.09, 0.0), (0.06, trunk + 0.1)], 16)
    if kind == 0:  # conifer: stacked cones, one revolved zig-zag
        prof = [(0.07, trunk)]
        step = (1 - trunk) / layers
        for k in range(layers):
            z = trunk + k * step
            prof += [(1.0 - 0.5 * k / layers, z), (0.25 * (1 - k / layers) + 0.05, z + step * 1.3)]
        prof[-1] = (0.0, 1.0)
        return merge(t, lathe(prof, 24))
    blob = displace(icosphere(3), seed, 0.25)
    v = blob.vertices * [1.0, 1.0, (1 - trunk) / 2] + [0, 0, trunk + (1 - trunk) / 2]
    return merge(t, Mesh(v, blob.faces, True))


# ---------------------------------------------------------------- extruded and faceted objects


@shape("gear", teeth=P(16, 8, 32, integer=True), depth=P(0.15, 0.08, 0.25), hole=P(0.25, 0.0, 0.45))
def _gear(teeth: int, depth: float, hole: float) -> Mesh:
    n = teeth * 4  # per tooth: root, rise, tip, fall
    a = 2 * np.pi * np.arange(n) / n
    r = np.where(np.isin(np.arange(n) % 4, (1, 2)), 1.0, 1.0 - depth)
    outer = np.stack([r * np.cos(a), r * np.sin(a)], 1)
    if hole > 0.02:
        return ring_extrude(outer, hole * np.stack([np.cos(a), np.sin(a)], 1))
    return extrude(outer)


@shape("pyramid", sides=P(4, 3, 6, integer=True))
def _pyramid(sides: int) -> Mesh:
    return lathe([(1.0, 0.0), (0.0, 1.0)], sides, phase=np.pi / sides, smooth=False)


@shape("prism", sides=P(6, 3, 8, integer=True))
def _prism(sides: int) -> Mesh:
    return extrude(regular_polygon(sides, phase=np.pi / sides))


@shape("wedge", top=P(0.0, 0.0, 0.5))
def _wedge(top: float) -> Mesh:
    # profile in the y-z plane (a ramp), extruded along x
    poly = [(0, 0), (1, 0), (top, 1), (0, 1)] if top > 0.01 else [(0, 0), (1, 0), (0, 1)]
    return extrude(poly, axes="yzx")


@shape("stairs", steps=P(6, 3, 15, integer=True))
def _stairs(steps: int) -> Mesh:
    poly = [(0.0, 0.0), (1.0, 0.0)]
    for k in range(steps, 0, -1):  # back to front, top down
        poly += [(1.0 - (steps - k) / steps, k / steps), (1.0 - (steps - k + 1) / steps, k / steps)]
    return extrude(poly, axes="yzx")


@shape("arch", opening=P(0.3, 0.2, 0.38), crown=P(0.15, 0.08, 0.25))
def _arch(opening: float, crown: float) -> Mesh:
    spring = 1 - crown - opening
    arc = [(-opening * math.cos(t), spring + opening * math.sin(t)) for t in np.linspace(0, np.pi, 25)]
    poly = [(-0.5, 0.0), (-opening, 0.0)] + arc[:-1] + [(opening, spring), (opening, 0.0), (0.5, 0.0), (0.5, 1.0),
                                                         (-0.5, 1.0)]
    # drawn in x-z, extruded along y
    return extrude(poly, axes="xzy")


@shape("rock", seed=P(0, 0, 2**31 - 1, integer=True), roughness=P(0.25, 0.1, 0.4))
def _rock(seed: int, roughness: float) -> Mesh:
    return displace(icosphere(2), seed, roughness)


@shape("fence", posts=P(5, 3, 12, integer=True), rails=P(2, 1, 3, integer=True), pickets=P(0, 0, 1, integer=True))
def _fence(posts: int, rails: int, pickets: int) -> Mesh:
    w = 0.12  # post width in units of the post spacing
    span = posts - 1
    parts = [box_part((k - w / 2, -0.5, 0), (k + w / 2, 0.5, 1.0)) for k in range(posts)]
    for r in range(rails):
        z = 0.25 + 0.6 * (r + 0.5) / rails
        parts.append(box_part((0, -0.25, z - 0.03), (span, 0.25, z + 0.03)))
    if pickets:
        for k in range(span):
            for s in range(1, 5):
                x = k + s / 5
                parts.append(box_part((x - 0.03, -0.15, 0.05), (x + 0.03, 0.15, 0.9)))
    return merge(*parts)


# ---------------------------------------------------------------- furniture and architecture


@shape("table", top=P(0.05, 0.03, 0.1), leg=P(0.07, 0.04, 0.12), inset=P(0.03, 0.0, 0.1),
       round=P(0, 0, 1, integer=True))
def _table(top: float, leg: float, inset: float, round: int) -> Mesh:  # noqa: A002
    if round:
        slab = lathe([(0.5, 1 - top), (0.5, 1.0)], SEGMENTS, center=(0.5, 0.5))
        stem = _cylinder_part(0.5, 0.5, leg, 0.04, 1 - top + 0.001)
        foot = lathe([(0.3, 0.0), (0.3, 0.04)], SEGMENTS, center=(0.5, 0.5))
        return merge(slab, stem, foot, smooth=True)
    slab = box_part((0, 0, 1 - top), (1, 1, 1))
    return merge(slab, *_legs(inset, 1 - inset, inset, 1 - inset, leg, 0, 1 - top + 0.001))


@shape("chair", seat=P(0.48, 0.42, 0.55), thickness=P(0.05, 0.03, 0.08), leg=P(0.08, 0.05, 0.12),
       back=P(0.08, 0.05, 0.12))
def _chair(seat: float, thickness: float, leg: float, back: float) -> Mesh:
    parts = [box_part((0, 0, seat - thickness), (1, 1, seat))]
    parts += _legs(0, 1, 0, 1, leg, 0, seat - thickness + 0.001)
    parts.append(box_part((0, 1 - back, seat - 0.001), (1, 1, 1.0)))  # backrest along the +y edge
    return merge(*parts)


@shape("stool", legs=P(4, 3, 4, integer=True), seat=P(0.08, 0.05, 0.12), rest=P(0.35, 0.2, 0.5))
def _stool(legs: int, seat: float, rest: float) -> Mesh:
    parts = [lathe([(0.5, 1 - seat), (0.5, 1.0)], SEGMENTS, center=(0.5, 0.5))]
    for k in range(legs):
        a = 2 * np.pi * k / legs + np.pi / 4
        x, y = 0.5 + 0.38 * math.cos(a), 0.5 + 0.38 * math.sin(a)
        parts.append(_cylinder_part(x, y, 0.05, 0.0, 1 - seat + 0.001, 12))
    parts.append(lathe([(0.4, rest - 0.015), (0.4, rest + 0.015)], SEGMENTS, center=(0.5, 0.5)))  # foot rest
    return merge(*parts, smooth=True)


@shape("shelf", shelves=P(4, 2, 6, integer=True), board=P(0.03, 0.02, 0.05), side=P(0.04, 0.02, 0.06),
       back=P(1, 0, 1, integer=True))
def _shelf(shelves: int, board: float, side: float, back: int) -> Mesh:
    parts = [box_part((0, 0, 0), (side, 1, 1)), box_part((1 - side, 0, 0), (1, 1, 1))]
    for k in range(shelves + 1):
        z = k / shelves * (1 - board)
        parts.append(box_part((side - 0.001, 0, z), (1 - side + 0.001, 1, z + board)))
    if back:
        parts.append(box_part((side - 0.001, 0.96, 0), (1 - side + 0.001, 1, 1)))
    return merge(*parts)


@shape("cabinet", doors=P(2, 1, 3, integer=True), plinth=P(0.06, 0.0, 0.12), handle=P(0.12, 0.06, 0.2))
def _cabinet(doors: int, plinth: float, handle: float) -> Mesh:
    parts = [box_part((0, 0.04, plinth), (1, 1, 1))]
    if plinth > 0.005:
        parts.append(box_part((0.03, 0.08, 0), (0.97, 0.95, plinth + 0.001)))
    gap = 0.01
    for k in range(doors):  # door panels proud of the front face (-y), one handle each
        x0, x1 = k / doors + gap, (k + 1) / doors - gap
        parts.append(box_part((x0, 0.0, plinth + gap), (x1, 0.041, 1 - gap)))
        hx = x1 - 0.08 if k % 2 == 0 or doors == 1 else x0 + 0.05
        zc = plinth + (1 - plinth) * 0.6
        parts.append(box_part((hx, -0.03, zc - handle / 2), (hx + 0.03, 0.001, zc + handle / 2)))
    return merge(*parts)


@shape("bed", mattress=P(0.3, 0.2, 0.4), headboard=P(1.0, 0.7, 1.0), pillows=P(2, 0, 2, integer=True))
def _bed(mattress: float, headboard: float, pillows: int) -> Mesh:
    frame_top = 0.45
    parts = [box_part((0, 0.05, 0.1), (1, 1, frame_top)), *_legs(0.02, 0.98, 0.07, 0.98, 0.06, 0, 0.101),
             box_part((0.02, 0.06, frame_top - 0.001), (0.98, 0.99, frame_top + mattress * (1 - frame_top))),
             box_part((0, 0, 0), (1, 0.05, headboard))]  # headboard along -y
    z = frame_top + mattress * (1 - frame_top)
    for k in range(pillows):
        x0 = 0.08 + k * 0.45 if pillows == 2 else 0.25
        x1 = x0 + (0.38 if pillows == 2 else 0.5)
        parts.append(box_part((x0, 0.08, z - 0.001), (x1, 0.25, min(z + 0.1, 1.0))))
    return merge(*parts)


@shape("sofa", seat=P(0.5, 0.4, 0.55), arm=P(0.12, 0.08, 0.18), back=P(0.22, 0.15, 0.3),
       cushions=P(3, 1, 3, integer=True))
def _sofa(seat: float, arm: float, back: float, cushions: int) -> Mesh:
    base_top = seat * 0.7
    parts = [box_part((0, 0, 0.08), (1, 1, base_top)), *_legs(0.02, 0.98, 0.02, 0.98, 0.04, 0, 0.081),
             box_part((0, 1 - back, base_top - 0.001), (1, 1, 1.0)),  # backrest along +y
             box_part((0, 0, base_top - 0.001), (arm, 1 - back + 0.001, 0.75)),
             box_part((1 - arm, 0, base_top - 0.001), (1, 1 - back + 0.001, 0.75))]
    width = (1 - 2 * arm) / cushions
    for k in range(cushions):
        x0 = arm + k * width
        parts.append(box_part((x0 + 0.005, 0.02, base_top - 0.001), (x0 + width - 0.005, 1 - back + 0.001, seat)))
    return merge(*parts)


@shape("monitor", screen=P(0.7, 0.6, 0.8), panel=P(0.15, 0.08, 0.3), base=P(0.45, 0.3, 0.6))
def _monitor(screen: float, panel: float, base: float) -> Mesh:
    # screen panel facing -y, neck behind it, foot on the ground
    z0 = 1 - screen
    y_panel = 0.5 - panel / 2
    parts = [box_part((0, y_panel, z0), (1, y_panel + panel, 1)),
             box_part((0.45, y_panel + panel - 0.001, 0.03), (0.55, min(y_panel + panel + 0.15, 1.0), z0 + 0.3)),
             box_part((0.5 - base / 2, 0.0, 0.0), (0.5 + base / 2, 1.0, 0.031))]
    return merge(*parts)


@shape("building", tiers=P(1, 1, 3, integer=True), setback=P(0.1, 0.05, 0.2), floors=P(8, 2, 20, integer=True),
       roof=P(0, 0, 2, integer=True))
def _building(tiers: int, setback: float, floors: int, roof: int) -> Mesh:
    roof_h = 0.12 if roof else 0.0
    body_top = 1 - roof_h
    parts, lo = [], 0.04  # floor bands stick out by 0.04 of the footprint
    tier_h = body_top / tiers
    for k in range(tiers):
        inset = lo + k * setback
        parts.append(box_part((inset, inset, k * tier_h), (1 - inset, 1 - inset, (k + 1) * tier_h)))
    band = 0.01
    for f in range(1, floors):  # a ledge per floor on the bottom tier
        z = f * tier_h / floors
        if z + band < tier_h:
            parts.append(box_part((0, 0, z), (1, 1, z + band)))
    inset = lo + (tiers - 1) * setback
    if roof == 1:  # gable along x
        poly = [(inset, body_top - 0.001), (1 - inset, body_top - 0.001), (0.5, 1.0)]
        parts.append(extrude(poly, inset, 1 - inset, axes="yzx"))
    elif roof == 2:  # hipped: a four-sided pyramid
        half = (1 - 2 * inset) / 2 * math.sqrt(2)
        roof_mesh = lathe([(half, 0.0), (0.0, roof_h + 0.001)], 4, center=(0.5, 0.5), phase=np.pi / 4, smooth=False)
        roof_mesh.vertices[:, 2] += body_top - 0.001
        parts.append(roof_mesh)
    return merge(*parts)


# ---------------------------------------------------------------- rooms and streets


@shape("wall", door=P(0, 0, 1, integer=True), door_at=P(0.5, 0.1, 0.9), door_width=P(0.25, 0.08, 0.4),
       door_height=P(0.75, 0.6, 0.9), windows=P(0, 0, 2, integer=True), window_at=P(0.3, 0.1, 0.9),
       window_width=P(0.2, 0.08, 0.4), sill=P(0.35, 0.2, 0.5), window_top=P(0.8, 0.6, 0.92))
def _wall(**params) -> Mesh:
    """A wall slab (length along x, thickness along y) with rectangular openings: a door, up to two windows.

    Openings that would touch the ends or each other are dropped (`wall_openings` is the one
    definition, shared with render/layout.py's cavities and the view check's proxies).
    """
    return merge(*(box_part(lo, hi) for lo, hi in wall_parts(params) if hi[0] - lo[0] > 1e-6))


def wall_openings(params: dict) -> list[tuple[float, float, float, float]]:
    """A wall's openings as (x0, x1, z0, z1) in unit coordinates, left to right, never overlapping."""
    p = params
    found = []
    if p.get("door", 0):
        w = p.get("door_width", 0.25)
        found.append((p["door_at"] - w / 2, p["door_at"] + w / 2, 0.0, p.get("door_height", 0.75)))
    for k in range(int(p.get("windows", 0))):
        w = p.get("window_width", 0.2)
        at = p.get("window_at", 0.5) if k == 0 else 1 - p.get("window_at", 0.5)
        found.append((at - w / 2, at + w / 2, p.get("sill", 0.35), p.get("window_top", 0.8)))
    kept: list[tuple[float, float, float, float]] = []
    for x0, x1, z0, z1 in sorted(found):
        if x0 >= 0.04 and x1 <= 0.96 and all(x0 >= k1 + 0.03 or x1 <= k0 - 0.03 for k0, k1, _, _ in kept):
            kept.append((x0, x1, z0, z1))
    return kept


def wall_parts(p: dict) -> list[tuple[tuple, tuple]]:
    """The solid boxes of a wall around its openings, unit coordinates."""
    parts, x = [], 0.0
    for x0, x1, z0, z1 in wall_openings(p):
        parts.append(((x, 0, 0), (x0, 1, 1)))
        if z0 > 0:
            parts.append(((x0, 0, 0), (x1, 1, z0)))
        parts.append(((x0, 0, z1), (x1, 1, 1)))
        x = x1
    return parts + [((x, 0, 0), (1, 1, 1))]


@shape("window", frame=P(0.06, 0.03, 0.12), cross=P(1, 0, 1, integer=True))
def _window(frame: float, cross: int) -> Mesh:
    """A window frame filling its opening (x across, z up, y the wall's depth); no pane: the sky shows through."""
    f = frame
    parts = [box_part((0, 0.3, 0), (f, 0.7, 1)), box_part((1 - f, 0.3, 0), (1, 0.7, 1)),
             box_part((f - 0.001, 0.3, 0), (1 - f + 0.001, 0.7, f)), box_part((f - 0.001, 0.3, 1 - f), (1 - f + 0.001, 0.7, 1)),
             box_part((f - 0.001, 0.0, 0), (1 - f + 0.001, 1.0, f * 0.6))]  # the sill, as deep as the wall
    if cross:
        m = f * 0.4
        parts += [box_part((0.5 - m, 0.4, f - 0.001), (0.5 + m, 0.6, 1 - f + 0.001)),
                  box_part((f - 0.001, 0.4, 0.55 - m), (1 - f + 0.001, 0.6, 0.55 + m))]
    return merge(*parts)


@shape("door", frame=P(0.06, 0.03, 0.1), panel=P(0.4, 0.25, 0.6), handle=P(0.45, 0.4, 0.5))
def _door(frame: float, panel: float, handle: float) -> Mesh:
    """A closed door in its frame (x across, z up, y the wall's depth), a handle on either face."""
    f, y0, y1 = frame, 0.5 - panel / 2, 0.5 + panel / 2
    parts = [box_part((0, 0, 0), (f, 1, 1)), box_part((1 - f, 0, 0), (1, 1, 1)),
             box_part((f - 0.001, 0, 1 - f * 0.6), (1 - f + 0.001, 1, 1)),
             box_part((f - 0.001, y0, 0), (1 - f + 0.001, y1, 1 - f * 0.6 + 0.001))]
    hx = 1 - f - 0.12
    parts += [box_part((hx, 0.0, handle), (hx + 0.08, y0 + 0.001, handle + 0.02)),
              box_part((hx, y1 - 0.001, handle), (hx + 0.08, 1.0, handle + 0.02))]
    return merge(*parts)


@shape("car", cabin=P(0.5, 0.35, 0.6), hood=P(0.22, 0.12, 0.3), wheel=P(0.17, 0.13, 0.2))
def _car(cabin: float, hood: float, wheel: float) -> Mesh:
    """A car-like body: a lower hull, a tapered cabin, four wheels (length along x)."""
    body_lo, body_hi = wheel * 0.9, 0.55
    parts = [box_part((0.0, 0.04, body_lo), (1.0, 0.96, body_hi))]
    x0 = hood + 0.05
    x1 = min(x0 + cabin, 0.95)
    poly = [(x0, body_hi - 0.001), (x1, body_hi - 0.001), (x1 - 0.08, 1.0), (x0 + 0.1, 1.0)]
    parts.append(extrude(poly, 0.1, 0.9, axes="xzy"))
    r = wheel  # in units of the length; the z extent is rescaled with the rest of the shape
    for cx in (0.18, 0.82):
        for y0, y1 in ((0.0, 0.14), (0.86, 1.0)):
            tyre = lathe([(r * 0.55, y0), (r * 0.55, y1)], 20, center=(cx, r * 0.55))
            parts.append(_relabel(tyre, "xzy"))
    return merge(*parts, smooth=False)


@shape("pole", arm=P(0, 0, 1, integer=True), head=P(0.06, 0.03, 0.1))
def _pole(arm: int, head: float) -> Mesh:
    """A street pole: a thin mast with a lamp head (on a short arm when `arm`)."""
    mast = _cylinder_part(0.5, 0.5, 0.1, 0.0, 1.0 - head, 12)
    if not arm:
        return merge(mast, lathe([(0.5, 1 - head - 0.001), (0.2, 1.0)], 16, center=(0.5, 0.5)))
    bar = box_part((0.45, 0.45, 1 - head * 1.5), (1.0, 0.55, 1 - head))
    lamp = box_part((0.75, 0.3, 1 - head * 2), (1.0, 0.7, 1 - head * 1.5 + 0.001))
    return merge(mast, bar, lamp, box_part((0.0, 0.45, 1 - head * 1.5), (0.5, 0.55, 1 - head)))


@shape("sign", plate=P(0.3, 0.15, 0.45), round=P(0, 0, 1, integer=True))
def _sign(plate: float, round: int) -> Mesh:  # noqa: A002
    """A sign: a post and a plate on top (square or round), the plate facing -y."""
    post = box_part((0.45, 0.4, 0.0), (0.55, 0.6, 1 - plate + 0.001))
    if round:
        disc = _relabel(lathe([(0.5, 0.0), (0.5, 0.2)], 24, center=(0.5, 1 - plate / 2)), "xzy")
        disc.vertices[:, 2] = (disc.vertices[:, 2] - (1 - plate / 2)) * plate + (1 - plate / 2)
        return merge(post, disc, smooth=False)
    return merge(post, box_part((0.0, 0.0, 1 - plate), (1.0, 0.2, 1.0)))


@shape("bench", back=P(1, 0, 1, integer=True), slats=P(3, 2, 5, integer=True))
def _bench(back: int, slats: int) -> Mesh:
    """A bench: slatted seat on two side frames, an optional backrest (+y)."""
    seat = 0.45 if back else 0.95
    parts = [box_part((0.03, 0.1, 0.0), (0.08, 0.9, seat)), box_part((0.92, 0.1, 0.0), (0.97, 0.9, seat))]
    depth = 0.8 / slats
    for k in range(slats):
        y = 0.1 + k * depth
        parts.append(box_part((0.0, y + 0.01, seat - 0.001), (1.0, y + depth - 0.01, seat + 0.05)))
    top = seat + 0.05
    if back:
        parts.append(box_part((0.0, 0.88, top), (1.0, 1.0, 1.0)))
        return merge(*parts)
    return merge(*[_scale_z(p, 1.0 / top) for p in parts])


def _scale_z(m: Mesh, factor: float) -> Mesh:
    v = m.vertices.copy()
    v[:, 2] *= factor
    return Mesh(v, m.faces, m.smooth, m.sharp_angle)
