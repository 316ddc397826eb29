"""`vistune import FORMAT src=DIR out=DIR [key=value ...]`: a benchmark on disk -> eval task shards.

    vistune import nyuv2 src=/data/nyu out=outputs/bench/nyuv2 split=/data/nyu/splits.mat
    vistune import kitti src=/data/kitti out=outputs/bench/kitti split=/data/kitti/eigen_test_files_with_gt.txt
    vistune import cityscapes src=/data/cityscapes out=outputs/bench/cityscapes split=val

The formats, their layouts and parameters are evals/importers (FORMATS); this module only turns
the resolved Hydra config into an ImportConfig and calls `evals.importers.import_benchmark`.
Keys left null take the format's defaults; a key the format does not read is an error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from evals.importers import FORMATS, ImportSummary, import_benchmark
from formats.config import from_dict


@dataclass(frozen=True)
class ImportConfig:
    format: str | None = None
    src: str | None = None
    out: str = "outputs/bench"
    source: str | None = None          # report name (default: the format's)
    protocol: str | None = None        # evals/protocols.py row (default: the format's)
    per_shard: int = 256
    depth_preset: str = "gray"
    prefix: str = "eval"
    # format parameters (null: the format's default; set only those the format reads)
    split: str | None = None           # nyuv2 / kitti: split file; cityscapes, ade20k, refcoco: split name
    depth_scale: float | None = None   # depth-folder (0.001), kitti (1/256): meters per PNG unit
    mat: str | None = None             # nyuv2: the labeled .mat (default SRC/nyu_depth_v2_labeled.mat)
    depth_key: str | None = None       # nyuv2: rawDepths (BTS's test set, default) | depths (in-painted)
    black_border: bool | None = None   # nyuv2: the photo's 7-pixel border black, as BTS extracts it (default true)
    rgb_root: str | None = None        # kitti: roots the split file's paths are relative to (default SRC)
    depth_root: str | None = None
    scene_type: str | None = None      # diode, diode-normals: indoors (default) | outdoors | all
    convention: str | None = None      # nyuv2-normals, scannet-normals, diode-normals: dsine (default) | opencv | opengl
    dataset: str | None = None         # refcoco: refcoco | refcoco+ | refcocog (default)
    split_by: str | None = None        # refcoco: unc | umd | google (default per dataset)
    refs: str | None = None            # refcoco: refs file (.p pickle or .json conversion)
    instances: str | None = None       # refcoco: COCO instances json
    image_root: str | None = None      # refcoco: the COCO train2014 images

    def __post_init__(self) -> None:
        if self.format is None:
            raise ValueError(f"name the format: `vistune import FORMAT src=DIR out=DIR`; formats: {list(FORMATS)}")
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; formats: {list(FORMATS)}")
        if not self.src:
            raise ValueError("src must name the benchmark's directory on disk (nothing is downloaded)")
        scale = self.depth_scale
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0):
            raise ValueError(f"depth_scale must be a number > 0 (meters per PNG unit), got {scale!r}")
        if self.per_shard < 1:
            raise ValueError(f"per_shard must be >= 1, got {self.per_shard}")
        allowed = set(FORMATS.get(self.format).params)
        given = {k for k, v in self.params().items() if v is not None}
        extra = sorted(given - allowed)
        if extra:
            raise ValueError(f"format {self.format} does not read {extra}; its parameters: {sorted(allowed)}")

    def params(self) -> dict[str, Any]:
        """The format-specific keys (common ones excluded)."""
        common = {"format", "src", "out", "source", "protocol", "per_shard", "depth_preset", "prefix"}
        return {k: v for k, v in asdict(self).items() if k not in common}


def config_from_dict(data: dict[str, Any]) -> ImportConfig:
    return from_dict(ImportConfig, data, "import")


def run(conf: ImportConfig) -> ImportSummary:
    params = {k: v for k, v in conf.params().items() if v is not None}
    params.update(source=conf.source, protocol=conf.protocol, per_shard=conf.per_shard,
                  depth_preset=conf.depth_preset, prefix=conf.prefix)
    return import_benchmark(conf.format, conf.src, conf.out, params)


def describe(summary: ImportSummary) -> str:
    skipped = ", ".join(f"{k}: {v}" for k, v in summary.skipped.items())
    return (f"imported {summary.written} {summary.format} samples (source {summary.source!r}, protocol "
            f"{summary.protocol or 'none'}) into {len(summary.shards)} shards under "
            f"{summary.shards[0].parent if summary.shards else '-'}" + (f"; skipped {skipped}" if skipped else "")
            + f"\nscore them: vistune eval data={summary.shards[0].parent if summary.shards else 'OUT'} checkpoint=... "
              f"(or predictions=DIR)")
