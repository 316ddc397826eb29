"""The Blender adapter: the only place in vistune that imports `bpy`.

    from render.blender import BlenderRenderer, RenderSettings
    renderer = BlenderRenderer(RenderSettings(samples=32))
    result = renderer.render(spec)        # RenderResult: rgb, depth, normals, instance, semantic, timings
"""

from render.blender.renderer import BlenderRenderer, RenderResult
from render.settings import RenderSettings

__all__ = ["BlenderRenderer", "RenderResult", "RenderSettings"]
