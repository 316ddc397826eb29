"""One raw input shard -> task shards with Parquet manifests, and a completion record.

An input shard is one unit of work. It becomes one output shard per task it feeds,
`<out>/<task>/<input stem>.tar` + `.parquet` (the manifest), each written atomically, and then a
completion record `<out>/_done/<input stem>.json` (counts, skip reasons, losses, skipped sample
keys, impossible depths, and the input's size and mtime). A rerun skips inputs with a record, so
it is idempotent and resumes after a crash; a re-encoded input rewrites identical shards. A
record with problems (lost or skipped samples, a damaged sidecar, impossible depths) stands only
while its input is unchanged: a repaired input is encoded again, and until then every rerun
reports the problems again.

Input problems follow `on_error`: `skip` (default) counts and logs them and goes on, `raise`
stops the job with the shard and sample named. Either way nothing is lost silently: a truncated
input shard's unreadable samples are counted against the row count of its Parquet sidecar, and
an input whose sidecar is unreadable has its tar encoded all the same and is reported damaged.
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

import pyarrow as pa

from encode.manifest import SCHEMA
from encode.sample import SampleError, TaskSample, to_files
from encode.tasks import EncodeSettings, TaskBuilder
from formats.atomic import atomic_open
from formats.shards import ShardError, ShardPaths, ShardWriter, iter_samples, read_rows

log = logging.getLogger("vistune.encode")
ON_ERROR = ("skip", "raise")
DONE_DIR = "_done"
MAX_LISTED = 1000  # skipped / impossible-depth samples listed by key per input shard (all are counted)


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
        """The input shards of `tars` without a standing completion record (see `standing_record`)."""
        return [t for t in tars if standing_record(self.out, t) is None]


def done_path(out: str, stem: str) -> Path:
    """The completion record of input shard `stem`."""
    return Path(out) / DONE_DIR / f"{stem}.json"


def input_lock(out: str, tar: str) -> ShardPaths:
    """The lock an encoder of input `tar` holds from start to completion record
    (`<out>/_done/.<stem>.lock`), as ShardPaths of the record so `clean_up_after_dead_writers`
    also sweeps the record's temp files that a killed encoder left."""
    done = done_path(out, Path(tar).stem)
    return ShardPaths(done.with_suffix(".tar"), done)


def input_fingerprint(tar: str) -> dict[str, list[int] | None]:
    """Size and mtime (ns) of an input's tar and Parquet sidecar: a repaired input changes them."""
    def stat(path: Path) -> list[int] | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return [st.st_size, st.st_mtime_ns]
    return {"tar": stat(Path(tar)), "parquet": stat(Path(tar).with_suffix(".parquet"))}


def has_problems(record: dict[str, Any]) -> bool:
    """Whether a completion record holds outstanding problems: lost or skipped samples, a damaged
    tar or sidecar, impossible depths."""
    return bool(record.get("lost") or record.get("error") or record.get("sidecar_error")
                or record.get("skipped_keys") or record.get("impossible_depth"))


def read_record(path: Path) -> dict[str, Any] | None:
    """A completion record, or None when there is none (or it is unreadable: the input is redone)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        log.warning("encode: completion record %s is unreadable; its input is encoded again", path)
        return None


def standing_record(out: str, tar: str) -> dict[str, Any] | None:
    """Input `tar`'s completion record, or None when it must be encoded (again).

    A clean record stands for good (raw shards are written once). A record with problems stands
    only while the input is the one it was made from: a repaired input is encoded again.
    """
    record = read_record(done_path(out, Path(tar).stem))
    if record is None:
        return None
    if has_problems(record) and record.get("input_fingerprint") != input_fingerprint(tar):
        log.info("encode: %s changed since it was encoded with problems; encoding it again", tar)
        return None
    return record


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
            self.writers[sample.task] = ShardWriter(self.paths(sample.task), schema=SCHEMA)
        self.writers[sample.task].add(sample.key, files, row)
        self.counts[sample.task] += 1

    def paths(self, task: str) -> ShardPaths:
        return ShardPaths(self.out / task / f"{self.stem}.tar", self.out / task / f"{self.stem}.parquet")

    def commit(self, earlier: dict[str, int] | None = None) -> None:
        """Publish every task shard; remove this input's shards of tasks in `earlier` (the written
        counts of an earlier encode of it) that it no longer feeds."""
        for writer in self.writers.values():
            writer.commit()
        for task in sorted(set(earlier or {}) - set(self.writers)):
            for path in (self.paths(task).parquet, self.paths(task).tar):  # Parquet first: no manifest without its tar
                path.unlink(missing_ok=True)

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()


@dataclass
class Found:
    """What one input shard's samples held besides task samples: skip reasons (per task), the keys
    of samples skipped whole (corrupt), and impossible depth counts per sample key."""

    skipped: Counter = field(default_factory=Counter)
    skipped_keys: list[dict[str, str]] = field(default_factory=list)
    impossible_depth: dict[str, dict[str, int]] = field(default_factory=dict)

    def skip(self, key: str, reason: str) -> None:
        self.skipped["all:corrupt_sample"] += 1
        if len(self.skipped_keys) < MAX_LISTED:
            self.skipped_keys.append({"key": key, "reason": reason})

    def to_dict(self) -> dict[str, Any]:
        listed = dict(list(self.impossible_depth.items())[:MAX_LISTED])
        return {"skipped_reasons": dict(self.skipped), "skipped_keys": self.skipped_keys,
                "impossible_depth": listed, "impossible_depth_samples": len(self.impossible_depth)}


class ShardEncoder:
    """Holds a TaskBuilder (codec tables are built once per worker); encodes whole input shards."""

    def __init__(self, settings: EncodeSettings, on_error: str = "skip") -> None:
        self.builder = TaskBuilder(settings)
        self.on_error = on_error

    def encode_shard(self, out: str, tar: str) -> dict[str, Any]:
        """Encode input shard `tar` into `out` (or skip it if its record stands); returns its completion record.

        Holds the input's lock (`input_lock`) throughout: a rerun that meets a straggler of a killed
        run encoding the same input waits for it, then finds its record.
        """
        with input_lock(out, tar).lock():
            record = standing_record(out, tar)
            if record is not None:
                return {**record, "skipped": True}
            return {**self._encode(out, tar), "skipped": False}

    def _encode(self, out: str, tar: str) -> dict[str, Any]:
        """Encode `tar`'s task shards, then write its completion record; returns the record."""
        t0 = time.perf_counter()
        done = done_path(out, Path(tar).stem)
        earlier = (read_record(done) or {}).get("written")
        fingerprint = input_fingerprint(tar)  # before reading: a change while encoding shows at the next run
        expected, sidecar_error = self._expected(tar)
        writers, found = TaskWriters(out, Path(tar).stem), Found()
        try:
            read, error = self._encode_into(tar, writers, found, expected)
            writers.commit(earlier)
        except BaseException:
            writers.abort()  # nothing partial under a final name
            raise
        lost = max(expected - read, 0) if expected is not None else 0
        record = {"input": tar, "input_fingerprint": fingerprint, "samples_in": read, "expected_in": expected,
                  "lost": lost, "error": error, "sidecar_error": sidecar_error, "written": dict(writers.counts),
                  **found.to_dict(), "wall_s": time.perf_counter() - t0}
        with atomic_open(done, "w") as f:
            json.dump(record, f, sort_keys=True)
        return record

    def _expected(self, tar: str) -> tuple[int | None, str | None]:
        """(row count of the input's Parquet sidecar, None) or, for an unreadable sidecar under
        `skip`, (None, what is wrong with it); raises InputError under `raise`."""
        sidecar = Path(tar).with_suffix(".parquet")
        try:
            return len(read_rows(sidecar)), None
        except (pa.ArrowException, OSError) as err:  # pyarrow: ArrowInvalid for a damaged file
            reason = str(err).replace(f"Could not open Parquet input source '{sidecar}': ", "")  # no path twice
            message = f"raw shard sidecar {sidecar} is not a readable Parquet file ({reason})"
            if self.on_error == "raise":
                raise InputError(message) from err
            log.warning("encode: %s; its tar is encoded, but how many samples it should hold is unknown", message)
            return None, message

    def _encode_into(self, tar: str, writers: TaskWriters, found: Found,
                     expected: int | None) -> tuple[int, str | None]:
        """Encode every readable sample of `tar`; (samples read, the damage message of a damaged shard or None)."""
        read = 0
        try:
            for raw in iter_samples(tar):
                read += 1
                self._encode_sample(raw, tar, writers, found)
        except ShardError as err:
            if self.on_error == "raise":
                raise InputError(f"input shard {tar}: {err}") from err
            lost = f"{expected - read} of {expected}" if expected is not None else "an unknown number of"
            log.warning("encode: input shard %s is damaged; %s samples lost: %s", tar, lost, err)
            return read, str(err)
        return read, None

    def _encode_sample(self, raw: dict, tar: str, writers: TaskWriters, found: Found) -> None:
        try:
            built = self.builder.build(raw, Path(tar).name)
        except SampleError as err:
            if self.on_error == "raise":
                raise InputError(f"input shard {tar}: {err}") from err
            log.warning("encode: input shard %s: skipping sample: %s", tar, err)
            found.skip(raw.get("__key__", "?"), str(err))
            return
        found.skipped.update(built.skipped)
        if built.impossible_depth:
            key = raw.get("__key__", "?")
            log.warning("encode: input shard %s: sample %r has impossible depth pixels %s (encoded as invalid)", tar,
                        key, built.impossible_depth)
            found.impossible_depth[key] = built.impossible_depth
        for sample, row in built.samples:
            writers.add(sample, to_files(sample, self.builder.settings.input_format), row)
