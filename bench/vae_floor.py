"""The VAE floor per VAE, task and codec: the best a latent generator with that VAE can score.

    .venv/bin/python bench/vae_floor.py --vae models/sd2 --vae models/flux-kontext --data outputs/run/encode/*/*.tar
    .venv/bin/python bench/vae_floor.py --vae tiny-random --vae identity      # CPU, no downloads (seconds)

Every held-out vision sample's raw truth is encoded with each codec (all depth presets encode.codecs
offers; normals; the data's own semantic palette and the 255-class one; instance; referring mask),
round-tripped through each VAE (encode, latent mode, fp32, decode; at the VAE's native resolution
from the centre square, as a latent model answers: evals/vae_floor.py) and scored by the evaluator.
The `codec oracle` row is the encoded truth itself (full frame, own size): the floor of the codec
alone, so each VAE row beside it shows what the VAE costs; `--vae identity` at the same
`--resolution` as a real VAE separates the resize to its resolution from the latent round trip. Columns: depth AbsRel / delta1 / edge AbsRel (AbsRel on
depth-discontinuity pixels); normals mean / median angle; semantic mIoU / wrong-colour rate
(labeled pixels decoded to another class); instance AP; referring gIoU / cIoU.

`--vae` takes a VAE or pipeline directory (loaded with local_files_only=True), `identity` (the
identity autoencoder: the round trip at the VAE's resolution with nothing lost but the resize), or
`tiny-random` (a 2-block random-weight AutoencoderKL, saved with save_pretrained and loaded back,
as the tests do). Without `--data`, a tiny set is built the way bench/codecs.py builds its maps:
seeded analytic rooms and outdoor scenes (exact truth), encoded by encode's own TaskBuilder.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from pathlib import Path

# This directory holds bench/encode.py and bench/train.py, which would shadow the `encode` and
# `train` packages: import from the repository root instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402

from encode import codecs  # noqa: E402
from encode.codecs.depth import PRESETS  # noqa: E402
from encode.sample import TaskSample  # noqa: E402
from evals.scoring import RAW_KEY, VISION_TASKS, codec_of  # noqa: E402
from evals.vae_floor import HEADLINE_METRICS, codec_floor, load_vae, native_resolution, vae_floor  # noqa: E402

LABELS = {"abs_rel": "AbsRel", "delta1": "delta1", "edge_abs_rel": "edge AbsRel", "mean_deg": "mean deg",
          "median_deg": "median deg", "miou": "mIoU", "wrong_colour": "wrong colour", "AP": "AP", "giou": "gIoU",
          "ciou": "cIoU"}
CLASS_NAMES = ["wall", "furniture", "ball", "ground"]


class IdentityAutoencoder:
    """The identity autoencoder: the harness's own path with nothing lost in the latent."""

    def encode(self, x):
        return x

    def decode(self, z):
        return z


# ---------------------------------------------------------------- data

def analytic_samples(n_scenes: int, size: int) -> list[TaskSample]:
    """Held-out vision samples of seeded analytic scenes, built by encode's TaskBuilder from raw render members."""
    from encode.tasks import EncodeSettings, TaskBuilder
    from formats import raw_render
    from render.analytic import demo_outdoor, demo_room

    builder = TaskBuilder(EncodeSettings(tasks=VISION_TASKS, size=size, eval_fraction=0.999))
    out: list[TaskSample] = []
    for seed in range(n_scenes):
        make = demo_room if seed % 2 == 0 else demo_outdoor
        gt, K, ext = make(size, size, seed=seed)
        ids = gt.instance.astype(np.uint16)
        semantic = np.where(ids > 0, (ids.astype(np.int64) - 1) % len(CLASS_NAMES) + 1, 0).astype(np.uint16)
        meta = {"seed": seed, "K": K.tolist(), "extrinsics": ext.tolist(), "class_table": CLASS_NAMES,
                "referring": [{"instance_id": int(ids.max()), "expression": "the last object"}]}
        files = raw_render.to_files(gt.depth, gt.normals, ids, semantic, meta, rgb=_shade(gt.normals))
        built = builder.build({"__key__": f"analytic{seed:04d}", **files}, "analytic")
        out += [s for s, _ in built.samples if s.raw]  # eval split: with its raw truth
    return out + [_referring(s) for s in out if s.task == "instance"]


def _referring(s: TaskSample) -> TaskSample:
    """A referring sample of the largest instance (encode makes referring samples from annotate
    sources only: their expressions come from a labeler)."""
    ids = s.raw["instance"]
    biggest = np.bincount(ids[ids > 0].ravel()).argmax()
    mask = ids == biggest
    codec = codecs.get("mask")
    return dataclasses.replace(s, key=s.key + "_r0", task="referring", target=codec.encode(mask), raw={"mask": mask},
                               meta={**s.meta, "task": "referring", "codec": codecs.spec(codec)})


def _shade(normals: np.ndarray) -> np.ndarray:
    light = np.array([0.3, -0.5, -0.8]) / np.linalg.norm([0.3, -0.5, -0.8])
    lum = np.clip(np.nan_to_num(normals @ light, nan=0.0), 0.1, 1.0)
    img = (lum[..., None] * np.array([220, 200, 180])).astype(np.uint8)
    img[np.isnan(normals).any(-1)] = (150, 190, 240)
    return img


def codec_variants(samples: list[TaskSample]) -> dict[tuple[str, str], list[TaskSample]]:
    """(task, codec label) -> the samples re-encoded from their raw truth with that codec."""
    by_task: dict[str, list[TaskSample]] = {}
    for s in samples:
        by_task.setdefault(s.task, []).append(s)
    out: dict[tuple[str, str], list[TaskSample]] = {}
    for p in PRESETS:
        if "depth" in by_task:
            out[("depth", p)] = [recode(s, codecs.get("depth", preset=p)) for s in by_task["depth"]]
    if "normals" in by_task:
        out[("normals", "normals")] = [recode(s, codecs.get("normals")) for s in by_task["normals"]]
    if "semantic" in by_task:
        n = max(int(codec_of(s).params["num_classes"]) for s in by_task["semantic"])
        for k in dict.fromkeys((n, 255)):
            out[("semantic", f"palette {k} cls")] = [recode(s, codecs.get("semantic", num_classes=max(k, n)))
                                                     for s in by_task["semantic"]]
    for task in ("instance", "referring"):
        if task in by_task:
            out[(task, codec_of(by_task[task][0]).name)] = [recode(s, codec_of(s)) for s in by_task[task]]
    return out


def recode(s: TaskSample, codec) -> TaskSample:
    """`s` with its target encoded from its raw truth by `codec` (and the codec's spec in its json)."""
    target = codec.encode(s.raw[RAW_KEY[s.task]])
    return dataclasses.replace(s, target=target, meta={**s.meta, "codec": codecs.spec(codec)})


# ---------------------------------------------------------------- VAEs

def tiny_random_vae_dir(root: Path, size: int) -> Path:
    """A 2-block random-weight AutoencoderKL (diffusers' test config shape) saved with save_pretrained."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(block_out_channels=[8, 16], in_channels=3, out_channels=3,
                  down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                  latent_channels=4, norm_num_groups=4, sample_size=size).save_pretrained(root / "vae")
    return root / "vae"


def open_vae(spec: str, size: int, device: str, work: Path):
    if spec == "identity":
        return IdentityAutoencoder()
    if spec == "tiny-random":
        spec = str(tiny_random_vae_dir(work, size))
    return load_vae(spec, device)


# ---------------------------------------------------------------- table

def _fmt(v) -> str:
    return f"{v:>13.4f}" if isinstance(v, float) and math.isfinite(v) else f"{'-':>13}"


def print_tables(rows: dict[tuple[str, str], dict[str, dict[str, float]]], names: list[str]) -> None:
    for task in VISION_TASKS:
        keys = [k for k in rows if k[0] == task]
        if not keys:
            continue
        metrics = HEADLINE_METRICS[task]
        n = int(next(iter(rows[keys[0]].values())).get("n", 0))
        print(f"\n## {task} ({n} samples)")
        print(f"{'codec':<18}{'VAE':<22}" + "".join(f"{LABELS[m]:>13}" for m in metrics) + f"{'failed':>8}")
        for key in keys:
            for name in ["codec oracle", *names]:
                m = rows[key].get(name, {})
                print(f"{key[1]:<18}{name[:21]:<22}" + "".join(_fmt(m.get(k)) for k in metrics)
                      + f"{int(m.get('failed', 0)):>8}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vae", action="append", required=True,
                    help="a VAE or pipeline directory, `identity` or `tiny-random` (repeat for several)")
    ap.add_argument("--data", nargs="+", help="held-out task shards (files, dirs, globs); default: analytic scenes")
    ap.add_argument("--max-samples", type=int, default=None, help="held-out samples read from --data")
    ap.add_argument("--scenes", type=int, default=6, help="analytic scenes without --data")
    ap.add_argument("--size", type=int, default=64, help="analytic sample size (and tiny-random's sample_size)")
    ap.add_argument("--resolution", default="native", help="native (each VAE's sample_size), own (each sample's "
                                                           "size, full frame) or a size in pixels")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    resolution = {"native": "native", "own": None}.get(args.resolution)
    resolution = resolution if args.resolution in ("native", "own") else int(args.resolution)

    if args.data:
        from evals.data import load_eval_samples
        samples = load_eval_samples(args.data, VISION_TASKS, args.max_samples)
        origin = f"{len(samples)} held-out samples of {args.data}"
    else:
        samples = analytic_samples(args.scenes, args.size)
        origin = f"{len(samples)} samples of {args.scenes} analytic scenes at {args.size} px"
    variants = codec_variants(samples)
    work = Path(tempfile.mkdtemp(prefix="vistune-vae-floor-"))
    vaes = {spec: open_vae(spec, args.size, args.device, work) for spec in args.vae}
    print(f"# VAE floor: {origin}")
    for spec, vae in vaes.items():
        size = native_resolution(vae) if resolution == "native" else resolution
        where = f"{size} px, centre square" if size else "each sample's own size, full frame"
        print(f"#   {spec}: round trip at {where}")
    rows: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for key, group in variants.items():
        rows[key] = {"codec oracle": codec_floor(group, args.batch_size)[key[0]]}
        for spec, vae in vaes.items():
            t = time.perf_counter()
            rows[key][spec] = vae_floor(vae, group, resolution, args.batch_size)[key[0]]
            rows[key][spec]["seconds"] = time.perf_counter() - t
    print_tables(rows, list(vaes))


if __name__ == "__main__":
    main()
