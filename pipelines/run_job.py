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

from formats.atomic import atomic_open
from formats.config import ConfigError
from formats.shards import ensure_output_dir
from pipelines.stages import PIPELINE, newest_checkpoint, pipeline_stage, run_stage

STAGES = tuple(PIPELINE)  # the blocks of run.yaml, in pipeline order

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


class RunError(ConfigError):
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
            pipeline_stage(stage).build(stage_block(cfg, stage, dry=True))
        except ValueError as err:
            named = str(err).startswith((f"{stage}:", f"{stage} ", f"unknown {stage} "))  # from_dict named the block
            raise RunError(str(err) if named else f"{stage}: {err}") from err


def check(cfg: dict) -> dict:
    """The `vistune run` config, checked (stage names and every selected stage's config); returns it."""
    check_stage_configs(cfg, check_config(cfg))
    return cfg


def stage_block(cfg: dict, stage: str, dry: bool = False) -> dict:
    """`stage`'s block with what `vistune run` fills in from earlier stages. `dry`: stand-ins of the
    same kind instead (no sample photos written, no checkpoints looked up), for checking."""
    block = dict(cfg[stage])
    fill = _FILLS.get(stage)
    return fill(cfg, block, dry) if fill else block


def _fill_annotate(cfg: dict, block: dict, dry: bool) -> dict:
    if not block.get("source"):  # scikit-image's sample photos, listed in <out>/web/images.txt
        web = Path(cfg["out"]) / "web"
        block.update(source=str(web / "images.txt" if dry else sample_photos(web)), source_kind="list")
    return block


def _fill_encode(cfg: dict, block: dict, dry: bool) -> dict:
    if not dry:  # stages switched off leave no dir
        block["inputs"] = [p for p in block["inputs"] if Path(p).is_dir()]
    return block


def _fill_pretrain(cfg: dict, block: dict, dry: bool) -> dict:
    return {**block, "init_from": None} if dry else block


def _fill_tune(cfg: dict, block: dict, dry: bool) -> dict:
    if dry:
        return {**block, "init_from": None}
    if block.get("init_from") in (None, "auto"):
        block["init_from"] = newest_checkpoint(cfg["pretrain"]["out"]) if "pretrain" in cfg["stages"] else None
    return block


def _fill_eval(cfg: dict, block: dict, dry: bool) -> dict:
    if dry:
        return {**block, "checkpoint": ["step-00000001.pt"], "base": None}
    if block.get("checkpoint") in (None, "auto", ["auto"], "all", ["all"]):
        every = block["checkpoint"] in ("all", ["all"])  # every kept tune checkpoint: the learning curve
        tuned = _tune_checkpoints(cfg, every)
        if not tuned:
            raise RunError("eval: no checkpoint to evaluate (run the pretrain / tune stages first)")
        block["checkpoint"] = tuned
    if block.get("base") == "auto":
        base = newest_checkpoint(cfg["pretrain"]["out"])
        block["base"] = base if base and base not in block["checkpoint"] else None
    return block


def _tune_checkpoints(cfg: dict, every: bool) -> list[str]:
    """The tune stage's newest checkpoint (or all it kept, oldest first); the pretrain's without tuning."""
    from train.checkpoint import list_checkpoints

    for stage in ("tune", "pretrain"):
        found = [str(p) for p in list_checkpoints(cfg[stage]["out"])]
        if found:
            return found if every else found[-1:]
    return []


_FILLS: dict[str, Callable[[dict, dict, bool], dict]] = {
    "annotate": _fill_annotate, "encode": _fill_encode, "pretrain": _fill_pretrain, "tune": _fill_tune,
    "eval": _fill_eval,
}


def eval_up_to_date(block: dict) -> dict | None:
    """The eval stage's record when its report is newer than every checkpoint it scored (and scored
    exactly these), else None."""
    report = Path(block["out"]) / "eval.json"
    scored = [p for p in [*block["checkpoint"], block.get("base")] if p]
    if not report.exists() or any(Path(p).stat().st_mtime >= report.stat().st_mtime for p in scored):
        return None
    doc = json.loads(report.read_text())
    if sorted(r["info"]["checkpoint"] for r in doc["results"]) != sorted(scored):
        return None
    return {"summary": f"eval: up to date ({report})", "report": str(Path(block["out"]) / "report.html"),
            "json": str(report), "skipped": True, "out": block["out"]}


def run_block(cfg: dict, stage: str) -> dict:
    """Run one block of `vistune run`; its record for run_summary.json (summary text, facts, out)."""
    block = stage_block(cfg, stage)
    done = eval_up_to_date(block) if stage == "eval" else None
    if done:
        return done
    conf, summary = run_stage(PIPELINE[stage], block)
    kind = pipeline_stage(stage)
    return {"summary": kind.describe(conf, summary), **kind.facts(conf, summary), "out": block["out"]}


# Extra numbers the run summary keeps beside a task's headline metric.
EXTRA_METRICS = {"depth": ("delta1",)}


def headline_metrics(eval_json: str) -> dict[str, Any]:
    """Task -> headline metrics of the newest evaluated checkpoint, from eval.json, each beside the
    same metric of the per-pixel and the constant baseline (`<metric>@pixel_baseline`, ...) and
    the number of scored samples: whether the model learned to look is read off one line."""
    from evals.scoring import HEADLINE

    doc = json.loads(Path(eval_json).read_text())
    results = [r for r in doc["results"] if r.get("info", {}).get("role") != "base"]
    if not results:
        return {}
    refs = doc["results"][0]["metrics"]  # the reference rows are computed once, with the first result
    out = {}
    for task, (metric, _) in HEADLINE.items():
        model = results[-1]["metrics"].get("model", {}).get(task, {}).get("all")
        if not model or model.get(metric) is None:
            continue
        row = {"n": model.get("n")}
        for name in (metric, *EXTRA_METRICS.get(task, ())):
            row[name] = model.get(name)
            for ref in ("pixel_baseline", "baseline"):
                row[f"{name}@{ref}"] = refs.get(ref, {}).get(task, {}).get("all", {}).get(name)
        out[task] = row
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
    needs_ray = any(pipeline_stage(s).ray for s in stages)
    with ray_session(cfg["ray"]["address"], cfg["ray"]["num_cpus"]) if needs_ray else contextlib.nullcontext():
        for i, stage in enumerate(stages, start=1):
            log(f"\n[{i}/{len(stages)}] {stage}")
            t0 = time.perf_counter()
            result = run_block(cfg, stage)
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
    """Time and output per stage, the headline metrics and where the report and summary are."""
    lines = ["", f"vistune run: {summary['wall_s']:.0f} s -> {summary['out']}",
             f"  {'stage':<9} {'time':>8}  output"]
    for stage, r in summary["stages"].items():
        lines.append(f"  {stage:<9} {r['wall_s']:7.1f}s  {r.get('out', '')}")
    for task, m in (summary.get("metrics") or {}).items():
        lines.append("  " + f"{task:<10} " + ", ".join(f"{k} {v:.4g}" for k, v in m.items() if v is not None))
    if summary.get("report"):
        lines.append(f"  report: {summary['report']}")
    lines.append(f"  summary: {summary['out']}/run_summary.json")
    return "\n".join(lines)
