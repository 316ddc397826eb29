"""Shared checks for the benchmark importer tests: read the shards back and score the oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evals import Evaluator, oracle_predict
from evals.data import load_eval_samples


def oracle_metrics(out: Path) -> tuple[list, dict[str, float]]:
    """(samples, flat metrics) of the codec oracle (each sample's own target.png) on the shards under `out`,
    through the evaluator `vistune eval` uses; the oracle is the only predictor ("model/...")."""
    samples = load_eval_samples([out])
    ev = Evaluator(oracle_predict, samples, references=False)
    return samples, dict(ev.run())


def assert_perfect_depth(flat: dict[str, float], samples: list, source: str, n: int) -> None:
    """A perfect depth oracle row: every sample scored, AbsRel within the codec's own lossless bound over
    the truths' range (encode/codecs/depth.py relative_error_bound), every pixel within delta1."""
    from encode import codecs
    from encode.codecs.depth import relative_error_bound

    truths = np.concatenate([s.raw["depth"][np.isfinite(s.raw["depth"])] for s in samples])
    bound = relative_error_bound(codecs.from_spec(samples[0].meta["codec"]), float(truths.min()), float(truths.max()))
    assert flat[f"model/depth/{source}/n"] == n and flat[f"model/depth/{source}/failed"] == 0
    assert flat[f"model/depth/{source}/abs_rel"] <= bound
    assert flat[f"model/depth/{source}/delta1"] == 1.0
