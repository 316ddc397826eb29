"""Benchmark scoring protocols: one named row per benchmark, the settings its published numbers use.

A protocol says which truth pixels count and how answers are treated, so a number computed here
is comparable with the paper that reports it:

    crop        depth evaluation crop on the full frame: none | eigen (NYUv2, Eigen et al.) |
                garg (KITTI, Garg et al.)
    min_depth,  the truth counts in (min_depth, max_depth); predictions are clipped to
    max_depth   [min_depth, max_depth]; an undecodable prediction pixel counts at min_depth (BTS / ZoeDepth)
    miou        the set the semantic mean IoU averages over:
                union   classes in the truth or the prediction (mmsegmentation, cityscapesScripts)
                truth   classes present in the truth (detectron2's SemSegEvaluator)
                classes every class of the official list, an absent one counting 0 (ADE20K's toolkit)
    alignment   the space of the least-squares scale-and-shift fit behind the `aligned/` depth
                metrics: depth (Marigold) | disparity (Depth Anything, MiDaS)
    prediction_region   what a model is asked to predict: full (the whole frame; the default for
                every imported benchmark) | center (the central square, what a model trained on
                vistune's square crops sees of its own eval split)

A sample names its protocol in its json (`meta["protocol"]`; the older `meta["depth_protocol"]`
is read too). Importers record it; `vistune eval` reads it. Numbers and sources:
ZoeDepth's `DATASETS_CONFIG` (NYUv2, KITTI, iBims-1, DIODE), Marigold's dataset configs (ETH3D),
the official Cityscapes and ADE20K evaluation scripts.

This module imports nothing from the rest of vistune: importers and metrics both read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

CROPS = ("none", "eigen", "garg")
MIOU_CONVENTIONS = ("union", "truth", "classes")
ALIGNMENTS = ("depth", "disparity")
PREDICTION_REGIONS = ("full", "center")
META_KEYS = ("protocol", "depth_protocol")  # where a sample's json names its protocol (first wins)


@dataclass(frozen=True)
class Protocol:
    """The scoring settings of one benchmark (see the module docstring for each field)."""

    name: str
    crop: str = "none"
    min_depth: float = 1e-3
    max_depth: float = 200.0
    miou: str = "union"
    alignment: str = "depth"
    prediction_region: str = "full"
    reference: str = ""  # whose evaluation code these settings follow

    def __post_init__(self) -> None:
        for field_name, value, allowed in (("crop", self.crop, CROPS), ("miou", self.miou, MIOU_CONVENTIONS),
                                           ("alignment", self.alignment, ALIGNMENTS),
                                           ("prediction_region", self.prediction_region, PREDICTION_REGIONS)):
            if value not in allowed:
                raise ValueError(f"protocol {self.name!r}: {field_name} must be one of {list(allowed)}, got {value!r}")
        if not (0 <= self.min_depth < self.max_depth and math.isfinite(self.max_depth)):
            raise ValueError(f"protocol {self.name!r}: need 0 <= min_depth < max_depth < inf, "
                             f"got {self.min_depth}, {self.max_depth}")

    def describe(self) -> str:
        """One line for reports: every setting that changes a number."""
        return (f"{self.name}: depth in ({self.min_depth:g}, {self.max_depth:g}) m, crop {self.crop}, "
                f"invalid prediction pixels at {self.min_depth:g} m, mIoU over {MIOU_TEXT[self.miou]}, "
                f"aligned fit in {self.alignment} space, predicted region {self.prediction_region}"
                + (f" ({self.reference})" if self.reference else ""))


MIOU_TEXT = {"union": "classes in truth or prediction (mmseg)", "truth": "classes present in the truth (detectron2)",
             "classes": "every listed class, absent = 0 (ADE20K toolkit)"}

_ROWS = (
    # vistune's own renders: the depth codec's documented bound holds on [0.1, 200] m; sky (+inf) is
    # excluded by the truth's finiteness. Predicted region: the run's own square split.
    Protocol("default", "none", 1e-3, 200.0, "union", "depth", "center", "vistune renders"),
    Protocol("vistune", "none", 1e-3, 200.0, "union", "depth", "center", "vistune renders (alias of default)"),
    Protocol("nyuv2", "eigen", 1e-3, 10.0, "union", "depth", "full", "BTS / ZoeDepth NYUv2: Eigen crop, 1e-3..10 m"),
    Protocol("kitti", "garg", 1e-3, 80.0, "union", "depth", "full", "BTS / ZoeDepth KITTI Eigen split: Garg crop, 1e-3..80 m"),
    Protocol("diode", "eigen", 1e-3, 10.0, "union", "depth", "full", "ZoeDepth diode_indoor: Eigen crop, 1e-3..10 m"),
    Protocol("diode_outdoor", "garg", 1e-3, 80.0, "union", "depth", "full", "ZoeDepth diode_outdoor: Garg crop, 1e-3..80 m"),
    Protocol("ibims", "eigen", 1e-3, 10.0, "union", "depth", "full", "ZoeDepth ibims: Eigen crop, ..10 m"),
    # Marigold evaluates ETH3D on (1e-5, inf); a finite cap keeps a "no hit" (+inf) answer finite.
    Protocol("eth3d", "none", 1e-5, 1000.0, "union", "depth", "full", "Marigold eth3d: 1e-5 m .. (cap 1000 m here)"),
    Protocol("cityscapes", "none", 1e-3, 200.0, "union", "depth", "full", "cityscapesScripts: 19 train ids, nan-mean"),
    Protocol("ade20k", "none", 1e-3, 200.0, "classes", "depth", "full", "ADE20K sceneparsing toolkit: mean over 150"),
    # Tasks whose scoring has no depth or mIoU choice: a row each so samples record where they come from
    # and are predicted on their full frame.
    Protocol("scannet", "none", 1e-3, 200.0, "union", "depth", "full", "DSINE scannet normals: pooled angles"),
    Protocol("refcoco", "none", 1e-3, 200.0, "union", "depth", "full", "LISA RefCOCO: cIoU, gIoU"),
    Protocol("refcoco+", "none", 1e-3, 200.0, "union", "depth", "full", "LISA RefCOCO+: cIoU, gIoU"),
    Protocol("refcocog", "none", 1e-3, 200.0, "union", "depth", "full", "LISA RefCOCOg (umd): cIoU, gIoU"),
    Protocol("reasonseg", "none", 1e-3, 200.0, "union", "depth", "full", "LISA ReasonSeg: gIoU, cIoU"),
)
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in _ROWS}


def get(name: str) -> Protocol:
    """The protocol called `name`; ValueError naming the known ones otherwise."""
    try:
        return PROTOCOLS[name]
    except (KeyError, TypeError) as err:
        raise ValueError(f"unknown protocol {name!r}; known: {sorted(PROTOCOLS)}") from err


def name_of(meta: Mapping[str, Any]) -> str | None:
    """The protocol a sample's json records (`protocol`, else `depth_protocol`), or None."""
    for key in META_KEYS:
        value = meta.get(key)
        if value is not None:
            return str(value)
    return None


def of_sample(meta: Mapping[str, Any], default: str = "default") -> Protocol:
    """The sample's recorded protocol, else `default`."""
    return get(name_of(meta) or default)
