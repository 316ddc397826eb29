"""Scene layout geometry (pure numpy, no bpy): bounding volumes, collisions, supports, a coarse ray cast.

Every placed object is an upright box (`ObjectSpec.size` turned by its yaw, `rotation[2]`). Two
objects *collide* when their boxes overlap by more than `EPS` on every axis of a separating-axis
test, unless one lies wholly inside a *cavity* of the other: the empty space a shelf compartment
or a wall opening (window, door) leaves inside its bounding box. Touching faces are allowed, so a
mug resting on a table (bottom = table top) or a shelf against a wall never collides.

`Layout` grows a scene one object at a time and refuses objects that collide (an axis-aligned
pre-test over all boxes in numpy, the exact test only on the few candidates). `surfaces(o)` are
the places a child may rest on (a table top, a shelf's compartment floors), in the object's frame.

`cast(camera, objects)` ray-casts a coarse grid against *proxy boxes* (a table is its top and legs,
a shelf its boards and sides, a window its frame): enough to estimate, before rendering, how many
instances a view shows, the largest one's share of the image and the depth range, in a few ms.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from render import camera as cam
from render import shapes
from render.spec import CameraSpec, ObjectSpec

EPS = 1e-4  # meters of overlap tolerated (touching faces, rounding of the spec's floats)
STRUCTURE = frozenset({"wall", "floor", "ceiling", "ground", "road", "sidewalk"})
OPENINGS = frozenset({"window", "door"})


# ---------------------------------------------------------------- boxes


def yaw_of(o: ObjectSpec) -> float:
    return float(o.rotation[2])


def footprint(o: ObjectSpec) -> np.ndarray:
    """(4, 2) world xy corners of the object's box, counter-clockwise."""
    return np.array(_corners_2d(o))


def z_range(o: ObjectSpec) -> tuple[float, float]:
    return o.location[2] - o.size[2] / 2, o.location[2] + o.size[2] / 2


def aabb(o: ObjectSpec) -> np.ndarray:
    """(2, 3) axis-aligned bounds [lo, hi] of the (yawed) box."""
    c, s = abs(math.cos(o.rotation[2])), abs(math.sin(o.rotation[2]))
    ex, ey = (c * o.size[0] + s * o.size[1]) / 2, (s * o.size[0] + c * o.size[1]) / 2
    (x, y, z), hz = o.location, o.size[2] / 2
    return np.array([[x - ex, y - ey, z - hz], [x + ex, y + ey, z + hz]])


def to_local(o: ObjectSpec, points: np.ndarray) -> np.ndarray:
    """World points (N, 3) -> the object's frame (box center at 0, axes along its sides)."""
    c, s = math.cos(yaw_of(o)), math.sin(yaw_of(o))
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return (np.asarray(points, float) - np.asarray(o.location)) @ rot


def corners(o: ObjectSpec) -> np.ndarray:
    """(8, 3) world corners of the box."""
    f = footprint(o)
    z0, z1 = z_range(o)
    return np.concatenate([np.column_stack([f, np.full(4, z0)]), np.column_stack([f, np.full(4, z1)])])


def _corners_2d(o: ObjectSpec) -> list[tuple[float, float]]:
    hx, hy = o.size[0] / 2, o.size[1] / 2
    c, s = math.cos(o.rotation[2]), math.sin(o.rotation[2])
    x, y = o.location[0], o.location[1]
    return [(x + c * px - s * py, y + s * px + c * py) for px, py in ((-hx, -hy), (hx, -hy), (hx, hy), (-hx, hy))]


def _separated_2d(a: list, b: list, eps: float) -> bool:
    """Separating-axis test of two rectangles (corner lists, in order): is there a gap wider than -eps?"""
    for poly in (a, b):
        for k in range(2):
            ex, ey = poly[k + 1][0] - poly[k][0], poly[k + 1][1] - poly[k][1]
            norm = math.hypot(ex, ey) or 1e-300
            nx, ny = -ey / norm, ex / norm
            pa = [px * nx + py * ny for px, py in a]
            pb = [px * nx + py * ny for px, py in b]
            if max(pa) <= min(pb) + eps or max(pb) <= min(pa) + eps:
                return True
    return False


def boxes_overlap(a: ObjectSpec, b: ObjectSpec, eps: float = EPS) -> bool:
    """Do the two upright boxes overlap by more than `eps` (touching is not overlapping)?"""
    (az0, az1), (bz0, bz1) = z_range(a), z_range(b)
    if az1 <= bz0 + eps or bz1 <= az0 + eps:
        return False
    return not _separated_2d(_corners_2d(a), _corners_2d(b), eps)


# ---------------------------------------------------------------- cavities and surfaces


def _unit_to_local(o: ObjectSpec, lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """A box given in the shape's unit coordinates [0, 1]^3 -> metric, centered local coordinates."""
    size = np.asarray(o.size, float)
    return (np.asarray(lo, float) - 0.5) * size, (np.asarray(hi, float) - 0.5) * size


def _shelf_compartments(o: ObjectSpec) -> list[tuple[np.ndarray, np.ndarray]]:
    p = {"shelves": 4, "board": 0.03, "side": 0.04, "back": 1, **o.shape_params}
    n, b, s = int(p["shelves"]), p["board"], p["side"]
    back = 0.96 if p["back"] else 1.0
    return [_unit_to_local(o, (s, 0.0, k / n * (1 - b) + b), (1 - s, back, (k + 1) / n * (1 - b)))
            for k in range(n)]


def cavities(o: ObjectSpec) -> list[tuple[np.ndarray, np.ndarray]]:
    """Empty boxes inside the object's bounding box (object frame, meters): shelf compartments, wall
    openings, a plate's well. A child whose part inside the bounding box lies in one does not collide."""
    if o.shape not in ("shelf", "wall", "plate"):
        return []
    return _cavities(o.shape, tuple(o.size), tuple(sorted(o.shape_params.items())))


@functools.lru_cache(maxsize=512)
def _cavities(shape: str, size: tuple, params: tuple) -> list[tuple[np.ndarray, np.ndarray]]:
    o = ObjectSpec(shape, size, (0.0, 0.0, 0.0), shape_params=dict(params))
    if shape == "shelf":
        return _shelf_compartments(o)
    if shape == "plate":  # the square inscribed in the well's flat floor (radius 0.8 (1 - rim) of the plate's)
        h = 0.8 * (1 - o.shape_params.get("rim", 0.25)) * 0.5 / math.sqrt(2)
        return [_unit_to_local(o, (0.5 - h, 0.5 - h, 0.5), (0.5 + h, 0.5 + h, 1.0))]
    return [_unit_to_local(o, (x0, 0.0, z0), (x1, 1.0, z1)) for x0, x1, z0, z1 in shapes.wall_openings(o.shape_params)]


@dataclass(frozen=True)
class Surface:
    """A horizontal rectangle a child may rest on, in the object's frame: z, x and y ranges, free height above."""

    z: float
    x: tuple[float, float]
    y: tuple[float, float]
    clearance: float


SUPPORTING = frozenset({"table", "cabinet", "shelf", "desk", "floor", "ground", "road", "sidewalk", "box", "plate", "book"})


def surfaces(o: ObjectSpec) -> list[Surface]:
    """Where children may rest on `o` (empty for objects that carry nothing)."""
    sx, sy, sz = o.size
    if o.semantic_class not in SUPPORTING:
        return []
    top = Surface(sz / 2, (-sx / 2, sx / 2), (-sy / 2, sy / 2), math.inf)
    if o.shape == "shelf":
        inner = [Surface(float(lo[2]), (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1])),
                         float(hi[2] - lo[2])) for lo, hi in _shelf_compartments(o)]
        return inner + [top]
    if o.shape == "table" and o.shape_params.get("round", 0):
        r = min(sx, sy) / 2 / math.sqrt(2)  # the square inscribed in the round top
        return [Surface(sz / 2, (-r, r), (-r, r), math.inf)]
    if o.shape == "plate":  # the flat floor of its well, halfway up (render/shapes.py `_plate`)
        (lo, hi), = cavities(o)
        return [Surface(float(lo[2]), (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1])), math.inf)]
    return [top]


def inside_cavity(child: ObjectSpec, parent: ObjectSpec, eps: float = EPS) -> bool:
    """Does the part of `child`'s box inside `parent`'s lie wholly in one of `parent`'s cavities?"""
    if parent.shape not in ("shelf", "wall", "plate"):
        return False
    holes = cavities(parent)
    if not holes:
        return False
    pts = to_local(parent, corners(child))
    half = np.asarray(parent.size, float) / 2
    lo_pts, hi_pts = np.maximum(pts.min(0), -half), np.minimum(pts.max(0), half)
    return any(np.all(lo_pts >= lo - eps) and np.all(hi_pts <= hi + eps) for lo, hi in holes)


def collide(a: ObjectSpec, b: ObjectSpec, eps: float = EPS) -> bool:
    """Do the objects interpenetrate (boxes overlap and neither sits in a cavity of the other)?"""
    return boxes_overlap(a, b, eps) and not inside_cavity(a, b, eps) and not inside_cavity(b, a, eps)


def colliding_pairs(objects: list[ObjectSpec], skip_structure: bool = True) -> list[tuple[int, int]]:
    """Every interpenetrating pair (i < j); wall-to-wall and wall-to-floor contacts are skipped when asked."""
    boxes = np.stack([aabb(o) for o in objects]) if objects else np.zeros((0, 2, 3))
    out = []
    for i in range(len(objects)):
        near = np.all(boxes[i + 1:, 0] < boxes[i, 1] - EPS, 1) & np.all(boxes[i + 1:, 1] > boxes[i, 0] + EPS, 1)
        for j in np.flatnonzero(near) + i + 1:
            if skip_structure and _structural(objects[i]) and _structural(objects[j]):
                continue
            if collide(objects[i], objects[j]):
                out.append((i, int(j)))
    return out


def _structural(o: ObjectSpec) -> bool:
    return o.semantic_class in STRUCTURE


class Layout:
    """A growing scene: `add` places an object only where it collides with nothing placed so far.

    `objects` are the spec's objects in order (an index here is a spec index); ghosts are virtual
    obstacles (a door's clearance, the notch of an L-shaped room) that block placement but are not
    rendered.
    """

    def __init__(self) -> None:
        self.objects: list[ObjectSpec] = []
        self.ghosts: list[ObjectSpec] = []
        self._boxes = np.zeros((0, 2, 3))
        self._owners: list[ObjectSpec] = []

    def fits(self, o: ObjectSpec) -> bool:
        box = aabb(o)
        near = np.all(self._boxes[:, 0] < box[1] - EPS, 1) & np.all(self._boxes[:, 1] > box[0] + EPS, 1)
        return not any(collide(o, self._owners[j]) for j in np.flatnonzero(near))

    def add(self, o: ObjectSpec, check: bool = True, ghost: bool = False) -> int | None:
        """Place `o` (unless it collides and `check`); its spec index, or None (also for a ghost)."""
        if check and not self.fits(o):
            return None
        self._boxes = np.concatenate([self._boxes, aabb(o)[None]])
        self._owners.append(o)
        if ghost:
            self.ghosts.append(o)
            return None
        self.objects.append(o)
        return len(self.objects) - 1


# ---------------------------------------------------------------- proxies and the coarse ray cast

# Proxy parts in the shape's unit coordinates [0, 1]^3 (lo, hi); shapes not listed use their whole box,
# revolved ones shrunk to the inscribed square's width.
_ROUND = frozenset({"sphere", "cylinder", "cone", "vase", "bottle", "bowl", "mug", "barrel", "capsule", "tower",
                    "column", "torus", "plate", "rock", "pyramid", "lamp", "stool", "tree", "pole", "sign"})


def proxy_parts(o: ObjectSpec) -> list[tuple[tuple, tuple]]:
    """The object's coarse stand-in boxes in its unit coordinates."""
    p = o.shape_params
    if o.shape == "table":
        if p.get("round", 0):
            return [((0.15, 0.15, 0.93), (0.85, 0.85, 1.0)), ((0.45, 0.45, 0.0), (0.55, 0.55, 0.93))]
        return [((0, 0, 0.93), (1, 1, 1))] + [((x, y, 0), (x + 0.08, y + 0.08, 0.93)) for x in (0.03, 0.89)
                                              for y in (0.03, 0.89)]
    if o.shape == "shelf":
        parts = [((0, 0, 0), (0.04, 1, 1)), ((0.96, 0, 0), (1, 1, 1))]
        n = int(p.get("shelves", 4))
        parts += [((0, 0, k / n * 0.97), (1, 1, k / n * 0.97 + 0.03)) for k in range(n + 1)]
        return parts + ([((0, 0.96, 0), (1, 1, 1))] if p.get("back", 1) else [])
    if o.shape == "chair":
        return [((0, 0, 0.42), (1, 1, 0.5)), ((0, 0.9, 0.5), (1, 1, 1))] + [
            ((x, y, 0), (x + 0.1, y + 0.1, 0.42)) for x in (0, 0.9) for y in (0, 0.9)]
    if o.shape == "wall":
        return shapes.wall_parts(p)
    if o.shape == "window":
        f = p.get("frame", 0.06)
        return [((0, 0, 0), (f, 1, 1)), ((1 - f, 0, 0), (1, 1, 1)), ((0, 0, 0), (1, 1, f)), ((0, 0, 1 - f), (1, 1, 1))]
    if o.shape == "fence":
        return [((0, 0.25, 0.3), (1, 0.75, 0.8))]
    if o.shape in _ROUND:
        return [((0.15, 0.15, 0), (0.85, 0.85, 1))]
    return [((0, 0, 0), (1, 1, 1))]


def proxy_arrays(objects: list[ObjectSpec]) -> tuple[np.ndarray, ...]:
    """Centers (P, 3), yaws (P,), half sizes (P, 3) and owner ids (P,) of every proxy part."""
    centers, yaws, halves, owners = [], [], [], []
    for k, o in enumerate(objects, start=1):
        size = np.asarray(o.size, float)
        yaw = yaw_of(o)
        c, s = math.cos(yaw), math.sin(yaw)
        parts = np.asarray(proxy_parts(o), float)  # (n, 2, 3)
        lo, hi = (parts[:, 0] - 0.5) * size, (parts[:, 1] - 0.5) * size
        mid = (lo + hi) / 2
        centers.append(np.asarray(o.location) + np.column_stack([c * mid[:, 0] - s * mid[:, 1],
                                                                 s * mid[:, 0] + c * mid[:, 1], mid[:, 2]]))
        yaws.append(np.full(len(parts), yaw))
        halves.append((hi - lo) / 2)
        owners.append(np.full(len(parts), k))
    return np.concatenate(centers), np.concatenate(yaws), np.concatenate(halves), np.concatenate(owners)


def _in_frustum(camera: CameraSpec, centers: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Which bounding spheres reach into the camera's view (conservative)."""
    ext = camera.world_to_camera()
    p = centers @ ext[:3, :3].T + ext[:3, 3]
    keep = p[:, 2] > -radii
    w, h = camera.width, camera.height
    for x, y in (((0.0, 0.0), (w, 0.0)), ((w, 0.0), (w, h)), ((w, h), (0.0, h)), ((0.0, h), (0.0, 0.0))):
        a = np.array([(x[0] - camera.cx) / camera.fx, (x[1] - camera.cy) / camera.fy, 1.0])
        b = np.array([(y[0] - camera.cx) / camera.fx, (y[1] - camera.cy) / camera.fy, 1.0])
        n = np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])
        n /= math.sqrt(n @ n)
        keep &= p @ n > -radii
    return keep


def cast(camera: CameraSpec, objects: list[ObjectSpec], width: int = 40, height: int = 30,
         proxies: tuple[np.ndarray, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Instance ids (H, W; 0 = miss) and planar depth (+inf on a miss) on a coarse grid over the view.

    `proxies`: `proxy_arrays(objects)`, when casting many views of one scene."""
    if not objects:
        return np.zeros((height, width), np.int64), np.full((height, width), np.inf)
    centers, yaws, halves, owners = proxy_arrays(objects) if proxies is None else proxies
    keep = _in_frustum(camera, centers, np.linalg.norm(halves, axis=1))
    centers, yaws, halves, owners = centers[keep], yaws[keep], halves[keep], owners[keep]
    scale = width / camera.width
    K = np.array([[camera.fx * scale, 0, camera.cx * scale], [0, camera.fy * scale, camera.cy * height / camera.height],
                  [0, 0, 1]])
    rays = (cam.pixel_rays(K, height, width).reshape(-1, 3) @ camera.world_to_camera()[:3, :3]).astype(np.float32)
    eye = np.asarray(camera.location, float)
    c, s = np.cos(yaws)[:, None].astype(np.float32), np.sin(yaws)[:, None].astype(np.float32)
    rel = (eye - centers).astype(np.float32)
    o = [(np.cos(yaws) * rel[:, 0] + np.sin(yaws) * rel[:, 1])[:, None], (-np.sin(yaws) * rel[:, 0]
         + np.cos(yaws) * rel[:, 1])[:, None], rel[:, 2:3]]
    d = [c * rays[:, 0] + s * rays[:, 1], -s * rays[:, 0] + c * rays[:, 1], np.broadcast_to(rays[:, 2], c.shape[:1] + rays.shape[:1])]
    tnear = np.full(d[0].shape, -np.inf, np.float32)
    tfar = np.full(d[0].shape, np.inf, np.float32)
    for k in range(3):
        dk = np.where(np.abs(d[k]) < 1e-12, np.float32(1e-12), d[k])
        h = halves[:, k:k + 1].astype(np.float32)
        t1, t2 = (-h - o[k]) / dk, (h - o[k]) / dk
        tnear = np.maximum(tnear, np.minimum(t1, t2))
        tfar = np.minimum(tfar, np.maximum(t1, t2))
    t = np.where((tnear <= tfar) & (tnear > 1e-6), tnear, np.inf)
    if not len(t):
        return np.zeros((height, width), np.int64), np.full((height, width), np.inf)
    best = t.argmin(0)
    depth = t[best, np.arange(t.shape[1])].astype(np.float64)
    ids = np.where(np.isfinite(depth), owners[best], 0)
    return ids.reshape(height, width), depth.reshape(height, width)


def view_stats(ids: np.ndarray, depth: np.ndarray, min_share: float = 0.001) -> dict[str, float]:
    """Visible instances (> `min_share` of the pixels), the largest instance's share, depth p5/p50/p95
    over the pixels that hit something, and the share that hit nothing (sky)."""
    n = ids.size
    counts = np.bincount(ids.ravel())[1:]
    shares = counts / n
    finite = depth[np.isfinite(depth)]
    p5, p50, p95 = (np.percentile(finite, (5, 50, 95)) if finite.size else (math.inf,) * 3)
    return {"visible": int(np.count_nonzero(shares > min_share)), "largest_share": float(shares.max(initial=0.0)),
            "depth_p5": float(p5), "depth_p50": float(p50), "depth_p95": float(p95),
            "sky_share": float(1 - finite.size / n)}


def cull_unseen(camera: CameraSpec, objects: list[ObjectSpec], max_radius: float = 1.5,
                grid: tuple[int, int] = (48, 36), proxies: tuple[np.ndarray, ...] | None = None
                ) -> tuple[list[ObjectSpec], int]:
    """Drop the small objects (bounding radius < `max_radius`) the camera cannot see: wholly outside the
    view, or hit by no ray of a `grid` cast (hidden behind others, or under a pixel of that grid).
    Every support of a kept object is kept; supports are renumbered. Returns (kept objects, number dropped).

    What is out of sight costs render time and shows only in shadows and reflections; structures,
    windows and doors (the frames of the walls' openings) and large objects always stay.
    """
    radii = np.array([0.5 * float(np.linalg.norm(o.size)) for o in objects])
    keep = (radii >= max_radius) | np.array([o.semantic_class in STRUCTURE or o.semantic_class in OPENINGS
                                             for o in objects])
    ids, _ = cast(camera, objects, *grid, proxies=proxies)
    keep[np.unique(ids[ids > 0]) - 1] = True
    for i in range(len(objects) - 1, -1, -1):  # supports come before what rests on them
        if keep[i] and objects[i].support is not None:
            keep[objects[i].support] = True
    new_index = np.cumsum(keep) - 1
    kept = []
    for i in np.flatnonzero(keep):
        o = objects[i]
        kept.append(o if o.support is None else _with_support(o, int(new_index[o.support])))
    return kept, int(len(objects) - len(kept))


def _with_support(o: ObjectSpec, support: int) -> ObjectSpec:
    from dataclasses import replace

    return replace(o, support=support)
