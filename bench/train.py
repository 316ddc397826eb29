"""Training throughput: samples/s, step-time breakdown, model FLOPs utilization, data-stream rate.

    .venv/bin/python bench/train.py                          # debug model on CPU (fp32)
    .venv/bin/python bench/train.py --size small --batch 8   # a bigger model on CPU
    python bench/train.py --size base --batch 64 --compile both   # on an H100: bf16, compile off vs on
    .venv/bin/python bench/train.py --model diffusers --path DIR  # a pretrained diffusers pipeline (diffusers_train.py)

Per configuration it prints (1) the end-to-end rate of full optimizer steps fed by the real data
stream (DataLoader workers decoding task shards), (2) a breakdown of one step into data wait,
host->device copy, forward, backward, optimizer (clip + AdamW) and EMA, measured with device
syncs between phases (so it sums to a bit more than (1)), (3) model FLOPs per sample counted by
torch's FlopCounterMode for one forward + backward, and MFU against the device's dense bf16 peak,
and (4) the data stream alone (samples/s with the same workers), to show whether input keeps up.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# This script's directory holds bench/encode.py and bench/train.py, which would shadow the
# `encode` and `train` packages: import from the repository root instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from encode import codecs  # noqa: E402
from encode.prompts import make_prompt  # noqa: E402
from encode.sample import TaskSample, to_files  # noqa: E402
from formats.shards import ShardPaths, ShardWriter  # noqa: E402
from train.data import BatchStream, DataConfig, ShardListStream  # noqa: E402
from train.ema import EMA  # noqa: E402
from train.loop import param_groups  # noqa: E402
from train.model import GeneratorConfig  # noqa: E402

# dense bf16 tensor-core peaks (no sparsity), FLOP/s
PEAKS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12}


def write_bench_shards(out: Path, resolution: int, n: int = 64) -> list[str]:
    """Synthetic depth (tilted planes) and text-to-image (colored squares) samples at `resolution`."""
    rng = np.random.default_rng(0)
    codec = codecs.get("depth")
    paths = ShardPaths.of(out, "bench", 0)
    ys, xs = np.mgrid[0:resolution, 0:resolution].astype(np.float32) / resolution - 0.5
    with ShardWriter(paths) as w:
        for i in range(n):
            if i % 2 == 0:
                depth = 1.0 / (rng.uniform(0.45, 0.8) + rng.uniform(-0.2, 0.2) * xs + rng.uniform(0.1, 0.5) * ys)
                image = np.clip(255 * np.exp(-depth / 4)[..., None] * rng.uniform(0.5, 1, 3), 0, 255).astype(np.uint8)
                ts = TaskSample(f"b{i}", "depth", codec.encode(depth.astype(np.float32)), make_prompt("depth", i),
                                {"split": "train"}, input=image)
            else:
                img = np.empty((resolution, resolution, 3), np.uint8)
                img[:] = rng.integers(0, 256, 3)
                lo, hi = resolution // 4, 3 * resolution // 4
                img[lo:hi, lo:hi] = rng.integers(0, 256, 3)
                ts = TaskSample(f"b{i}", "t2i", img, "a square of one color on a background of another", {"split": "train"})
            w.add(ts.key, to_files(ts))
        w.commit()
    return [str(paths.tar)]


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAKS.items() if k in name), None)


class Bench:
    def __init__(self, args: argparse.Namespace, compile_model: bool, shards: list[str]) -> None:
        self.args, self.device = args, torch.device(args.device if args.device != "auto" else
                                                    ("cuda" if torch.cuda.is_available() else "cpu"))
        torch.manual_seed(0)
        over = {"resolution": args.resolution} if args.resolution else {}
        self.model = GeneratorConfig(size=args.size, **over).build().to(self.device)
        self.ema = EMA(self.model, 0.999)
        fused = self.device.type == "cuda"
        self.opt = torch.optim.AdamW(param_groups(self.model, 0.01), lr=1e-4, fused=fused or None)
        if compile_model:
            self.model.dit.compile()
        bf16 = args.precision == "bf16" or (args.precision == "auto" and self.device.type == "cuda")
        self.autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext())
        self.precision = "bf16" if bf16 else "fp32"
        self.noise = torch.Generator(device=self.device).manual_seed(0)
        self.data_cfg = DataConfig(resolution=self.model.resolution, batch_size=args.batch, num_workers=args.workers)
        self.stream = BatchStream(ShardListStream(shards), self.data_cfg, pin_memory=self.device.type == "cuda")

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def step(self, timed: bool) -> dict[str, float]:
        t, clock = {}, time.perf_counter
        t0 = clock()
        batch = next(self.stream)
        t1 = clock()
        b = batch.to_model(self.device)
        if timed:
            self.sync()
        t2 = clock()
        with self.autocast:
            out = self.model(b.target, b.image, b.has_image, b.prompts, generator=self.noise)
        if timed:
            self.sync()
        t3 = clock()
        out["loss"].backward()
        if timed:
            self.sync()
        t4 = clock()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if timed:
            self.sync()
        t5 = clock()
        self.ema.update(self.model)
        loss = out["loss"].item()  # the loop syncs once per step for its NaN check too
        t6 = clock()
        t.update(data=t1 - t0, h2d=t2 - t1, forward=t3 - t2, backward=t4 - t3, optimizer=t5 - t4, ema=t6 - t5,
                 loss=loss)
        return t

    def flops_per_sample(self) -> float:
        from torch.utils.flop_counter import FlopCounterMode

        b = next(self.stream).to_model(self.device)
        counter = FlopCounterMode(display=False)
        with counter, self.autocast:
            self.model(b.target, b.image, b.has_image, b.prompts, generator=self.noise)["loss"].backward()
        self.opt.zero_grad(set_to_none=True)
        return counter.get_total_flops() / len(b)

    def run(self) -> dict[str, float]:
        a = self.args
        for _ in range(a.warmup):  # includes compilation
            self.step(timed=False)
        self.sync()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            self.step(timed=False)
        self.sync()
        e2e = (time.perf_counter() - t0) / a.steps
        parts = [self.step(timed=True) for _ in range(max(3, a.steps // 2))]
        res = {k: float(np.median([p[k] for p in parts])) for k in parts[0] if k != "loss"}
        res["step"], res["samples_s"] = e2e, a.batch / e2e
        res["flops_sample"] = self.flops_per_sample()
        peak = peak_flops(self.device)
        res["mfu"] = res["flops_sample"] * res["samples_s"] / peak if peak else float("nan")
        return res


def data_rate(shards: list[str], cfg: DataConfig, batches: int) -> float:
    stream = BatchStream(ShardListStream(shards), cfg)
    next(stream)  # worker start-up
    t0 = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return batches * cfg.batch_size / (time.perf_counter() - t0)


def main() -> None:
    if "--model" in sys.argv and sys.argv[sys.argv.index("--model") + 1:][:1] == ["diffusers"]:
        import os  # a pretrained diffusers pipeline: bench/diffusers_train.py (--path DIR)

        os.execv(sys.executable, [sys.executable, str(_HERE / "diffusers_train.py"), *sys.argv[1:]])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="debug", choices=["debug", "small", "base", "large"])
    p.add_argument("--resolution", type=int, default=None, help="override the size's resolution")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    p.add_argument("--compile", default="off", choices=["off", "on", "both"])
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None, help="torch intra-op CPU threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    res = args.resolution or GeneratorConfig(size=args.size).resolved().resolution
    with tempfile.TemporaryDirectory() as tmp:
        shards = write_bench_shards(Path(tmp), res, n=max(64, 4 * args.batch))
        rows = []
        for comp in {"off": [False], "on": [True], "both": [False, True]}[args.compile]:
            bench = Bench(args, comp, shards)
            n_params = sum(p.numel() for p in bench.model.parameters())
            rows.append((comp, bench.precision, bench.run()))
            del bench
        rate = data_rate(shards, DataConfig(resolution=res, batch_size=args.batch, num_workers=args.workers),
                         batches=max(10, args.steps))
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu" else \
        f"CPU ({torch.get_num_threads()} threads)"
    print(f"# train bench: size={args.size} ({n_params / 1e6:.1f}M params) {res}px batch={args.batch} on {dev}")
    print(f"| compile | precision | samples/s | step ms | data | h2d | forward | backward | optimizer | ema "
          f"| GFLOP/sample | achieved TFLOP/s | MFU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for comp, prec, r in rows:
        ms = {k: f"{1e3 * r[k]:.1f}" for k in ("step", "data", "h2d", "forward", "backward", "optimizer", "ema")}
        tflops = r["flops_sample"] * r["samples_s"] / 1e12
        mfu = "n/a (no peak for this device)" if np.isnan(r["mfu"]) else f"{100 * r['mfu']:.1f}%"
        print(f"| {'on' if comp else 'off'} | {prec} | {r['samples_s']:.1f} | {ms['step']} | {ms['data']} | {ms['h2d']} "
              f"| {ms['forward']} | {ms['backward']} | {ms['optimizer']} | {ms['ema']} | {r['flops_sample'] / 1e9:.2f} "
              f"| {tflops:.3f} | {mfu} |")
    print(f"data stream alone ({args.workers} workers, decode + resize + collate): {rate:.0f} samples/s")


if __name__ == "__main__":
    main()
