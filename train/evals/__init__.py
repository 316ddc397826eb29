"""Evaluation: small numpy metrics per task, an evaluator that decodes generated images with
each sample's codec and scores them against the raw truth, and an HTML report.

    from train.evals import Evaluator
    ev = Evaluator(predict_fn, samples)
    metrics = dict(ev.run())
"""

from train.evals.evaluator import EvalResult, Evaluator
from train.evals.failure import EvalFailure
from train.evals.reference import Baseline, oracle_predict

__all__ = ["Baseline", "EvalFailure", "EvalResult", "Evaluator", "oracle_predict"]
