"""`vistune mix [resolve|stats|check]` and `vistune preview`: the instruction mixture from manifests.

- `resolve` (default): resolve every source's manifest filter, print samples and weights per
  source, and write `<out>/mixture.json` (the resolved mixture with its fingerprint; training
  reads the same config).
- `stats`: realized ratios over the first `stats.n` samples of every (rank, worker), per source and
  per task, against the weights; with `stats.read=true` it also reads the samples and reports
  samples/s.
- `check`: exact and near-duplicate source images within train and between train and eval;
  writes a JSON report, and with `check.drop=true` the exclusion list `<root>/_excluded.parquet`
  that the mixture stream honours.
- `preview`: contact sheets of random samples per task (PNG + HTML), or of random views of render
  shards (RGB | depth | normals | instances, with each view's statistics).

`action` may list several actions, run in order (`vistune run` checks, then resolves).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from encode import dedup
from encode.manifest import open_dataset
from encode.mixture import EXCLUDED_FILE, MixtureConfig, MixtureStream, build_index, realized_ratios
from formats.atomic import atomic_open
from formats.config import ConfigError, from_dict

ACTIONS = ("resolve", "stats", "check")


@dataclass(frozen=True)
class StatsOptions:
    n: int = 10_000           # samples per (rank, worker)
    world_size: int = 1
    num_workers: int = 1
    read: bool = False        # also read samples and report samples/s
    read_n: int = 2000


@dataclass(frozen=True)
class CheckOptions:
    threshold: int = 6        # near duplicate: pHash Hamming distance <= threshold bits
    drop: bool = False        # write <root>/_excluded.parquet


@dataclass(frozen=True)
class MixJobConfig:
    """`vistune mix`: the actions to run (in order) on the mixture over `roots`."""

    mixture: MixtureConfig
    roots: tuple[str, ...] = ("outputs/encode",)
    out: str = "outputs/mix"
    action: tuple[str, ...] = ("resolve",)
    stats: StatsOptions = field(default_factory=StatsOptions)
    check: CheckOptions = field(default_factory=CheckOptions)

    def __post_init__(self) -> None:
        bad = [a for a in self.action if a not in ACTIONS]
        if bad or not self.action:
            raise ConfigError(f"mix action {bad[0] if bad else list(self.action)!r}; allowed: {list(ACTIONS)}")


PREVIEW_KINDS = ("auto", "tasks", "render")


@dataclass(frozen=True)
class PreviewConfig:
    """`vistune preview`: `per_task` random samples of every task under the task-shard `roots`, and
    `views` random views of the render-shard `roots` (RGB | depth | normals | instances). `kind`:
    what the roots hold; `auto` tells each root by its Parquet files' columns."""

    roots: tuple[str, ...] = ("outputs/encode",)
    out: str = "outputs/preview"
    per_task: int = 6
    seed: int = 0
    kind: str = "auto"
    views: int = 8            # rows of the render contact sheet
    cell: int = 256           # px: the width of one render panel

    def __post_init__(self) -> None:
        if self.kind not in PREVIEW_KINDS:
            raise ConfigError(f"preview.kind {self.kind!r}; allowed: {list(PREVIEW_KINDS)}")
        if self.views < 1 or not 16 <= self.cell <= 2048:
            raise ConfigError(f"preview.views must be >= 1 and preview.cell in [16, 2048], got {self.views}, {self.cell}")


def mixture_config(cfg: dict[str, Any]) -> MixtureConfig:
    """The `mixture` block plus `roots` of a stage config -> MixtureConfig."""
    block = dict(cfg["mixture"])
    block.setdefault("roots", cfg.get("roots"))
    return MixtureConfig.from_dict(block)


def config_from_dict(cfg: dict[str, Any]) -> MixJobConfig:
    """The resolved `vistune mix` config -> MixJobConfig; ConfigError naming a bad key or action."""
    if not isinstance(cfg.get("mixture"), dict):
        raise ConfigError(f"mix: `mixture` must be a mixture block (pipelines/conf/mixture), got {cfg.get('mixture')!r}")
    try:
        mixture = mixture_config(cfg)
    except ConfigError:
        raise
    except ValueError as err:  # MixtureError: a bad weight, an empty source list, ...
        raise ConfigError(str(err)) from err
    return from_dict(MixJobConfig, {**cfg, "mixture": mixture})


def preview_config(cfg: dict[str, Any]) -> PreviewConfig:
    """The resolved `vistune preview` config -> PreviewConfig; ConfigError naming a bad key."""
    return from_dict(PreviewConfig, cfg)


def run(job: MixJobConfig) -> dict[str, Any]:
    """Every action of `job.action`, in order -> {action: its result}."""
    actions = {"resolve": resolve, "stats": stats, "check": check}
    return {action: actions[action](job) for action in job.action}


def resolve(job: MixJobConfig) -> dict[str, Any]:
    """Resolve every source's filter; write `<out>/mixture.json` (with the fingerprint) and return it."""
    mix = job.mixture
    index = build_index(mix)
    stream = MixtureStream(mix, index=index)
    by_name = {s.name: s for s in mix.sources}
    sources = [{"name": ix.name, "weight": float(w), "filter": by_name[ix.name].filter, "samples": ix.n,
                "shards": len(ix.shard_paths)} for w, ix in zip(stream.weights, index)]
    record = {"roots": list(mix.roots), "seed": mix.seed, "split": mix.split, "window": mix.window, "block": mix.block,
              "fingerprint": stream.fingerprint, "sources": sources}
    with atomic_open(Path(job.out) / "mixture.json", "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    return record


def stats(job: MixJobConfig) -> dict[str, Any]:
    """Realized source ratios over the first `stats.n` samples of every (rank, worker)."""
    mix, opts = job.mixture, job.stats
    n, world, workers = opts.n, opts.world_size, opts.num_workers
    index = build_index(mix)
    ratios = realized_ratios(mix, n, world, workers, index=index)
    by_task: Counter = Counter()
    stream = MixtureStream(mix, index=index)

    for _, tar, _ in stream.plan(n):
        by_task[Path(tar).parent.name] += 1
    out = {"n_per_worker": n, "world_size": world, "num_workers": workers,
           "sources": {ix.name: {"weight": float(w), "realized": ratios[ix.name]}
                       for ix, w in zip(index, stream.weights)},
           "tasks_worker0": {t: c / n for t, c in sorted(by_task.items())}}
    if opts.read:
        t0, it = time.perf_counter(), iter(MixtureStream(mix, index=index))
        for _ in range(opts.read_n):
            next(it)
        out["read_samples_per_s"] = opts.read_n / (time.perf_counter() - t0)
    return out


def check(job: MixJobConfig) -> dict[str, Any]:
    """Exact and near-duplicate source images; write `<out>/check.json` (and, with `check.drop`, the exclusions)."""
    roots, opts = list(job.roots), job.check
    items = dedup.items_from_dataset(open_dataset(roots))
    pairs = dedup.find_duplicates(items, opts.threshold)
    drop = dedup.exclusions(pairs)
    report = {**dedup.summarize(items, pairs), "threshold": opts.threshold,
              "pairs_list": [{"kind": p.kind, "a": p.a.group, "b": p.b.group, "distance": p.distance, "exact": p.exact}
                             for p in pairs],
              "drop": drop, "dropped": opts.drop}
    with atomic_open(Path(job.out) / "check.json", "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
    if opts.drop:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"source_group": list(drop), "reason": list(drop.values())})
        for root in roots:
            with atomic_open(Path(root) / EXCLUDED_FILE) as f:
                pq.write_table(table, f)
    return report


def preview(conf: PreviewConfig) -> Path:
    """Random samples per task (from the manifests, read by byte range) -> contact sheets + HTML;
    render-shard roots -> one sheet of random views, `renders.png` (encode/render_preview.py)."""
    from encode import render_preview
    from encode.manifest import manifest_files
    from encode.preview import preview_html

    by_kind: dict[str, list[str]] = {"tasks": [], "render": []}
    for root in conf.roots:
        if conf.kind == "tasks":
            by_kind["tasks"].append(root)
            continue
        files = manifest_files(root)
        if not files:
            raise render_preview.PreviewError(f"preview: no Parquet files under {root!r}; run `vistune render` "
                                              f"or `vistune encode` first")
        kind = render_preview.root_kind(files) if conf.kind == "auto" else conf.kind
        if kind == "render":
            by_kind["render"].extend(files)
        else:
            by_kind["tasks"].append(root)
    out = Path(conf.out)
    page = (preview_html(_preview_tasks(conf, by_kind["tasks"], out)) if by_kind["tasks"] else
            "<!doctype html><meta charset='utf-8'><title>vistune preview</title><style>body{font-family:sans-serif;"
            "background:#181818;color:#ddd}img{max-width:100%}</style><h1>vistune render views</h1>")
    if by_kind["render"]:
        views = render_preview.load_views(by_kind["render"], conf.views, conf.seed)
        page += render_preview.write_sheet(views, out, "renders.png", conf.cell)
    with atomic_open(out / "index.html", "w") as f:
        f.write(page)
    return out / "index.html"


def _preview_tasks(conf: PreviewConfig, roots: list[str], out: Path) -> dict[str, list]:
    """`per_task` random samples of every task under `roots` -> `<out>/<task>.png`; the samples by task."""
    from encode.preview import contact_sheet
    from encode.sample import from_sample
    from formats.shards import read_sample_at

    table = open_dataset(roots).to_table(columns=["task", "key", "tar_offset", "tar_size", "__filename"])
    rng = random.Random(conf.seed)
    rows_by_task: dict[str, list[int]] = {}
    for i, task in enumerate(table["task"].to_pylist()):
        rows_by_task.setdefault(task, []).append(i)
    by_task = {}
    files, offsets, sizes = table["__filename"].to_pylist(), table["tar_offset"].to_pylist(), table["tar_size"].to_pylist()
    for task, rows in rows_by_task.items():
        picked = sorted(rng.sample(rows, min(conf.per_task, len(rows))))
        by_task[task] = [from_sample(read_sample_at(files[i][: -len(".parquet")] + ".tar", offsets[i], sizes[i]))
                         for i in picked]
        with atomic_open(out / f"{task}.png") as f:
            contact_sheet(by_task[task]).save(f, format="PNG")
    return by_task


def describe(job: MixJobConfig, results: dict[str, Any]) -> str:
    """What `vistune mix` prints: each action's result (in ACTIONS order), then where check's report is."""
    text = {"resolve": _describe_resolve, "stats": _describe_stats, "check": _describe_check}
    lines = [text[action](results[action]) for action in ACTIONS if action in results]
    if "check" in results:
        lines.append(f"report: {job.out}/check.json")
    return "\n".join(lines)


def _describe_resolve(result: dict[str, Any]) -> str:
    width = max(len(s["name"]) for s in result["sources"])
    lines = [f"mixture {result['fingerprint']} ({result['split']}, seed {result['seed']}):",
             f"  {'source':<{width}}  weight  samples  shards"]
    lines += [f"  {s['name']:<{width}}  {s['weight']:6.3f}  {s['samples']:7d}  {s['shards']:6d}" for s in result["sources"]]
    return "\n".join(lines)


def _describe_stats(result: dict[str, Any]) -> str:
    width = max(len(k) for k in result["sources"])
    lines = [f"realized ratios over {result['n_per_worker']} samples x {result['world_size']} ranks x "
             f"{result['num_workers']} workers:", f"  {'source':<{width}}  weight  realized  diff"]
    lines += [f"  {k:<{width}}  {v['weight']:6.3f}  {v['realized']:8.3f}  {v['realized'] - v['weight']:+.3f}"
              for k, v in result["sources"].items()]
    lines.append("  by task (worker 0): " + ", ".join(f"{t} {r:.3f}" for t, r in result["tasks_worker0"].items()))
    if "read_samples_per_s" in result:
        lines.append(f"  read: {result['read_samples_per_s']:.0f} samples/s")
    return "\n".join(lines)


def _describe_check(result: dict[str, Any]) -> str:
    p = result["pairs"]
    return (f"mix check: {result['items']} source images ({result['train_items']} train, {result['eval_items']} eval); "
            f"duplicate pairs: train-train {p['train-train']}, train-eval {p['train-eval']} (contamination), "
            f"eval-eval {p['eval-eval']}; {len(result['drop'])} train groups "
            f"{'dropped' if result['dropped'] else 'would be dropped (check.drop=true)'}")
