"""Encode and stream benchmarks: samples/s per core, with the time breakdown.

    .venv/bin/python bench/encode.py            # 512 px encode, 256 + 512 px stream
    .venv/bin/python bench/encode.py --quick    # smaller, for a smoke run

1. Encode + write, one process (= one core), per task: raw sample decode (PNG/EXR), resize,
   target codec, task-sample PNG encode, tar write. Inputs: analytic-room render samples and
   synthetic annotate samples at 512x512 (the raw formats the real stages write).
2. Mixture stream read, one process: byte-range tar read, PNG decode, uint8 -> float tensor and
   batch collate (what a DataLoader worker does), at 256 and 512 px.
All rows are measured in one run, so the ratios between them are meaningful on a noisy machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from encode.manifest import SCHEMA  # noqa: E402
from encode.mixture import MixtureConfig, MixtureStream  # noqa: E402
from encode.sample import from_sample, to_files  # noqa: E402
from formats.shards import ShardPaths, ShardWriter, iter_samples  # noqa: E402
from encode.tasks import EncodeSettings, TaskBuilder  # noqa: E402
from encode.shard import ShardEncoder  # noqa: E402
from tests.encode.raw_fixtures import write_annotate_shard, write_render_shard  # noqa: E402


def bench_encode(tmp: Path, size: int, n: int) -> dict[str, dict[str, float]]:
    write_render_shard(tmp / "raw", 0, range(n), size, size)
    write_annotate_shard(tmp / "raw", 0, range(1000, 1000 + n), height=size, width=size)
    builder = TaskBuilder(EncodeSettings(size=size, eval_fraction=0.0))
    builder.build(next(iter_samples(tmp / "raw" / "render-000000.tar")), "warm")  # codec tables
    per_task: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for kind in ("render", "annotate"):
        raws = list(iter_samples(tmp / "raw" / f"{kind}-000000.tar"))
        for task in builder.settings.tasks:
            one = TaskBuilder(EncodeSettings(size=size, eval_fraction=0.0, tasks=(task,)))
            one.depth_codec = builder.depth_codec  # share the warm lookup tables
            t_build = t_files = t_write = 0.0
            count = 0
            with ShardWriter(ShardPaths.of(tmp / "bench" / task, kind, 0), schema=SCHEMA) as w:
                for raw in raws:
                    t0 = time.perf_counter()
                    built = one.build(raw, "bench")
                    t1 = time.perf_counter()
                    for sample, row in built.samples:
                        files = to_files(sample)
                        t2 = time.perf_counter()
                        w.add(f"{sample.key}", files, row)
                        t3 = time.perf_counter()
                        t_files += t2 - t1
                        t_write += t3 - t2
                        t1 = t3
                        count += 1
                    t_build += t1 - t0  # decode + resize + codec + manifest row (+ png, write: subtracted below)
                w.commit()
            if count:
                row_ = per_task[f"{task} ({kind})"]
                row_["n"] += count
                row_["build_s"] += t_build - t_files - t_write
                row_["png_s"] += t_files
                row_["write_s"] += t_write
    # The job's path: one raw decode feeds every task of the sample.
    worker = ShardEncoder(EncodeSettings(size=size, eval_fraction=0.0), "raise")
    worker.builder.depth_codec = builder.depth_codec
    for kind in ("render", "annotate"):
        t0 = time.perf_counter()
        rec = worker.encode_shard(str(tmp / "job"), str(tmp / "raw" / f"{kind}-000000.tar"))
        per_task[f"ALL via job ({kind})"].update(n=sum(rec["written"].values()), build_s=time.perf_counter() - t0,
                                                 png_s=0.0, write_s=0.0, raw_in=rec["samples_in"])
    return per_task


def bench_stream(tmp: Path, size: int, n: int, batch: int = 16) -> dict[str, float]:
    import torch

    out = tmp / f"enc{size}"
    write_render_shard(tmp / f"raw{size}", 0, range(n), size, size)
    worker = ShardEncoder(EncodeSettings(size=size, eval_fraction=0.0, tasks=("depth", "t2i", "denoise")), "raise")
    worker.encode_shard(str(out), str(tmp / f"raw{size}" / "render-000000.tar"))
    cfg = MixtureConfig.from_dict({"roots": [str(out)], "sources": {
        "t2i": {"weight": 0.8, "filter": {"task": "t2i"}}, "depth": {"weight": 0.1, "filter": {"task": "depth"}},
        "denoise": {"weight": 0.1, "filter": {"task": "denoise"}}}})
    stream = MixtureStream(cfg)
    stream._read = _timed(stream._read)
    times = defaultdict(float)
    m = 3 * n
    it = iter(stream)
    t_start = time.perf_counter()
    pending = []
    for _ in range(m):
        t0 = time.perf_counter()
        s = next(it)
        t1 = time.perf_counter()
        ts = from_sample(s, with_raw=False)
        t2 = time.perf_counter()
        pending.append(ts)
        times["stream_s"] += t1 - t0
        times["decode_s"] += t2 - t1
        if len(pending) == batch:
            t3 = time.perf_counter()
            tgt = torch.from_numpy(np.stack([p.target for p in pending])).permute(0, 3, 1, 2).float().div_(127.5).sub_(1)
            inp = torch.from_numpy(np.stack([p.input if p.input is not None else np.zeros_like(p.target)
                                             for p in pending])).permute(0, 3, 1, 2).float().div_(127.5).sub_(1)
            assert tgt.shape == inp.shape
            times["collate_s"] += time.perf_counter() - t3
            pending = []
    total = time.perf_counter() - t_start
    times["read_s"] = stream._read.elapsed
    times["stream_s"] -= times["read_s"]  # left: source choice and index lookup
    return {"samples_per_s": m / total, "total_s": total, **times, "n": m}


def _timed(fn):
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            wrapper.elapsed += time.perf_counter() - t
    wrapper.elapsed = 0.0
    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    size, n = (128, 4) if args.quick else (512, 8)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows = bench_encode(tmp, size, n)
        print(f"\nencode + write, one core, {size}x{size} (samples/s; share of time)")
        print(f"{'task (source)':<24} {'samples/s':>9} {'build':>7} {'png':>6} {'write':>6}")
        for name, r in sorted((k, v) for k, v in rows.items() if not k.startswith("ALL")):
            total = r["build_s"] + r["png_s"] + r["write_s"]
            print(f"{name:<24} {r['n'] / total:9.1f} {r['build_s'] / total:7.0%} {r['png_s'] / total:6.0%} "
                  f"{r['write_s'] / total:6.0%}")
        for kind in ("render", "annotate"):
            r = rows[f"ALL via job ({kind})"]
            print(f"  job path ({kind}): {r['raw_in'] / r['build_s']:.2f} raw samples/s -> {r['n'] / r['build_s']:.1f} "
                  f"task samples/s per core (all tasks, one raw decode each)")
        print("  build = raw decode + resize + codec/degradation + manifest row (hashes, pHash); png = task-sample "
              "PNG/EXR encode; write = tar append")
        print("\nmixture stream read, one core, batches of 16 (t2i 0.8 / depth 0.1 / denoise 0.1)")
        print(f"{'size':>5} {'samples/s':>10} {'tar read':>9} {'png decode':>11} {'collate':>8} {'choice':>7}")
        for s in ((64, 128) if args.quick else (256, 512)):
            r = bench_stream(tmp, s, 12 if args.quick else 48)
            t = r["total_s"]
            print(f"{s:>5} {r['samples_per_s']:10.1f} {r['read_s'] / t:9.0%} {r['decode_s'] / t:11.0%} "
                  f"{r['collate_s'] / t:8.0%} {r['stream_s'] / t:7.0%}")
        print("  x8 DataLoader workers ~ 8x these rates (one core each); compare with the trainer's samples/s "
              "(bench/train.py)")


if __name__ == "__main__":
    main()
