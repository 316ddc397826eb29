"""`sam`: class-agnostic automatic masks from a SAM-family checkpoint (transformers `SamModel`).

SAM answers point prompts. As in SAM's automatic mask generator, a regular grid of
`points_per_side`^2 points prompts the model (one image embedding per image, the prompts in
batches of `points_per_batch`), each point yields 3 candidate masks with a predicted IoU (the
score), candidates below `pred_iou_thresh` are dropped at low resolution (cheap), and the best
`max_candidates` are upsampled to the image. Stability is SAM's: IoU of the mask logits
thresholded at `mask_threshold` +- `stability_offset`. Duplicates and overlaps are left to
annotate/filters.py, like every other backend's proposals.

Weights come from a local directory (`labelers.sam.weights`): SAM (facebook/sam-vit-*),
SlimSAM, MedSAM and SAM-HQ checkpoints saved by transformers.
"""

from __future__ import annotations

import numpy as np

from annotate.labelers.base import Instance, LabelResult, register, stability_score
from annotate.labelers.checkpoints import DEVICES, checkpoint_dir, load, model_type

SUPPORTED_MODEL_TYPES = ("sam", "sam_hq")


def point_grid(points_per_side: int) -> np.ndarray:
    """(n^2, 2) points (x, y) in [0, 1], cell centers of an n x n grid (SAM's `build_point_grid`)."""
    offset = 1.0 / (2 * points_per_side)
    side = np.linspace(offset, 1 - offset, points_per_side)
    xs, ys = np.meshgrid(side, side)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


@register("sam")
class SamLabeler:
    """SAM-family automatic masks (see the module docstring)."""

    name = "sam"
    version = "1"
    classes = ["object"]

    def __init__(self, weights: str | None = None, points_per_side: int = 16, points_per_batch: int = 64,
                 pred_iou_thresh: float = 0.5, stability_offset: float = 1.0, mask_threshold: float = 0.0,
                 max_candidates: int = 128, device: str = "cpu") -> None:
        path, kind = self.preflight(weights, points_per_side, points_per_batch, max_candidates=max_candidates)
        self.model, self.processor = load(path, "AutoModel", "AutoProcessor", device)
        self.path, self.device, self.kind = path, device, kind
        self.grid = point_grid(points_per_side)
        self.points_per_batch, self.pred_iou_thresh = points_per_batch, pred_iou_thresh
        self.stability_offset, self.mask_threshold, self.max_candidates = stability_offset, mask_threshold, max_candidates

    @staticmethod
    def preflight(weights: str | None = None, points_per_side: int = 16, points_per_batch: int = 64,
                  pred_iou_thresh: float = 0.5, stability_offset: float = 1.0, mask_threshold: float = 0.0,
                  max_candidates: int = 128, device: str = "cpu") -> tuple:
        """Check the parameters and the checkpoint directory (its config.json only); returns (path, model_type)."""
        if points_per_side < 1 or points_per_batch < 1 or max_candidates < 1:
            raise ValueError(f"points_per_side, points_per_batch and max_candidates must be >= 1, got "
                             f"{points_per_side}, {points_per_batch}, {max_candidates}")
        if device not in DEVICES:
            raise ValueError(f"device must be one of {list(DEVICES)}, got {device!r}")
        path = checkpoint_dir("sam", weights, "facebook/sam-vit-base")
        kind = model_type(path)
        if kind not in SUPPORTED_MODEL_TYPES:
            raise ValueError(f"sam labeler: checkpoint {str(path)!r} has model_type {kind!r}; "
                             f"supported: {list(SUPPORTED_MODEL_TYPES)}")
        return path, kind

    @property
    def weights(self) -> str:
        return f"{self.path} ({self.kind})"

    def label(self, images: list[np.ndarray]) -> list[LabelResult]:
        import torch

        inputs = self.processor(images=list(images), return_tensors="pt")  # resized + padded: one shape for all
        with torch.inference_mode():
            embeddings = self.model.get_image_embeddings(inputs["pixel_values"].to(self.device))
            return [LabelResult(self._masks(embeddings[i:i + 1], inputs["original_sizes"][i].tolist(),
                                            inputs["reshaped_input_sizes"][i].tolist())) for i in range(len(images))]

    def _masks(self, embedding, original: list[int], reshaped: list[int]) -> list[Instance]:
        import torch

        (h, w), (rh, rw) = original, reshaped
        points = torch.as_tensor(self.grid * [rw, rh], dtype=torch.float32, device=self.device)  # model input coords
        lows, scores = [], []
        for start in range(0, len(points), self.points_per_batch):
            chunk = points[start:start + self.points_per_batch]
            out = self.model(image_embeddings=embedding, input_points=chunk[None, :, None, :],
                             input_labels=torch.ones(1, len(chunk), 1, dtype=torch.long, device=self.device),
                             multimask_output=True)
            iou = out.iou_scores[0].flatten()
            keep = iou >= self.pred_iou_thresh
            lows.append(out.pred_masks[0].flatten(0, 1)[keep])
            scores.append(iou[keep])
        low, score = torch.cat(lows), torch.cat(scores)
        order = torch.argsort(score, descending=True)[: self.max_candidates]
        instances = []
        for start in range(0, len(order), 32):  # full-resolution logits in chunks: K x H x W floats add up
            idx = order[start:start + 32]
            logits = self.processor.image_processor.post_process_masks(
                low[idx][None, :, None], [[h, w]], [[rh, rw]], binarize=False)[0][:, 0].float().cpu().numpy()
            for soft, s in zip(logits, score[idx].tolist()):
                mask = soft > self.mask_threshold
                if mask.any():
                    instances.append(Instance(mask, self.classes[0], float(min(max(s, 0.0), 1.0)),
                                              stability_score(soft, self.mask_threshold, self.stability_offset)))
        return instances
