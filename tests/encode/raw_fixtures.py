"""Raw render and annotate shards for encode/mix tests, written by the real shard writer.

Render samples come from the analytic ray caster (render/analytic.py): exact depth, normals and
instance ids with known K, and a shaded RGB, so encoded targets can be checked against truth
without Blender. Annotate samples follow the raw label format of docs/design.md: colored shapes on a
textured background, their instance/semantic maps, a caption and referring expressions.
"""

from __future__ import annotations

import json

import numpy as np

from formats.members import png_bytes
from formats.shards import ShardPaths, ShardWriter
from render import analytic
from formats import raw_render as raw

CLASSES = ("wall", "box", "sphere")


def render_sample(seed: int, height: int = 48, width: int = 64) -> tuple[dict, analytic.GroundTruth, np.ndarray]:
    truth, K, ext = analytic.demo_room(height, width, seed=seed)
    light = np.array([0.3, -0.5, -0.8]) / np.linalg.norm([0.3, -0.5, -0.8])
    shade = np.clip(-(np.nan_to_num(truth.normals) @ light), 0.1, 1.0)
    rng = np.random.default_rng(seed)
    albedo = rng.uniform(0.3, 1.0, (int(truth.instance.max()) + 1, 3))
    rgb = (albedo[truth.instance] * shade[..., None] * 255).astype(np.uint8)
    semantic = np.where(truth.instance == 1, 1, np.where(truth.instance > 1, 2, 0)).astype(np.uint16)
    meta = {"seed": seed, "index": seed, "K": K.tolist(), "world_to_camera": ext.tolist(),
            "class_table": list(CLASSES), "spec": {"family": "indoor", "objects": [
                {"semantic_class": "box", "size": [1, 1, 1]}, {"semantic_class": "sphere", "size": [0.5, 0.5, 0.5]}]}}
    files = raw.to_files(truth.depth, truth.normals, truth.instance, semantic, meta, rgb)
    return files, truth, K


def write_render_shard(out, index: int, seeds, height: int = 48, width: int = 64, prefix: str = "render") -> ShardPaths:
    paths = ShardPaths.of(out, prefix, index)
    with ShardWriter(paths) as w:
        for seed in seeds:
            files, _, _ = render_sample(seed, height, width)
            w.add(f"scene{seed:09d}", files, {"seed": seed})
        w.commit()
    return paths


def annotate_sample(seed: int, height: int = 48, width: int = 64, caption: str | None = "two shapes on a table"):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    phase = rng.uniform(0, 2 * np.pi, 3)
    freq = rng.uniform(2, 9, 3)
    rgb = (90 + 60 * np.sin(freq[None, None] * (xx[..., None] + 0.7 * yy[..., None]) * 3 + phase)).astype(np.uint8)
    instance = np.zeros((height, width), np.uint16)
    h2, w2 = height // 2, width // 2
    y0, x0 = rng.integers(0, h2 // 2 + 1), rng.integers(0, w2 // 2 + 1)
    instance[y0:y0 + h2 // 2 + 4, x0:x0 + w2 // 2 + 4] = 1  # left half
    y1, x1 = rng.integers(0, h2 + 1), rng.integers(w2 + 2, w2 + w2 // 2 + 2)
    instance[y1:y1 + h2 // 2 + 4, x1:x1 + w2 // 3 + 2] = 2  # right half
    rgb[instance == 1] = (220, 30, 30)
    rgb[instance == 2] = (30, 30, 220)
    semantic = np.where(instance > 0, 1, 0).astype(np.uint16)
    meta = {"raw_format": 1, "kind": "annotate", "seed": seed, "source": {"path": f"/images/{seed}.jpg"},
            "width": width, "height": height, "class_table": ["unlabeled", "object"],
            "instances": [{"id": 1, "class": "object", "semantic_id": 1, "score": 0.9},
                          {"id": 2, "class": "object", "semantic_id": 1, "score": 0.8}],
            "referring": [{"expression": "the red object", "instance_id": 1, "template": "color"},
                          {"expression": "the object on the right", "instance_id": 2, "template": "position"}],
            "caption": caption}
    files = {"rgb.png": png_bytes(rgb), "instance.png": png_bytes(instance), "semantic.png": png_bytes(semantic),
             "json": json.dumps(meta).encode()}
    if caption:
        files["txt"] = caption.encode()
    return files, instance, rgb


def write_annotate_shard(out, index: int, seeds, prefix: str = "annotate", **kw) -> ShardPaths:
    paths = ShardPaths.of(out, prefix, index)
    with ShardWriter(paths) as w:
        for seed in seeds:
            files, _, _ = annotate_sample(seed, **kw)
            w.add(f"img{seed:09d}", files, {"seed": seed})
        w.commit()
    return paths


def write_web_images(root, n: int = 4):
    """`n` small PNG "web photos" (a bright block on a dark ground, one per image) in a new `root`
    directory: the input of annotate in end-to-end runs. Returns `root`."""
    from pathlib import Path

    from PIL import Image

    root = Path(root)
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        img = np.full((48, 64, 3), 40, np.uint8)
        img[10:38, 8 + 10 * i:30 + 10 * i] = rng.integers(120, 255, 3)
        Image.fromarray(img).save(root / f"im{i}.png")
    return root
