"""Optional user assets (no bpy): a folder of models, PBR texture sets and HDRIs sampled alongside
the procedural shapes, materials and skies.

    <root>/models/*.glb|*.gltf|*.blend           meshes; each is fitted into an object's bounding box
    <root>/textures/<set>/*albedo*|*basecolor*|*diffuse*|*color*  (required) + *rough* + *normal*  (optional)
    <root>/hdris/*.hdr|*.exr                     equirectangular environment maps

`scan(root)` lists what is there (a missing root is a named error; a texture set without an
albedo image is skipped, counted and logged). `apply(spec, library, rng, cfg)` swaps, with the
configured probabilities, some objects' geometry for a user model (same class, same bounding box:
the layout's support and non-interpenetration checks still hold), some materials for a PBR set,
and an outdoor or windowed scene's sky for an HDRI. The Blender adapter imports the files
(render/blender/assets.py); the ground truth stays exact because the model is the mesh rendered.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field

import numpy as np

from render.lights import EnvironmentSpec
from render.materials import MaterialSpec

log = logging.getLogger(__name__)

MODEL_EXTENSIONS = (".glb", ".gltf", ".blend")
HDRI_EXTENSIONS = (".hdr", ".exr")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr")
TEXTURE_ROLES = {  # role -> name fragments (lower case), first match wins
    "albedo": ("albedo", "basecolor", "base_color", "diffuse", "color", "col"),
    "roughness": ("roughness", "rough"),
    "normal": ("normal", "nrm", "nor"),
}
# Objects whose geometry a user model may replace: the things, not the room or the ground.
STRUCTURAL = frozenset({"wall", "floor", "ceiling", "ground", "road", "sidewalk", "window", "door"})


class AssetError(ValueError):
    """A bad asset folder or file; the message names it."""


@dataclass(frozen=True)
class AssetConfig:
    root: str | None = None  # None: procedural only
    p_model: float = 0.3  # per eligible object: use a user model
    p_texture: float = 0.3  # per object: use a user PBR texture set
    p_hdri: float = 0.5  # per scene with a sky: use a user HDRI

    def __post_init__(self) -> None:
        for name in ("p_model", "p_texture", "p_hdri"):
            p = getattr(self, name)
            if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                raise AssetError(f"assets.{name} must be in [0, 1], got {p!r}")


@dataclass
class AssetLibrary:
    root: str
    models: list[str] = field(default_factory=list)
    texture_sets: list[dict[str, str]] = field(default_factory=list)  # role -> image path
    hdris: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: why"

    def __bool__(self) -> bool:
        return bool(self.models or self.texture_sets or self.hdris)


def _files(folder: str, extensions: tuple[str, ...]) -> list[str]:
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if f.lower().endswith(extensions) and os.path.isfile(os.path.join(folder, f)))


def texture_set(folder: str) -> dict[str, str]:
    """Role -> image path for one PBR texture set folder; AssetError if it has no albedo image."""
    images = _files(folder, IMAGE_EXTENSIONS)
    out: dict[str, str] = {}
    for role, fragments in TEXTURE_ROLES.items():
        for path in images:
            stem = os.path.splitext(os.path.basename(path))[0].lower()
            if any(f in stem for f in fragments) and path not in out.values():
                out[role] = path
                break
    if "albedo" not in out:
        raise AssetError(f"texture set {folder}: no albedo image (a name containing one of "
                         f"{list(TEXTURE_ROLES['albedo'])}, extension one of {list(IMAGE_EXTENSIONS)})")
    return out


def scan(root: str) -> AssetLibrary:
    """The assets under `root` (sorted, so a seed picks the same ones on every machine)."""
    if not os.path.isdir(root):
        raise AssetError(f"assets.root {root!r} is not a directory (expected models/, textures/, hdris/ inside)")
    lib = AssetLibrary(root=os.path.abspath(root), models=_files(os.path.join(root, "models"), MODEL_EXTENSIONS),
                       hdris=_files(os.path.join(root, "hdris"), HDRI_EXTENSIONS))
    tex_root = os.path.join(root, "textures")
    for name in sorted(os.listdir(tex_root)) if os.path.isdir(tex_root) else []:
        folder = os.path.join(tex_root, name)
        if not os.path.isdir(folder):
            continue
        try:
            lib.texture_sets.append(texture_set(folder))
        except AssetError as err:
            lib.skipped.append(str(err))
            log.warning("assets: skipped %s", err)
    if not lib:
        raise AssetError(f"assets.root {root!r} holds no models/*{MODEL_EXTENSIONS}, textures/<set>/ or "
                         f"hdris/*{HDRI_EXTENSIONS}")
    return lib


def check_model(path: str, where: str) -> None:
    """Validate an ObjectSpec.asset path (used by render.spec.validate)."""
    if not isinstance(path, str) or not path.lower().endswith(MODEL_EXTENSIONS):
        raise AssetError(f"{where} must be a path ending in one of {list(MODEL_EXTENSIONS)}, got {path!r}")
    if not os.path.isfile(path):
        raise AssetError(f"{where}: no such file {path!r}")


def pbr_material(textures: dict[str, str], rng: np.random.Generator) -> MaterialSpec:
    """A MaterialSpec of kind "pbr" for one texture set, its tiling seeded (1-4 repeats per meter)."""
    return MaterialSpec(kind="pbr", images=dict(textures), roughness=0.5,
                        texture_scale=float(round(rng.uniform(1.0, 4.0), 3)), bump=float(round(rng.uniform(0.3, 1.0), 3)),
                        variant=int(rng.integers(0, 10000)))


def hdri_environment(path: str, rng: np.random.Generator) -> EnvironmentSpec:
    return EnvironmentSpec("hdri", image=path, strength=1.0, image_rotation=float(round(rng.uniform(0, 6.283), 4)))


def apply(spec, library: AssetLibrary, rng: np.random.Generator, cfg: AssetConfig):
    """A copy of `spec` (render.spec.SceneSpec) with some user assets swapped in (see module doc)."""
    out = copy.deepcopy(spec)
    for obj in out.objects:
        if library.models and obj.semantic_class not in STRUCTURAL and rng.uniform() < cfg.p_model:
            obj.asset = library.models[int(rng.integers(len(library.models)))]
        if library.texture_sets and rng.uniform() < cfg.p_texture:
            obj.material = pbr_material(library.texture_sets[int(rng.integers(len(library.texture_sets)))], rng)
    daylight = out.environment.kind in ("sky", "hosek_wilkie", "nishita")
    if library.hdris and daylight and rng.uniform() < cfg.p_hdri:
        out.environment = hdri_environment(library.hdris[int(rng.integers(len(library.hdris)))], rng)
        out.lights = [light for light in out.lights if light.kind != "sun"]  # the HDRI brings its own sun
    return out
