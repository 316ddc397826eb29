"""Task samples: the instruction-tuning unit (input image, prompt, RGB target) and its shard members.

A task shard sample (docs/design.md "Task shards and manifest") has the members

    input.png | input.jpg   the conditioning image (absent for text-to-image)
    target.png              the RGB answer: an encoded vision target, an edited/restored/generated image
    prompt.txt              the instruction (utf-8)
    json                    task, codec spec, source, split, seed, size, K, class table, ...

and held-out evaluation samples also carry the raw physical targets at the same resolution
(`depth.exr`, `normal.exr`, `instance.png`, `semantic.png`, `mask.png`), so metrics compare with
the truth and not with its encoding. `TaskSample` is the decoded form; `to_files` / `from_sample`
convert between the two. Pure numpy + Pillow; no Ray, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from formats.members import (SampleError, depth_exr_bytes, jpeg_bytes, json_bytes,  # noqa: F401  (SampleError: part of this API)
                             normals_exr_bytes, png_bytes, read_depth_exr, read_image, read_json, read_normals_exr)

TASK_FORMAT_VERSION = 1

# Task name -> group. Vision tasks decode back to physical values with their codec; generation and
# restoration keep the generator's original skills alive in the mixture.
TASK_GROUPS: dict[str, str] = {
    "depth": "vision",
    "normals": "vision",
    "semantic": "vision",
    "instance": "vision",
    "referring": "vision",
    "t2i": "generation",       # text-to-image: no input image
    "edit": "generation",      # input image + edit instruction -> edited image
    "denoise": "restoration",
    "lowlight": "restoration",
    "derain": "restoration",
}
TASKS = tuple(TASK_GROUPS)
SPLITS = ("train", "val", "eval")

# Raw-target member -> how it is stored (eval shards only).
RAW_MEMBERS = {"depth.exr": "depth", "normal.exr": "normals", "instance.png": "instance",
               "semantic.png": "semantic", "mask.png": "mask"}


@dataclass
class TaskSample:
    key: str
    task: str
    target: np.ndarray                      # (H, W, 3) uint8
    prompt: str
    meta: dict[str, Any]                    # the `json` member (task, codec, source, split, seed, ...)
    input: np.ndarray | None = None         # (H, W, 3) uint8; None for text-to-image
    raw: dict[str, np.ndarray] = field(default_factory=dict)  # eval only: depth/normals/instance/semantic/mask

    @property
    def split(self) -> str:
        return self.meta.get("split", "train")


def to_files(sample: TaskSample, input_format: str = "png") -> dict[str, bytes]:
    """TaskSample -> shard members. `input_format` 'png' (lossless) or 'jpg' (quality 95)."""
    if sample.task not in TASK_GROUPS:
        raise ValueError(f"unknown task {sample.task!r}; known: {list(TASKS)}")
    if sample.target.dtype != np.uint8 or sample.target.ndim != 3 or sample.target.shape[2] != 3:
        raise ValueError(f"target must be (H, W, 3) uint8, got {sample.target.shape} {sample.target.dtype}")
    meta = {"task_format": TASK_FORMAT_VERSION, **sample.meta, "task": sample.task}
    files: dict[str, bytes] = {"target.png": png_bytes(sample.target), "prompt.txt": sample.prompt.encode("utf-8")}
    if sample.input is not None:
        if sample.input.shape[:2] != sample.target.shape[:2]:
            raise ValueError(f"input {sample.input.shape[:2]} and target {sample.target.shape[:2]} sizes differ")
        if input_format == "jpg":
            files["input.jpg"] = jpeg_bytes(sample.input, quality=95)
        elif input_format == "png":
            files["input.png"] = png_bytes(sample.input)
        else:
            raise ValueError(f"input_format must be 'png' or 'jpg', got {input_format!r}")
    for member, name in RAW_MEMBERS.items():
        if name not in sample.raw:
            continue
        arr = sample.raw[name]
        if name == "depth":
            files[member] = depth_exr_bytes(arr)
        elif name == "normals":
            files[member] = normals_exr_bytes(arr)
        elif name == "mask":
            files[member] = png_bytes(arr.astype(np.uint8) * 255)
        else:
            files[member] = png_bytes(arr.astype(np.uint16))
    files["json"] = json_bytes(meta)
    return files


def from_sample(sample: dict[str, Any], with_raw: bool = True) -> TaskSample:
    """A webdataset-style dict (`__key__`, ext -> bytes) -> TaskSample. Raises SampleError."""
    key = sample.get("__key__", "?")
    for member in ("json", "target.png", "prompt.txt"):
        if member not in sample:
            raise SampleError(f"task sample {key!r} lacks {member!r} (has {sorted(k for k in sample if not k.startswith('__'))})")
    meta = read_json(sample["json"], f"task sample {key!r}")
    task = meta.get("task")
    if task not in TASK_GROUPS:
        raise SampleError(f"task sample {key!r}: unknown task {task!r}; known: {list(TASKS)}")
    target = read_image(sample["target.png"], f"{key}.target.png")
    input_bytes = sample.get("input.png", sample.get("input.jpg"))
    inp = read_image(input_bytes, f"{key}.input") if input_bytes is not None else None
    raw: dict[str, np.ndarray] = {}
    if with_raw:
        for member, name in RAW_MEMBERS.items():
            if member not in sample:
                continue
            if name == "depth":
                raw[name] = read_depth_exr(sample[member])
            elif name == "normals":
                raw[name] = read_normals_exr(sample[member])
            elif name == "mask":
                raw[name] = read_image(sample[member], f"{key}.{member}") > 127
            else:
                raw[name] = read_image(sample[member], f"{key}.{member}")
    return TaskSample(key=key, task=task, target=target, prompt=sample["prompt.txt"].decode("utf-8"), meta=meta,
                      input=inp, raw=raw)
