"""Render a SceneSpec with Cycles: a cheap exact ground-truth pass and an optional beauty pass.

Ground truth (depth, normals, instance and semantic ids) comes from a 1-sample render with a
0.01-pixel box filter, no denoising and no bounces: every pixel is one ray through (within
0.005 px of) its center, the point that K describes, so there are no flying pixels and ids
are never blended. Every surface then wears one shader-free material whose only work is to
write two AOVs: the semantic id, and the shading normal already turned to face the camera and
rotated into the camera frame (so no per-pixel conversion is left for Python).

The ground-truth passes never touch a file: a hook on the Cycles add-on's engine copies them
out of Blender's in-memory render result (`RenderEngine.get_result()`) when the frame is done.
Writing and re-reading a multilayer EXR cost ~45 ms per 512^2 scene, a fifth of the render.
The hook also times the engine itself (`gt_cycles_s`, `rgb_cycles_s`: session set-up, scene sync,
BVH, path tracing), the figure the pipeline's overhead is measured against. The beauty pass
(RGB) is a separate render with the configured samples, denoiser and pixel filter, written by
Blender as PNG (its view transform applied) to a private temp directory and read back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import bpy
import numpy as np
from PIL import Image

from render.blender.builder import SEMANTIC_PROPERTY, build_scene, clear_scene
from render.lights import clipped_fractions, metered_exposure
from render.scratch import scratch_directory
from render.settings import RenderSettings
from render.spec import SceneSpec, validate

_BACKGROUND_DEPTH = 1e9  # Cycles writes 1e10 where rays escape
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
    image: dict[str, float] = field(default_factory=dict)  # exposure_ev, clipped fractions (render.lights)


class BlenderRenderer:
    """Keeps one bpy session; `render(spec)` builds, renders and tears down one scene.

    One per process: constructing it resets Blender to factory settings, which invalidates
    the scene an earlier renderer holds.
    """

    def __init__(self, settings: RenderSettings = RenderSettings(), scratch: str | None = None) -> None:
        """`scratch`: the process's scratch directory (render/scratch.py) if its caller made one
        (to point TMPDIR at it before bpy was imported); else one is made here. close() removes it."""
        self.settings = settings
        # read_factory_settings also resets preferences and the engine: configure after it.
        bpy.ops.wm.read_factory_settings(use_empty=True)
        _install_engine_hook()  # after it: it re-registers the Cycles add-on
        self.scene = bpy.context.scene
        self.scene.render.engine = "CYCLES"
        self._configure_device()
        self._tmp = scratch or scratch_directory()

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
        build_scene(self.scene, spec, shading=self.settings.rgb)  # GT alone needs no materials or lights
        timings["build_s"] = time.perf_counter() - t0
        try:
            result = self._ground_truth(spec, timings)
            if self.settings.rgb:
                result.rgb = self._beauty(timings, result.image)
        finally:
            t = time.perf_counter()
            clear_scene(self.scene)
            timings["clear_s"] = time.perf_counter() - t
        result.timings = timings
        return result

    def render_rgb(self, spec: SceneSpec, timings: dict[str, float] | None = None,
                   image: dict[str, float] | None = None) -> np.ndarray:
        """The beauty pass alone (e.g. an edited scene whose ground truth is not needed).

        `timings`, if given, receives `rgb_render_s` and `rgb_cycles_s`; `image` the exposure and
        clipped fractions."""
        validate(spec)
        clear_scene(self.scene)
        build_scene(self.scene, spec)
        try:
            return self._beauty({} if timings is None else timings, {} if image is None else image)
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
        # does nothing for first-hit passes; nor does the sky itself (a Nishita sky's texture is
        # precomputed on every render, ~1 s): the pass sees a plain world, the beauty pass the spec's.
        shaded_world = scene.world
        scene.world = bpy.data.worlds.new("vistune_ground_truth_world")  # removed by clear_scene
        scene.world.cycles.sampling_method = "NONE"
        layer = scene.view_layers[0]
        layer.use_pass_z = layer.use_pass_object_index = True
        layer.use_pass_normal = False  # world space: the normal AOV has it in the camera frame
        layer.use_pass_combined = False  # nothing is shaded (Blender 5.0 still writes it)
        # Every surface gets a shader-free material that only writes the AOVs: no BSDF, texture
        # or light evaluation (the ground truth needs none), 3-5x faster at 512 px.
        layer.material_override = self._gt_material()
        try:
            timings["gt_render_s"], timings["gt_cycles_s"], passes = self._render(None, _GT_PASSES)
        finally:
            scene.world = shaded_world
        t = time.perf_counter()
        result = self._convert(passes, spec)
        timings["gt_read_s"] = time.perf_counter() - t
        return result

    def _beauty(self, timings: dict[str, float], image: dict[str, float]) -> np.ndarray:
        """The path-traced RGB as 8-bit sRGB through the view transform.

        With `auto_exposure` (render/lights.py), the scene-linear result is copied from memory,
        metered, and written through the view transform at the metered exposure (one render, no
        second pass); `image` receives the exposure and the clipped-pixel fractions."""
        s, scene, cyc = self.settings, self.scene, self.scene.cycles
        cyc.samples = s.samples
        cyc.use_adaptive_sampling = s.adaptive_threshold > 0
        if s.adaptive_threshold > 0:
            cyc.adaptive_threshold = s.adaptive_threshold
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
        scene.view_settings.exposure = 0.0
        settings = scene.render.image_settings
        settings.media_type = "IMAGE"
        settings.file_format = "PNG"
        settings.color_mode = "RGB"
        settings.color_depth = "8"
        path = os.path.join(self._tmp, "rgb.png")
        if s.auto_exposure:
            timings["rgb_render_s"], timings["rgb_cycles_s"], passes = self._render(None, ("Combined",))
            t = time.perf_counter()
            linear = passes["Combined"]
            image["exposure_ev"] = metered_exposure(linear[..., :3])
            self._write_exposed(linear, image["exposure_ev"], path)
            timings["rgb_expose_s"] = time.perf_counter() - t
        else:
            scene.view_settings.exposure = s.exposure
            timings["rgb_render_s"], timings["rgb_cycles_s"], _ = self._render(path)
            image["exposure_ev"] = s.exposure
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        image.update(clipped_fractions(rgb))
        return rgb

    def _write_exposed(self, linear: np.ndarray, ev: float, path: str) -> None:
        """Write a scene-linear (H, W, 4) float image (row 0 at the top) to `path` through the
        scene's view transform at exposure `ev`: what Blender would have written had it rendered
        with that exposure."""
        h, w = linear.shape[:2]
        img = bpy.data.images.new("vistune_rgb", w, h, alpha=True, float_buffer=True)
        try:
            img.pixels.foreach_set(np.ascontiguousarray(linear[::-1], np.float32).ravel())
            self.scene.view_settings.exposure = ev
            img.save_render(path, scene=self.scene)
        finally:
            self.scene.view_settings.exposure = 0.0
            bpy.data.images.remove(img)
        if not os.path.exists(path):
            raise RenderError(f"Blender did not write {path}")

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

    def _render(self, path: str | None, passes: tuple[str, ...] = ()) -> tuple[float, float, dict[str, np.ndarray]]:
        """Render the current scene: (bpy call seconds, Cycles engine seconds, captured passes).

        With a `path`, Blender writes the image there (checked); `passes` are copied from the
        render result in memory, each (H, W, channels) float32 with row 0 at the top.
        """
        self.scene.render.filepath = path or ""
        capture = _Capture(passes)
        _hook.capture = capture
        t = time.perf_counter()
        try:
            with _quiet_stdout():  # Cycles prints progress lines per render on fd 1
                bpy.ops.render.render(write_still=path is not None)
        finally:
            _hook.capture = None
        elapsed = time.perf_counter() - t
        if path is not None and not os.path.exists(path):
            raise RenderError(f"Blender did not write {path}")
        missing = [name for name in passes if name not in capture.passes]
        if missing:
            raise RenderError(f"render passes {missing} missing from Cycles' result (it has {capture.available})")
        return elapsed, capture.engine_s, capture.passes

    def _convert(self, passes: dict[str, np.ndarray], spec: SceneSpec) -> RenderResult:
        K, ext = spec.camera.K(), spec.camera.world_to_camera()
        depth = np.ascontiguousarray(passes["Depth"][..., 0])
        miss = depth >= _BACKGROUND_DEPTH
        depth[miss] = np.inf
        n = passes[_NORMAL_AOV]
        normals = camera_frame_normals(n[..., 0], n[..., 1], n[..., 2], miss)
        instance = np.rint(passes["Object Index"][..., 0]).astype(np.uint16)
        semantic = np.rint(passes[_SEMANTIC_AOV][..., 0]).astype(np.uint16)
        instance[miss] = 0
        semantic[miss] = 0
        return RenderResult(depth, normals, instance, semantic, K, ext)


_GT_PASSES = ("Depth", "Object Index", _SEMANTIC_AOV, _NORMAL_AOV)


class _Capture:
    """What one render asks of the engine hook, and what the hook found."""

    def __init__(self, passes: tuple[str, ...]) -> None:
        self.wanted = passes
        self.passes: dict[str, np.ndarray] = {}
        self.available: list[str] = []
        self.engine_s = 0.0


class _Hook:
    capture: _Capture | None = None  # armed by BlenderRenderer._render for one render call


_hook = _Hook()


def _install_engine_hook() -> None:
    """Wrap the Cycles add-on's RenderEngine methods (once per registration of the add-on).

    The engine's callbacks (`update`: session and device set-up; `render`: scene sync, BVH
    build, path tracing; `render_frame_finish`) are timed: Cycles' own time. After
    `render_frame_finish` (the frame's result is final, tiles merged) the wanted passes are
    copied out of `get_result()`. Blender looks engine methods up on the class at call time,
    so wrapping the registered class works; the wrappers keep the arities Blender checks.
    """
    import cycles  # Blender's bundled add-on, registered by read_factory_settings

    cls = cycles.CyclesRender
    if getattr(cls.render_frame_finish, "_vistune_hook", False):
        return
    engine_update, engine_render, engine_finish = cls.update, cls.render, cls.render_frame_finish

    @contextlib.contextmanager
    def timed() -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            if _hook.capture is not None:
                _hook.capture.engine_s += time.perf_counter() - t

    def update(self, data, depsgraph):
        with timed():
            engine_update(self, data, depsgraph)

    def render(self, depsgraph):
        with timed():
            engine_render(self, depsgraph)

    def render_frame_finish(self):
        with timed():
            engine_finish(self)
        capture = _hook.capture
        if capture is not None and capture.wanted:
            _copy_passes(self.get_result(), capture)

    render_frame_finish._vistune_hook = True
    cls.update, cls.render, cls.render_frame_finish = update, render, render_frame_finish


def _copy_passes(result, capture: _Capture) -> None:
    if result is None or not len(result.layers):
        return
    w, h = result.resolution_x, result.resolution_y
    layer = result.layers[0]
    capture.available = [p.name for p in layer.passes]
    for p in layer.passes:
        if p.name in capture.wanted:
            flat = np.empty(w * h * p.channels, np.float32)
            p.rect.foreach_get(flat)
            capture.passes[p.name] = flat.reshape(h, w, p.channels)[::-1]  # Blender's rows run bottom-up


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
    float32 OpenCV camera-frame normals (y down), NaN where no surface was hit.

    No renormalization: the AOV holds Cycles' unit shading normal, rotated and sign-flipped.
    """
    n = np.empty((*miss.shape, 3), np.float32)
    n[..., 0], n[..., 2] = x, z
    np.negative(y, out=n[..., 1])
    n[miss] = np.nan
    return n


def settings_dict(settings: RenderSettings) -> dict[str, Any]:
    return {**asdict(settings), "blender": bpy.app.version_string, "engine": "CYCLES",
            "gt_pass": {"samples": 1, "filter": "box 0.01 px", "bounces": 0, "denoise": False}}
