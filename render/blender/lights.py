"""The world of a scene in Cycles: Blender's physical skies (Hosek-Wilkie, Nishita) or an HDRI image.

The uniform and gradient worlds stay in builder.set_world; this module adds the two that need
more nodes. The Nishita sky is Blender's "Single Scattering" sky texture with its sun disc off:
the sun is the Sun lamp `render.lights.daylight` points the same way (sampled exactly by Cycles).
"""

from __future__ import annotations

import bpy

from render.lights import EnvironmentSpec, sun_direction


def nishita(world: bpy.types.World, spec: EnvironmentSpec) -> None:
    nodes, links = world.node_tree.nodes, world.node_tree.links
    background = next(n for n in nodes if n.bl_idname == "ShaderNodeBackground")
    background.inputs["Strength"].default_value = spec.strength
    sky = nodes.new("ShaderNodeTexSky")
    sky.sky_type = "SINGLE_SCATTERING"  # Nishita's model (Blender 5.0's name for it)
    sky.sun_disc = False
    sky.sun_elevation, sky.sun_rotation = spec.sun_elevation, spec.sun_rotation
    sky.altitude = spec.altitude
    sky.air_density, sky.aerosol_density, sky.ozone_density = spec.air_density, spec.aerosol_density, spec.ozone_density
    links.new(sky.outputs["Color"], background.inputs["Color"])


def hosek_wilkie(world: bpy.types.World, spec: EnvironmentSpec) -> None:
    """Blender's analytic Hosek-Wilkie sky (no precomputed texture), sun along render.lights.sun_direction."""
    nodes, links = world.node_tree.nodes, world.node_tree.links
    background = next(n for n in nodes if n.bl_idname == "ShaderNodeBackground")
    background.inputs["Strength"].default_value = spec.strength
    sky = nodes.new("ShaderNodeTexSky")
    sky.sky_type = "HOSEK_WILKIE"
    sky.sun_direction = tuple(float(x) for x in sun_direction(spec.sun_elevation, spec.sun_rotation))
    sky.turbidity = spec.turbidity
    sky.ground_albedo = 0.3
    links.new(sky.outputs["Color"], background.inputs["Color"])


def hdri(world: bpy.types.World, spec: EnvironmentSpec) -> None:
    """An equirectangular .hdr/.exr (scene-linear) around the scene, turned by image_rotation about z."""
    nodes, links = world.node_tree.nodes, world.node_tree.links
    background = next(n for n in nodes if n.bl_idname == "ShaderNodeBackground")
    background.inputs["Strength"].default_value = spec.strength
    image = bpy.data.images.load(spec.image, check_existing=True)
    tex = nodes.new("ShaderNodeTexEnvironment")
    tex.image = image
    mapping = nodes.new("ShaderNodeMapping")
    mapping.inputs["Rotation"].default_value = (0.0, 0.0, spec.image_rotation)
    links.new(nodes.new("ShaderNodeTexCoord").outputs["Generated"], mapping.inputs["Vector"])
    links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
    links.new(tex.outputs["Color"], background.inputs["Color"])


WORLDS = {"hosek_wilkie": hosek_wilkie, "nishita": nishita, "hdri": hdri}
