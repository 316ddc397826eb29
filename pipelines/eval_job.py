"""`vistune eval`: config dict -> `evals.job.EvalJobConfig` -> `evals.job.run_eval`; a console summary.

    vistune eval checkpoint=runs/a/checkpoints/step-00001000.pt data=outputs/eval_shards
    vistune eval checkpoint=[ck/step-00000500.pt,ck/step-00001000.pt] base=base.pt data=[a,b] out=outputs/eval
    vistune eval predictions=preds/ data=outputs/nyuv2 out=outputs/eval_preds   # anyone's predictions, by key

What is scored and how (oracle and baseline rows, tuned-vs-base win rates) is evals/job.py's
business; this module only wires the resolved Hydra config to it.
"""

from __future__ import annotations

import math
import os
from typing import Any

from evals.job import EvalJobConfig, run_eval
from formats.config import ConfigError, from_dict

__all__ = ["EvalJobConfig", "config_from_dict", "describe", "run_eval"]  # run_eval: what cli and run_job call

PATH_LISTS = ("checkpoint", "data", "train_data")
MAX_STEPS = 1000          # sampling steps per prediction: a typo'd 1e9 would run for ever, per sample
MAX_GUIDANCE = 100.0      # classifier-free guidance scale; published models use 1-15
SAMPLING_BOUNDS = {"steps": (1, MAX_STEPS), "vision_steps": (1, MAX_STEPS), "select_steps": (1, MAX_STEPS),
                   "guidance": (0.0, MAX_GUIDANCE), "vision_guidance": (0.0, MAX_GUIDANCE),
                   "select_guidance": (0.0, MAX_GUIDANCE)}


def config_from_dict(data: dict[str, Any]) -> EvalJobConfig:
    """Hydra dict -> EvalJobConfig; a single path may stand for a list. ConfigError names a bad key."""
    data = {**data, **{key: _paths(data.get(key)) for key in PATH_LISTS}}
    data["depth_protocols"] = dict(data.get("depth_protocols") or {})  # null in YAML: no overrides
    if isinstance(data.get("predictions"), os.PathLike):
        data["predictions"] = os.fspath(data["predictions"])
    conf = from_dict(EvalJobConfig, data, "eval")
    check_sampling_bounds(conf)
    return conf


def check_sampling_bounds(conf: EvalJobConfig) -> None:
    """Raise ConfigError naming the key when a sampling setting (steps, guidance, their vision and
    select variants) is not a finite number within SAMPLING_BOUNDS (null vision_* settings are fine)."""
    for key, (low, high) in SAMPLING_BOUNDS.items():
        value = getattr(conf, key)
        items = enumerate(value) if isinstance(value, tuple) else [(None, value)]
        for i, v in items:
            if v is None and i is None and key.startswith("vision_"):
                continue
            name = f"eval.{key}" if i is None else f"eval.{key}[{i}]"
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            if not (number and math.isfinite(v) and low <= v <= high
                    and (isinstance(v, int) or not key.endswith("steps"))):
                kind = "an integer" if key.endswith("steps") else "a number"
                raise ConfigError(f"{name} must be {kind} in [{low}, {high}], got {v!r}")


def _paths(value: Any) -> Any:
    """null -> no paths (EvalJobConfig names what is missing); path-likes -> strings."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def describe(summary: dict[str, Any]) -> str:
    """A short console table: headline metric per task for each model and the references."""
    from evals.scoring import HEADLINE

    results = summary["results"]
    ref = results[0].metrics
    vae = ["vae-oracle"] if "vae-oracle" in ref else []  # a latent model's floor (its own VAE or eval.vae)
    lines = [f"{'task':<10} {'metric':<17} " + " ".join(f"{r.name[:16]:>16}" for r in results)
             + f" {'oracle':>10}" + "".join(f" {p:>10}" for p in vae) + f" {'baseline':>10} {'px-baseline':>11}"]
    for task, (metric, _) in HEADLINE.items():
        row = [r.metrics.get("model", {}).get(task, {}).get("all", {}).get(metric) for r in results]
        if all(v is None for v in row):
            continue
        refs = [ref.get(p, {}).get(task, {}).get("all", {}).get(metric) for p in ("oracle", *vae, "baseline", "pixel_baseline")]
        fmt = lambda v, w: f"{v:>{w}.4g}" if isinstance(v, float) else f"{'-':>{w}}"  # noqa: E731
        lines.append(f"{task:<10} {metric:<17} " + " ".join(fmt(v, 16) for v in row)
                     + "".join(f" {fmt(v, 10)}" for v in refs[:-1]) + f" {fmt(refs[-1], 11)}")
    if summary.get("comparison"):
        lines.append(f"generation vs base: {summary['comparison']['summary']}")
    for line in getattr(results[0], "protocol_settings", {}).values():
        lines.append(f"protocol {line}")
    lines.append(f"wrote {summary['json']} and {summary['report']}")
    return "\n".join(lines)
