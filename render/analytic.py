"""Exact ray-cast ground truth for simple scenes (spheres, boxes, a room, a ground plane).

Pure numpy. Gives planar depth, camera-frame normals and instance ids with known answers:
test fixtures for the codecs and the renderer, and realistic smooth maps for benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from render import camera


@dataclass(frozen=True)
class Sphere:
    center: tuple[float, float, float]
    radius: float


@dataclass(frozen=True)
class Box:
    """Axis-aligned box seen from outside."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]


@dataclass(frozen=True)
class Room:
    """Axis-aligned box seen from inside (walls, floor, ceiling)."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]


@dataclass(frozen=True)
class GroundPlane:
    height: float = 0.0


@dataclass(frozen=True)
class Plane:
    """Infinite plane through `point` with unit `normal` (any orientation)."""

    point: tuple[float, float, float]
    normal: tuple[float, float, float]


@dataclass
class AnalyticScene:
    objects: list = field(default_factory=list)


@dataclass
class GroundTruth:
    depth: np.ndarray  # (H, W) float32 planar z, +inf on a miss
    normals: np.ndarray  # (H, W, 3) float32 camera frame, facing the camera; NaN on a miss
    instance: np.ndarray  # (H, W) uint16, object index + 1, 0 on a miss


def _hit_sphere(o: np.ndarray, d: np.ndarray, s: Sphere) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(s.center)
    oc = o - c
    a = np.einsum("...k,...k", d, d)
    b = np.einsum("...k,k", d, oc)
    disc = b * b - a * (oc @ oc - s.radius ** 2)
    sq = np.sqrt(np.maximum(disc, 0))
    t0, t1 = (-b - sq) / a, (-b + sq) / a
    t = np.where(t0 > 1e-9, t0, t1)
    t = np.where((disc >= 0) & (t > 1e-9), t, np.inf)
    n = (o + t[..., None] * d - c) / s.radius
    return t, n


def _slabs(o: np.ndarray, d: np.ndarray, lo, hi) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        ta, tb = (lo - o) * inv, (hi - o) * inv
    tmin, tmax = np.minimum(ta, tb), np.maximum(ta, tb)
    return tmin.max(-1), tmin.argmax(-1), tmax.min(-1), tmax.argmin(-1)


def _hit_box(o: np.ndarray, d: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    tnear, axis, tfar, _ = _slabs(o, d, box.lo, box.hi)
    t = np.where((tnear <= tfar) & (tnear > 1e-9), tnear, np.inf)
    n = np.zeros(d.shape)
    np.put_along_axis(n, axis[..., None], -np.sign(np.take_along_axis(d, axis[..., None], -1)), -1)
    return t, n


def _hit_room(o: np.ndarray, d: np.ndarray, room: Room) -> tuple[np.ndarray, np.ndarray]:
    _, _, tfar, axis = _slabs(o, d, room.lo, room.hi)
    t = np.where(tfar > 1e-9, tfar, np.inf)
    n = np.zeros(d.shape)
    np.put_along_axis(n, axis[..., None], -np.sign(np.take_along_axis(d, axis[..., None], -1)), -1)
    return t, n


def _hit_ground(o: np.ndarray, d: np.ndarray, g: GroundPlane) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (g.height - o[2]) / d[..., 2]
    t = np.where(np.isfinite(t) & (t > 1e-9), t, np.inf)
    n = np.zeros(d.shape)
    n[..., 2] = 1.0
    return t, n


def _hit_plane(o: np.ndarray, d: np.ndarray, p: Plane) -> tuple[np.ndarray, np.ndarray]:
    n = np.asarray(p.normal, float) / np.linalg.norm(p.normal)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = ((np.asarray(p.point, float) - o) @ n) / (d @ n)
    t = np.where(np.isfinite(t) & (t > 1e-9), t, np.inf)
    return t, np.broadcast_to(n, d.shape).copy()


_HITS = {Sphere: _hit_sphere, Box: _hit_box, Room: _hit_room, GroundPlane: _hit_ground, Plane: _hit_plane}


def render(scene: AnalyticScene, K: np.ndarray, world_to_camera: np.ndarray, height: int, width: int) -> GroundTruth:
    """Ray-cast every pixel center; nearest hit wins."""
    rot = world_to_camera[:3, :3]
    rays_cam = camera.pixel_rays(K, height, width)  # z = 1: ray parameter = planar depth
    d = rays_cam @ rot  # world directions (rot.T @ ray for each ray)
    o = camera.camera_center(world_to_camera)
    depth = np.full((height, width), np.inf)
    normal_w = np.full((height, width, 3), np.nan)
    inst = np.zeros((height, width), np.uint16)
    for k, obj in enumerate(scene.objects, start=1):
        t, n = _HITS[type(obj)](o, d, obj)
        closer = t < depth
        depth[closer] = t[closer]
        normal_w[closer] = n[closer]
        inst[closer] = k
    n_cam = normal_w @ rot.T
    facing = np.einsum("hwk,hwk->hw", n_cam, rays_cam)
    n_cam[facing > 0] *= -1
    return GroundTruth(depth.astype(np.float32), n_cam.astype(np.float32), inst)


def demo_room(height: int = 256, width: int = 256, seed: int = 0, focal_mm: float = 24.0) -> tuple[GroundTruth, np.ndarray, np.ndarray]:
    """A seeded indoor room with furniture-like boxes and spheres. Returns (truth, K, extrinsics)."""
    rng = np.random.default_rng(seed)
    size = rng.uniform([4, 3, 2.4], [9, 7, 3.2])
    objects: list = [Room((0, 0, 0), tuple(size))]
    for _ in range(int(rng.integers(3, 7))):
        w = rng.uniform([0.4, 0.4, 0.4], [1.6, 1.2, 1.2])
        x = rng.uniform(0, size[:2] - w[:2])
        objects.append(Box((x[0], x[1], 0.0), (x[0] + w[0], x[1] + w[1], w[2])))
    for _ in range(int(rng.integers(1, 4))):
        r = rng.uniform(0.15, 0.5)
        c = rng.uniform([r, r, r], size - r)
        objects.append(Sphere(tuple(c), r))
    eye = np.array([0.3 * size[0], 0.15 * size[1], rng.uniform(1.2, 1.8)])
    target = np.array([rng.uniform(0.6, 0.9) * size[0], rng.uniform(0.6, 0.9) * size[1], rng.uniform(0.3, 1.2)])
    K = camera.intrinsics(width, height, focal_mm)
    ext = camera.look_at(eye, target)
    return render(AnalyticScene(objects), K, ext, height, width), K, ext


def demo_outdoor(height: int = 256, width: int = 256, seed: int = 0, focal_mm: float = 35.0) -> tuple[GroundTruth, np.ndarray, np.ndarray]:
    """A seeded outdoor scene: ground, large blocks out to ~150 m, and sky at +inf."""
    rng = np.random.default_rng(seed)
    objects: list = [GroundPlane(0.0)]
    for _ in range(8):
        dist = rng.uniform(8, 150)
        ang = rng.uniform(-0.5, 0.5)
        w, h = rng.uniform(3, 20), rng.uniform(4, 40)
        cx, cy = dist * np.cos(ang), dist * np.sin(ang)
        objects.append(Box((cx, cy - w / 2, 0.0), (cx + w, cy + w / 2, h)))
    objects.append(Sphere((rng.uniform(3, 6), rng.uniform(-1, 1), 0.6), 0.6))
    K = camera.intrinsics(width, height, focal_mm)
    ext = camera.look_at((0.0, 0.0, 1.6), (10.0, 0.0, rng.uniform(0.5, 2.5)))
    return render(AnalyticScene(objects), K, ext, height, width), K, ext
