"""Scene specs: plain, JSON-serializable dataclasses that say exactly what to render (no bpy).

Units are meters and radians; the world frame is z up. A spec can be written by hand (a plane
and a sphere at known poses) or sampled from a seed (render/sampling.py); the Blender adapter
renders exactly what it says. Instance ids are object positions + 1 (0 = nothing); semantic
ids index `SceneSpec.class_table()` (0 = unlabeled).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from formats.config import ConfigError, from_dict
from render import camera as cam
from render import assets, lights, materials, shapes
from render.lights import ENVIRONMENT_KINDS, LIGHT_KINDS, EnvironmentSpec, LightSpec  # noqa: F401  (re-exported)
from render.materials import MATERIAL_KINDS, TEXTURES, MaterialSpec  # noqa: F401  (re-exported)

SPEC_VERSION = 1

# Stable semantic vocabulary: id = position + 1. Classes a spec uses beyond these are appended.
SEMANTIC_CLASSES = (
    "wall", "floor", "ceiling", "ground", "table", "chair", "stool", "shelf", "cabinet", "bed", "sofa",
    "lamp", "vase", "bottle", "bowl", "mug", "plate", "stairs", "arch", "building", "tower", "tree",
    "rock", "fence", "column", "monitor", "barrel", "box", "sphere", "cylinder", "cone", "torus",
    "capsule", "pyramid", "prism", "gear", "wedge", "plane", "object",
    # appended later (ids above stay stable): furnished rooms and streets
    "door", "window", "picture", "book", "car", "pole", "road", "sidewalk", "bench", "sign", "desk",
)


class SpecError(ConfigError):
    """An invalid scene spec; the message names the offending field."""


Vec3 = tuple[float, float, float]


@dataclass
class ObjectSpec:
    shape: str
    size: Vec3  # metric extent of the axis-aligned bounding box before rotation
    location: Vec3  # bounding-box center
    rotation: Vec3 = (0.0, 0.0, 0.0)  # XYZ Euler, radians
    material: MaterialSpec = field(default_factory=MaterialSpec)
    semantic_class: str = "object"
    shape_params: dict[str, Any] = field(default_factory=dict)
    asset: str | None = None  # a user model file (render/assets.py) fitted into the bounding box; None: `shape`
    support: int | None = None  # index of the object this one rests on (None: a structure, or it hangs)
    hangs: bool = False  # mounted on a wall or ceiling (pictures, windows, doors), not resting on anything


@dataclass
class CameraSpec:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    location: Vec3
    look_at: Vec3
    up: Vec3 = (0.0, 0.0, 1.0)

    @classmethod
    def from_focal_mm(cls, width: int, height: int, focal_mm: float, location: Vec3, look_at: Vec3) -> "CameraSpec":
        """A centered pinhole with a 35 mm-equivalent focal length."""
        K = cam.intrinsics(width, height, focal_mm)
        return cls(width, height, K[0, 0], K[1, 1], K[0, 2], K[1, 2], tuple(location), tuple(look_at))

    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def world_to_camera(self) -> np.ndarray:
        return cam.look_at(self.location, self.look_at, self.up)

    def focal_mm_35(self) -> float:
        return self.fx / self.width * cam.FULL_FRAME_WIDTH_MM


@dataclass
class SceneSpec:
    camera: CameraSpec
    objects: list[ObjectSpec] = field(default_factory=list)
    lights: list[LightSpec] = field(default_factory=list)
    environment: EnvironmentSpec = field(default_factory=EnvironmentSpec)
    family: str = "custom"
    seed: int | None = None
    version: int = SPEC_VERSION
    view_check: dict[str, Any] = field(default_factory=dict)  # the sampler's camera search (render/sampling.py)

    def class_table(self) -> list[str]:
        """Semantic class names; class id k is entry k - 1."""
        extra = sorted({o.semantic_class for o in self.objects} - set(SEMANTIC_CLASSES))
        return list(SEMANTIC_CLASSES) + extra

    def semantic_ids(self) -> list[int]:
        table = {name: i for i, name in enumerate(self.class_table(), start=1)}
        return [table[o.semantic_class] for o in self.objects]

    def remove_object(self, index: int) -> None:
        """Delete object `index`, renumbering the supports after it (what rested on it now rests on nothing)."""
        del self.objects[index]
        for o in self.objects:
            if o.support is not None and o.support >= index:
                o.support = None if o.support == index else o.support - 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        """Canonical JSON: same spec -> same bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SceneSpec":
        try:
            spec = cls(
                camera=_build(CameraSpec, data["camera"], "camera"),
                objects=[_object(o, f"objects[{i}]") for i, o in enumerate(data.get("objects", []))],
                lights=[_build(LightSpec, x, f"lights[{i}]") for i, x in enumerate(data.get("lights", []))],
                environment=_build(EnvironmentSpec, data.get("environment", {}), "environment"),
                family=data.get("family", "custom"),
                seed=data.get("seed"),
                version=data.get("version", SPEC_VERSION),
                view_check=dict(data.get("view_check", {})),
            )
        except KeyError as err:
            raise SpecError(f"missing field {err.args[0]!r}") from err
        return spec

    @classmethod
    def from_json(cls, text: str) -> "SceneSpec":
        return cls.from_dict(json.loads(text))


def _build(kind: type, data: dict[str, Any], where: str) -> Any:
    """A JSON object -> dataclass `kind` (lists become tuples where the field is a tuple);
    SpecError naming `where` for a non-object, unknown or missing fields."""
    if not isinstance(data, dict):
        raise SpecError(f"{where} must be an object, got {type(data).__name__}")
    allowed = sorted(f.name for f in fields(kind))
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise SpecError(f"{where}: unknown fields {unknown}; allowed: {allowed}")
    try:
        return from_dict(kind, data, where)
    except ConfigError as err:
        raise SpecError(str(err)) from err


def _object(data: dict[str, Any], where: str) -> ObjectSpec:
    data = dict(data)
    material = _build(MaterialSpec, data.pop("material", {}), f"{where}.material")
    obj = _build(ObjectSpec, data, where)
    obj.material = material
    return obj


# ---------------------------------------------------------------- validation


def _vec(value: Any, where: str, lo: float = -math.inf, hi: float = math.inf, strict_lo: bool = False) -> None:
    if not _is_numeric_seq(value) or len(value) != 3:
        raise SpecError(f"{where} must be 3 numbers, got {value!r}")
    for i, x in enumerate(value):
        _num(float(x), f"{where}[{i}]", lo, hi, strict_lo)


def _is_numeric_seq(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)


def _num(x: Any, where: str, lo: float = -math.inf, hi: float = math.inf, strict_lo: bool = False) -> None:
    if not isinstance(x, (int, float, np.floating, np.integer)) or isinstance(x, bool) or not math.isfinite(x):
        raise SpecError(f"{where} must be a finite number, got {x!r}")
    if (x <= lo if strict_lo else x < lo) or x > hi:
        bound = f"> {lo}" if strict_lo else f">= {lo}"
        raise SpecError(f"{where} must be {bound} and <= {hi}, got {x}")


def _choice(x: Any, allowed: tuple, where: str) -> None:
    if x not in allowed:
        raise SpecError(f"{where} must be one of {list(allowed)}, got {x!r}")


def validate(spec: SceneSpec) -> SceneSpec:
    """Check every field; raise SpecError naming the first bad one. Returns the spec.

    Shapes and their parameters are checked against the `render.shapes` registry. Also
    rejects a camera inside an object's (rotated) bounding box.
    """
    if spec.version != SPEC_VERSION:
        raise SpecError(f"version must be {SPEC_VERSION}, got {spec.version!r}")
    c = spec.camera
    for name in ("width", "height"):
        v = getattr(c, name)
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 16384:
            raise SpecError(f"camera.{name} must be an integer in [1, 16384], got {v!r}")
    for name in ("fx", "fy"):
        _num(getattr(c, name), f"camera.{name}", 0, strict_lo=True)
    _num(c.cx, "camera.cx", 0, c.width)
    _num(c.cy, "camera.cy", 0, c.height)
    if abs(c.fx - c.fy) > 1e-6 * c.fx:
        raise SpecError(f"camera.fy must equal camera.fx (square pixels), got fx={c.fx}, fy={c.fy}")
    for name in ("location", "look_at", "up"):
        _vec(getattr(c, name), f"camera.{name}")
    try:
        c.world_to_camera()
    except ValueError as err:
        raise SpecError(f"camera: {err}") from err
    for i, o in enumerate(spec.objects):
        _validate_object(o, f"objects[{i}]")
        _validate_support(o, i, len(spec.objects), f"objects[{i}]")
    try:
        for i, light in enumerate(spec.lights):
            lights.validate_light(light, f"lights[{i}]")
        lights.validate_environment(spec.environment, "environment")
    except lights.LightError as err:
        raise SpecError(str(err)) from err
    eye = np.asarray(c.location, float)
    for i, o in enumerate(spec.objects):
        if inside_box(eye, o):
            raise SpecError(f"camera.location {tuple(c.location)} is inside objects[{i}] ({o.shape}, "
                            f"class {o.semantic_class!r}): move the camera out of its bounding box")
    return spec


def _validate_object(o: ObjectSpec, where: str) -> None:
    _choice(o.shape, tuple(shapes.names()), f"{where}.shape")
    _vec(o.size, f"{where}.size", 0, strict_lo=True)
    _vec(o.location, f"{where}.location")
    _vec(o.rotation, f"{where}.rotation")
    if not isinstance(o.semantic_class, str) or not o.semantic_class:
        raise SpecError(f"{where}.semantic_class must be a non-empty string, got {o.semantic_class!r}")
    if not isinstance(o.shape_params, dict):
        raise SpecError(f"{where}.shape_params must be an object, got {type(o.shape_params).__name__}")
    try:
        shapes.check_params(o.shape, o.shape_params)
    except ValueError as err:
        raise SpecError(f"{where}.shape_params: {err}") from err
    if o.asset is not None:
        try:
            assets.check_model(o.asset, f"{where}.asset")
        except assets.AssetError as err:
            raise SpecError(str(err)) from err
    try:
        materials.validate(o.material, f"{where}.material")
    except materials.MaterialError as err:
        raise SpecError(str(err)) from err


def _validate_support(o: ObjectSpec, index: int, n: int, where: str) -> None:
    s = o.support
    if s is not None and (not isinstance(s, int) or isinstance(s, bool) or not 0 <= s < n or s == index):
        raise SpecError(f"{where}.support must be null or the index of another object in [0, {n}), got {s!r}")
    if not isinstance(o.hangs, bool):
        raise SpecError(f"{where}.hangs must be true or false, got {o.hangs!r}")


def rotation_matrix(euler_xyz: Vec3) -> np.ndarray:
    """Blender's XYZ Euler convention: R = Rz @ Ry @ Rx (object -> world)."""
    x, y, z = euler_xyz
    cx, sx, cy, sy, cz, sz = math.cos(x), math.sin(x), math.cos(y), math.sin(y), math.cos(z), math.sin(z)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def inside_box(point: np.ndarray, o: ObjectSpec, margin: float = 0.0) -> bool:
    """Is `point` inside the object's rotated bounding box (grown by `margin`)?"""
    local = rotation_matrix(o.rotation).T @ (np.asarray(point, float) - np.asarray(o.location, float))
    return bool(np.all(np.abs(local) <= np.asarray(o.size, float) / 2 + margin))
