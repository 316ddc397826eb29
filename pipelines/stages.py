"""The stage table: every `vistune <stage>`, and every block of `vistune run`, in one place.

A `Stage` names its Hydra config (pipelines/conf/<config>.yaml) and its help line, and says how
its resolved config dict becomes a checked job config (`build`, which raises
formats.config.ConfigError before any work), how it runs (`run`), what it prints (`describe`)
and which numbers `vistune run` records of it (`facts`). pipelines/cli.py and
pipelines/run_job.py only look stages up here. A stage's module is imported when the stage is
built or run, so listing the stages imports neither Ray nor torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable


def _no_facts(conf: Any, summary: Any) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Stage:
    """One stage: its config, its help line, and the steps from a resolved dict to a report."""

    config: str                                   # Hydra config name under pipelines/conf
    help: str                                     # the line `vistune` prints for it
    build: Callable[[dict], Any]                  # resolved config dict -> checked job config (ConfigError)
    run: Callable[[dict, Any], Any]               # (resolved dict, job config) -> summary: does the work
    describe: Callable[[Any, Any], str]           # (job config, summary) -> what `vistune <stage>` prints
    facts: Callable[[Any, Any], dict] = _no_facts  # (job config, summary) -> what run_summary.json keeps
    ray: bool = False                             # runs in a Ray session (`ray.address`, `ray.num_cpus`)
    outputs: Callable[[Any], dict] = lambda conf: {"out": conf.out}  # job config -> {config key: output dir}


def _last(module: str, name: str) -> Callable[..., Any]:
    """`pipelines.<module>.<name>` applied to its caller's last argument (the dict for `build`, the
    job config for `run`, the summary for `describe`); the module is imported at the first call."""

    def call(*args: Any) -> Any:
        return getattr(importlib.import_module(f"pipelines.{module}"), name)(args[-1])

    return call


def _all(module: str, name: str) -> Callable[..., Any]:
    """`pipelines.<module>.<name>` applied to all of its caller's arguments, imported at the first call."""

    def call(*args: Any) -> Any:
        return getattr(importlib.import_module(f"pipelines.{module}"), name)(*args)

    return call


def newest_checkpoint(out: str) -> str | None:
    """The newest checkpoint under a training stage's `out`, or None."""
    from train.checkpoint import latest_checkpoint

    path = latest_checkpoint(out)
    return str(path) if path else None


def _run_train(data: dict, job: Any) -> Any:
    """Train in this process (or each torchrun rank), or on Ray Train; None for Ray (no result here)."""
    from pipelines import train_job

    if job.backend == "ray":
        train_job.run_ray(data, job)
        return None
    return train_job.run_local(job)


def _describe_train(job: Any, result: Any) -> str:
    from pipelines import train_job

    return train_job.describe(result, job.train.out)


def _train_facts(job: Any, result: Any) -> dict[str, Any]:
    losses = getattr(result, "losses", {}) or {}
    return {"step": getattr(result, "step", None), "loss": losses.get(max(losses)) if losses else None,
            "checkpoint": newest_checkpoint(job.train.out)}


def _mix_outputs(job: Any) -> dict[str, str]:
    """`mix stats` only prints; resolve and check write under `out`."""
    return {"out": job.out} if set(job.action) - {"stats"} else {}


def _mix_facts(job: Any, results: dict) -> dict[str, Any]:
    resolved = results.get("resolve")
    return {"sources": {s["name"]: s["samples"] for s in resolved["sources"]}} if resolved else {}


def _render_facts(conf: Any, summary: dict) -> dict[str, Any]:
    return {"scenes": summary["scenes"], "new": summary["rendered_scenes"]}


def _encode_facts(conf: Any, summary: dict) -> dict[str, Any]:
    return {"written": summary["written"], "lost": summary["lost"]}


def _eval_facts(conf: Any, summary: dict) -> dict[str, Any]:
    return {"report": str(summary["report"]), "json": str(summary["json"])}


# `vistune <stage>` -> Stage, in the order `vistune` lists them.
STAGES: dict[str, Stage] = {
    "run": Stage("run", "the whole pipeline from one config (render ... eval), skipping completed work",
                 _last("run_job", "check"), _last("run_job", "run"), _last("run_job", "describe"),
                 outputs=lambda cfg: {}),  # run_job.run checks `out` and every stage's `<stage>.out` itself
    "demo": Stage("demo", "round-trip sample depth/normal maps through the codecs; write a contact sheet",
                  _last("demo", "config_from_dict"), _last("demo", "run"), _all("demo", "describe")),
    "render": Stage("render", "render seeded procedural Blender scenes into raw shards with Ray",
                    _last("render_job", "config_from_dict"), _last("render_job", "run_render"),
                    _last("render_job", "describe"), _render_facts, ray=True),
    "annotate": Stage("annotate", "pseudo-label web images (masks, referring expressions) into raw shards",
                      _last("annotate_job", "config_from_dict"), _last("annotate_job", "run_annotate"),
                      _last("annotate_job", "describe"), ray=True),
    "encode": Stage("encode", "raw render/annotate shards -> task shards with Parquet manifests, with Ray",
                    _last("encode_job", "config_from_dict"), _last("encode_job", "run_encode"),
                    _last("encode_job", "describe"), _encode_facts, ray=True),
    "mix": Stage("mix", "mixture over manifests: `mix` resolves, `mix stats` ratios, `mix check` duplicates",
                 _last("mix_job", "config_from_dict"), _last("mix_job", "run"), _all("mix_job", "describe"),
                 _mix_facts, outputs=_mix_outputs),
    "preview": Stage("preview", "contact sheets of random task samples or render views (PNG + HTML)",
                     _last("mix_job", "preview_config"), _last("mix_job", "preview"),
                     lambda conf, path: f"wrote {path}"),
    "train": Stage("train", "pre-train or instruction-tune the generator on task shards / the mixture",
                   _last("train_job", "config_from_dict"), _run_train, _describe_train, _train_facts,
                   outputs=lambda job: {"out": job.train.out}),
    "eval": Stage("eval", "score checkpoints on held-out shards: decode, metrics, JSON + HTML report",
                  _last("eval_job", "config_from_dict"), _last("eval_job", "run_eval"),
                  _last("eval_job", "describe"), _eval_facts),
    "import": Stage("import", "a benchmark on disk (NYUv2, KITTI, Cityscapes, RefCOCO, ...) -> eval shards",
                    _last("import_job", "config_from_dict"), _last("import_job", "run"),
                    _last("import_job", "describe")),
    "export": Stage("export", "a model.kind=diffusers checkpoint -> a diffusers pipeline dir (--lora-only: the adapter)",
                    _last("export_job", "config_from_dict"), _last("export_job", "run"),
                    _last("export_job", "describe")),
}

# `vistune run`'s blocks, in pipeline order -> the stage that runs each.
PIPELINE: dict[str, str] = {"render": "render", "annotate": "annotate", "encode": "encode", "mix": "mix",
                            "pretrain": "train", "tune": "train", "eval": "eval"}


def pipeline_stage(block: str) -> Stage:
    """The Stage that runs `vistune run`'s block `block` (pretrain and tune are both `train`)."""
    return STAGES[PIPELINE[block]]


def run_stage(name: str, data: dict) -> tuple[Any, Any]:
    """Build stage `name`'s job config from the resolved dict `data`, check that its output
    directories are writable (ValueError naming the key, before any work), then run it: a Ray stage
    in the config's Ray session (joined if one is already up). Returns (job config, summary)."""
    from formats.shards import ensure_output_dir
    from pipelines.ray_runtime import ray_session

    stage = STAGES[name]
    conf = stage.build(data)
    for key, out in stage.outputs(conf).items():
        ensure_output_dir(out, key)  # the same rule and message for every stage
    if not stage.ray:
        return conf, stage.run(data, conf)
    with ray_session(data["ray"]["address"], data["ray"]["num_cpus"]):
        return conf, stage.run(data, conf)
