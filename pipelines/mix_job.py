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
- `preview`: contact sheets of random samples per task (PNG + HTML).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from encode import dedup
from encode.manifest import open_dataset
from encode.mixture import EXCLUDED_FILE, MixtureConfig, MixtureStream, build_index, realized_ratios
from formats.atomic import atomic_open

ACTIONS = ("resolve", "stats", "check")


def mixture_config(cfg: dict[str, Any]) -> MixtureConfig:
    """The `mixture` block plus `roots` of a stage config -> MixtureConfig."""
    block = dict(cfg["mixture"])
    block.setdefault("roots", cfg.get("roots"))
    return MixtureConfig.from_dict(block)


def resolve(cfg: dict[str, Any]) -> dict[str, Any]:
    mix = mixture_config(cfg)
    index = build_index(mix)
    stream = MixtureStream(mix, index=index)
    by_name = {s.name: s for s in mix.sources}
    sources = [{"name": ix.name, "weight": float(w), "filter": by_name[ix.name].filter, "samples": ix.n,
                "shards": len(ix.shard_paths)} for w, ix in zip(stream.weights, index)]
    record = {"roots": list(mix.roots), "seed": mix.seed, "split": mix.split, "window": mix.window, "block": mix.block,
              "fingerprint": stream.fingerprint, "sources": sources}
    with atomic_open(Path(cfg["out"]) / "mixture.json", "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    return record


def stats(cfg: dict[str, Any]) -> dict[str, Any]:
    mix, opts = mixture_config(cfg), cfg.get("stats", {})
    n, world, workers = int(opts.get("n", 10_000)), int(opts.get("world_size", 1)), int(opts.get("num_workers", 1))
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
    if opts.get("read"):
        t0, it = time.perf_counter(), iter(MixtureStream(mix, index=index))
        m = int(opts.get("read_n", 2000))
        for _ in range(m):
            next(it)
        out["read_samples_per_s"] = m / (time.perf_counter() - t0)
    return out


def check(cfg: dict[str, Any]) -> dict[str, Any]:
    roots = cfg.get("roots")
    roots = [roots] if isinstance(roots, str) else list(roots)
    opts = cfg.get("check", {})
    items = dedup.items_from_dataset(open_dataset(roots))
    pairs = dedup.find_duplicates(items, int(opts.get("threshold", 6)))
    drop = dedup.exclusions(pairs)
    report = {**dedup.summarize(items, pairs), "threshold": int(opts.get("threshold", 6)),
              "pairs_list": [{"kind": p.kind, "a": p.a.group, "b": p.b.group, "distance": p.distance, "exact": p.exact}
                             for p in pairs],
              "drop": drop, "dropped": bool(opts.get("drop", False))}
    with atomic_open(Path(cfg["out"]) / "check.json", "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
    if opts.get("drop"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"source_group": list(drop), "reason": list(drop.values())})
        for root in roots:
            with atomic_open(Path(root) / EXCLUDED_FILE) as f:
                pq.write_table(table, f)
    return report


def preview(cfg: dict[str, Any]) -> Path:
    """Random samples per task (from the manifests, read by byte range) -> contact sheets + HTML."""
    from encode.preview import contact_sheet, preview_html
    from encode.sample import from_sample
    from formats.shards import read_sample_at

    roots = cfg.get("roots")
    roots = [roots] if isinstance(roots, str) else list(roots)
    table = open_dataset(roots).to_table(columns=["task", "key", "tar_offset", "tar_size", "__filename"])
    rng = random.Random(int(cfg.get("seed", 0)))
    rows_by_task: dict[str, list[int]] = {}
    for i, task in enumerate(table["task"].to_pylist()):
        rows_by_task.setdefault(task, []).append(i)
    out = Path(cfg["out"])
    by_task = {}
    files, offsets, sizes = table["__filename"].to_pylist(), table["tar_offset"].to_pylist(), table["tar_size"].to_pylist()
    for task, rows in rows_by_task.items():
        picked = sorted(rng.sample(rows, min(int(cfg.get("per_task", 6)), len(rows))))
        by_task[task] = [from_sample(read_sample_at(files[i][: -len(".parquet")] + ".tar", offsets[i], sizes[i]))
                         for i in picked]
        with atomic_open(out / f"{task}.png") as f:
            contact_sheet(by_task[task]).save(f, format="PNG")
    with atomic_open(out / "index.html", "w") as f:
        f.write(preview_html(by_task))
    return out / "index.html"


def describe(action: str, result: Any) -> str:
    if action == "resolve":
        width = max(len(s["name"]) for s in result["sources"])
        lines = [f"mixture {result['fingerprint']} ({result['split']}, seed {result['seed']}):",
                 f"  {'source':<{width}}  weight  samples  shards"]
        lines += [f"  {s['name']:<{width}}  {s['weight']:6.3f}  {s['samples']:7d}  {s['shards']:6d}" for s in result["sources"]]
        return "\n".join(lines)
    if action == "stats":
        width = max(len(k) for k in result["sources"])
        lines = [f"realized ratios over {result['n_per_worker']} samples x {result['world_size']} ranks x "
                 f"{result['num_workers']} workers:", f"  {'source':<{width}}  weight  realized  diff"]
        lines += [f"  {k:<{width}}  {v['weight']:6.3f}  {v['realized']:8.3f}  {v['realized'] - v['weight']:+.3f}"
                  for k, v in result["sources"].items()]
        lines.append("  by task (worker 0): " + ", ".join(f"{t} {r:.3f}" for t, r in result["tasks_worker0"].items()))
        if "read_samples_per_s" in result:
            lines.append(f"  read: {result['read_samples_per_s']:.0f} samples/s")
        return "\n".join(lines)
    p = result["pairs"]
    return (f"mix check: {result['items']} source images ({result['train_items']} train, {result['eval_items']} eval); "
            f"duplicate pairs: train-train {p['train-train']}, train-eval {p['train-eval']} (contamination), "
            f"eval-eval {p['eval-eval']}; {len(result['drop'])} train groups "
            f"{'dropped' if result['dropped'] else 'would be dropped (check.drop=true)'}")
