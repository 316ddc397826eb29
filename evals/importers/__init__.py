"""Benchmark importers: a benchmark already on disk -> eval task shards at native resolution.

    from evals.importers import import_benchmark
    summary = import_benchmark("nyuv2", "/data/nyu", "/data/eval/nyuv2", {"split": "/data/nyu/splits.mat"})

Each format (FORMATS) reads one benchmark's own layout (see depth.py, normals.py, semantic.py,
referring.py for the layouts, checked against the evaluation loaders of BTS, ZoeDepth, Marigold,
DSINE, cityscapesScripts, mmsegmentation, the refer API and LISA) and yields one eval sample per
image or expression: the photo, the raw truth at the benchmark's resolution, and the protocol name
(evals/protocols.py: crop, depth range, mIoU convention) recorded in each sample's json as
`protocol`. Nothing is downloaded; a missing or malformed file raises BenchmarkError naming it.
`vistune import FORMAT src=DIR out=DIR ...` (pipelines/import_job.py) calls import_benchmark.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from evals.importers import depth, normals, referring, semantic
from evals.importers.common import BenchmarkError, Imported, ImportSummary, SampleEncoder, write_shards
from formats.registry import Registry

__all__ = ["BenchmarkError", "FORMATS", "Format", "ImportSummary", "import_benchmark"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Format:
    """One importable benchmark layout."""

    read: Callable[..., Iterator[Imported]]   # (src: Path, **params) -> Imported samples
    task: str
    source: str                                # the source name reports group its rows by
    protocol: str | None                       # evals/protocols.py row it is scored with
    help: str
    class_names: tuple[str, ...] = ()

    @property
    def params(self) -> list[str]:
        return [p for p in inspect.signature(self.read).parameters if p != "src"]


FORMATS: Registry[Format] = Registry("benchmark format")
FORMATS.add("depth-folder", Format(depth.depth_folder, "depth", "depth_folder", "nyuv2",
                                   "SRC/rgb/*.png|jpg + SRC/depth/*.png (16-bit * depth_scale m) or *.exr"))
FORMATS.add("nyuv2", Format(depth.nyuv2, "depth", "nyuv2", "nyuv2",
                            "official nyu_depth_v2_labeled.mat (HDF5) + Eigen test split (splits.mat or 1-based list)"))
FORMATS.add("kitti", Format(depth.kitti, "depth", "kitti", "kitti",
                            "KITTI Eigen split file (BTS format) + uint16/256 depth PNGs; Garg crop"))
FORMATS.add("diode", Format(depth.diode, "depth", "diode", "diode",
                            "DIODE val/{indoors,outdoors}/**: <name>.png, _depth.npy, _depth_mask.npy"))
FORMATS.add("ibims", Format(depth.ibims, "depth", "ibims", "ibims",
                            "iBims-1 ibims1_core_raw: imagelist.txt, rgb/, depth/, mask_invalid/, mask_transp/"))
FORMATS.add("eth3d", Format(depth.eth3d, "depth", "eth3d", "eth3d",
                            "ETH3D <scene>/images/dslr_images + <scene>/ground_truth_depth/dslr_images (raw float32)"))
FORMATS.add("nyuv2-normals", Format(normals.dsine_normals, "normals", "nyuv2_normals", "nyuv2",
                                    "DSINE's dsine_eval/nyuv2: <split>/<name>_img.png, _normal.png, _intrins.npy"))
FORMATS.add("scannet-normals", Format(normals.dsine_normals, "normals", "scannet_normals", "scannet",
                                      "DSINE's dsine_eval/scannet: <scene>/<name>_img.png, _normal.png, _intrins.npy"))
FORMATS.add("diode-normals", Format(normals.diode_normals, "normals", "diode_normals", "diode",
                                  "DIODE val/{indoors,outdoors}/**: <name>.png + <name>_normal.npy"))
FORMATS.add("cityscapes", Format(semantic.cityscapes, "semantic", "cityscapes", "cityscapes",
                                 "leftImg8bit/<split>/ + gtFine/<split>/*_gtFine_labelIds.png -> 19 train ids",
                                 tuple(semantic.CITYSCAPES_CLASSES)))
FORMATS.add("ade20k", Format(semantic.ade20k, "semantic", "ade20k", "ade20k",
                             "ADEChallengeData2016: images/<split>/*.jpg + annotations/<split>/*.png (150 classes)",
                             tuple(semantic.ADE20K_CLASSES)))
FORMATS.add("refcoco", Format(referring.refcoco, "referring", "refcoco", "refcocog",
                              "refer API data: <dataset>/refs(<split_by>).p or refs=*.json, instances.json, COCO images"))
FORMATS.add("reasonseg", Format(referring.reasonseg, "referring", "reasonseg", "reasonseg",
                                "LISA ReasonSeg <split>/: <name>.jpg + <name>.json (polygons)"))

COMMON_PARAMS = ("source", "protocol", "per_shard", "depth_preset", "prefix")


def known_protocols() -> dict[str, object]:
    from evals import protocols

    return protocols.PROTOCOLS


def resolve_protocol(fmt: str, params: dict[str, Any]) -> str | None:
    """The protocol name the samples record: `protocol=` (must be a row of evals/protocols.py), else the
    format's own. A format's own name that evals/protocols.py has no row for yet (ScanNet normals,
    RefCOCO, ReasonSeg: their scoring needs no crop or range, only the full frame) is recorded as
    `benchmark.protocol` but not as `protocol`, with a warning: score those with prediction_region=full."""
    known = known_protocols()
    if "protocol" in params:
        name = str(params["protocol"])
        if name not in known:
            raise ValueError(f"unknown protocol {name!r}; known: {sorted(known)}")
        return name
    name = FORMATS.get(fmt).protocol
    if fmt in ("diode", "diode-normals") and params.get("scene_type") == "outdoors":
        name = "diode_outdoor"  # the format's default protocol is the indoor one
    if fmt == "refcoco":
        name = str(params.get("dataset", "refcocog"))
    if name is not None and name not in known:
        log.warning("import %s: evals/protocols.py has no %r row yet; the samples record no protocol "
                    "(score them with prediction_region=full)", fmt, name)
        return None
    return name


def import_benchmark(fmt: str, src: str | Path, out: str | Path, params: dict[str, Any] | None = None) -> ImportSummary:
    """Import benchmark `fmt` from `src` into eval shards under `out`.

    `params`: the format's own (FORMATS[fmt].params, e.g. split, depth_scale, dataset) and the common
    ones: source (report name, default the format's), protocol (default the format's), per_shard
    (256), depth_preset (the depth codec preset, default gray), prefix ("eval"). Unknown keys raise.
    Returns an ImportSummary. Raises BenchmarkError (a ValueError) naming a missing or malformed file.
    """
    spec = FORMATS.get(fmt)
    params = {k: v for k, v in (params or {}).items() if v is not None}
    unknown = sorted(set(params) - set(spec.params) - set(COMMON_PARAMS))
    if unknown:
        raise ValueError(f"import {fmt}: unknown parameter(s) {unknown}; allowed: {sorted(spec.params + list(COMMON_PARAMS))}")
    src = Path(src)
    if not src.exists():
        raise BenchmarkError(f"{src}: src does not exist")
    default_source = str(params.get("dataset", "refcocog")) if fmt == "refcoco" else spec.source  # refcoco+ / refcocog rows
    source = str(params.pop("source", default_source))
    protocol = resolve_protocol(fmt, params)
    params.pop("protocol", None)
    per_shard = int(params.pop("per_shard", 256))
    depth_preset = str(params.pop("depth_preset", "gray"))
    prefix = str(params.pop("prefix", "eval"))
    encoder = SampleEncoder(fmt, source, protocol, depth_preset=depth_preset, class_names=list(spec.class_names),
                            benchmark={k: str(v) for k, v in params.items()})
    tars, count = write_shards(spec.read(src, **params), out, encoder, per_shard, prefix)
    if not count:
        raise BenchmarkError(f"{src}: no {fmt} samples found ({spec.help})")
    skipped = {"no_ground_truth": depth.kitti_skipped(src, params.get("split"))} if fmt == "kitti" else {}
    return ImportSummary(fmt, source, protocol, count, {k: v for k, v in skipped.items() if v}, tars)


def describe_formats() -> str:
    return "\n".join(f"  {name:<16} {FORMATS.get(name).help}" for name in FORMATS)
