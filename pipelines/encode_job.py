"""`vistune encode`: raw render / annotate shards -> task shards with Parquet manifests, in parallel.

One input shard is one unit of work, one Ray task (encode/shard.py does the work and says what
is written, skipped and recorded). This module finds the input shards without a completion
record, runs them on an actor pool and sums their records.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import Any

from encode.shard import EncodeJobConfig, ShardEncoder, check_unfinished, list_inputs
from encode.tasks import EncodeSettings
from formats.config import from_dict
from formats.shards import ensure_output_dir
from pipelines.driver import Bar, Pool, drive


class EncodeWorker(ShardEncoder):
    """The Ray actor: a ShardEncoder built from plain settings (what crosses to the worker)."""

    def __init__(self, settings: dict, on_error: str) -> None:
        super().__init__(EncodeSettings(**settings), on_error)


def run_encode(cfg: EncodeJobConfig, progress: bool = True) -> dict[str, Any]:
    """Encode every input shard without a completion record, on the current Ray session."""
    complete, incomplete = list_inputs(cfg.inputs)
    ensure_output_dir(cfg.out)  # an unwritable `out` fails here, not in every worker
    check_unfinished(incomplete, cfg.on_error)
    todo = cfg.pending(complete)
    summary: dict[str, Any] = {"inputs": len(complete), "incomplete_inputs": len(incomplete),
                               "skipped_inputs": len(complete) - len(todo), "encoded_inputs": 0, "samples_in": 0,
                               "lost": 0, "damaged_inputs": [], "written": Counter(), "skipped_reasons": Counter(),
                               "out": cfg.out}

    def fold(tar: str, rec: dict) -> int:
        summary["encoded_inputs"] += 0 if rec["skipped"] else 1
        summary["samples_in"] += rec["samples_in"]
        summary["lost"] += rec["lost"]
        if rec["error"]:
            summary["damaged_inputs"].append(tar)
        summary["written"].update(rec["written"])
        summary["skipped_reasons"].update(rec["skipped_reasons"])
        return 1

    pool = Pool(EncodeWorker, (asdict(cfg.settings), cfg.on_error), "encode_shard", cfg.workers, call_args=(cfg.out,))
    bar = Bar("encode", "shard", len(complete), len(complete) - len(todo), progress)
    summary["workers"], summary["wall_s"] = drive(pool, todo, bar, fold)
    summary["written"] = dict(summary["written"])
    summary["skipped_reasons"] = dict(summary["skipped_reasons"])
    return summary


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
    return "\n".join(lines)
