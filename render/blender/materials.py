"""Procedural materials: one Cycles shader-node tree per `render.materials` family (no image files).

Every tree is a Principled BSDF fed by a few procedural textures (wave, noise, voronoi, brick)
read in the object's own metric coordinates, scaled by `texture_scale` (repeats per meter) and
offset by `variant`; the texture's height drives a Bump node scaled by `bump`. Bump only changes
the shading normal of the beauty pass: the ground-truth pass replaces every material by its own
shader-free one (renderer.py), so depth, normals and ids never see it. Texture detail is kept to
2-3 octaves: each octave is paid per shading sample.
"""

from __future__ import annotations

import math
from typing import Callable

import bpy

from render.materials import MaterialSpec

Socket = bpy.types.NodeSocket


class _Tree:
    """A material's node tree with small helpers (node creation, inputs, links)."""

    def __init__(self, mat: bpy.types.Material, spec: MaterialSpec) -> None:
        self.nodes, self.links, self.spec = mat.node_tree.nodes, mat.node_tree.links, spec
        self.bsdf = next(n for n in self.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")

    def node(self, kind: str, **inputs) -> bpy.types.Node:
        n = self.nodes.new(kind)
        for name, value in inputs.items():
            self.set(n, name.replace("_", " "), value)
        return n

    def set(self, node: bpy.types.Node, name: str, value) -> None:
        socket = node.inputs.get(name)
        if socket is None:
            raise RuntimeError(f"Blender node {node.bl_idname} has no input {name!r}; Blender API changed?")
        if isinstance(value, bpy.types.NodeSocket):
            self.links.new(value, socket)
        else:
            socket.default_value = value

    def coords(self, stretch=(1.0, 1.0, 1.0)) -> Socket:
        """Object coordinates (meters) * texture_scale * stretch, offset by the variant."""
        s, v = self.spec.texture_scale, self.spec.variant
        offset = (math.sin(v * 12.9898) * 97.0, math.sin(v * 78.233) * 97.0, math.sin(v * 37.719) * 97.0)
        mapping = self.node("ShaderNodeMapping", Location=offset, Scale=tuple(s * k for k in stretch))
        mapping.vector_type = "POINT"  # p * scale + location
        self.links.new(self.node("ShaderNodeTexCoord").outputs["Object"], mapping.inputs["Vector"])
        return mapping.outputs["Vector"]

    def noise(self, vector: Socket, scale: float = 1.0, detail: float = 2.0, roughness: float = 0.5,
              distortion: float = 0.0) -> Socket:
        n = self.node("ShaderNodeTexNoise", Vector=vector, Scale=scale, Detail=detail, Roughness=roughness,
                      Distortion=distortion)
        return n.outputs["Factor"]

    def mix_color(self, factor: Socket, a=None, b=None) -> Socket:
        mix = self.nodes.new("ShaderNodeMix")
        mix.data_type = "RGBA"
        mix.clamp_factor = True
        self.links.new(factor, mix.inputs["Factor"])
        mix.inputs["A"].default_value = (*(a or self.spec.color), 1.0)
        mix.inputs["B"].default_value = (*(b or self.spec.texture_color), 1.0)
        return mix.outputs["Result"]

    def map_range(self, value: Socket, lo: float, hi: float, to_lo: float = 0.0, to_hi: float = 1.0) -> Socket:
        n = self.node("ShaderNodeMapRange", Value=value)
        n.clamp = True
        n.inputs[1].default_value, n.inputs[2].default_value = lo, hi
        n.inputs[3].default_value, n.inputs[4].default_value = to_lo, to_hi
        return n.outputs["Result"]

    def math(self, op: str, a, b=0.0) -> Socket:
        n = self.nodes.new("ShaderNodeMath")
        n.operation = op
        for i, x in enumerate((a, b)):
            if isinstance(x, bpy.types.NodeSocket):
                self.links.new(x, n.inputs[i])
            else:
                n.inputs[i].default_value = x
        return n.outputs["Value"]

    def bump(self, height: Socket, distance: float = 0.002) -> None:
        """Relief from `height` (0..1) into the BSDF's normal, scaled by the spec's bump strength."""
        if self.spec.bump <= 0:
            return
        b = self.node("ShaderNodeBump", Strength=float(self.spec.bump), Distance=distance, Height=height)
        self.links.new(b.outputs["Normal"], self.bsdf.inputs["Normal"])

    def surface(self, color, roughness) -> None:
        self.set(self.bsdf, "Base Color", color if isinstance(color, bpy.types.NodeSocket) else (*color, 1.0))
        self.set(self.bsdf, "Roughness", roughness)
        self.set(self.bsdf, "Metallic", self.spec.metallic)
        self.set(self.bsdf, "IOR", self.spec.ior)


def _rough_var(t: _Tree, factor: Socket, spread: float) -> Socket:
    """The spec's roughness, varied by +-`spread` with `factor` (0..1)."""
    r = t.spec.roughness
    return t.map_range(factor, 0.0, 1.0, max(r - spread, 0.0), min(r + spread, 1.0))


def _wood(t: _Tree) -> None:
    # Rings around the object's z (a log's axis), pulled by noise into grain; fine noise adds pores.
    v = t.coords((1.0, 1.0, 0.08))
    wave = t.node("ShaderNodeTexWave", Vector=v, Scale=1.0, Distortion=6.0, Detail=2.0, Detail_Scale=1.5)
    wave.wave_type, wave.rings_direction, wave.wave_profile = "RINGS", "Z", "SAW"
    grain = t.map_range(wave.outputs["Factor"], 0.2, 1.0)
    t.surface(t.mix_color(grain), _rough_var(t, grain, 0.1))
    t.bump(grain)


def _marble(t: _Tree) -> None:
    v = t.coords()
    wave = t.node("ShaderNodeTexWave", Vector=v, Scale=1.0, Distortion=12.0, Detail=3.0, Detail_Scale=1.2)
    wave.wave_type, wave.bands_direction = "BANDS", "DIAGONAL"
    vein = t.math("POWER", t.math("SUBTRACT", 1.0, wave.outputs["Factor"]), 6.0)  # thin dark veins
    t.surface(t.mix_color(vein), t.spec.roughness)
    t.bump(vein, 0.0005)


def _grid(t: _Tree, offset: float, width: float, height: float, mortar: float) -> None:
    v = t.coords()
    brick = t.node("ShaderNodeTexBrick", Vector=v, Scale=1.0, Mortar_Size=mortar, Mortar_Smooth=0.1,
                   Bias=0.0, Brick_Width=width, Row_Height=height)
    brick.offset = offset
    c1 = t.spec.color
    brick.inputs["Color1"].default_value = (*c1, 1.0)
    brick.inputs["Color2"].default_value = (*(min(c * 0.8, 1.0) for c in c1), 1.0)
    brick.inputs["Mortar"].default_value = (*t.spec.texture_color, 1.0)
    joint = brick.outputs["Factor"]  # 1 in the mortar
    t.surface(brick.outputs["Color"], t.map_range(joint, 0.0, 1.0, t.spec.roughness, 0.9))
    t.bump(t.math("SUBTRACT", 1.0, joint), 0.004)


def _tiles(t: _Tree) -> None:
    _grid(t, 0.0, 1.0, 1.0, 0.02)


def _brick(t: _Tree) -> None:
    _grid(t, 0.5, 0.5, 0.25, 0.02)  # a 2:1 brick in units of 1 / texture_scale


def _noisy(t: _Tree, stretch=(1.0, 1.0, 1.0), detail: float = 3.0, contrast=(0.3, 0.7), distance: float = 0.002,
           spread: float = 0.1) -> None:
    """A surface whose colour, roughness and relief follow one noise (concrete, plaster, carpet, ...)."""
    n = t.map_range(t.noise(t.coords(stretch), detail=detail), *contrast)
    t.surface(t.mix_color(n), _rough_var(t, n, spread))
    t.bump(n, distance)


def _concrete(t: _Tree) -> None:
    _noisy(t, detail=3.0, contrast=(0.35, 0.75), distance=0.003)


def _plaster(t: _Tree) -> None:
    _noisy(t, detail=2.0, contrast=(0.3, 0.7), distance=0.001, spread=0.05)


def _carpet(t: _Tree) -> None:
    _noisy(t, detail=1.0, contrast=(0.2, 0.8), distance=0.003, spread=0.05)


def _rubber(t: _Tree) -> None:
    _noisy(t, detail=1.0, contrast=(0.2, 0.8), distance=0.0005, spread=0.1)


def _plastic(t: _Tree) -> None:
    _noisy(t, detail=1.0, contrast=(0.0, 1.0), distance=0.0002, spread=0.05)


def _painted_metal(t: _Tree) -> None:
    _noisy(t, detail=1.0, contrast=(0.0, 1.0), distance=0.0003, spread=0.05)  # orange peel


def _fabric(t: _Tree) -> None:
    # Weave: two crossing sine bands; the threads' crossings are raised.
    v = t.coords()
    warp = t.node("ShaderNodeTexWave", Vector=v, Scale=1.0, Distortion=0.5, Detail=0.0)
    warp.wave_type, warp.bands_direction, warp.wave_profile = "BANDS", "X", "SIN"
    weft = t.node("ShaderNodeTexWave", Vector=v, Scale=1.0, Distortion=0.5, Detail=0.0)
    weft.wave_type, weft.bands_direction, weft.wave_profile = "BANDS", "Y", "SIN"
    weave = t.math("MULTIPLY", warp.outputs["Factor"], weft.outputs["Factor"])
    t.surface(t.mix_color(t.math("SUBTRACT", 1.0, weave)), t.spec.roughness)
    t.set(t.bsdf, "Sheen Weight", 0.5)
    t.bump(weave, 0.0005)


def _leather(t: _Tree) -> None:
    vor = t.node("ShaderNodeTexVoronoi", Vector=t.coords(), Scale=1.0)
    vor.feature = "F1"
    cells = t.map_range(vor.outputs["Distance"], 0.0, 0.6)
    t.surface(t.mix_color(cells), _rough_var(t, cells, 0.1))
    t.bump(t.math("SUBTRACT", 1.0, cells), 0.0005)


def _brushed_metal(t: _Tree) -> None:
    streaks = t.map_range(t.noise(t.coords((0.01, 1.0, 1.0)), detail=1.0), 0.3, 0.7)  # long along x
    t.surface(t.mix_color(streaks), _rough_var(t, streaks, 0.08))
    t.set(t.bsdf, "Anisotropic", 0.6)
    t.bump(streaks, 0.0002)


def _glass(t: _Tree) -> None:
    t.surface(t.spec.color, t.spec.roughness)
    t.set(t.bsdf, "Transmission Weight", 1.0)


def _pbr(t: _Tree) -> None:
    """A user's texture set, box-projected in object coordinates (our meshes have no UVs), tiled
    `texture_scale` times per meter. Relief comes from the albedo's luminance through the Bump
    node (a tangent-space normal image needs UVs); the roughness image, if any, drives roughness."""
    images = t.spec.images or {}
    v = t.coords()

    def image(role: str, non_color: bool) -> bpy.types.Node:
        img = bpy.data.images.load(images[role], check_existing=True)
        if non_color:
            img.colorspace_settings.name = "Non-Color"
        node = t.node("ShaderNodeTexImage", Vector=v)
        node.image, node.projection, node.projection_blend = img, "BOX", 0.2
        return node

    albedo = image("albedo", False)
    rough = image("roughness", True).outputs["Color"] if "roughness" in images else t.spec.roughness
    t.surface(albedo.outputs["Color"], rough)
    t.bump(t.node("ShaderNodeRGBToBW", Color=albedo.outputs["Color"]).outputs["Val"], 0.002)


BUILDERS: dict[str, Callable[[_Tree], None]] = {
    "wood": _wood, "marble": _marble, "tiles": _tiles, "brick": _brick, "concrete": _concrete,
    "plaster": _plaster, "fabric": _fabric, "leather": _leather, "carpet": _carpet,
    "painted_metal": _painted_metal, "brushed_metal": _brushed_metal, "plastic": _plastic,
    "glass": _glass, "rubber": _rubber, "pbr": _pbr,
}


def build(spec: MaterialSpec, name: str) -> bpy.types.Material:
    """A new material named `name` for a procedural-family spec (`spec.kind` in BUILDERS)."""
    mat = bpy.data.materials.new(name)  # Blender 5.0: new materials come with a Principled node tree
    tree = _Tree(mat, spec)
    BUILDERS[spec.kind](tree)
    add_emission(tree.bsdf, spec)
    return mat


def add_emission(bsdf: bpy.types.Node, spec: MaterialSpec) -> None:
    if spec.emission > 0:
        bsdf.inputs["Emission Color"].default_value = (*spec.color, 1.0)
        bsdf.inputs["Emission Strength"].default_value = spec.emission
