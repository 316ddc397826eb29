"""Task samples: the instruction-tuning unit (input image, prompt, RGB target) and its shard members.

A task shard sample (DESIGN.md "Task shards and manifest") has the members

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

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from render import exr

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
SPLITS = ("train", "eval")

# Raw-target member -> how it is stored (eval shards only).
RAW_MEMBERS = {"depth.exr": "depth", "normal.exr": "normals", "instance.png": "instance",
               "semantic.png": "semantic", "mask.png": "mask"}


class SampleError(ValueError):
    """A task sample that is missing a member or holds an undecodable one."""


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


def png_bytes(arr: np.ndarray, compress_level: int = 1) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


MAX_PIXELS = 8192 * 8192  # decompression-bomb limit for shard members (checked before decoding)


def read_image(data: bytes, what: str) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 RGB, or uint16 for 16-bit single-channel PNGs (ids).

    Raises SampleError for undecodable data or an image over MAX_PIXELS (checked from the header,
    before any pixel is decoded).
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise SampleError(f"{what}: {im.width}x{im.height} exceeds the {MAX_PIXELS}-pixel limit")
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.asarray(im).astype(np.uint16)
            if im.mode == "L" or im.mode == "1":
                return np.asarray(im.convert("L"))
            return np.asarray(im.convert("RGB"))
    except SampleError:
        raise
    except Exception as err:  # Pillow raises many types for corrupt data
        raise SampleError(f"cannot decode {what}: {err}") from err


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
            buf = io.BytesIO()
            Image.fromarray(sample.input).save(buf, format="JPEG", quality=95)
            files["input.jpg"] = buf.getvalue()
        elif input_format == "png":
            files["input.png"] = png_bytes(sample.input)
        else:
            raise ValueError(f"input_format must be 'png' or 'jpg', got {input_format!r}")
    for member, name in RAW_MEMBERS.items():
        if name not in sample.raw:
            continue
        arr = sample.raw[name]
        if name == "depth":
            files[member] = exr.to_bytes({"Z": arr.astype(np.float32)})
        elif name == "normals":
            files[member] = exr.to_bytes({"X": arr[..., 0], "Y": arr[..., 1], "Z": arr[..., 2]}, half=True)
        elif name == "mask":
            files[member] = png_bytes(arr.astype(np.uint8) * 255)
        else:
            files[member] = png_bytes(arr.astype(np.uint16))
    files["json"] = json.dumps(meta, sort_keys=True).encode()
    return files


def from_sample(sample: dict[str, Any], with_raw: bool = True) -> TaskSample:
    """A webdataset-style dict (`__key__`, ext -> bytes) -> TaskSample. Raises SampleError."""
    key = sample.get("__key__", "?")
    for member in ("json", "target.png", "prompt.txt"):
        if member not in sample:
            raise SampleError(f"task sample {key!r} lacks {member!r} (has {sorted(k for k in sample if not k.startswith('__'))})")
    try:
        meta = json.loads(sample["json"])
    except (ValueError, UnicodeDecodeError) as err:
        raise SampleError(f"task sample {key!r}: bad json member: {err}") from err
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
                raw[name] = exr.from_bytes(sample[member])["Z"]
            elif name == "normals":
                n = exr.from_bytes(sample[member])
                raw[name] = np.stack([n["X"], n["Y"], n["Z"]], axis=-1).astype(np.float32)
            elif name == "mask":
                raw[name] = read_image(sample[member], f"{key}.{member}") > 127
            else:
                raw[name] = read_image(sample[member], f"{key}.{member}")
    return TaskSample(key=key, task=task, target=target, prompt=sample["prompt.txt"].decode("utf-8"), meta=meta,
                      input=inp, raw=raw)
