"""The VAE floor: the best a latent generator can score, whatever it learns.

A latent model (Stable Diffusion, InstructPix2Pix, FLUX.1 Kontext, ...) never draws pixels: its
answer is a latent that the VAE decodes. So even a perfect denoiser is scored on

    truth -> codec encode -> VAE encode (latent mode, fp32) -> VAE decode -> codec decode

and this module measures that floor by feeding the round-tripped target through the normal
scoring path (`evals.scoring`, the `Evaluator`), exactly as a model's prediction. The codec
oracle (`evals.reference.oracle_predict`) is the floor of the encoding alone; the gap between
the two rows is what the VAE costs, per task and per codec.

    vae = load_vae("models/sd2/vae")                  # or a pipeline dir (its vae/ subfolder)
    rows = vae_floor(vae, samples)                    # {task: {"abs_rel": ..., "edge_abs_rel": ...}}

Resolution: a latent model generates at its native resolution, from the centre square of the
input (train.predict). `resolution="native"` (the default) does the same: each target's centre
square is resized (nearest neighbour, as train.data.prepare resizes vision targets) to the VAE's
`sample_size`, round-tripped, and scored on that window of the truth (`center_square` region):
the floor then includes the resize a model at that resolution pays. In an evaluation that scores
a sample on its full frame (an imported benchmark under eval's `prediction_region=auto|full`), the
whole target is resized instead, aspect kept, to that resolution on its long side.
`resolution=None` keeps each target at its own size (padded by edge replication to the VAE's
downsampling factor, cropped back) and scores the full frame: with an identity autoencoder this
is exactly the codec oracle.

Two metrics are added to the evaluator's (which are unchanged):
- depth `edge_abs_rel`: AbsRel restricted to depth-discontinuity pixels, where a VAE's smoothing
  hurts most. A valid-truth pixel is a discontinuity pixel when, within its 3x3 neighbourhood,
  the largest and smallest truth depth differ by more than a factor EDGE_RATIO (1.25, delta1's
  threshold: a jump that large is never a smooth surface at 256 px; at 1.1 a ground plane near the
  horizon already counts, 9.5% of an analytic outdoor scene's pixels against 4.8%); a +inf
  (sky) neighbour counts as very far, so object/sky borders are edges, and NaN (invalid)
  neighbours are ignored. Computed per image on the prediction as the evaluator scores it
  (clipped to the protocol's range, an undecodable pixel at min_depth), then averaged over the images that have such pixels (`edge_share`: their share of valid pixels).
- semantic `wrong_colour`: share of labeled truth pixels whose predicted colour decodes to
  another class (a nearer palette colour, or none within the codec's threshold: unlabeled), and
  `off_palette`: share of predicted pixels farther than that threshold from every palette colour.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from scipy import ndimage

from encode.resize import fit_square
from encode.sample import TaskSample
from evals import depth as depth_m
from evals.evaluator import ALL, Evaluator
from evals.failure import EvalFailure
from evals.scoring import VISION_TASKS, center_square, codec_of, decode_prediction, truth_of

EDGE_RATIO = 1.25           # neighbour depth ratio that makes a pixel a depth discontinuity
SKY_DEPTH = 1e6             # +inf truth counts as this far when finding discontinuities (meters)
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
VIDEO_VAES = ("AutoencoderKLQwenImage", "AutoencoderKLWan")  # 5-D (B, C, T, H, W): one frame
HEADLINE_METRICS = {"depth": ("abs_rel", "delta1", "edge_abs_rel"), "normals": ("mean_deg", "median_deg"),
                    "semantic": ("miou", "wrong_colour"), "instance": ("AP",), "referring": ("giou", "ciou")}


class VaeError(ValueError):
    """A VAE directory that is missing, incomplete or of an unsupported class."""


# ---------------------------------------------------------------- loading

def resolve_vae_dir(path: str | Path) -> Path:
    """The VAE's own directory: `path` itself (a VAE dir with config.json) or `path/vae` (a pipeline dir
    with model_index.json, or a folder that holds only the vae/ of one, as `--include 'vae/*'` downloads
    it). Raises VaeError naming what is missing."""
    root = Path(path)
    if not root.is_dir():
        raise VaeError(f"VAE directory {str(root)!r} does not exist; download the model on a connected machine "
                       f"(e.g. `hf download <repo> --local-dir {root}`) and copy it here")
    index = root / "model_index.json"
    if not (root / "config.json").is_file() and (index.is_file() or (root / "vae").is_dir()):
        if index.is_file():
            components = json.loads(index.read_text())
            if "vae" not in components:
                raise VaeError(f"pipeline directory {str(root)!r}: model_index.json names no `vae` component "
                               f"(has {sorted(k for k in components if not k.startswith('_'))})")
        if not (root / "vae").is_dir():
            raise VaeError(f"pipeline directory {str(root)!r} lacks its vae/ subfolder; download it on a "
                           f"connected machine (e.g. `hf download <repo> --include 'vae/*' --local-dir {root}`)")
        root = root / "vae"
    if not (root / "config.json").is_file():
        raise VaeError(f"{str(root)!r} has no config.json: neither a VAE directory nor a diffusers pipeline directory "
                       f"(model_index.json with a vae/ subfolder)")
    _check_weights(root)
    return root


def _check_weights(root: Path) -> None:
    """A weights file, or a sharded index whose every shard is present."""
    for index in root.glob("diffusion_pytorch_model*.index.json"):
        shards = sorted(set(json.loads(index.read_text()).get("weight_map", {}).values()))
        missing = [s for s in shards if not (root / s).is_file()]
        if missing:
            raise VaeError(f"VAE directory {str(root)!r}: {index.name} lists {len(missing)} missing weight shard(s) "
                           f"{missing[:3]}; download them on a connected machine")
        return
    if not any(root.glob("diffusion_pytorch_model*.safetensors")) and not any(root.glob("diffusion_pytorch_model*.bin")):
        raise VaeError(f"VAE directory {str(root)!r} has config.json but no weights ({' or '.join(WEIGHT_FILES)}); "
                       f"download them on a connected machine (e.g. `hf download <repo> --include 'vae/*'`)")


def _variant(root: Path) -> str | None:
    """Load the fp16 (or other) variant file when the plain one is absent (it is upcast to fp32 anyway)."""
    if any((root / f).is_file() for f in WEIGHT_FILES) or any(root.glob("diffusion_pytorch_model.safetensors.index.json")):
        return None
    for f in sorted(root.glob("diffusion_pytorch_model.*.safetensors")) + sorted(root.glob("diffusion_pytorch_model.*.bin")):
        parts = f.name.split(".")
        if len(parts) == 3:
            return parts[1]
    return None


def load_vae(path: str | Path, device: str = "cpu"):
    """A diffusers autoencoder from a local VAE or pipeline directory (local_files_only, fp32, eval mode)."""
    import diffusers
    import torch

    root = resolve_vae_dir(path)
    config = json.loads((root / "config.json").read_text())
    name = config.get("_class_name")
    cls = getattr(diffusers, str(name), None)
    if cls is None or not hasattr(cls, "from_pretrained") or "Autoencoder" not in str(name):
        raise VaeError(f"VAE directory {str(root)!r}: config.json `_class_name` {name!r} is not a diffusers "
                       f"autoencoder class (e.g. AutoencoderKL)")
    vae = cls.from_pretrained(root, local_files_only=True, torch_dtype=torch.float32, variant=_variant(root))
    return vae.to(device).eval()


# ---------------------------------------------------------------- the round trip

def native_resolution(vae: Any) -> int | None:
    """The VAE's training resolution (`config.sample_size`), None for an object without one."""
    size = getattr(getattr(vae, "config", None), "sample_size", None)
    if isinstance(size, (list, tuple)):
        size = size[0]
    return int(size) if isinstance(size, (int, float)) and size > 0 else None


def downsampling(vae: Any) -> int:
    """Pixels per latent along a side, from the config: `scale_factor_spatial` (Wan), 2^len(temperal_downsample)
    (Qwen-Image, Wan), 2^(blocks - 1) (AutoencoderKL, AutoencoderTiny); 1 for an object without a config."""
    config = getattr(vae, "config", None)
    get = (lambda k: config.get(k)) if isinstance(config, dict) else (lambda k: getattr(config, k, None))
    if get("scale_factor_spatial"):
        return int(get("scale_factor_spatial"))
    if get("temperal_downsample") is not None:
        return 2 ** len(get("temperal_downsample"))
    blocks = get("block_out_channels") or get("encoder_block_out_channels")
    return 2 ** (len(blocks) - 1) if blocks else 1


def _latents(vae: Any, x):
    """The latent *mode* (the mean of a Gaussian posterior): deterministic, what a perfect model aims at."""
    out = vae.encode(x)
    dist = getattr(out, "latent_dist", None)
    if dist is None and isinstance(out, tuple) and out and hasattr(out[0], "mode"):
        dist = out[0]
    if dist is not None:
        return dist.mode()
    return getattr(out, "latents", out)


def _decoded(vae: Any, z):
    out = vae.decode(z)
    if hasattr(out, "sample"):
        return out.sample
    return out[0] if isinstance(out, tuple) else out


def round_trip(vae: Any, images: Sequence[np.ndarray], batch_size: int = 8, device: str | None = None) -> list[np.ndarray]:
    """uint8 (H, W, 3) images of one size -> VAE encode (mode) -> decode -> uint8, in batches, fp32, no grad.

    Images are padded by edge replication to the VAE's downsampling factor and cropped back.
    """
    import torch

    if not images:
        return []
    h, w = images[0].shape[:2]
    f = downsampling(vae)
    ph, pw = -h % f, -w % f
    video = type(vae).__name__ in VIDEO_VAES
    if device is None:
        params = getattr(vae, "parameters", None)
        first = next(iter(params()), None) if callable(params) else None
        device = first.device if first is not None else "cpu"
    out: list[np.ndarray] = []
    with torch.no_grad():
        for lo in range(0, len(images), batch_size):
            chunk = np.stack([np.pad(im, ((0, ph), (0, pw), (0, 0)), mode="edge") for im in images[lo:lo + batch_size]])
            x = torch.from_numpy(chunk).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            if video:
                x = x.unsqueeze(2)
            y = _decoded(vae, _latents(vae, x))
            if video:
                y = y[:, :, 0]
            if tuple(y.shape[-2:]) != tuple(x.shape[-2:]):
                raise VaeError(f"{type(vae).__name__} decoded {tuple(x.shape[-2:])} pixels to {tuple(y.shape[-2:])}: "
                               f"its downsampling factor is not {f} (read from its config)")
            y = ((y.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
            out += list(y.permute(0, 2, 3, 1)[:, :h, :w].cpu().numpy())
    return out


class VaeRoundTrip:
    """A predict function: each sample's target (its encoded truth) round-tripped through the VAE.

    Args:
        vae: a diffusers autoencoder (load_vae) or any object with encode / decode on (B, 3, H, W) in [-1, 1].
        resolution: "native" (the VAE's sample_size; the target's centre square resized to it), an
            int (the same at that size), or None (each target at its own size, full frame).
        batch_size: images per VAE call.
        on_batch: called with (samples, predictions) after every batch (the extra metrics).
        region_of: sample -> "center_square" or "full" (an Evaluator's region_of); default `region`.
            A full-frame sample is resized, aspect kept, to `resolution` on its long side.
    """

    def __init__(self, vae: Any, resolution: int | str | None = "native", batch_size: int = 8,
                 on_batch: Callable[[list[TaskSample], list[np.ndarray]], None] | None = None,
                 region_of: Callable[[TaskSample], str] | None = None) -> None:
        if resolution == "native":
            resolution = native_resolution(vae)
        if resolution is not None and (not isinstance(resolution, int) or resolution < 1):
            raise ValueError(f"VaeRoundTrip: resolution must be 'native', a positive int or None, got {resolution!r}")
        if batch_size < 1:
            raise ValueError(f"VaeRoundTrip: batch_size must be >= 1, got {batch_size}")
        self.vae, self.resolution, self.batch_size, self.on_batch = vae, resolution, batch_size, on_batch
        self.region_of = region_of

    @property
    def region(self) -> str:
        """The window of the truth a prediction depicts (evals.scoring regions), unless region_of says."""
        return "full" if self.resolution is None else "center_square"

    def fit(self, sample: TaskSample) -> np.ndarray:
        """The target as the VAE sees it: its own size, its centre square or the full frame at `resolution`."""
        if self.resolution is None:
            return sample.target
        if (self.region_of(sample) if self.region_of else self.region) == "center_square":
            return fit_square(sample.target, self.resolution, nearest=True)
        return fit_long_side(sample.target, self.resolution)

    def __call__(self, samples: list[TaskSample]) -> list[np.ndarray]:
        targets = [self.fit(s) for s in samples]
        preds: list[np.ndarray | None] = [None] * len(targets)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, t in enumerate(targets):
            by_size.setdefault(t.shape[:2], []).append(i)
        for idx in by_size.values():
            for i, p in zip(idx, round_trip(self.vae, [targets[i] for i in idx], self.batch_size)):
                preds[i] = p
        if self.on_batch is not None:
            self.on_batch(samples, preds)
        return preds


def fit_long_side(image: np.ndarray, resolution: int) -> np.ndarray:
    """(H, W, 3) uint8 -> the long side at `resolution`, aspect kept, nearest neighbour (codec colours stay)."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = resolution / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return image
    return np.asarray(Image.fromarray(image).resize(size, Image.NEAREST))


# ---------------------------------------------------------------- extra metrics

def depth_edges(truth: np.ndarray, ratio: float = EDGE_RATIO) -> np.ndarray:
    """(H, W) bool: finite-truth pixels whose 3x3 neighbourhood spans a truth depth ratio above
    `ratio` (a +inf neighbour counts as SKY_DEPTH; NaN and non-positive neighbours are ignored)."""
    d = np.where(np.isposinf(truth), SKY_DEPTH, truth).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        logd = np.where(np.isfinite(d) & (d > 0), np.log(np.where(d > 0, d, 1.0)), np.nan)
    hi = ndimage.maximum_filter(np.where(np.isnan(logd), -np.inf, logd), size=3, mode="nearest")
    lo = ndimage.minimum_filter(np.where(np.isnan(logd), np.inf, logd), size=3, mode="nearest")
    with np.errstate(invalid="ignore"):
        return np.isfinite(truth) & (truth > 0) & (hi - lo > np.log(ratio))  # only pixels with a depth to score


def edge_abs_rel(decoded: np.ndarray, truth: np.ndarray, protocol: depth_m.DepthProtocol,
                 valid_gt: np.ndarray) -> tuple[float, float] | None:
    """(AbsRel over valid discontinuity pixels, their share of valid pixels); None without any.
    The prediction is scored as the evaluator scores it: clipped, an undecodable (NaN) pixel at min_depth."""
    edge = valid_gt & depth_edges(truth)
    if not edge.any():
        return None
    pred = depth_m.penalized_prediction(decoded, protocol)
    rel = np.abs(pred[edge] - truth[edge]) / truth[edge]
    return float(rel.mean()), float(edge.sum() / max(valid_gt.sum(), 1))


def semantic_colours(sample: TaskSample, pred: np.ndarray, decoded: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """wrong_colour (labeled truth pixels decoded to another class) and off_palette (predicted pixels
    beyond the codec's max_distance from every palette colour)."""
    from encode.codecs.palette import nearest_indices

    codec = codec_of(sample)
    labeled = truth > 0
    idx = nearest_indices(pred.reshape(1, -1, 3), codec.palette, codec.max_distance)
    return {"wrong_colour": float(np.mean(decoded[labeled] != truth[labeled])) if labeled.any() else float("nan"),
            "off_palette": float(np.mean(idx < 0))}


class FloorExtras:
    """Per-task running means of the extra metrics, fed batch by batch (VaeRoundTrip's on_batch)."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, list[float]]] = {}
        self.evaluator: Evaluator | None = None  # bound by floor_metrics: its regions and protocols

    def bind(self, evaluator: Evaluator) -> "FloorExtras":
        self.evaluator = evaluator
        return self

    def _add(self, task: str, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            self.values.setdefault(task, {}).setdefault(k, []).append(v)

    def __call__(self, samples: list[TaskSample], preds: list[np.ndarray]) -> None:
        for s, p in zip(samples, preds):
            if s.task not in ("depth", "semantic") or p is None:
                continue
            try:
                self._one(s, p)
            except EvalFailure:
                pass  # the evaluator counts the same failure for this sample

    def _one(self, s: TaskSample, pred: np.ndarray) -> None:
        ev = self.evaluator
        full = truth_of(s)
        window = center_square(full.shape) if ev.region_of(s) == "center_square" else (slice(None), slice(None))
        truth = full[window]
        decoded = decode_prediction(s, pred, truth.shape[:2])
        if s.task == "semantic":
            self._add("semantic", semantic_colours(s, pred, decoded, truth))
            return
        protocol = ev.protocol_for(s)
        edge = edge_abs_rel(decoded, truth, protocol, depth_m.valid_mask(full, protocol)[window])
        if edge is not None:
            self._add("depth", {"edge_abs_rel": edge[0], "edge_share": edge[1]})

    def metrics(self) -> dict[str, dict[str, float]]:
        return {t: {k: float(np.nanmean(v)) for k, v in ms.items()} for t, ms in self.values.items()}


# ---------------------------------------------------------------- the harness

def floor_metrics(predict: Callable[[list[TaskSample]], list[np.ndarray]], samples: Sequence[TaskSample], region: str,
                  batch_size: int = 8, depth_protocol: str = "vistune",
                  extras: FloorExtras | None = None) -> dict[str, dict[str, float]]:
    """Task -> metrics of `predict` on the vision samples (pooled over sources), through the Evaluator,
    plus `extras`' metrics when given (they must be fed by `predict`)."""
    vision = [s for s in samples if s.task in VISION_TASKS]
    ev = Evaluator(predict, vision, name="vae-floor", batch_size=batch_size, depth_protocol=depth_protocol,
                   references=False, examples_per_task=0, prediction_region=region)
    if extras is not None:
        extras.bind(ev)
    list(ev.run())
    out = {task: dict(srcs[ALL]) for task, srcs in ev.result.metrics.get("model", {}).items()}
    for task, ms in (extras.metrics() if extras else {}).items():
        out.setdefault(task, {}).update(ms)
    return out


def vae_floor(vae: Any, samples: Sequence[TaskSample], resolution: int | str | None = "native", batch_size: int = 8,
              depth_protocol: str = "vistune") -> dict[str, dict[str, float]]:
    """Task -> the evaluator's metrics (and edge_abs_rel / wrong_colour) of the VAE round trip of
    every vision sample's target: the floor of a latent model with this VAE."""
    size = native_resolution(vae) if resolution == "native" else resolution
    extras = FloorExtras()
    fn = VaeRoundTrip(vae, size, batch_size, on_batch=extras)
    return floor_metrics(fn, samples, fn.region, batch_size, depth_protocol, extras)


def codec_floor(samples: Sequence[TaskSample], batch_size: int = 8, depth_protocol: str = "vistune"
                ) -> dict[str, dict[str, float]]:
    """The same metrics of the codec oracle (the encoded truth itself, full frame): the row to compare with."""
    extras = FloorExtras()

    def oracle(batch: list[TaskSample]) -> list[np.ndarray]:
        preds = [s.target for s in batch]
        extras(batch, preds)
        return preds

    return floor_metrics(oracle, samples, "full", batch_size, depth_protocol, extras)


# ---------------------------------------------------------------- the eval job's reference row

def add_vae_oracle(evaluator: Evaluator, vae: Any, resolution: int | None = None,
                   device: str = "cpu", batch_size: int = 8) -> None:
    """Add the `vae-oracle` reference row (next to `oracle`) to an Evaluator, when `vae` is given (eval.vae,
    a VAE or pipeline directory, or a loaded autoencoder such as a latent generator's own VAE, used in
    fp32); nothing when it is None. `resolution`: the model's (default: the
    VAE's native one). A model's evaluator already holds the other reference rows: this one joins them,
    each sample answered for the window the evaluator scores it on (centre square or full frame)."""
    if vae is None or "oracle" not in evaluator.predictors:
        return
    model = _cached_vae(str(vae), device) if isinstance(vae, (str, Path)) else _fp32(vae)
    fn = VaeRoundTrip(model, resolution or "native", batch_size,
                      region_of=evaluator.region_of)
    evaluator.predictors["vae-oracle"] = evaluator._in_region(fn)


def own_vae(model: Any) -> Any | None:
    """A latent generator's own autoencoder (model.kind=diffusers keeps it frozen, `model.frozen.vae`);
    None for a pixel-space model: `vistune eval` adds its `vae-oracle` row unless eval.vae names another."""
    return getattr(getattr(model, "frozen", None), "vae", None)


def _fp32(vae: Any) -> Any:
    """The autoencoder in fp32 (a bf16 training copy is left as it is: the floor is measured in fp32)."""
    import copy

    import torch

    params = getattr(vae, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    if first is None or first.dtype == torch.float32:
        return vae
    return copy.deepcopy(vae).float().eval()


_VAES: dict[tuple[str, str], Any] = {}


def _cached_vae(path: str, device: str):
    """One load per (directory, device) per process: every checkpoint's eval reuses it."""
    key = (str(Path(path).resolve()), device)
    if key not in _VAES:
        _VAES[key] = load_vae(path, device)
    return _VAES[key]
