"""Raw label samples <-> shard members (docs/design.md "Raw shards"): the contract the encode stage reads.

Members of one sample (key like `img000003_000012`):
- `rgb.jpg` or `rgb.png`: the EXIF-upright, possibly resized RGB image the masks align to
  (`rgb.jpg` holds the source's own bytes when they already decode to it);
- `instance.png`: uint16, 0 = none, ids 1..N = `json["instances"][i]["id"]`;
- `semantic.png`: uint16, ids index `json["class_table"]` (0 = "unlabeled");
- `txt`: the caption, only when the source had one;
- `json`: `{"raw_format", "kind": "annotate", "seed", "source", "width", "height", "orig_width",
  "orig_height", "class_table", "instances", "referring", "labelers", "caption", "stats"}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from formats.members import json_bytes, png_bytes, read_ids, read_json, read_rgb

RAW_FORMAT_VERSION = 1
IMAGE_MEMBERS = ("rgb.jpg", "rgb.png")


@dataclass
class RawLabel:
    rgb: np.ndarray
    instance: np.ndarray
    semantic: np.ndarray
    meta: dict[str, Any]
    caption: str | None = None

    def instance_mask(self, instance_id: int) -> np.ndarray:
        """Boolean mask of one instance (the target of a referring expression)."""
        return self.instance == instance_id


def to_files(image: tuple[str, bytes], instance: np.ndarray, semantic: np.ndarray, meta: dict[str, Any],
             caption: str | None = None) -> dict[str, bytes]:
    """Encode one labeled image as shard members. `image` is (member name, bytes), see DecodedImage.stored."""
    name, data = image
    if name not in IMAGE_MEMBERS:
        raise ValueError(f"image member must be one of {list(IMAGE_MEMBERS)}, got {name!r}")
    if instance.shape != semantic.shape:
        raise ValueError(f"instance {instance.shape} and semantic {semantic.shape} maps differ in shape")
    files = {
        name: data,
        "instance.png": png_bytes(instance.astype(np.uint16)),
        "semantic.png": png_bytes(semantic.astype(np.uint16)),
        "json": json_bytes({"raw_format": RAW_FORMAT_VERSION, "kind": "annotate", **meta, "caption": caption}),
    }
    if caption is not None:
        files["txt"] = caption.encode("utf-8")
    return files


def from_sample(sample: dict[str, Any]) -> RawLabel:
    """Decode a webdataset-style sample dict (bytes per extension) back to arrays."""
    key = sample.get("__key__", "?")
    meta = read_json(sample["json"], f"{key}.json")
    if meta.get("raw_format") != RAW_FORMAT_VERSION or meta.get("kind") != "annotate":
        raise ValueError(f"not an annotate raw sample of format {RAW_FORMAT_VERSION}: "
                         f"raw_format={meta.get('raw_format')!r}, kind={meta.get('kind')!r}")
    name = next((m for m in IMAGE_MEMBERS if m in sample), None)
    if name is None:
        raise ValueError(f"sample {sample.get('__key__')!r} has no image member ({list(IMAGE_MEMBERS)})")
    caption = sample["txt"].decode("utf-8") if "txt" in sample else None
    return RawLabel(read_rgb(sample[name], f"{key}.{name}"), read_ids(sample["instance.png"], f"{key}.instance.png"),
                    read_ids(sample["semantic.png"], f"{key}.semantic.png"), meta, caption)
