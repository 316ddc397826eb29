"""`mask2former` / `oneformer`: closed-vocabulary panoptic labels from a universal segmentation model.

Mask2Former and OneFormer predict, per query, a class distribution (with a "no object" slot)
and a mask. The panoptic recipe from the Mask2Former paper turns that into instances: drop
queries whose best class is "no object" or scores below `threshold`; give each pixel to the
query with the highest score * mask probability; keep a query's pixels that also pass
`mask_threshold`, if they are at least `overlap_threshold` of its own mask (else it was mostly
covered by others). Implemented here rather than through the image processor's
`post_process_panoptic_segmentation` so that padding is cropped before upsampling (images of
different sizes in one batch) and so that each instance keeps its soft mask for a stability score.

The class names are the checkpoint's `id2label`; `semantic="model"` also returns the model's
own semantic map (Mask2Former's semantic inference, every pixel labeled), `semantic="instances"`
lets the annotator paint it from the kept instances. Weights come from a local directory.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from annotate.labelers.base import Instance, LabelResult, register, stability_score
from annotate.labelers.checkpoints import DEVICES, checkpoint_dir, load, model_type

SEMANTIC_MODES = ("instances", "model")
MODEL_TYPES = {"mask2former": ("mask2former", "facebook/mask2former-swin-tiny-coco-panoptic"),
               "oneformer": ("oneformer", "shi-labs/oneformer_coco_swin_large")}


class UniversalSegmentationLabeler:
    """Mask2Former / OneFormer panoptic instances (see the module docstring). Subclasses set `name`."""

    name = ""
    version = "1"

    def __init__(self, weights: str | None = None, threshold: float = 0.5, mask_threshold: float = 0.5,
                 overlap_threshold: float = 0.8, stability_offset: float = 0.1, semantic: str = "instances",
                 device: str = "cpu") -> None:
        path, kind = self.preflight(weights, semantic=semantic, device=device)
        processor_class = "AutoProcessor" if kind == "oneformer" else "AutoImageProcessor"  # OneFormer adds a tokenizer
        self.model, self.processor = load(path, "AutoModelForUniversalSegmentation", processor_class, device)
        id2label = self.model.config.id2label
        self.classes = [str(id2label[i]) for i in range(len(id2label))]
        self.path, self.device, self.kind = path, device, kind
        self.threshold, self.mask_threshold, self.overlap_threshold = threshold, mask_threshold, overlap_threshold
        self.stability_offset, self.semantic = stability_offset, semantic

    @classmethod
    def preflight(cls, weights: str | None = None, threshold: float = 0.5, mask_threshold: float = 0.5,
                  overlap_threshold: float = 0.8, stability_offset: float = 0.1, semantic: str = "instances",
                  device: str = "cpu") -> tuple:
        """Check the parameters and the checkpoint directory (its config.json only); returns (path, model_type)."""
        if semantic not in SEMANTIC_MODES:
            raise ValueError(f"semantic must be one of {list(SEMANTIC_MODES)}, got {semantic!r}")
        if device not in DEVICES:
            raise ValueError(f"device must be one of {list(DEVICES)}, got {device!r}")
        expected, example = MODEL_TYPES[cls.name]
        path = checkpoint_dir(cls.name, weights, example)
        kind = model_type(path)
        if kind != expected:
            raise ValueError(f"{cls.name} labeler: checkpoint {str(path)!r} has model_type {kind!r}, "
                             f"expected {expected!r}")
        return path, kind

    @property
    def weights(self) -> str:
        return str(self.path)

    def label(self, images: list[np.ndarray]) -> list[LabelResult]:
        # Same-size images share a forward pass; mixing sizes would pad the smaller ones.
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, rgb in enumerate(images):
            groups[rgb.shape].append(i)
        results: list[LabelResult | None] = [None] * len(images)
        for indices in groups.values():
            for i, result in zip(indices, self._label_same_size([images[i] for i in indices])):
                results[i] = result
        return results

    def _label_same_size(self, images: list[np.ndarray]) -> list[LabelResult]:
        import torch

        kwargs = {"task_inputs": ["panoptic"] * len(images)} if self.kind == "oneformer" else {}
        inputs = self.processor(images=images, return_tensors="pt", **kwargs)
        with torch.inference_mode():
            out = self.model(**{k: v.to(self.device) for k, v in inputs.items() if hasattr(v, "to")})
        valid = inputs["pixel_mask"] if "pixel_mask" in inputs else torch.ones(inputs["pixel_values"].shape[-2:])[None]
        return [self._panoptic(out.class_queries_logits[i], out.masks_queries_logits[i],
                               valid[min(i, len(valid) - 1)], images[i].shape[:2]) for i in range(len(images))]

    def _panoptic(self, class_logits, mask_logits, valid, size: tuple[int, int]) -> LabelResult:
        import torch
        import torch.nn.functional as F

        probs = class_logits.float().softmax(-1)
        scores, labels = probs.max(-1)
        keep = (labels != probs.shape[-1] - 1) & (scores > self.threshold)
        padded = valid.shape[-2:]
        rows, cols = int(valid.any(1).sum()), int(valid.any(0).sum())  # the resized image, before padding

        def to_image(logits):  # (Q, h, w) at 1/4 of the padded input -> (Q, H, W) at the image's size
            up = F.interpolate(logits[None].float(), size=padded, mode="bilinear", align_corners=False)
            return F.interpolate(up[:, :, :rows, :cols], size=size, mode="bilinear", align_corners=False)[0]

        semantic = None
        if self.semantic == "model":  # Mask2Former's semantic inference: sum over queries of p(class) * mask
            per_class = torch.einsum("qc,qhw->chw", probs[:, :-1], mask_logits.float().sigmoid())
            semantic = (to_image(per_class).argmax(0) + 1).to(torch.int32).cpu().numpy().astype(np.uint16)
        if not keep.any():
            return LabelResult([], semantic)
        mask_probs = to_image(mask_logits[keep]).sigmoid()
        owner = (mask_probs * scores[keep][:, None, None]).argmax(0)
        instances = []
        for k, (score, label) in enumerate(zip(scores[keep].tolist(), labels[keep].tolist())):
            soft = mask_probs[k]
            own = soft >= self.mask_threshold
            mask = (owner == k) & own
            area, own_area = int(mask.sum()), int(own.sum())
            if area == 0 or own_area == 0 or area / own_area < self.overlap_threshold:
                continue
            soft_np = soft.cpu().numpy()
            instances.append(Instance(mask.cpu().numpy(), self.classes[label], float(score),
                                      stability_score(soft_np, self.mask_threshold, self.stability_offset)))
        return LabelResult(instances, semantic)


@register("mask2former")
class Mask2FormerLabeler(UniversalSegmentationLabeler):
    """Mask2Former panoptic checkpoint from `weights` (a local directory)."""

    name = "mask2former"


@register("oneformer")
class OneFormerLabeler(UniversalSegmentationLabeler):
    """OneFormer checkpoint (run with the "panoptic" task prompt) from `weights` (a local directory)."""

    name = "oneformer"
