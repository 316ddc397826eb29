"""One raw input shard -> task shards with Parquet manifests, and a completion record.

An input shard is one unit of work. It becomes one output shard per task it feeds,
`<out>/<task>/<input stem>.tar` + `.parquet` (the manifest), each written atomically, and then a
completion record `<out>/_done/<input stem>.json` (counts, skip reasons, losses). A rerun skips
inputs with a record, so it is idempotent and resumes after a crash; a re-encoded input rewrites
identical shards.

Input problems follow `on_error`: `skip` (default) counts and logs them and goes on, `raise`
stops the job with the shard and sample named. Either way nothing is lost silently: a truncated
input shard's unreadable samples are counted against the row count of its Parquet sidecar.
No Ray here (pipelines/encode_job.py runs `ShardEncoder`s on an actor pool).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from encode.manifest import SCHEMA
from encode.sample import SampleError, TaskSample, to_files
from encode.tasks import EncodeSettings, TaskBuilder
from formats.atomic import atomic_open
from formats.shards import ShardError, ShardPaths, ShardWriter, iter_samples, read_rows

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
        return done_path(self.out, stem)

    def pending(self, tars: list[str]) -> list[str]:
        """The input shards of `tars` that have no completion record yet."""
        return [t for t in tars if not self.done_path(Path(t).stem).exists()]


def done_path(out: str, stem: str) -> Path:
    """The completion record of input shard `stem`."""
    return Path(out) / DONE_DIR / f"{stem}.json"


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


def check_unfinished(incomplete: list[str], on_error: str) -> None:
    """Apply `on_error` to raw shards without a Parquet sidecar: log them, and raise InputError under `raise`."""
    for tar in incomplete:
        log.warning("encode: %s has no Parquet sidecar (an unfinished raw shard); not encoded", tar)
    if on_error == "raise" and incomplete:
        raise InputError(f"unfinished raw shards (no Parquet sidecar): {incomplete[:3]}")


class TaskWriters:
    """The output shards of one input shard: a ShardWriter per task, opened when the task's first sample comes."""

    def __init__(self, out: str, stem: str) -> None:
        self.out, self.stem = Path(out), stem
        self.writers: dict[str, ShardWriter] = {}
        self.counts: Counter = Counter()

    def add(self, sample: TaskSample, files: dict[str, bytes], row: dict[str, Any]) -> None:
        if sample.task not in self.writers:
            task_dir = self.out / sample.task
            paths = ShardPaths(task_dir / f"{self.stem}.tar", task_dir / f"{self.stem}.parquet")
            paths.remove_stale_temps()
            self.writers[sample.task] = ShardWriter(paths, schema=SCHEMA)
        self.writers[sample.task].add(sample.key, files, row)
        self.counts[sample.task] += 1

    def commit(self) -> None:
        for writer in self.writers.values():
            writer.commit()

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()


class ShardEncoder:
    """Holds a TaskBuilder (codec tables are built once per worker); encodes whole input shards."""

    def __init__(self, settings: EncodeSettings, on_error: str = "skip") -> None:
        self.builder = TaskBuilder(settings)
        self.on_error = on_error

    def encode_shard(self, out: str, tar: str) -> dict[str, Any]:
        """Encode input shard `tar` into `out` (or skip it if it has a record); returns its completion record."""
        t0 = time.perf_counter()
        done = done_path(out, Path(tar).stem)
        if done.exists():
            return {**json.loads(done.read_text()), "skipped": True}
        expected = len(read_rows(Path(tar).with_suffix(".parquet")))
        writers, skipped = TaskWriters(out, Path(tar).stem), Counter()
        try:
            read, error = self._encode_into(tar, writers, skipped, expected)
            writers.commit()
        except BaseException:
            writers.abort()  # nothing partial under a final name
            raise
        record = {"input": tar, "samples_in": read, "expected_in": expected, "lost": max(expected - read, 0),
                  "error": error, "written": dict(writers.counts), "skipped_reasons": dict(skipped),
                  "wall_s": time.perf_counter() - t0}
        with atomic_open(done, "w") as f:
            json.dump(record, f, sort_keys=True)
        return {**record, "skipped": False}

    def _encode_into(self, tar: str, writers: TaskWriters, skipped: Counter, expected: int) -> tuple[int, str | None]:
        """Encode every readable sample of `tar`; (samples read, the damage message of a damaged shard or None)."""
        read = 0
        try:
            for raw in iter_samples(tar):
                read += 1
                self._encode_sample(raw, tar, writers, skipped)
        except ShardError as err:
            if self.on_error == "raise":
                raise InputError(f"input shard {tar}: {err}") from err
            log.warning("encode: input shard %s is damaged; %d of %d samples lost: %s", tar, expected - read,
                        expected, err)
            return read, str(err)
        return read, None

    def _encode_sample(self, raw: dict, tar: str, writers: TaskWriters, skipped: Counter) -> None:
        try:
            built = self.builder.build(raw, Path(tar).name)
        except SampleError as err:
            if self.on_error == "raise":
                raise InputError(f"{tar}: {err}") from err
            log.warning("encode: skipping sample: %s", err)
            skipped["all:corrupt_sample"] += 1
            return
        skipped.update(built.skipped)
        for sample, row in built.samples:
            writers.add(sample, to_files(sample, self.builder.settings.input_format), row)
