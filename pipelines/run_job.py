"""`vistune run`: every stage from one config, each skipping work whose outputs are complete.

    render -> annotate -> encode -> mix -> pretrain -> tune -> eval

Stage blocks are the stages' own configs (pipelines/conf/run.yaml composes them), so anything a
stage accepts can be set here. Completion is each stage's own: render, annotate and encode skip
complete shards; training resumes from its newest checkpoint and stops at once when it has
reached its step count; eval is skipped when its report is newer than the checkpoints it scored.
A rerun after a crash therefore only does what is missing. One Ray session serves the Ray
stages (`ray.address`: null embeds a local Ray, `auto` joins a cluster).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, Callable

from formats.shards import ensure_output_dir
from formats.atomic import atomic_open

STAGES = ("render", "annotate", "encode", "mix", "pretrain", "tune", "eval")
RAY_STAGES = ("render", "annotate", "encode")

# scikit-image's sample photos with hand-written captions: the smoke run's "web images".
SAMPLE_PHOTOS = {
    "astronaut": "an astronaut in a white spacesuit smiling in front of an American flag",
    "chelsea": "a tabby cat looking to the side",
    "coffee": "a cup of coffee with latte art on a saucer",
    "rocket": "a rocket on its launch pad under a blue sky",
    "hubble_deep_field": "a deep field of distant galaxies in space",
    "immunohistochemistry": "a microscope image of stained tissue",
    "retina": "a photograph of a human retina",
    "colorwheel": "a color wheel of rainbow hues",
}


class RunError(ValueError):
    """A `vistune run` config that names an unknown stage or lacks what a stage needs."""


def sample_photos(out: Path) -> Path:
    """Write scikit-image's sample photos and a captioned file list under `out`; return the list."""
    import skimage.data
    from PIL import Image

    lines = []
    for name, caption in SAMPLE_PHOTOS.items():
        path = out / f"{name}.png"
        if not path.exists():
            image = getattr(skimage.data, name)()
            with atomic_open(path) as f:
                Image.fromarray(image).convert("RGB").save(f, format="PNG")
        lines.append(f"{path.resolve()}\t{caption}")  # file lists resolve relative paths against their own folder
    listing = out / "images.txt"
    with atomic_open(listing, "w") as f:
        f.write("\n".join(lines) + "\n")
    return listing


def _newest_checkpoint(out: str) -> str | None:
    from train.checkpoint import latest_checkpoint

    path = latest_checkpoint(out)
    return str(path) if path else None


def _run_render(cfg: dict) -> dict:
    from pipelines import render_job

    summary = render_job.run_render(render_job.config_from_dict(cfg["render"]))
    return {"summary": render_job.describe(summary), "scenes": summary["scenes"],
            "new": summary["rendered_scenes"], "out": cfg["render"]["out"]}


def _run_annotate(cfg: dict) -> dict:
    from pipelines import annotate_job

    block = dict(cfg["annotate"])
    if not block.get("source"):
        block["source"] = str(sample_photos(Path(cfg["out"]) / "web"))
    summary = annotate_job.run_annotate(annotate_job.config_from_dict(block))
    return {"summary": annotate_job.describe(summary), "out": block["out"]}


def _run_encode(cfg: dict) -> dict:
    from pipelines import encode_job

    block = dict(cfg["encode"])
    block["inputs"] = [p for p in block["inputs"] if Path(p).is_dir()]  # stages switched off leave no dir
    summary = encode_job.run_encode(encode_job.config_from_dict(block))
    return {"summary": encode_job.describe(summary), "written": summary["written"], "lost": summary["lost"],
            "out": block["out"]}


def _run_mix(cfg: dict) -> dict:
    from pipelines import mix_job

    block = dict(cfg["mix"])
    check = mix_job.check(block)
    resolved = mix_job.resolve(block)
    return {"summary": mix_job.describe("resolve", resolved) + "\n" + mix_job.describe("check", check),
            "sources": {s["name"]: s["samples"] for s in resolved["sources"]}, "out": block["out"]}


def _run_train(cfg: dict, stage: str) -> dict:
    from pipelines import train_job

    block = dict(cfg[stage])
    if stage == "tune" and block.get("init_from") in (None, "auto"):
        block["init_from"] = _newest_checkpoint(cfg["pretrain"]["out"]) if "pretrain" in cfg["stages"] else None
    job = train_job.config_from_dict(block)
    result = train_job.run_ray(block, job) if job.backend == "ray" else train_job.run_local(job)
    losses = getattr(result, "losses", {}) or {}
    return {"summary": train_job.describe(None if job.backend == "ray" else result, job.train.out),
            "step": getattr(result, "step", None), "loss": losses.get(max(losses)) if losses else None,
            "checkpoint": _newest_checkpoint(block["out"]), "out": block["out"]}


def _run_eval(cfg: dict) -> dict:
    from pipelines import eval_job

    block = dict(cfg["eval"])
    if block.get("checkpoint") in (None, "auto", ["auto"]):
        tuned = _newest_checkpoint(cfg["tune"]["out"]) or _newest_checkpoint(cfg["pretrain"]["out"])
        if tuned is None:
            raise RunError("eval: no checkpoint to evaluate (run the pretrain / tune stages first)")
        block["checkpoint"] = [tuned]
    if block.get("base") == "auto":
        base = _newest_checkpoint(cfg["pretrain"]["out"])
        block["base"] = base if base and base not in block["checkpoint"] else None
    report = Path(block["out"]) / "eval.json"
    scored = [p for p in [*block["checkpoint"], block.get("base")] if p]
    if report.exists() and all(Path(p).stat().st_mtime < report.stat().st_mtime for p in scored):
        doc = json.loads(report.read_text())
        if sorted(r["info"]["checkpoint"] for r in doc["results"]) == sorted(scored):
            return {"summary": f"eval: up to date ({report})", "report": str(Path(block["out"]) / "report.html"),
                    "json": str(report), "skipped": True, "out": block["out"]}
    summary = eval_job.run_eval(eval_job.config_from_dict(block))
    return {"summary": eval_job.describe(summary), "report": str(summary["report"]), "json": str(summary["json"]),
            "out": block["out"]}


RUNNERS: dict[str, Callable[[dict], dict]] = {
    "render": _run_render, "annotate": _run_annotate, "encode": _run_encode, "mix": _run_mix,
    "pretrain": lambda cfg: _run_train(cfg, "pretrain"), "tune": lambda cfg: _run_train(cfg, "tune"),
    "eval": _run_eval,
}


def check_config(cfg: dict) -> list[str]:
    """The stages to run, in pipeline order. Raises RunError for unknown stage names."""
    stages = list(cfg.get("stages") or [])
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise RunError(f"stages {unknown or stages} not allowed; allowed (in order): {list(STAGES)}")
    return [s for s in STAGES if s in stages]


def check_stage_configs(cfg: dict, stages: list[str]) -> None:
    """Build every selected stage's job config as its runner will, before any work starts: a bad
    value in a late stage (say `tune.train.steps=-1`) fails now, not after an hour of rendering.
    Raises RunError naming the stage block and the bad value."""
    for stage in stages:
        try:
            _stage_config(cfg, stage)
        except (TypeError, ValueError) as err:
            raise RunError(f"{stage}: {err}") from err


def _stage_config(cfg: dict, stage: str) -> Any:
    """`stage`'s job config; values its runner fills in from earlier stages get stand-ins of the same kind."""
    block = dict(cfg[stage])
    if stage == "render":
        from pipelines import render_job
        return render_job.config_from_dict(block)
    if stage == "annotate":
        from pipelines import annotate_job
        if not block.get("source"):  # the runner writes the sample photos' list here
            block.update(source=str(Path(cfg["out"]) / "web" / "images.txt"), source_kind="list")
        return annotate_job.config_from_dict(block)
    if stage == "encode":
        from pipelines import encode_job
        return encode_job.config_from_dict(block)
    if stage == "mix":
        from pipelines import mix_job
        return mix_job.mixture_config(block)
    if stage in ("pretrain", "tune"):
        from pipelines import train_job
        return train_job.config_from_dict({**block, "init_from": None})
    from pipelines import eval_job
    return eval_job.config_from_dict({**block, "checkpoint": ["step-00000001.pt"], "base": None})


def headline_metrics(eval_json: str) -> dict[str, Any]:
    """Task -> headline metric of the newest evaluated checkpoint, from eval.json."""
    from evals.scoring import HEADLINE

    doc = json.loads(Path(eval_json).read_text())
    results = [r for r in doc["results"] if r.get("info", {}).get("role") != "base"]
    if not results:
        return {}
    metrics = results[-1]["metrics"].get("model", {})
    out = {}
    for task, (metric, _) in HEADLINE.items():
        value = metrics.get(task, {}).get("all", {}).get(metric)
        if value is not None:
            out[task] = {metric: value}
    return out


def run(cfg: dict, log: Callable[[str], None] = print) -> dict:
    """Run the configured stages in order; write `<out>/run_summary.json`; return the summary."""
    from pipelines.ray_runtime import ray_session

    stages = check_config(cfg)
    check_stage_configs(cfg, stages)
    for key, out in [("out", cfg["out"])] + [(f"{s}.out", cfg[s]["out"]) for s in stages]:
        ensure_output_dir(out, key)  # an unwritable output fails now, not when its stage starts
    summary: dict[str, Any] = {"out": cfg["out"], "stages": {}}
    t_all = time.perf_counter()
    needs_ray = any(s in RAY_STAGES for s in stages)
    with ray_session(cfg["ray"]["address"], cfg["ray"]["num_cpus"]) if needs_ray else contextlib.nullcontext():
        for i, stage in enumerate(stages, start=1):
            log(f"\n[{i}/{len(stages)}] {stage}")
            t0 = time.perf_counter()
            result = RUNNERS[stage](cfg)
            result["wall_s"] = time.perf_counter() - t0
            summary["stages"][stage] = result
            log(result["summary"])
            _write_summary(cfg, summary)
    summary["wall_s"] = time.perf_counter() - t_all
    if "eval" in summary["stages"]:
        summary["metrics"] = headline_metrics(summary["stages"]["eval"]["json"])
        summary["report"] = summary["stages"]["eval"]["report"]
    _write_summary(cfg, summary)
    return summary


def _write_summary(cfg: dict, summary: dict) -> None:
    with atomic_open(Path(cfg["out"]) / "run_summary.json", "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True, default=str)


def describe(summary: dict) -> str:
    lines = ["", f"vistune run: {summary['wall_s']:.0f} s -> {summary['out']}",
             f"  {'stage':<9} {'time':>8}  output"]
    for stage, r in summary["stages"].items():
        lines.append(f"  {stage:<9} {r['wall_s']:7.1f}s  {r.get('out', '')}")
    for task, m in (summary.get("metrics") or {}).items():
        lines.append("  " + f"{task:<10} " + ", ".join(f"{k} {v:.4g}" for k, v in m.items()))
    if summary.get("report"):
        lines.append(f"  report: {summary['report']}")
    lines.append(f"  summary: {summary['out']}/run_summary.json")
    return "\n".join(lines)
