"""User models in Blender: a .glb/.gltf/.blend file -> one triangle mesh fitted into a unit box.

The file is imported once per process; its meshes (with their object transforms) are merged into
numpy arrays (`shapes.Mesh`, normalized to [-0.5, 0.5]^3 like every procedural shape) and every
datablock the import made is removed again. The builder then makes the object exactly as for a
procedural shape (scaled to the spec's size), so ids, depth and normals come from the mesh that is
rendered. The file's own materials are not used: the spec's material is (procedural or PBR).
"""

from __future__ import annotations

import functools

import bpy
import numpy as np

from render import shapes

_COLLECTIONS = ("objects", "meshes", "materials", "images", "textures", "node_groups", "actions", "cameras",
                "lights", "collections", "armatures", "curves")


class AssetImportError(RuntimeError):
    """A model file Blender could not read, or one without any mesh."""


@functools.lru_cache(maxsize=64)
def model_mesh(path: str) -> shapes.Mesh:
    """The merged, normalized triangle mesh of a model file (cached per path)."""
    before = {name: set(getattr(bpy.data, name)) for name in _COLLECTIONS}
    try:
        objects = _import(path)
        parts = [_triangles(obj) for obj in objects if obj.type == "MESH"]
    finally:
        _remove_new(before)
    parts = [p for p in parts if len(p[1])]
    if not parts:
        raise AssetImportError(f"model {path}: no mesh with faces in it")
    verts, faces, offset = [], [], 0
    for v, f in parts:
        verts.append(v)
        faces.append(f + offset)
        offset += len(v)
    return shapes.normalize(shapes.Mesh(np.concatenate(verts), np.concatenate(faces), smooth=True, sharp_angle=30.0))


def _import(path: str) -> list[bpy.types.Object]:
    lower = path.lower()
    if lower.endswith(".blend"):
        with bpy.data.libraries.load(path, link=False) as (src, dst):
            dst.objects = list(src.objects)
        return [o for o in dst.objects if o is not None]
    names = set(bpy.data.objects.keys())
    try:
        result = bpy.ops.import_scene.gltf(filepath=path)
    except RuntimeError as err:
        raise AssetImportError(f"model {path}: Blender's glTF importer failed: {err}") from err
    if "FINISHED" not in result:
        raise AssetImportError(f"model {path}: Blender's glTF importer returned {result}")
    return [o for name, o in bpy.data.objects.items() if name not in names]


def _triangles(obj: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    mesh = obj.data
    mesh.calc_loop_triangles()
    v = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", v)
    v = v.reshape(-1, 3).astype(np.float64)
    m = np.array(obj.matrix_world, np.float64)
    v = v @ m[:3, :3].T + m[:3, 3]
    f = np.empty(len(mesh.loop_triangles) * 3, np.int32)
    mesh.loop_triangles.foreach_get("vertices", f)
    return v, f.reshape(-1, 3).astype(np.int64)


def _remove_new(before: dict[str, set]) -> None:
    for name in _COLLECTIONS:
        collection = getattr(bpy.data, name)
        for block in list(collection):
            if block not in before[name]:
                collection.remove(block)
