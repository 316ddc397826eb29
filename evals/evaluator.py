"""The evaluator: batched prediction, decoding, per-task and per-source metrics, reference rows.

    ev = Evaluator(predict_fn, samples, batch_size=8)
    for name, value in ev.run():           # ("model/depth/all/abs_rel", 0.071), ...
        ...
    ev.result.to_json()                    # every number; ev.result.examples feeds the report

`predict_fn(samples: list[TaskSample]) -> list[np.ndarray]` returns one uint8 (H, W, 3) image
per sample, at any resolution with the truth's aspect ratio (encode/resize.py says how it is brought
to the truth's size). Every sample is scored three times through the same path: by the model,
by the codec oracle (its encoded truth) and by a trivial baseline (reference.py).

Samples are scored in a canonical order (by key, task and source), so a set scores the same
whatever order its shards list it in, and a sampler that seeds by position sees the same
positions. Each sample is scored under its protocol (evals/protocols.py: the one its json
records, a per-source override, else the default): depth range and crop, mIoU convention,
alignment space, and the region the prediction depicts.

Bad input never skews an average silently: a prediction that is not an image, has another
aspect ratio or does not decode is a counted failure of that sample (an undecodable depth
pixel is scored, at the protocol's minimum depth) (`failed` in every row, reasons in `failures`); a predict_fn that returns the wrong
number of images, and a sample from the training split, are errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from encode.sample import TaskSample
from evals import depth as depth_m
from evals import protocols as protocols_m
from evals.failure import EvalFailure
from evals.reference import Baseline, oracle_predict
from evals.scoring import REGION_ALIASES, REGIONS, SCORED_TASKS, TaskPool, center_square, score_sample

PredictFn = Callable[[list[TaskSample]], list[np.ndarray]]
ALL = "all"  # the source name of the pooled row


@dataclass
class EvalResult:
    """Everything one evaluation produced. `metrics[predictor][task][source][metric]`."""

    name: str
    metrics: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=dict)
    histograms: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # predictor -> task -> hist
    records: list[dict[str, Any]] = field(default_factory=list)    # one per (predictor, sample)
    failures: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)           # unscored tasks -> count
    baseline: dict[str, Any] = field(default_factory=dict)
    protocols: dict[str, str] = field(default_factory=dict)          # source -> depth protocol
    protocol_settings: dict[str, str] = field(default_factory=dict)  # protocol name -> its settings, in words
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # task -> grid rows (not in JSON)
    info: dict[str, Any] = field(default_factory=dict)               # checkpoint, step, config (set by callers)

    def flat(self) -> dict[str, float]:
        return {f"{p}/{t}/{s}/{m}": v for p, tasks in self.metrics.items() for t, srcs in tasks.items()
                for s, ms in srcs.items() for m, v in ms.items()}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "info": self.info, "metrics": self.metrics, "histograms": self.histograms,
                "failures": self.failures, "skipped": self.skipped, "baseline": self.baseline,
                "depth_protocols": self.protocols, "protocols": self.protocol_settings, "records": self.records}


class Evaluator:
    """Score `predict_fn` on eval samples, with the oracle and baseline reference rows.

    Args:
        predict_fn: list[TaskSample] -> list of uint8 (H, W, 3) images.
        samples: eval-split TaskSamples (held-out shards with raw targets).
        name: the model's name in reports (e.g. the checkpoint file).
        batch_size: samples per predict_fn call.
        depth_protocol: protocol for sources that name none (a sample's meta["depth_protocol"] wins).
        depth_protocols: source -> protocol name, overriding both.
        baseline: fitted on training data (Baseline.fit); None fits it on `samples` and says so.
        references: also score the oracle and the baseline (the report always shows them; callers
            evaluating several checkpoints on the same data compute them once).
        examples_per_task: samples per task kept (as images) for the report's grid.
        prediction_region: "full" (predictions depict the whole frame, at any size with its aspect
            ratio), "center_square" / "center" (they depict its central square, as train.predict makes
            them: the truth is scored on that window), or "auto": per sample, the region its json
            records (`prediction_region`), else that of the protocol it records (every imported
            benchmark: full), else `unrecorded_region`.
        unrecorded_region: the "auto" region of samples that record no protocol (vistune's own
            square split: "center_square").
    """

    def __init__(self, predict_fn: PredictFn, samples: Sequence[TaskSample], *, name: str = "model",
                 batch_size: int = 8, depth_protocol: str = "vistune", depth_protocols: dict[str, str] | None = None,
                 baseline: Baseline | None = None, references: bool = True, examples_per_task: int = 4,
                 prediction_region: str = "full", unrecorded_region: str = "center_square") -> None:
        if batch_size < 1:
            raise ValueError(f"Evaluator: batch_size must be >= 1, got {batch_size}")
        self.region = REGION_ALIASES.get(prediction_region, prediction_region)
        self.unrecorded_region = REGION_ALIASES.get(unrecorded_region, unrecorded_region)
        if self.region not in (*REGIONS, "auto") or self.unrecorded_region not in REGIONS:
            raise ValueError(f"Evaluator: prediction_region must be one of {[*REGIONS, 'center', 'auto']} "
                             f"(unrecorded_region: {list(REGIONS)}), got {prediction_region!r}, {unrecorded_region!r}")
        self.default_protocol = protocols_m.get(depth_protocol)
        self.protocols = {src: protocols_m.get(p) for src, p in (depth_protocols or {}).items()}
        train = [s.key for s in samples if s.split not in ("eval", "val")]  # both are held out from training
        if train:
            raise ValueError(f"Evaluator: {len(train)} samples are not from the eval split or the val split "
                             f"(e.g. {train[0]!r}); "
                             "scoring training data would report memorization as skill")
        self.samples = sorted((s for s in samples if s.task in SCORED_TASKS),
                              key=lambda s: (s.key, s.task, str(s.meta.get("source", "unknown"))))
        self.skipped: dict[str, int] = {}
        for s in samples:
            if s.task not in SCORED_TASKS:
                self.skipped[s.task] = self.skipped.get(s.task, 0) + 1
        self.name = name
        self.batch_size = batch_size
        self.examples_per_task = examples_per_task
        self.predictors: dict[str, PredictFn] = {"model": predict_fn}
        if references:
            self.baseline = baseline or Baseline.fit(self.samples, origin="eval set (no training data given)")
            refs = {"oracle": oracle_predict, "baseline": self.baseline.predict,
                    "pixel_baseline": self.baseline.predict_pixel}
            self.predictors.update({k: self._in_region(fn) for k, fn in refs.items()})
        else:
            self.baseline = baseline
        self.result = EvalResult(name)

    def _in_region(self, fn: PredictFn) -> PredictFn:
        """References predict the full frame; where a sample's region is its center square, they answer
        for that square."""
        def predict(batch: list[TaskSample]) -> list[Any]:
            return [p if p is None or self.region_of(s) == "full" else p[center_square(p.shape)]
                    for s, p in zip(batch, fn(batch))]
        return predict

    def scoring_protocol(self, sample: TaskSample) -> protocols_m.Protocol:
        """The sample's protocol: a per-source override, else the one its json records, else the default."""
        source = sample.meta.get("source", "unknown")
        if source in self.protocols:
            return self.protocols[source]
        name = protocols_m.name_of(sample.meta)
        return self.default_protocol if name is None else protocols_m.get(name)

    def protocol_for(self, sample: TaskSample) -> depth_m.DepthProtocol:
        return depth_m.get_protocol(self.scoring_protocol(sample).name)

    def _pooled_miou(self, task: str) -> str:
        """The mIoU convention of a task's pooled row: its sources' one, or "union" where they differ."""
        if not hasattr(self, "_pooled"):
            found: dict[str, set[str]] = {}
            for s in self.samples:
                found.setdefault(s.task, set()).add(self.scoring_protocol(s).miou)
            self._pooled = {t: (c.pop() if len(c) == 1 else "union") for t, c in found.items()}
        return self._pooled.get(task, "union")

    def region_of(self, sample: TaskSample) -> str:
        """"full" or "center_square": what this sample's prediction depicts."""
        if self.region != "auto":
            return self.region
        recorded = REGION_ALIASES.get(sample.meta.get("prediction_region"), sample.meta.get("prediction_region"))
        if recorded in REGIONS:  # an importer may record the region itself
            return recorded
        if protocols_m.name_of(sample.meta) is None:
            return self.unrecorded_region
        return REGION_ALIASES.get(self.scoring_protocol(sample).prediction_region,
                                  self.scoring_protocol(sample).prediction_region)

    def _predict(self, name: str, fn: PredictFn, batch: list[TaskSample]) -> list[Any]:
        preds = list(fn(batch))
        if len(preds) != len(batch):
            raise ValueError(f"predict function {name!r} returned {len(preds)} images for {len(batch)} samples")
        return preds

    def run(self) -> Iterator[tuple[str, float]]:
        """Evaluate everything, then yield (metric name, value) pairs; the full result is `self.result`."""
        pools: dict[tuple[str, str, str], TaskPool] = {}
        res = self.result
        for start in range(0, len(self.samples), self.batch_size):
            batch = self.samples[start:start + self.batch_size]
            for pname, fn in self.predictors.items():
                for sample, pred in zip(batch, self._predict(pname, fn, batch)):
                    self._score(pname, sample, pred, pools)
        for (pname, task, source), pool in sorted(pools.items()):
            res.metrics.setdefault(pname, {}).setdefault(task, {})[source] = pool.metrics()
            if source == ALL and (hist := pool.histogram()) is not None:
                res.histograms.setdefault(pname, {})[task] = hist
        res.skipped = dict(self.skipped)
        regions = sorted({self.region_of(s) for s in self.samples}) or [self.region]
        res.info.setdefault("prediction_region", regions[0] if len(regions) == 1 else "+".join(regions))
        res.protocols = {s.meta.get("source", "unknown"): self.protocol_for(s).name
                         for s in self.samples if s.task == "depth"}
        res.protocol_settings = {p.name: p.describe() for p in sorted(
            {self.scoring_protocol(s) for s in self.samples}, key=lambda p: p.name)}
        if self.baseline is not None:
            res.baseline = {"origin": self.baseline.origin, "predicts": self.baseline.describe()}
        yield from res.flat().items()

    def _score(self, pname: str, sample: TaskSample, pred: Any, pools: dict) -> None:
        source = sample.meta.get("source", "unknown")
        protocol = self.scoring_protocol(sample)
        targets = [pools.setdefault((pname, sample.task, source), TaskPool(sample.task, protocol.miou)),
                   pools.setdefault((pname, sample.task, ALL), TaskPool(sample.task, self._pooled_miou(sample.task)))]
        record: dict[str, Any] = {"predictor": pname, "key": sample.key, "task": sample.task, "source": source}
        try:
            if isinstance(pred, EvalFailure):  # a predictor's named reason (e.g. a missing prediction file)
                raise pred
            if pred is None:
                raise EvalFailure("bad_prediction", "the predictor returned no image")
            score = score_sample(sample, pred, self.protocol_for(sample), self.region_of(sample))
        except EvalFailure as err:
            for pool in targets:
                pool.fail(err.reason)
            record.update(ok=False, reason=err.reason, message=str(err))
            self.result.failures.append(record)
            self.result.records.append(record)
            return
        for pool in targets:
            pool.add(score)
        record.update(ok=True, **score.metrics)
        self.result.records.append(record)
        rows = self.result.examples.setdefault(sample.task, [])
        if pname == "model" and len(rows) < self.examples_per_task:
            inp = sample.input
            if inp is not None and self.region_of(sample) == "center_square":
                inp = inp[center_square(inp.shape)]
            rows.append({"key": sample.key, "source": source, "input": inp, "prediction": pred,
                         "decoded": score.decoded, "truth": score.truth, "error": score.error_map,
                         "sample": sample})
