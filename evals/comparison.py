"""Generation preserved: the tuned checkpoint against its base, sample by sample, as win rates."""

from __future__ import annotations

from typing import Any

from evals.evaluator import EvalResult
from evals.generation import win_rate
from evals.scoring import GENERATION_TASKS

# measure -> lower is better. flow_loss comes from the eval job (the model's own held-out loss).
MEASURES = {"feature_distance": True, "ssim": False, "psnr": False, "flow_loss": True}


def _per_sample(result: EvalResult, task: str, measure: str) -> dict[str, float]:
    return {r["key"]: r[measure] for r in result.records
            if r["predictor"] == "model" and r["task"] == task and r.get("ok") and measure in r}


def compare_generation(tuned: EvalResult, base: EvalResult) -> dict[str, Any]:
    """Win rates of `tuned` over `base` per generation task and measure, and a one-line verdict.

    The verdict is "worse" when some measure's 95% interval lies entirely below 0.5 (the tuned
    model loses significantly), else "not significantly worse".
    """
    rates: dict[str, dict[str, dict[str, float]]] = {}
    for task in GENERATION_TASKS:
        for measure, lower in MEASURES.items():
            w = win_rate(_per_sample(tuned, task, measure), _per_sample(base, task, measure), lower_is_better=lower)
            if w["n"]:
                rates.setdefault(task, {})[measure] = w
    worse = [f"{t}/{m}" for t, ms in rates.items() for m, w in ms.items() if w["ci_high"] < 0.5]
    if not rates:
        summary = "no generation (t2i / edit) samples were scored for both models"
    elif worse:
        summary = f"worse than the base on {', '.join(worse)} (95% interval of the win rate below 0.5)"
    else:
        summary = "not significantly worse than the base on any measure (every 95% interval reaches 0.5)"
    return {"tuned": tuned.name, "base": base.name, "win_rates": rates, "worse_on": worse, "summary": summary}
