"""`vistune encode`: raw render / annotate shards -> task shards with Parquet manifests, in parallel.

One input shard is one unit of work. It becomes one output shard per task it feeds,
`<out>/<task>/<input stem>.tar` + `.parquet` (the manifest), each written atomically, and then a
completion record `<out>/_done/<input stem>.json` (counts, skip reasons, losses). A rerun skips
inputs with a record, so it is idempotent and resumes after a crash; a re-encoded input rewrites
identical shards.

Input problems follow `on_error`: `skip` (default) counts and logs them and goes on, `raise`
stops the job with the shard and sample named. Either way nothing is lost silently: a truncated
input shard's unreadable samples are counted against the row count of its Parquet sidecar.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from encode.manifest import SCHEMA
from encode.sample import SampleError, to_files
from formats.shards import ShardError, ShardPaths, ShardWriter, ensure_output_dir, iter_samples, read_rows
from encode.tasks import EncodeSettings, TaskBuilder
from formats.atomic import atomic_open

log = logging.getLogger("vistune.encode")
ON_ERROR = ("skip", "raise")
DONE_DIR = "_done"


class InputError(ValueError):
    """A raw input shard (or sample) that cannot be encoded, under on_error=raise."""


@dataclass(frozen=True)
class EncodeJobConfig:
    inputs: tuple[str, ...]            # raw shard directories (render and/or annotate)
    out: str
    settings: EncodeSettings = field(default_factory=EncodeSettings)
    on_error: str = "skip"
    workers: int = 0                   # 0 = one per CPU Ray sees

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError("encode: `inputs` must name at least one raw shard directory")
        if self.on_error not in ON_ERROR:
            raise ValueError(f"on_error {self.on_error!r} not in {list(ON_ERROR)}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")

    def done_path(self, stem: str) -> Path:
        return Path(self.out) / DONE_DIR / f"{stem}.json"


def list_inputs(inputs: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Complete raw shards (tar with its Parquet sidecar) under the input dirs, and incomplete tars.

    Raises ValueError for a missing directory or two inputs with the same shard name.
    """
    complete, incomplete, seen = [], [], {}
    for root in inputs:
        path = Path(root)
        if not path.is_dir():
            raise ValueError(f"encode input {root!r} is not a directory")
        for tar in sorted(path.glob("*.tar")):
            if tar.stem in seen:
                raise ValueError(f"shard name {tar.stem!r} appears in both {seen[tar.stem]} and {root}; "
                                 f"give each raw source its own prefix")
            seen[tar.stem] = root
            (complete if tar.with_suffix(".parquet").exists() else incomplete).append(str(tar))
    return complete, incomplete


class EncodeWorker:
    """Holds a TaskBuilder (codec tables are built once per worker); encodes whole input shards."""

    def __init__(self, settings: dict, on_error: str) -> None:
        self.builder = TaskBuilder(EncodeSettings(**settings))
        self.on_error = on_error

    def encode_shard(self, out: str, tar: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        stem = Path(tar).stem
        done = Path(out) / DONE_DIR / f"{stem}.json"
        if done.exists():
            return {**json.loads(done.read_text()), "skipped": True}
        expected = len(read_rows(Path(tar).with_suffix(".parquet")))
        writers: dict[str, ShardWriter] = {}
        counts: Counter = Counter()
        skipped: Counter = Counter()
        read, error = 0, None
        try:
            try:
                for raw in iter_samples(tar):
                    read += 1
                    try:
                        built = self.builder.build(raw, Path(tar).name)
                    except SampleError as err:
                        if self.on_error == "raise":
                            raise InputError(f"{tar}: {err}") from err
                        log.warning("encode: skipping sample: %s", err)
                        skipped["all:corrupt_sample"] += 1
                        continue
                    skipped.update(built.skipped)
                    for sample, row in built.samples:
                        if sample.task not in writers:
                            paths = ShardPaths(Path(out) / sample.task / f"{stem}.tar",
                                               Path(out) / sample.task / f"{stem}.parquet")
                            paths.remove_stale_temps()
                            writers[sample.task] = ShardWriter(paths, schema=SCHEMA)
                        writers[sample.task].add(sample.key, to_files(sample, self.builder.settings.input_format), row)
                        counts[sample.task] += 1
            except ShardError as err:
                if self.on_error == "raise":
                    raise InputError(f"input shard {tar}: {err}") from err
                log.warning("encode: input shard %s is damaged; %d of %d samples lost: %s", tar, expected - read,
                            expected, err)
                error = str(err)
            for writer in writers.values():
                writer.commit()
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise
        record = {"input": tar, "samples_in": read, "expected_in": expected, "lost": max(expected - read, 0),
                  "error": error, "written": dict(counts), "skipped_reasons": dict(skipped),
                  "wall_s": time.perf_counter() - t0}
        with atomic_open(done, "w") as f:
            json.dump(record, f, sort_keys=True)
        return {**record, "skipped": False}


def run_encode(cfg: EncodeJobConfig, progress: bool = True) -> dict[str, Any]:
    """Encode every input shard without a completion record, on the current Ray session."""
    import ray

    from pipelines.work_pool import run_pool

    complete, incomplete = list_inputs(cfg.inputs)
    ensure_output_dir(cfg.out)  # an unwritable `out` fails here, not in every worker
    for tar in incomplete:
        log.warning("encode: %s has no Parquet sidecar (an unfinished raw shard); not encoded", tar)
    if cfg.on_error == "raise" and incomplete:
        raise InputError(f"unfinished raw shards (no Parquet sidecar): {incomplete[:3]}")
    todo = [t for t in complete if not cfg.done_path(Path(t).stem).exists()]
    summary: dict[str, Any] = {"inputs": len(complete), "incomplete_inputs": len(incomplete),
                               "skipped_inputs": len(complete) - len(todo), "encoded_inputs": 0, "samples_in": 0,
                               "lost": 0, "damaged_inputs": [], "written": Counter(), "skipped_reasons": Counter(),
                               "out": cfg.out}
    t0 = time.perf_counter()
    bar = tqdm(total=len(complete), initial=len(complete) - len(todo), unit="shard", desc="encode",
               disable=not progress)

    def on_result(tar: str, rec: dict) -> None:
        summary["encoded_inputs"] += 0 if rec["skipped"] else 1
        summary["samples_in"] += rec["samples_in"]
        summary["lost"] += rec["lost"]
        if rec["error"]:
            summary["damaged_inputs"].append(tar)
        summary["written"].update(rec["written"])
        summary["skipped_reasons"].update(rec["skipped_reasons"])
        bar.update(1)

    try:
        n = cfg.workers or max(int(ray.available_resources().get("CPU", 1)), 1)
        summary["workers"] = run_pool(EncodeWorker, (asdict(cfg.settings), cfg.on_error), "encode_shard", todo, n,
                                      on_result, call_args=(cfg.out,))
    finally:
        bar.close()
    summary["wall_s"] = time.perf_counter() - t0
    summary["written"] = dict(summary["written"])
    summary["skipped_reasons"] = dict(summary["skipped_reasons"])
    return summary


def config_from_dict(d: dict) -> EncodeJobConfig:
    fields_ = {k: v for k, v in d.items() if k != "ray"}
    inputs = fields_.pop("inputs", None)
    if isinstance(inputs, str):
        inputs = [inputs]
    settings = dict(fields_.pop("settings", {}) or {})
    if "tasks" in settings:
        settings["tasks"] = tuple(settings["tasks"])
    return EncodeJobConfig(inputs=tuple(inputs or ()), settings=EncodeSettings(**settings), **fields_)


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

