"""`vistune encode`: raw render / annotate shards -> task shards with Parquet manifests, in parallel.

One input shard is one unit of work, one Ray task (encode/shard.py does the work and says what
is written, skipped and recorded). This module finds the input shards without a standing
completion record, runs them on an actor pool and sums their records, with the problems that
the standing records of earlier runs still report.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from encode.shard import (DONE_DIR, EncodeJobConfig, ShardEncoder, TaskWriters, check_unfinished, has_problems,
                          input_lock, list_inputs, standing_record)
from encode.tasks import EncodeSettings
from formats.config import from_dict
from formats.shards import ShardPaths, ensure_output_dir
from pipelines.driver import Bar, Pool, clean_up_after_cancel, drive

MAX_SHOWN = 10  # problem samples named in the printed summary (all are in the summary dict and the records)


class EncodeWorker(ShardEncoder):
    """The Ray actor: a ShardEncoder built from plain settings (what crosses to the worker)."""

    def __init__(self, settings: dict, on_error: str) -> None:
        super().__init__(EncodeSettings(**settings), on_error)


def run_encode(cfg: EncodeJobConfig, progress: bool = True) -> dict[str, Any]:
    """Encode every input shard without a standing completion record, on the current Ray session.

    The summary counts what this run wrote, and the problems of every input: those found now and
    those the standing records of earlier runs hold (until their input is repaired and re-encoded).
    """
    complete, incomplete = list_inputs(cfg.inputs)
    ensure_output_dir(cfg.out)  # an unwritable `out` fails here, not in every worker
    check_unfinished(incomplete, cfg.on_error)
    standing = {t: standing_record(cfg.out, t) for t in complete}
    todo = [t for t in complete if standing[t] is None]
    summary: dict[str, Any] = {"inputs": len(complete), "incomplete_inputs": len(incomplete),
                               "skipped_inputs": len(complete) - len(todo), "encoded_inputs": 0, "samples_in": 0,
                               "lost": 0, "damaged_inputs": [], "damaged_sidecars": [], "skipped_samples": [],
                               "impossible_depth": {}, "earlier_problem_inputs": [], "written": Counter(),
                               "skipped_reasons": Counter(), "out": cfg.out}
    for tar, rec in standing.items():
        if rec is not None and has_problems(rec):
            add_problems(summary, tar, rec)
            summary["earlier_problem_inputs"].append(tar)

    def fold(tar: str, rec: dict) -> int:
        summary["encoded_inputs"] += 0 if rec["skipped"] else 1
        summary["samples_in"] += rec["samples_in"]
        summary["written"].update(rec["written"])
        summary["skipped_reasons"].update(rec["skipped_reasons"])
        add_problems(summary, tar, rec)
        return 1

    pool = Pool(EncodeWorker, (asdict(cfg.settings), cfg.on_error), "encode_shard", cfg.workers, call_args=(cfg.out,))
    bar = Bar("encode", "shard", len(complete), len(complete) - len(todo), progress)
    try:
        summary["workers"], summary["wall_s"] = drive(pool, todo, bar, fold)
    except BaseException:  # cancelled (Ctrl-C, SIGTERM) or failed: what the killed workers left goes too
        clean_up_after_cancel(output_shards(cfg.out, todo))
        raise
    summary["written"] = dict(summary["written"])
    summary["skipped_reasons"] = dict(summary["skipped_reasons"])
    return summary


def output_shards(out: str, tars: list[str]) -> list[ShardPaths]:
    """What encoding `tars` may have begun under `out`: each input's lock and completion record
    first (its encoder holds that lock throughout), then its shard in every task directory."""
    tasks = [d.name for d in Path(out).iterdir() if d.is_dir() and d.name != DONE_DIR]
    return [input_lock(out, t) for t in tars] + [TaskWriters(out, Path(t).stem).paths(task)
                                                 for t in tars for task in tasks]


def add_problems(summary: dict[str, Any], tar: str, rec: dict) -> None:
    """Add one input's losses, damage, skipped sample keys and impossible depths to the summary."""
    summary["lost"] += rec["lost"]
    if rec.get("error") or rec.get("sidecar_error"):
        summary["damaged_inputs"].append(tar)
    if rec.get("sidecar_error"):
        summary["damaged_sidecars"].append(rec["sidecar_error"])
    shard = Path(tar).name
    summary["skipped_samples"] += [f"{shard}:{k['key']} ({k['reason']})" for k in rec.get("skipped_keys", [])]
    summary["impossible_depth"].update({f"{shard}:{key}": counts
                                        for key, counts in rec.get("impossible_depth", {}).items()})


def config_from_dict(d: dict) -> EncodeJobConfig:
    """Hydra config (as a plain dict) -> EncodeJobConfig; raises ConfigError naming a bad key or value."""
    return from_dict(EncodeJobConfig, {k: v for k, v in d.items() if k != "ray"}, "encode")


def describe(summary: dict) -> str:
    written = ", ".join(f"{t} {n}" for t, n in sorted(summary["written"].items())) or "nothing new"
    lines = [f"encode: {summary['encoded_inputs']} input shards encoded, {summary['skipped_inputs']} already done, "
             f"{summary['wall_s']:.1f} s -> {summary['out']}", f"  samples written: {written}"]
    if summary["skipped_reasons"]:
        lines.append("  skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["skipped_reasons"].items())))
    if summary["lost"] or summary["incomplete_inputs"]:
        lines.append(f"  LOST: {summary['lost']} samples in damaged inputs {summary['damaged_inputs']}; "
                     f"{summary['incomplete_inputs']} unfinished input shards not encoded")
    lines += [f"  DAMAGED: {message}; its tar was encoded" for message in summary["damaged_sidecars"]]
    if summary["skipped_samples"]:
        lines.append(f"  SKIPPED {len(summary['skipped_samples'])} corrupt samples: "
                     + "; ".join(summary["skipped_samples"][:MAX_SHOWN]) + _more(summary["skipped_samples"]))
    if summary["impossible_depth"]:
        shown = [f"{k} ({', '.join(f'{kind} {n} px' for kind, n in c.items())})"
                 for k, c in list(summary["impossible_depth"].items())]
        lines.append(f"  IMPOSSIBLE DEPTH (negative, zero or NaN inside an object; encoded as invalid) in "
                     f"{len(shown)} samples: " + "; ".join(shown[:MAX_SHOWN]) + _more(shown))
    if summary["earlier_problem_inputs"]:
        lines.append(f"  {len(summary['earlier_problem_inputs'])} input shards keep the problems above from an "
                     f"earlier run: repair them and rerun to encode them again")
    return "\n".join(lines)


def _more(items: list) -> str:
    return f"; ... {len(items) - MAX_SHOWN} more (see {DONE_DIR}/*.json)" if len(items) > MAX_SHOWN else ""
