"""Tiny real task shards for the train tests: depth of analytic planes and simple text-to-image scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from encode import codecs
from encode.prompts import make_prompt
from encode.manifest import SCHEMA, make_row, target_stats
from encode.sample import TASK_GROUPS, TaskSample, to_files
from formats.shards import ShardPaths, ShardWriter

COLORS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}


def plane_depth(size: int, rng: np.random.Generator) -> np.ndarray:
    """Planar z of a tilted plane seen by a pinhole camera: 1 / z is affine in the pixel coordinates."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    a, bx, by = rng.uniform(0.45, 0.8), rng.uniform(-0.2, 0.2), rng.uniform(0.1, 0.5)
    return (1.0 / (a + bx * xs + by * ys)).astype(np.float32)


def depth_sample(key: str, size: int, seed: int) -> TaskSample:
    rng = np.random.default_rng(seed)
    depth = plane_depth(size, rng)
    codec = codecs.get("depth")
    shade = np.exp(-depth / 4.0)  # the photo: a plane whose brightness falls with distance, tinted
    tint = rng.uniform(0.5, 1.0, 3)
    image = np.clip(255 * shade[..., None] * tint, 0, 255).astype(np.uint8)
    return TaskSample(key=key, task="depth", target=codec.encode(depth), prompt=make_prompt("depth", seed),
                      meta={"codec": codecs.spec(codec), "split": "train", "seed": seed}, input=image,
                      raw={"depth": depth})


def t2i_sample(key: str, size: int, seed: int) -> TaskSample:
    rng = np.random.default_rng(seed)
    names = list(COLORS)
    fg, bg = rng.choice(len(names), 2, replace=False)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = COLORS[names[bg]]
    lo, hi = size // 4, 3 * size // 4
    img[lo:hi, lo:hi] = COLORS[names[fg]]
    return TaskSample(key=key, task="t2i", target=img, prompt=f"a {names[fg]} square on a {names[bg]} background",
                      meta={"split": "train", "seed": seed})


def manifest_row(ts: TaskSample) -> dict:
    """The encode stage's manifest row for a fixture sample (so `encode.mixture` can read the shards)."""
    image = ts.target if ts.input is None else ts.input
    return make_row(task=ts.task, task_group=TASK_GROUPS[ts.task], source="fixture", source_shard="none",
                    source_key=ts.key, source_group=ts.key, split="train", seed=ts.meta["seed"], image=image,
                    target=ts.target, codec_spec=ts.meta.get("codec"), prompt=ts.prompt,
                    stats=target_stats(ts.task, ts.raw, ts.target))


def write_task_shards(out: Path, n_shards: int = 2, per_shard: int = 8, size: int = 32,
                      prefix: str = "task") -> list[Path]:
    """Alternating depth / t2i samples with manifests; keys `s<shard>i<index>`. Returns the tar paths."""
    tars = []
    for s in range(n_shards):
        paths = ShardPaths.of(out, prefix, s)
        with ShardWriter(paths, schema=SCHEMA) as w:
            for i in range(per_shard):
                seed = s * 1000 + i
                ts = (depth_sample if i % 2 == 0 else t2i_sample)(f"s{s}i{i}", size, seed)
                w.add(ts.key, to_files(ts), manifest_row(ts))
            w.commit()
        tars.append(paths.tar)
    return tars


def train_job_dict(task_shards: list[Path], out: Path, *overrides: str) -> dict:
    """The resolved `vistune train` config over `task_shards` (tiny steps, no DataLoader workers), as a dict."""
    from omegaconf import OmegaConf

    from pipelines import cli

    cfg = cli.compose("train", [f"out={out}", f"data.shards=[{','.join(str(p) for p in task_shards)}]",
                                "data.num_workers=0", "train.batch_size=2", "train.log_every=1", "train.ckpt_every=2",
                                "train.progress=false", "train.tensorboard=false", *overrides])
    return OmegaConf.to_container(cfg, resolve=True)
