"""Tiny real eval samples for every scored task, from analytic scenes (exact truth), and shard writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from encode import codecs
from encode.codecs.instance import relabel_instances
from encode.prompts import make_prompt
from encode.sample import TaskSample, to_files
from formats.shards import ShardPaths, ShardWriter
from render.analytic import demo_outdoor, demo_room

H, W = 36, 48  # not square: exercises the aspect-ratio checks and the center-square region


def _shade(normals: np.ndarray) -> np.ndarray:
    """A plausible photo: Lambertian shading of the normals, sky light blue."""
    light = np.array([0.3, -0.5, -0.8]) / np.linalg.norm([0.3, -0.5, -0.8])
    lum = np.clip(np.nan_to_num(normals @ light, nan=0.0), 0.1, 1.0)
    img = (lum[..., None] * np.array([220, 200, 180])).astype(np.uint8)
    img[np.isnan(normals).any(-1)] = (150, 190, 240)
    return img


def _meta(task: str, codec, source: str, seed: int) -> dict:
    meta = {"split": "eval", "source": source, "seed": seed}
    if codec is not None:
        meta["codec"] = codecs.spec(codec)
    return meta


def eval_samples(n_scenes: int = 2) -> list[TaskSample]:
    """Per scene (room and outdoor alternate as sources): depth, normals, semantic, instance, referring,
    t2i and edit samples with raw truth."""
    out: list[TaskSample] = []
    for i in range(n_scenes):
        source = "room" if i % 2 == 0 else "outdoor"
        gt = (demo_room if source == "room" else demo_outdoor)(H, W, seed=i)[0]
        photo = _shade(gt.normals)
        dc, nc = codecs.get("depth"), codecs.get("normals")
        ids, _ = relabel_instances(gt.instance)
        ids = np.minimum(ids, 20).astype(np.uint16)
        sem = np.where(ids > 0, (ids - 1) % 3 + 1, 0).astype(np.uint16)
        sc, ic, mc = codecs.get("semantic", num_classes=3), codecs.get("instance", max_instances=32), codecs.get("mask")
        mask = ids == 1
        p = f"s{i}"
        out += [
            TaskSample(f"{p}depth", "depth", dc.encode(gt.depth), make_prompt("depth", i), _meta("depth", dc, source, i),
                       photo, {"depth": gt.depth}),
            TaskSample(f"{p}normals", "normals", nc.encode(gt.normals), make_prompt("normals", i),
                       _meta("normals", nc, source, i), photo, {"normals": gt.normals}),
            TaskSample(f"{p}semantic", "semantic", sc.encode(sem),
                       make_prompt("semantic", i, class_names=["a", "b", "c"], palette=sc.palette.tolist()),
                       _meta("semantic", sc, source, i), photo, {"semantic": sem}),
            TaskSample(f"{p}instance", "instance", ic.encode(ids), make_prompt("instance", i),
                       _meta("instance", ic, source, i), photo, {"instance": ids}),
            TaskSample(f"{p}referring", "referring", mc.encode(mask), make_prompt("referring", i, expression="it"),
                       _meta("referring", mc, source, i), photo, {"mask": mask}),
            TaskSample(f"{p}t2i", "t2i", photo, "a rendered room", _meta("t2i", None, source, i)),
            TaskSample(f"{p}edit", "edit", photo[..., ::-1].copy(), "swap red and blue", _meta("edit", None, source, i),
                       photo),
        ]
    return out


def write_shard(samples: list[TaskSample], out: Path, index: int = 0, prefix: str = "eval") -> Path:
    paths = ShardPaths.of(out, prefix, index)
    with ShardWriter(paths) as w:
        for s in samples:
            w.add(s.key, to_files(s), {"task": s.task})
        w.commit()
    return paths.tar
