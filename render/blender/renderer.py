"""Render a SceneSpec with Cycles: a cheap exact ground-truth pass and an optional beauty pass.

Ground truth (depth, normals, instance and semantic ids) comes from a 1-sample render with a
0.01-pixel box filter, no denoising and no bounces: every pixel is one ray through (within
0.005 px of) its center, the point that K describes, so there are no flying pixels and ids
are never blended. Every surface then wears one shader-free material whose only work is to
write two AOVs: the semantic id, and the shading normal already turned to face the camera and
rotated into the camera frame (so no per-pixel conversion is left for Python). The beauty pass (RGB) is a separate render with the configured samples,
denoiser and pixel filter. Both write EXR/PNG to a private temp directory, read back here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import bpy
import numpy as np
from PIL import Image

from render import exr
from render.blender.builder import SEMANTIC_PROPERTY, build_scene, clear_scene
from render.settings import RenderSettings
from render.spec import SceneSpec, validate

_BACKGROUND_DEPTH = 1e9  # Blender writes 1e10 where rays escape
_GT_MATERIAL = "vistune_ground_truth"
_SEMANTIC_AOV = "semantic"
_NORMAL_AOV = "normal"  # camera-frame normal, Cycles camera axes (x right, y up, z forward)


class RenderError(RuntimeError):
    """Blender could not render (device unavailable, missing pass, ...)."""


@dataclass
class RenderResult:
    depth: np.ndarray  # (H, W) float32 planar z in meters, +inf where rays escape
    normals: np.ndarray  # (H, W, 3) float32 camera frame (OpenCV), facing the camera, NaN where no hit
    instance: np.ndarray  # (H, W) uint16, object index + 1
    semantic: np.ndarray  # (H, W) uint16 into spec.class_table()
    K: np.ndarray
    world_to_camera: np.ndarray
    rgb: np.ndarray | None = None  # (H, W, 3) uint8 sRGB
    timings: dict[str, float] = field(default_factory=dict)


class BlenderRenderer:
    """Keeps one bpy session; `render(spec)` builds, renders and tears down one scene."""

    def __init__(self, settings: RenderSettings = RenderSettings()) -> None:
        self.settings = settings
        # read_factory_settings also resets preferences and the engine: configure after it.
        bpy.ops.wm.read_factory_settings(use_empty=True)
        self.scene = bpy.context.scene
        self.scene.render.engine = "CYCLES"
        self._configure_device()
        self._tmp = tempfile.mkdtemp(prefix="vistune-blender-", dir=exr.scratch_dir())

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _configure_device(self) -> None:
        scene, device = self.scene, self.settings.device
        scene.render.threads_mode = "AUTO" if self.settings.threads == 0 else "FIXED"
        if self.settings.threads:
            scene.render.threads = self.settings.threads
        if device == "CPU":
            scene.cycles.device = "CPU"
            return
        prefs = bpy.context.preferences.addons["cycles"].preferences
        prefs.refresh_devices()
        try:
            prefs.compute_device_type = device
        except TypeError as err:
            raise RenderError(f"render.device={device}: this Blender build or machine has no {device} support") from err
        found = [d for d in prefs.devices if d.type == device]
        if not found:
            raise RenderError(f"render.device={device}: no {device} device found")
        for d in prefs.devices:
            d.use = d.type == device
        scene.cycles.device = "GPU"

    def render(self, spec: SceneSpec) -> RenderResult:
        validate(spec)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        clear_scene(self.scene)
        build_scene(self.scene, spec)
        timings["build_s"] = time.perf_counter() - t0
        try:
            result = self._ground_truth(spec, timings)
            if self.settings.rgb:
                result.rgb = self._beauty(timings)
        finally:
            t = time.perf_counter()
            clear_scene(self.scene)
            timings["clear_s"] = time.perf_counter() - t
        result.timings = timings
        return result

    def render_rgb(self, spec: SceneSpec) -> np.ndarray:
        """The beauty pass alone (e.g. an edited scene whose ground truth is not needed)."""
        validate(spec)
        clear_scene(self.scene)
        build_scene(self.scene, spec)
        try:
            return self._beauty({})
        finally:
            clear_scene(self.scene)

    # ------------------------------------------------------------ passes

    def _ground_truth(self, spec: SceneSpec, timings: dict[str, float]) -> RenderResult:
        scene, cyc = self.scene, self.scene.cycles
        cyc.samples = 1
        cyc.use_adaptive_sampling = False
        cyc.use_denoising = False
        cyc.filter_width = 0.01  # box of 1/100 px around the pixel center
        cyc.max_bounces = 0
        cyc.seed = 0
        # The world's importance map costs ~1 s per render at its default 1024^2 resolution and
        # does nothing for first-hit passes.
        scene.world.cycles.sampling_method = "NONE"
        layer = scene.view_layers[0]
        layer.use_pass_z = layer.use_pass_object_index = True
        layer.use_pass_normal = False  # world space: the normal AOV has it in the camera frame
        layer.use_pass_combined = False  # nothing is shaded (Blender 5.0 still writes it)
        # Every surface gets a shader-free material that only writes the AOVs: no BSDF, texture
        # or light evaluation (the ground truth needs none), 3-5x faster at 512 px.
        layer.material_override = self._gt_material()
        settings = scene.render.image_settings
        settings.media_type = "MULTI_LAYER_IMAGE"  # Blender 5.0: set the media type before the format
        settings.file_format = "OPEN_EXR_MULTILAYER"
        # Half floats for color passes (Combined, the normal AOV: normals are stored as half
        # anyway); Blender keeps data passes (Depth, Object Index, value AOVs) in float32.
        settings.color_depth = "16"
        settings.exr_codec = "NONE"
        path = os.path.join(self._tmp, "gt.exr")
        timings["gt_render_s"] = self._render_to(path)
        t = time.perf_counter()
        channels = exr.read_channels(path)
        result = self._convert(channels, spec)
        timings["gt_read_s"] = time.perf_counter() - t
        return result

    def _beauty(self, timings: dict[str, float]) -> np.ndarray:
        s, scene, cyc = self.settings, self.scene, self.scene.cycles
        cyc.samples = s.samples
        cyc.use_adaptive_sampling = True
        cyc.use_denoising = s.denoise
        cyc.filter_width = s.filter_width
        cyc.max_bounces = s.max_bounces
        scene.world.cycles.sampling_method = "MANUAL"
        scene.world.cycles.sample_map_resolution = s.world_map_resolution
        layer = scene.view_layers[0]
        layer.use_pass_z = layer.use_pass_normal = False
        layer.use_pass_object_index = False
        layer.use_pass_combined = True
        layer.material_override = None
        scene.view_settings.view_transform = s.view_transform
        settings = scene.render.image_settings
        settings.media_type = "IMAGE"
        settings.file_format = "PNG"
        settings.color_mode = "RGB"
        settings.color_depth = "8"
        path = os.path.join(self._tmp, "rgb.png")
        timings["rgb_render_s"] = self._render_to(path)
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))

    def _gt_material(self) -> bpy.types.Material:
        mat = bpy.data.materials.get(_GT_MATERIAL)
        if mat is not None:
            return mat
        mat = bpy.data.materials.new(_GT_MATERIAL)
        mat.use_fake_user = True  # survives clear_scene
        nodes, links = mat.node_tree.nodes, mat.node_tree.links
        nodes.clear()
        emission = nodes.new("ShaderNodeEmission")
        # Not black: Cycles folds a zero emission away, and a material without a surface
        # closure is transparent (like a volume-only one): every ray would pass through.
        emission.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
        links.new(emission.outputs["Emission"], nodes.new("ShaderNodeOutputMaterial").inputs["Surface"])
        attr = nodes.new("ShaderNodeAttribute")
        attr.attribute_type = "OBJECT"
        attr.attribute_name = SEMANTIC_PROPERTY
        aov = nodes.new("ShaderNodeOutputAOV")
        aov.aov_name = _SEMANTIC_AOV
        links.new(attr.outputs["Fac"], aov.inputs["Value"])
        # Normal: the interpolated shading normal N (Cycles has already flipped it for back
        # faces), negated where it still points away from the camera (smooth shading near a
        # silhouette): N * (1 - 2 [N . I < 0]), I = the direction back to the camera; then
        # rotated into the camera frame.
        geometry = nodes.new("ShaderNodeNewGeometry")
        dot = nodes.new("ShaderNodeVectorMath")
        dot.operation = "DOT_PRODUCT"
        links.new(geometry.outputs["Normal"], dot.inputs[0])
        links.new(geometry.outputs["Incoming"], dot.inputs[1])
        away = nodes.new("ShaderNodeMath")
        away.operation = "LESS_THAN"
        links.new(dot.outputs["Value"], away.inputs[0])
        away.inputs[1].default_value = 0.0
        sign = nodes.new("ShaderNodeMath")
        sign.operation = "MULTIPLY_ADD"
        links.new(away.outputs["Value"], sign.inputs[0])
        sign.inputs[1].default_value, sign.inputs[2].default_value = -2.0, 1.0
        facing = nodes.new("ShaderNodeVectorMath")
        facing.operation = "SCALE"
        links.new(geometry.outputs["Normal"], facing.inputs[0])
        links.new(sign.outputs["Value"], facing.inputs["Scale"])
        to_camera = nodes.new("ShaderNodeVectorTransform")
        to_camera.vector_type, to_camera.convert_from, to_camera.convert_to = "NORMAL", "WORLD", "CAMERA"
        links.new(facing.outputs["Vector"], to_camera.inputs["Vector"])
        normal_aov = nodes.new("ShaderNodeOutputAOV")
        normal_aov.aov_name = _NORMAL_AOV
        links.new(to_camera.outputs["Vector"], normal_aov.inputs["Color"])
        layer = self.scene.view_layers[0]
        for name, kind in ((_SEMANTIC_AOV, "VALUE"), (_NORMAL_AOV, "COLOR")):
            if name not in layer.aovs:
                entry = layer.aovs.add()
                entry.name, entry.type = name, kind
        return mat

    def _render_to(self, path: str) -> float:
        self.scene.render.filepath = path
        t = time.perf_counter()
        with _quiet_stdout():  # Cycles prints progress lines per render on fd 1
            bpy.ops.render.render(write_still=True)
        elapsed = time.perf_counter() - t
        if not os.path.exists(path):
            raise RenderError(f"Blender did not write {path}")
        return elapsed

    def _convert(self, ch: dict[str, np.ndarray], spec: SceneSpec) -> RenderResult:
        def get(name: str) -> np.ndarray:
            key = f"ViewLayer.{name}"
            if key not in ch:
                raise RenderError(f"render pass {key!r} missing; have {sorted(ch)}")
            return ch[key]

        K, ext = spec.camera.K(), spec.camera.world_to_camera()
        depth = get("Depth.Z").astype(np.float32, copy=False)
        miss = depth >= _BACKGROUND_DEPTH
        depth[miss] = np.inf
        normals = camera_frame_normals(get(f"{_NORMAL_AOV}.R"), get(f"{_NORMAL_AOV}.G"), get(f"{_NORMAL_AOV}.B"),
                                       miss)
        instance = np.rint(get("Object Index.X")).astype(np.uint16)
        semantic = np.rint(get(f"{_SEMANTIC_AOV}.X")).astype(np.uint16)
        instance[miss] = 0
        semantic[miss] = 0
        return RenderResult(depth, normals, instance, semantic, K, ext)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def camera_frame_normals(x: np.ndarray, y: np.ndarray, z: np.ndarray, miss: np.ndarray) -> np.ndarray:
    """The normal AOV's channels (Cycles camera axes: x right, y up, z forward) -> (H, W, 3)
    float32 unit OpenCV camera-frame normals (y down), NaN where no surface was hit.

    The AOV is unit length up to half-float rounding; renormalized here in float32.
    """
    n = np.empty((*miss.shape, 3), np.float32)
    n[..., 0], n[..., 1], n[..., 2] = x, y, z
    n[..., 1] *= -1.0
    norm = np.sqrt(np.einsum("hwc,hwc->hw", n, n))
    invalid = miss | ~(norm > 1e-3)
    norm[invalid] = np.nan
    n /= norm[..., None]
    return n


def settings_dict(settings: RenderSettings) -> dict[str, Any]:
    return {**asdict(settings), "blender": bpy.app.version_string, "engine": "CYCLES",
            "gt_pass": {"samples": 1, "filter": "box 0.01 px", "bounces": 0, "denoise": False}}
