"""External held-out sets -> eval task shards: the command-line face of evals/importers.

`vistune import FORMAT src=DIR out=DIR ...` is the main entry (pipelines/import_job.py); this
module keeps the older depth-folder helper and a plain argparse CLI that needs no Hydra:

    python -m evals.external SRC OUT --source nyuv2 --protocol nyuv2
    python -m evals.external SRC OUT --source kitti --protocol kitti --depth-scale 0.00390625
    python -m evals.external SRC OUT --format cityscapes --param split=val

Formats, layouts and protocols: evals/importers/__init__.py (`FORMATS`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evals.importers import FORMATS, BenchmarkError, import_benchmark
from evals.importers.depth import pair_files, read_depth_file as read_depth  # noqa: F401  (the older API)

__all__ = ["BenchmarkError", "convert_depth_set", "main", "pair_files", "read_depth"]


def convert_depth_set(src: str | Path, out: str | Path, source: str, protocol: str = "nyuv2",
                      depth_scale: float = 0.001, per_shard: int = 256, preset: str = "gray",
                      prefix: str = "eval") -> list[Path]:
    """Write eval shards (`<prefix>-000000.tar` ...) for the rgb/ + depth/ set at `src`. Returns the tar paths."""
    summary = import_benchmark("depth-folder", src, out, {"source": source, "protocol": protocol,
                                                           "depth_scale": depth_scale, "per_shard": per_shard,
                                                           "depth_preset": preset, "prefix": prefix})
    return summary.shards


def _param(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--param takes key=value, got {text!r}")
    return key, value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--format", default="depth-folder", choices=list(FORMATS))
    ap.add_argument("--source", help="source name in the report (default: the format's)")
    ap.add_argument("--protocol", help="scoring protocol (evals/protocols.py; default: the format's)")
    ap.add_argument("--depth-scale", type=float, help="depth-folder: meters per 16-bit PNG unit (NYUv2 mm: 0.001)")
    ap.add_argument("--per-shard", type=int, default=256)
    ap.add_argument("--param", type=_param, action="append", default=[], help="a format parameter, key=value")
    args = ap.parse_args(argv)
    params = {"source": args.source, "protocol": args.protocol, "per_shard": args.per_shard,
              "depth_scale": args.depth_scale, **dict(args.param)}
    try:
        summary = import_benchmark(args.format, args.src, args.out, params)
    except ValueError as err:
        ap.exit(2, f"evals.external: error: {err}\n")
    print(f"wrote {summary.written} samples in {len(summary.shards)} shards to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
