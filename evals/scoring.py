"""Score one decoded prediction against one sample's raw truth, per task, and pool the results.

`score_sample` is pure: (sample, predicted RGB) -> SampleScore (per-image metrics, the
sufficient statistics a set-level metric pools, an error map for the report). `TaskPool`
merges SampleScores of one task (and one source, or all) into the task's metrics, the way the
field computes them: depth per image then averaged; normals, semantic confusion and referring
I/U pooled over pixels / samples; instance AP by pycocotools over the set. Each is a function of
the set, never of the order samples arrive in (instance images are numbered by sample key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from encode import codecs
from encode.resize import aspect_mismatch, resize_prediction, resize_rgb
from encode.sample import TaskSample
from evals import depth as depth_m
from evals import generation as gen_m
from evals import normals as normals_m
from evals import referring as referring_m
from evals import segmentation as seg_m
from evals.failure import EvalFailure
from evals.instance import MaskAP, color_confidence

VISION_TASKS = ("depth", "normals", "semantic", "instance", "referring")
GENERATION_TASKS = ("t2i", "edit")
SCORED_TASKS = VISION_TASKS + GENERATION_TASKS
RAW_KEY = {"depth": "depth", "normals": "normals", "semantic": "semantic", "instance": "instance", "referring": "mask"}
RESIZE_KIND = {"depth": "bilinear", "normals": "bilinear", "semantic": "nearest", "instance": "nearest",
               "referring": "nearest"}
# The metric a table or plot leads with, and whether lower is better.
HEADLINE = {"depth": ("abs_rel", True), "normals": ("mean_deg", True), "semantic": ("miou", False),
            "instance": ("AP", False), "referring": ("giou", False), "t2i": ("feature_distance", True),
            "edit": ("ssim", False)}
# Fixed histogram bins so histograms of different models and sources add and compare.
DEPTH_LOG2_BINS = np.linspace(-2.0, 2.0, 81)     # log2(pred / truth): -2 is 4x too near, +2 4x too far
NORMAL_DEG_BINS = np.linspace(0.0, 90.0, 91)     # the last bin also holds everything beyond 90 deg
REGIONS = ("full", "center_square")
REGION_ALIASES = {"center": "center_square"}  # evals/protocols.py and the eval config say "center"


@dataclass
class SampleScore:
    """What one prediction of one sample contributes."""

    metrics: dict[str, float]                 # per-sample values (averaged over samples where the task does so)
    stats: dict[str, Any] = field(default_factory=dict)  # sufficient statistics for pooled metrics
    decoded: np.ndarray | None = None         # the decoded prediction at truth size (for the sample grid)
    truth: np.ndarray | None = None
    error_map: np.ndarray | None = None       # per-pixel error (float, NaN where not scored)


def codec_of(sample: TaskSample) -> codecs.Codec:
    """The sample's codec (meta['codec']); a missing or unknown spec is a decode_error failure."""
    spec = sample.meta.get("codec")
    if not isinstance(spec, dict) or "name" not in spec:
        raise EvalFailure("decode_error", f"sample {sample.key!r} ({sample.task}) has no codec spec in its json")
    try:
        return codecs.cached_from_spec(spec)
    except ValueError as err:
        raise EvalFailure("decode_error", f"sample {sample.key!r}: cannot build codec {spec.get('name')!r}: {err}") from err


def rounds_to(pred_hw: tuple[int, int], target_hw: tuple[int, int]) -> bool:
    """True when `pred_hw` is the truth's frame scaled and rounded to whole pixels (one pixel off at most
    on the short side): what an aspect-preserving resize to a small square model input gives back."""
    (ph, pw), (th, tw) = pred_hw, target_hw
    if min(ph, pw) < 8 or min(th, tw) <= 0:  # too small for one pixel of rounding to be a small error
        return False
    if pw >= ph:
        return abs(ph - pw * th / tw) <= 1.0
    return abs(pw - ph * tw / th) <= 1.0


def check_prediction(pred: Any, target_hw: tuple[int, int]) -> np.ndarray:
    """An (h, w, 3) uint8 array with the truth's aspect ratio (or its one-pixel rounding), or EvalFailure."""
    if not isinstance(pred, np.ndarray) or pred.dtype != np.uint8 or pred.ndim != 3 or pred.shape[2] != 3:
        desc = f"{pred.shape} {pred.dtype}" if isinstance(pred, np.ndarray) else type(pred).__name__
        raise EvalFailure("bad_prediction", f"prediction must be an (H, W, 3) uint8 image, got {desc}")
    mismatch = aspect_mismatch(pred.shape[:2], target_hw)
    if mismatch and not rounds_to(pred.shape[:2], target_hw):
        raise EvalFailure("wrong_size", mismatch)
    return pred


def truth_of(sample: TaskSample) -> np.ndarray:
    """The raw truth the task is scored against (generation: the real target image)."""
    if sample.task in GENERATION_TASKS:
        return sample.target
    key = RAW_KEY[sample.task]
    if key not in sample.raw:
        raise EvalFailure("missing_truth", f"eval sample {sample.key!r} ({sample.task}) lacks its raw {key!r} target "
                                           f"(has {sorted(sample.raw)})")
    return sample.raw[key]


def decode_prediction(sample: TaskSample, pred: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Decode at the prediction's resolution, then resize the values to `size` (encode/resize.py policy)."""
    codec = codec_of(sample)
    try:
        values = codec.decode(pred)
    except ValueError as err:
        raise EvalFailure("decode_error", f"{codec.name} codec cannot decode the prediction: {err}") from err
    values = resize_prediction(values, size, RESIZE_KIND[sample.task])
    if sample.task == "normals" and values.shape[:2] != pred.shape[:2]:
        with np.errstate(invalid="ignore", divide="ignore"):
            values = values / np.linalg.norm(values, axis=-1, keepdims=True)
    return values


def score_depth(sample: TaskSample, decoded: np.ndarray, truth: np.ndarray, protocol: depth_m.DepthProtocol,
                valid_gt: np.ndarray) -> SampleScore:
    m = depth_m.depth_image_metrics(decoded, truth, protocol, valid_gt)
    valid = valid_gt
    scored = depth_m.penalized_prediction(decoded, protocol)  # what the metrics saw: no answer at min_depth
    err = np.full(truth.shape, np.nan)
    err[valid] = np.abs(scored[valid] - truth[valid]) / truth[valid]
    log2_ratio = np.log2(scored[valid] / truth[valid])
    hist = np.histogram(np.clip(log2_ratio, DEPTH_LOG2_BINS[0], DEPTH_LOG2_BINS[-1]), DEPTH_LOG2_BINS)[0]
    return SampleScore(m, {"hist": hist}, decoded, truth, err)


def score_normals(sample: TaskSample, decoded: np.ndarray, truth: np.ndarray) -> SampleScore:
    errors, valid = normals_m.angular_error_deg(decoded, truth)
    if not valid.any():
        raise EvalFailure("no_valid_truth", "the truth normal map has no valid pixel")
    e = errors[valid]
    hist = np.histogram(np.minimum(e, NORMAL_DEG_BINS[-1] - 1e-9), NORMAL_DEG_BINS)[0]
    return SampleScore({"mean_deg": float(e.mean())}, {"errors": e, "hist": hist}, decoded, truth, errors)


def score_semantic(sample: TaskSample, decoded: np.ndarray, truth: np.ndarray) -> SampleScore:
    codec = codec_of(sample)
    n = int(codec.params.get("num_classes", max(int(truth.max()), int(decoded.max()))))
    if not (truth != 0).any():
        raise EvalFailure("no_valid_truth", "every truth pixel is unlabeled (0)")
    conf = seg_m.confusion_matrix(decoded, truth, n, ignore_index=0)
    err = np.where(truth == 0, np.nan, (decoded != truth).astype(np.float64))
    return SampleScore({"pixel_acc": seg_m.pixel_accuracy(conf)}, {"conf": conf}, decoded, truth, err)


def score_instance(sample: TaskSample, decoded: np.ndarray, truth: np.ndarray, pred_rgb: np.ndarray) -> SampleScore:
    codec = codec_of(sample)
    ids_small = codec.decode(pred_rgb)
    scores = color_confidence(pred_rgb, ids_small, codec.palette, codec.max_distance)
    err = ((decoded > 0) != (truth > 0)).astype(np.float64)  # foreground disagreement, for the grid
    n_gt, n_pred = len(np.unique(truth[truth > 0])), len(np.unique(decoded[decoded > 0]))
    return SampleScore({"n_truth": float(n_gt), "n_pred": float(n_pred)},
                       {"gt": truth, "pred": decoded, "scores": scores, "key": sample.key}, decoded, truth, err)


def score_referring(sample: TaskSample, decoded: np.ndarray, truth: np.ndarray) -> SampleScore:
    i, u = referring_m.intersection_union(decoded, truth)
    err = (decoded.astype(bool) != truth.astype(bool)).astype(np.float64)
    return SampleScore({"iou": referring_m.sample_iou(i, u)}, {"i": i, "u": u}, decoded, truth, err)


def score_generation(sample: TaskSample, pred: np.ndarray, truth: np.ndarray) -> SampleScore:
    if pred.shape[:2] != truth.shape[:2]:
        pred = resize_rgb(pred, truth.shape[:2])
    fp, ft = gen_m.image_features(pred), gen_m.image_features(truth)
    m = {"feature_distance": float(np.linalg.norm(fp - ft))}
    if sample.task == "edit":
        m["ssim"] = gen_m.ssim(pred, truth)
        m["psnr"] = min(gen_m.psnr(pred, truth), 100.0)  # identical images: cap instead of +inf in JSON
    err = np.abs(pred.astype(np.float64) - truth.astype(np.float64)).mean(axis=2) / 255.0
    return SampleScore(m, {"feat_pred": fp, "feat_real": ft}, pred, truth, err)


def center_square(shape: tuple[int, ...]) -> tuple[slice, slice]:
    """The central square window of an (H, W) frame: the part train.data.fit / train.predict show the model."""
    h, w = shape[:2]
    m = min(h, w)
    y0, x0 = (h - m) // 2, (w - m) // 2
    return slice(y0, y0 + m), slice(x0, x0 + m)


def score_sample(sample: TaskSample, pred: Any, protocol: depth_m.DepthProtocol, region: str = "full") -> SampleScore:
    """Validate, decode, resize and score one prediction. Raises EvalFailure for a per-sample failure.

    `region`: "full" (the prediction depicts the whole frame) or "center_square" (it depicts the
    central square crop, as train.predict generates it): the truth is cropped to that window,
    while a depth protocol's crop is still taken on the full frame.
    """
    if sample.task not in SCORED_TASKS:
        raise ValueError(f"score_sample: task {sample.task!r} is not scored; scored: {list(SCORED_TASKS)}")
    region = REGION_ALIASES.get(region, region)
    if region not in REGIONS:
        raise ValueError(f"score_sample: region must be one of {list(REGIONS)}, got {region!r}")
    full = truth_of(sample)
    window = center_square(full.shape) if region == "center_square" else (slice(None), slice(None))
    truth = full[window]
    pred = check_prediction(pred, truth.shape[:2])
    if sample.task in GENERATION_TASKS:
        return score_generation(sample, pred, truth)
    decoded = decode_prediction(sample, pred, truth.shape[:2])
    if sample.task == "depth":
        return score_depth(sample, decoded, truth, protocol, depth_m.valid_mask(full, protocol)[window])
    if sample.task == "normals":
        return score_normals(sample, decoded, truth)
    if sample.task == "semantic":
        return score_semantic(sample, decoded, truth)
    if sample.task == "instance":
        return score_instance(sample, decoded, truth, pred)
    return score_referring(sample, decoded, truth)


class TaskPool:
    """Merge the SampleScores of one task into its set-level metrics; counts samples and failures."""

    def __init__(self, task: str, miou: str = "union") -> None:
        if miou not in seg_m.MIOU_CONVENTIONS:
            raise ValueError(f"TaskPool: miou must be one of {list(seg_m.MIOU_CONVENTIONS)}, got {miou!r}")
        self.task = task
        self.miou = miou
        self.n = 0
        self.failures: dict[str, int] = {}
        self.per_sample: list[dict[str, float]] = []
        self.hist: np.ndarray | None = None
        self.angles = normals_m.AngleHistogram()
        self.conf: np.ndarray | None = None
        self.ap = MaskAP()
        self.inter: list[int] = []
        self.union: list[int] = []
        self.feats_pred: list[np.ndarray] = []
        self.feats_real: list[np.ndarray] = []

    def add(self, score: SampleScore) -> None:
        self.n += 1
        self.per_sample.append(score.metrics)
        s = score.stats
        if "hist" in s:
            self.hist = s["hist"].copy() if self.hist is None else self.hist + s["hist"]
        if self.task == "normals":
            self.angles.add(s["errors"])
        elif self.task == "semantic":
            self.conf = seg_m.add_confusion(self.conf, s["conf"])
        elif self.task == "instance":
            self.ap.add(s["gt"], s["pred"], s["scores"], key=s.get("key"))
        elif self.task == "referring":
            self.inter.append(s["i"])
            self.union.append(s["u"])
        elif self.task in GENERATION_TASKS:
            self.feats_pred.append(s["feat_pred"])
            self.feats_real.append(s["feat_real"])

    def fail(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def _mean_per_sample(self) -> dict[str, float]:
        """Means over samples, summed in a fixed order (sorted values) so they do not depend on the order."""
        keys = self.per_sample[0].keys() if self.per_sample else ()
        return {k: float(np.mean(np.sort([m[k] for m in self.per_sample]))) for k in keys}

    def metrics(self) -> dict[str, float]:
        """Task metrics plus `n` (scored samples) and `failed` (failed samples)."""
        out: dict[str, float] = {}
        if self.n:
            if self.task in ("depth", "t2i", "edit"):
                out.update(self._mean_per_sample())
            if self.task == "normals":
                out.update(self.angles.metrics())
            elif self.task == "semantic":
                out.update({"miou": seg_m.mean_iou(self.conf, convention=self.miou), "pixel_acc": seg_m.pixel_accuracy(self.conf)})
            elif self.task == "instance":
                out.update(self.ap.metrics())
            elif self.task == "referring":
                out.update({"ciou": referring_m.ciou(np.array(self.inter), np.array(self.union)),
                            "giou": referring_m.giou(np.array(self.inter), np.array(self.union))})
            elif self.task in GENERATION_TASKS:
                out["frechet_feature"] = gen_m.frechet_distance(np.array(self.feats_pred), np.array(self.feats_real))
        out["n"] = float(self.n)
        out["failed"] = float(sum(self.failures.values()))
        return out

    def histogram(self) -> dict[str, list[float]] | None:
        """Pooled error histogram (depth: log2 ratio; normals: degrees) or per-sample values otherwise."""
        if self.hist is not None:
            edges = DEPTH_LOG2_BINS if self.task == "depth" else NORMAL_DEG_BINS
            return {"edges": edges.tolist(), "counts": self.hist.astype(float).tolist()}
        key = {"semantic": "pixel_acc", "referring": "iou", "t2i": "feature_distance", "edit": "ssim",
               "instance": None}.get(self.task)
        if key is None or not self.per_sample:
            return None
        return {"values": [m[key] for m in self.per_sample], "label": key}
