"""Mirror test-time ensembling for dense geometric answers (eval.flip_ensemble).

A model asked for depth or normals answers the image and its left-right mirror; the mirrored
answer is mirrored back and the two are averaged in value space, then drawn again through the
sample's own codec, so the ensemble is one more prediction image that takes exactly the scoring
path any other prediction takes. The standard test-time augmentation of monocular depth and
normal estimators (Eigen et al. 2014 onward; DSINE, Depth Anything). Only depth and normals:
a mirrored mask answer has nothing to average with (palette colors are labels, not values).

- depth: the geometric mean of the two metric depths (the two answers agree in log space, where
  the colormaps are near uniform); +inf (no hit) stays +inf only when both say so, a lone +inf
  defers to the finite answer; NaN (no answer) likewise defers to the other.
- normals: the mean of the two unit vectors, the mirrored one with its x component negated (a
  camera-frame normal mirrors as (-x, y, z)), renormalized; NaN defers to the other answer.

It doubles the sampling cost of the tasks it covers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from encode.sample import TaskSample
from evals.failure import EvalFailure
from evals.scoring import codec_of

FLIP_TASKS = ("depth", "normals")


def mirrored(sample: TaskSample) -> TaskSample:
    """The sample with its input image mirrored left-right (the model's question, mirrored)."""
    if sample.input is None:
        raise ValueError(f"sample {sample.key!r}: a {sample.task} sample without an input image cannot be mirrored")
    return dataclasses.replace(sample, input=np.ascontiguousarray(sample.input[:, ::-1]))


def combine_depth(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Geometric mean of two depth maps; a missing (NaN) or no-hit (+inf) answer defers to the other."""
    with np.errstate(divide="ignore", invalid="ignore"):
        la, lb = np.log(np.where(a > 0, a, np.nan)), np.log(np.where(b > 0, b, np.nan))
        fa, fb = np.isfinite(la), np.isfinite(lb)
        out = np.where(fa & fb, np.exp(0.5 * (la + lb)), np.where(fa, a, np.where(fb, b, np.nan)))
        both_inf = np.isposinf(a) & np.isposinf(b)
        out = np.where(both_inf | (np.isposinf(a) & ~fb) | (np.isposinf(b) & ~fa), np.inf, out)
    return out.astype(np.float32)


def combine_normals(a: np.ndarray, b_mirrored_back: np.ndarray) -> np.ndarray:
    """Mean of two unit-normal maps (the second already mirrored back with x negated), renormalized."""
    va, vb = np.isfinite(a).all(-1, keepdims=True), np.isfinite(b_mirrored_back).all(-1, keepdims=True)
    total = np.where(va, a, 0.0) + np.where(vb, b_mirrored_back, 0.0)
    norm = np.linalg.norm(total, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where((va | vb) & (norm > 1e-6), total / norm, np.nan)
    return out.astype(np.float32)


def combine(sample: TaskSample, pred: np.ndarray, pred_of_mirror: np.ndarray) -> np.ndarray:
    """The ensembled prediction image of `sample` from its answer and its mirror's answer (both RGB)."""
    codec = codec_of(sample)
    try:
        a = codec.decode(pred)
        b = codec.decode(np.ascontiguousarray(pred_of_mirror[:, ::-1]))
    except ValueError as err:
        raise EvalFailure("decode_error", f"{codec.name} codec cannot decode the prediction: {err}") from err
    if sample.task == "depth":
        return codec.encode(combine_depth(a, b))
    if sample.task == "normals":
        b = b.copy()
        b[..., 0] *= -1.0
        return codec.encode(combine_normals(a, b))
    raise ValueError(f"flip ensemble: task {sample.task!r} not in {FLIP_TASKS}")


def flip_ensemble(predict: Callable[[list[TaskSample]], list[Any]]) -> Callable[[list[TaskSample]], list[Any]]:
    """Wrap `predict(samples) -> images` so depth and normals samples are answered by the mirror ensemble."""

    def ensembled(samples: Sequence[TaskSample]) -> list[Any]:
        samples = list(samples)
        idx = [i for i, s in enumerate(samples) if s.task in FLIP_TASKS and s.input is not None]
        if not idx:
            return predict(samples)
        preds = predict(samples + [mirrored(samples[i]) for i in idx])
        out, extra = list(preds[:len(samples)]), preds[len(samples):]
        for i, m in zip(idx, extra):
            a = out[i]
            if isinstance(a, np.ndarray) and isinstance(m, np.ndarray) and a.shape == m.shape:
                try:
                    out[i] = combine(samples[i], a, m)
                except EvalFailure as failure:
                    out[i] = failure
        return out

    return ensembled
