"""Training-step cost of a pretrained diffusers generator (model.kind=diffusers), split by phase.

    .venv/bin/python bench/train.py --model diffusers                    # tiny random-weight SD pipeline (CPU)
    .venv/bin/python bench/train.py --model diffusers --path tiny-flux   # tiny FLUX.1 Kontext
    .venv/bin/python bench/train.py --model diffusers --path tiny-sdxl   # tiny SDXL (two text encoders, time ids)
    python bench/train.py --model diffusers --path sd15-random --device cuda --batch 8   # SD 1.5 shapes, 512 px, bf16
    python bench/train.py --model diffusers --path /models/sd2 --batch 8 --resolution 512   # a real pipeline

For each configuration (full vs LoRA, gradient checkpointing off/on, cached VAE latents off/on)
a fresh process builds the model and runs `--warmup` + `--steps` optimizer steps on synthetic
batches (`--distinct` different batches cycled, so cached latents are hits after warm-up). It
prints samples/s and the step split into VAE encode, text encode, denoiser forward, backward
and optimizer (AdamW on the trainable tensors), measured with device syncs; and the step's peak
memory above the loaded model (CUDA: max_memory_allocated; CPU: peak RSS growth of the process,
a coarser number that includes allocator caching). Ratios compare configurations of one run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

CONFIGS = [dict(train=t, gradient_checkpointing=gc, cache_latents=c)
           for t in ("full", "lora") for gc in (False, True) for c in (False, True)]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker(args: dict, model_kw: dict, queue: mp.Queue) -> None:
    import torch

    from train.model import GeneratorConfig

    torch.set_num_threads(args["threads"])
    torch.manual_seed(0)
    dev = torch.device(args["device"])
    model = GeneratorConfig(kind="diffusers", path=args["path"], resolution=args["resolution"], lora_rank=args["rank"],
                            **model_kw).build().to(dev).train()
    r, b = model.resolution, args["batch"]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    g = torch.Generator(device=dev).manual_seed(0)
    data = []
    for i in range(args["distinct"]):
        gi = torch.Generator().manual_seed(i)
        data.append(((torch.rand(b, 3, r, r, generator=gi) * 2 - 1).to(dev), (torch.rand(b, 3, r, r, generator=gi) * 2 - 1).to(dev),
                     torch.ones(b, dtype=torch.bool, device=dev), [f"estimate the depth of scene {i}"] * b))
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" and args["bf16"]
                else torch.autocast("cpu", enabled=False))

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def step(i: int) -> dict:
        model.timings = {}
        t0 = time.perf_counter()
        with autocast:
            out = model(*data[i % len(data)], generator=g)
        sync()
        t1 = time.perf_counter()
        out["loss"].backward()
        sync()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        t3 = time.perf_counter()
        return {**model.timings, "backward": t2 - t1, "optimizer": t3 - t2, "step": t3 - t0}

    base_rss = _rss_mb()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base_cuda = torch.cuda.memory_allocated(dev)
    for i in range(args["warmup"]):
        step(i)
    rows = [step(args["warmup"] + i) for i in range(args["steps"])]
    mean = {k: sum(r.get(k, 0.0) for r in rows) / len(rows) for k in rows[0]}
    mean["samples_per_s"] = b / mean["step"]
    mean["peak_mb"] = ((torch.cuda.max_memory_allocated(dev) - base_cuda) / 2 ** 20 if dev.type == "cuda"
                       else _rss_mb() - base_rss)
    mean["trainable_m"] = sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6
    queue.put(mean)


def run(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="diffusers", choices=["diffusers"])
    p.add_argument("--path", default="tiny-sd", help="a local diffusers pipeline dir, or tiny-sd / small-sd / tiny-flux / tiny-sdxl / sd15-random "
                                                     "(random-weight pipelines written to a temp dir; sd15-random: "
                                                     "SD 1.5's shapes, 512 px, for a GPU)")
    p.add_argument("--resolution", type=int, default=None, help="default: the model's native resolution")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--distinct", type=int, default=2, help="distinct batches cycled (cache hits after warm-up)")
    p.add_argument("--rank", type=int, default=16, help="LoRA rank")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="CUDA: fp32 instead of bf16 autocast")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.path
        if path in ("tiny-sd", "small-sd", "tiny-flux", "tiny-sdxl", "sd15-random"):
            from tests.train.diffusers_fixtures import (write_flux_kontext_pipeline, write_sd15_shaped_pipeline,
                                                        write_sd_pipeline, write_sdxl_pipeline)

            if path == "sd15-random":  # SD 1.5's published shapes, random weights: for a GPU machine
                path = str(write_sd15_shaped_pipeline(Path(tmp) / path))
            elif path == "tiny-flux":
                path = str(write_flux_kontext_pipeline(Path(tmp) / path))
            elif path == "tiny-sdxl":  # diffusers' SDXL test config at 32 px
                path = str(write_sdxl_pipeline(Path(tmp) / path))
            else:  # small-sd: UNet widths 64/128 at 64 px (14x the tiny one's compute per sample)
                kw = dict(width=64, latent_size=32) if path == "small-sd" else {}
                path = str(write_sd_pipeline(Path(tmp) / path, **kw))
        job = {**vars(args), "path": path, "warmup": max(args.warmup, args.distinct)}
        ctx = mp.get_context("spawn")
        results = []
        for kw in CONFIGS:
            q = ctx.Queue()
            proc = ctx.Process(target=_worker, args=(job, kw, q))
            proc.start()
            results.append((kw, q.get()))
            proc.join()
    print(f"model.kind=diffusers path={args.path} batch={args.batch} device={args.device} "
          f"(steps={args.steps} after {job['warmup']} warm-up, {args.threads} thread)")
    cols = ["vae_encode", "text_encode", "denoiser", "backward", "optimizer", "step"]
    print(f"{'train':<5} {'ckpt':<4} {'cache':<5} {'trainM':>7} {'smp/s':>7} " + " ".join(f"{c[:11] + '_ms':>14}" for c in cols)
          + f" {'peak_MB':>8}")
    ref = results[0][1]
    for kw, r in results:
        print(f"{kw['train']:<5} {'on' if kw['gradient_checkpointing'] else 'off':<4} "
              f"{'on' if kw['cache_latents'] else 'off':<5} {r['trainable_m']:>7.3f} {r['samples_per_s']:>7.1f} "
              + " ".join(f"{1000 * r.get(c, 0.0):>14.1f}" for c in cols) + f" {r['peak_mb']:>8.1f}")
    print("ratios vs full/off/off: " + "; ".join(
        f"{kw['train']}/{'ckpt' if kw['gradient_checkpointing'] else '-'}/{'cache' if kw['cache_latents'] else '-'}: "
        f"speed x{r['samples_per_s'] / ref['samples_per_s']:.2f}" for kw, r in results[1:]))
    print(json.dumps([{**kw, **r} for kw, r in results]), file=sys.stderr)


if __name__ == "__main__":
    run(sys.argv[1:])
