"""Raw samples (render, annotate) -> task samples: resize, encode the target, write the prompt.

`TaskBuilder(config).build(raw_sample, source_shard)` returns the task samples of one raw sample
and the reasons for any it skipped. It is pure (numpy, Pillow, codecs):
`encode/shard.py` feeds it one input shard and writes what it returns (`pipelines/encode_job.py` runs that on Ray).

Which tasks come from which raw source:

| source   | tasks |
|----------|-------|
| render   | depth, normals, semantic, instance, t2i (caption written from the scene spec), edit (when the render holds an edited re-render), denoise, lowlight, derain |
| annotate | semantic, instance, referring (one sample per expression), t2i (when the image has a caption), denoise, lowlight, derain |

Splits are assigned per *source group* (a render's scene seed, an annotated image's source path
or URL) by a salted hash, so a scene or source image never lands in both train and eval.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from encode import codecs
from encode.codecs.instance import relabel_instances
from encode.degrade import DEGRADATIONS, degrade
from encode.manifest import impossible_depth, make_row, target_stats
from encode.prompts import DEPTH_SCHEMES, make_prompt
from encode.resize import Geometry, ResizePolicy, plan, resize_image, resize_nearest, update_intrinsics
from encode.sample import TASK_GROUPS, TASKS, SampleError, TaskSample, read_image
from formats.registry import Registry

SOURCE_KINDS = ("render", "annotate")
SOURCE_TASKS = {
    "render": ("depth", "normals", "semantic", "instance", "t2i", "edit", "denoise", "lowlight", "derain"),
    "annotate": ("semantic", "instance", "referring", "t2i", "denoise", "lowlight", "derain"),
}


DEPTH_CAMERAS = ("canonical", "metric")


@dataclass(frozen=True)
class EncodeSettings:
    tasks: tuple[str, ...] = TASKS
    size: int = 256
    resize_mode: str = "crop"           # crop | pad (encode/resize.py)
    random_crop: bool = False
    eval_fraction: float = 0.05         # share of source groups held out for evaluation
    val_fraction: float = 0.0           # share held out for validation (choosing sampling settings, not scores)
    split_salt: str = "vistune"         # change it to draw a different held-out set
    depth_preset: str = "gray"          # depth codec preset: gray (learned best: bench/learn.py) | default | vb | hot
    depth_camera: str = "canonical"     # canonical: depth drawn as a 60-deg camera would see it (encode/codecs/depth.py;
                                        # samples with intrinsics) | metric: as measured
    canonical_hfov_deg: float = 60.0    # the canonical camera's field of view across the model's square view
    input_format: str = "png"           # png (lossless) | jpg (quality 95)
    max_class_prompt: int = 12          # semantic prompts list present classes plus distractors up to this many
    max_referring_per_image: int = 4

    def __post_init__(self) -> None:
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown or not self.tasks:
            raise ValueError(f"encode tasks must be a non-empty subset of {list(TASKS)}, got {list(self.tasks)}")
        if not 0.0 <= self.eval_fraction < 1.0 or not 0.0 <= self.val_fraction < 1.0 - self.eval_fraction:
            raise ValueError(f"eval_fraction and val_fraction must be >= 0 and sum to < 1, got "
                             f"{self.eval_fraction} and {self.val_fraction}")
        if self.depth_preset not in DEPTH_SCHEMES:
            raise ValueError(f"depth_preset {self.depth_preset!r} not in {sorted(DEPTH_SCHEMES)}")
        if self.depth_camera not in DEPTH_CAMERAS:
            raise ValueError(f"depth_camera {self.depth_camera!r} not in {list(DEPTH_CAMERAS)}")
        if not 0.0 < self.canonical_hfov_deg < 180.0:
            raise ValueError(f"canonical_hfov_deg must be in (0, 180), got {self.canonical_hfov_deg}")
        if self.input_format not in ("png", "jpg"):
            raise ValueError(f"input_format must be 'png' or 'jpg', got {self.input_format!r}")
        ResizePolicy(self.size, self.resize_mode, self.random_crop)  # validates

    @property
    def policy(self) -> ResizePolicy:
        return ResizePolicy(self.size, self.resize_mode, self.random_crop)


def split_of(group: str, eval_fraction: float, salt: str, val_fraction: float = 0.0) -> str:
    """'eval' for a deterministic `eval_fraction` of source groups, 'val' for the next `val_fraction`,
    else 'train'. A group's split depends only on its name and the salt, never on the other groups."""
    h = int.from_bytes(hashlib.sha256(f"{salt}:{group}".encode()).digest()[:8], "big") / 2.0 ** 64
    return "eval" if h < eval_fraction else "val" if h < eval_fraction + val_fraction else "train"


@dataclass
class Built:
    """Task samples built from one raw sample, with the manifest row of each and skip reasons."""
    samples: list[tuple[TaskSample, dict[str, Any]]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    impossible_depth: dict[str, int] = field(default_factory=dict)  # see manifest.impossible_depth

    def skip(self, task: str, reason: str) -> None:
        k = f"{task}:{reason}"
        self.skipped[k] = self.skipped.get(k, 0) + 1


@dataclass
class _Source:
    """A decoded raw sample, resized: what every task builder reads."""
    kind: str
    shard: str
    key: str
    group: str
    split: str
    seed: int
    meta: dict[str, Any]
    rgb: np.ndarray
    geom: Geometry
    targets: dict[str, np.ndarray]   # resized: depth, normals, semantic, instance, edit
    class_names: list[str]           # id k -> class_names[k - 1]
    K: np.ndarray | None
    raw_depth: np.ndarray | None = None     # render: depth and instance ids before resizing
    raw_instance: np.ndarray | None = None


# task -> TaskBuilder method yielding (sample, manifest row) pairs of that task from one decoded source
TaskMethod = Callable[["TaskBuilder", _Source, Built], Iterator[tuple[TaskSample, dict[str, Any]]]]
TASK_BUILDERS: Registry[TaskMethod] = Registry("task")


class TaskBuilder:
    def __init__(self, settings: EncodeSettings) -> None:
        self.settings = settings
        self.depth_codec = codecs.get("depth", preset=settings.depth_preset)
        self.normals_codec = codecs.get("normals")
        self.instance_codec = codecs.get("instance")
        self.mask_codec = codecs.get("mask")
        self._semantic_codecs: dict[int, Any] = {}  # by class count: building a palette costs ~7 ms

    # ------------------------------------------------------------------ entry

    def build(self, raw: dict[str, Any], source_shard: str) -> Built:
        """Task samples of one raw sample. Undecodable members raise SampleError (the job decides)."""
        out = Built()
        src = self._decode(raw, source_shard)
        if src.kind == "render":
            out.impossible_depth = impossible_depth(src.raw_depth, src.raw_instance)
        for task in self.settings.tasks:
            if task not in SOURCE_TASKS[src.kind]:
                continue
            for made in TASK_BUILDERS.get(task)(self, src, out):
                sample, row = made
                out.samples.append((sample, row))
        return out

    # ------------------------------------------------------------------ decoding

    def _decode(self, raw: dict[str, Any], source_shard: str) -> _Source:
        key = raw.get("__key__", "?")
        if "json" not in raw:
            raise SampleError(f"raw sample {key!r} has no json member")
        try:
            meta = json.loads(raw["json"])
        except (ValueError, UnicodeDecodeError) as err:
            raise SampleError(f"raw sample {key!r}: bad json: {err}") from err
        kind = "render" if "depth.exr" in raw else "annotate"
        rgb_bytes = raw.get("rgb.png", raw.get("rgb.jpg"))
        if rgb_bytes is None:
            raise SampleError(f"raw sample {key!r} has no rgb image (render.rgb=false shards cannot be encoded)")
        targets: dict[str, np.ndarray] = {}
        if kind == "render":
            from formats import raw_render as render_raw  # the render shard format (members <-> arrays), no bpy

            try:
                rr = render_raw.from_sample(raw)  # decodes rgb.png too: no second decode below
            except SampleError:
                raise  # names the key and the member already
            except Exception as err:
                raise SampleError(f"raw render sample {key!r}: {err}") from err
            rgb = rr.rgb if rr.rgb is not None else read_image(rgb_bytes, f"{key}.rgb")
        else:
            rgb = read_image(rgb_bytes, f"{key}.rgb")
        if rgb.ndim != 3:
            raise SampleError(f"raw sample {key!r}: rgb is not a color image (shape {rgb.shape})")
        h, w = rgb.shape[:2]
        if kind == "render":
            targets.update(depth=rr.depth, normals=rr.normals, semantic=rr.semantic, instance=rr.instance)
            seed = int(meta.get("seed", 0))
            group = f"render:{seed}"
            class_names = list(meta.get("class_table", []))
            K = np.asarray(meta["K"], dtype=np.float64) if "K" in meta else None
            if "edit.png" in raw:
                targets["edit"] = read_image(raw["edit.png"], f"{key}.edit.png")
        else:
            for name in ("instance", "semantic"):
                if f"{name}.png" in raw:
                    targets[name] = read_image(raw[f"{name}.png"], f"{key}.{name}.png")
            seed = int(meta.get("seed", 0))
            source = meta.get("source", {})
            group = "annotate:" + str(source.get("url") or source.get("path") or f"{source_shard}/{key}")
            class_names = list(meta.get("class_table", []))
            if class_names[:1] == ["unlabeled"]:  # annotate tables carry id 0 explicitly
                class_names = class_names[1:]
            K = None
        for name, arr in targets.items():
            if arr.shape[:2] != (h, w):
                raise SampleError(f"raw sample {key!r}: {name} is {arr.shape[:2]}, rgb is {(h, w)}")
        geom = plan(h, w, self.settings.policy, seed)
        fills = {"depth": np.nan, "normals": np.nan, "semantic": 0, "instance": 0}
        resized = {n: (resize_image(a, geom) if n == "edit" else resize_nearest(a, geom, fills[n]))
                   for n, a in targets.items()}
        return _Source(kind=kind, shard=source_shard, key=key, group=group,
                       split=split_of(group, self.settings.eval_fraction, self.settings.split_salt,
                                      self.settings.val_fraction), seed=seed,
                       meta=meta, rgb=resize_image(rgb, geom), geom=geom, targets=resized,
                       class_names=class_names, K=update_intrinsics(K, geom) if K is not None else None,
                       raw_depth=targets.get("depth"), raw_instance=targets.get("instance"))

    # ------------------------------------------------------------------ assembly

    def _make(self, src: _Source, task: str, *, target: np.ndarray, prompt: str, codec=None,
              inp: np.ndarray | None, raw: dict[str, np.ndarray] | None = None, key_suffix: str = "",
              extra: dict[str, Any] | None = None) -> tuple[TaskSample, dict[str, Any]]:
        codec_spec = codecs.spec(codec) if codec is not None else None
        meta = {
            "task": task, "codec": codec_spec, "split": src.split, "seed": src.seed,
            "source": src.kind,  # the data source name metrics are reported by (render | annotate)
            "origin": {"shard": src.shard, "key": src.key, "group": src.group},  # the raw sample it came from
            "width": int(target.shape[1]), "height": int(target.shape[0]),
            "resize": {"mode": self.settings.resize_mode, "size": self.settings.size,
                       "crop": [src.geom.x0, src.geom.y0, src.geom.crop_w, src.geom.crop_h]},
            **({"K": src.K.tolist()} if src.K is not None else {}),
            **(extra or {}),
        }
        raw = raw or {}
        sample = TaskSample(key=src.key + key_suffix, task=task, target=target, prompt=prompt, meta=meta, input=inp,
                            raw=raw if src.split in ("eval", "val") else {})
        row = make_row(task=task, task_group=TASK_GROUPS[task], source=src.kind, source_shard=src.shard,
                       source_key=src.key, source_group=src.group, split=src.split, seed=src.seed,
                       image=inp if inp is not None else target, target=target, codec_spec=codec_spec, prompt=prompt,
                       stats=target_stats(task, raw, target))
        return sample, row

    def _prompt_seed(self, src: _Source, task: str) -> int:
        return int.from_bytes(hashlib.sha256(f"{src.group}:{src.key}:{task}".encode()).digest()[:4], "big")

    # ------------------------------------------------------------------ vision tasks

    @TASK_BUILDERS.register("depth")
    def _task_depth(self, src: _Source, out: Built):
        depth = src.targets.get("depth")
        if depth is None or not np.any(np.isfinite(depth) & (depth > 0)):
            out.skip("depth", "no_valid_depth")
            return
        prompt = make_prompt("depth", self._prompt_seed(src, "depth"), preset=self.settings.depth_preset)
        codec = self.depth_codec_for(src.K, depth.shape)
        yield self._make(src, "depth", target=codec.encode(depth), prompt=prompt, codec=codec,
                         inp=src.rgb, raw={"depth": depth})

    def depth_codec_for(self, K: np.ndarray | None, hw: tuple[int, ...]):
        """The depth codec of one sample: with `depth_camera: canonical` and known intrinsics, its
        colors draw the depth a camera of the canonical field of view would see (scale f_c / f over
        the central square the model is shown); without intrinsics, metric depth as measured."""
        if self.settings.depth_camera != "canonical" or K is None:
            return self.depth_codec
        side = min(hw[:2])
        f_canonical = 0.5 * side / math.tan(math.radians(self.settings.canonical_hfov_deg) / 2)
        scale = float(f"{f_canonical / float(K[0][0]):.6g}")  # a stable spec: 6 digits
        return codecs.get("depth", preset=self.settings.depth_preset, camera_scale=scale)

    @TASK_BUILDERS.register("normals")
    def _task_normals(self, src: _Source, out: Built):
        normals = src.targets.get("normals")
        if normals is None or not np.isfinite(normals).all(-1).any():
            out.skip("normals", "no_valid_normals")
            return
        prompt = make_prompt("normals", self._prompt_seed(src, "normals"))
        yield self._make(src, "normals", target=self.normals_codec.encode(normals), prompt=prompt,
                         codec=self.normals_codec, inp=src.rgb, raw={"normals": normals})

    @TASK_BUILDERS.register("semantic")
    def _task_semantic(self, src: _Source, out: Built):
        ids = src.targets.get("semantic")
        if ids is None or not np.any(ids > 0):
            out.skip("semantic", "no_labels")
            return
        n = len(src.class_names)
        if int(ids.max()) > n:
            raise SampleError(f"raw sample {src.key!r}: semantic id {int(ids.max())} outside its class table ({n})")
        codec = self._semantic_codecs.get(n)
        if codec is None:
            codec = self._semantic_codecs[n] = codecs.get("semantic", num_classes=max(n, 1))
        present = [int(i) for i in np.unique(ids[ids > 0])]
        rng = np.random.default_rng(self._prompt_seed(src, "semantic"))
        absent = [i for i in range(1, n + 1) if i not in present]
        k = max(0, min(len(absent), self.settings.max_class_prompt - len(present)))
        listed = sorted(present + [int(i) for i in rng.choice(absent, size=k, replace=False)] if k else present)
        palette = codec.params["palette"]
        prompt = make_prompt("semantic", self._prompt_seed(src, "semantic"),
                             class_names=[src.class_names[i - 1] for i in listed],
                             palette=[palette[0]] + [palette[i] for i in listed])
        yield self._make(src, "semantic", target=codec.encode(ids), prompt=prompt, codec=codec, inp=src.rgb,
                         raw={"semantic": ids}, extra={"class_table": src.class_names, "prompt_classes": listed})

    @TASK_BUILDERS.register("instance")
    def _task_instance(self, src: _Source, out: Built):
        ids = src.targets.get("instance")
        if ids is None or not np.any(ids > 0):
            out.skip("instance", "no_instances")
            return
        relabeled, mapping = relabel_instances(ids)
        if len(mapping) > self.instance_codec.max_instances:
            out.skip("instance", "too_many_instances")
            return
        prompt = make_prompt("instance", self._prompt_seed(src, "instance"))
        yield self._make(src, "instance", target=self.instance_codec.encode(relabeled), prompt=prompt,
                         codec=self.instance_codec, inp=src.rgb, raw={"instance": relabeled},
                         extra={"instance_ids": {str(k): v for k, v in mapping.items()}})

    @TASK_BUILDERS.register("referring")
    def _task_referring(self, src: _Source, out: Built):
        ids = src.targets.get("instance")
        refs = src.meta.get("referring") or []
        if ids is None or not refs:
            out.skip("referring", "no_expressions")
            return
        for j, ref in enumerate(refs[:self.settings.max_referring_per_image]):
            mask = ids == int(ref["instance_id"])
            if not mask.any():  # the object fell outside the crop
                out.skip("referring", "cropped_out")
                continue
            prompt = make_prompt("referring", self._prompt_seed(src, f"referring{j}"), expression=ref["expression"],
                                 color=self.mask_codec.params["color"])
            yield self._make(src, "referring", target=self.mask_codec.encode(mask), prompt=prompt,
                             codec=self.mask_codec, inp=src.rgb, raw={"mask": mask}, key_suffix=f"_r{j}",
                             extra={"expression": ref["expression"], "instance_id": int(ref["instance_id"])})

    # ------------------------------------------------------------------ generation and restoration

    @TASK_BUILDERS.register("t2i")
    def _task_t2i(self, src: _Source, out: Built):
        caption = src.meta.get("caption") or (caption_from_render(src.meta) if src.kind == "render" else None)
        if not caption:
            out.skip("t2i", "no_caption")
            return
        prompt = make_prompt("t2i", self._prompt_seed(src, "t2i"), caption=caption)
        yield self._make(src, "t2i", target=src.rgb, prompt=prompt, inp=None,
                         extra={"caption": caption, "caption_source": "source" if src.meta.get("caption") else "spec"})

    @TASK_BUILDERS.register("edit")
    def _task_edit(self, src: _Source, out: Built):
        edit = src.meta.get("edit")
        if "edit" not in src.targets or not edit:
            out.skip("edit", "no_edit_render")
            return
        prompt = make_prompt("edit", self._prompt_seed(src, "edit"), instruction=edit["instruction"])
        yield self._make(src, "edit", target=src.targets["edit"], prompt=prompt, inp=src.rgb, extra={"edit": edit})

    def _restore(self, task: str, src: _Source):
        degraded, params = degrade(task, src.rgb, self._prompt_seed(src, task))
        prompt = make_prompt(task, self._prompt_seed(src, task))
        yield self._make(src, task, target=src.rgb, prompt=prompt, inp=degraded, extra={"degradation": params})

    @TASK_BUILDERS.register("denoise")
    def _task_denoise(self, src: _Source, out: Built):
        return self._restore("denoise", src)

    @TASK_BUILDERS.register("lowlight")
    def _task_lowlight(self, src: _Source, out: Built):
        return self._restore("lowlight", src)

    @TASK_BUILDERS.register("derain")
    def _task_derain(self, src: _Source, out: Built):
        return self._restore("derain", src)


assert set(DEGRADATIONS) == {t for t, g in TASK_GROUPS.items() if g == "restoration"}
assert set(TASK_BUILDERS) == set(TASKS)


def caption_from_render(meta: dict[str, Any]) -> str | None:
    """A plain caption from a render's spec: family and the largest object classes, e.g.
    'an indoor room with a sofa, a table and a lamp'."""
    spec = meta.get("spec") or {}
    objects = spec.get("objects") or []
    skip = {"wall", "floor", "ceiling", "ground"}
    vol: dict[str, float] = {}
    for o in objects:
        c = o.get("semantic_class", "object")
        if c not in skip:
            size = o.get("size", (0, 0, 0))
            vol[c] = vol.get(c, 0.0) + float(np.prod(size))
    names = [c for c, _ in sorted(vol.items(), key=lambda kv: (-kv[1], kv[0]))][:4]
    place = {"indoor": "an indoor room", "tabletop": "a tabletop close-up", "outdoor": "an outdoor scene"}.get(
        spec.get("family"), "a rendered 3D scene")
    if not names:
        return f"{place}"
    items = [f"{'an' if n[0] in 'aeiou' else 'a'} {n}" for n in names]
    listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" and {items[-1]}"
    return f"{place} with {listed}"
