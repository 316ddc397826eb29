"""Evaluation: small numpy metrics per task, an evaluator that decodes generated images with
each sample's codec and scores them against the raw truth, and an HTML report.

    from evals import Evaluator
    ev = Evaluator(predict_fn, samples)
    metrics = dict(ev.run())
"""

from evals.evaluator import EvalResult, Evaluator
from evals.failure import EvalFailure
from evals.reference import Baseline, oracle_predict

__all__ = ["Baseline", "EvalFailure", "EvalResult", "Evaluator", "oracle_predict"]
