"""Webdataset shards with Parquet sidecars: atomic writes, safe reads.

A shard is `<prefix>-<index:06d>.tar` plus `<prefix>-<index:06d>.parquet` (one row per
sample). `ShardWriter` writes both under temp names and renames the tar first and the Parquet
last, so a shard is complete exactly when its Parquet file exists: a rerun skips complete
shards and redoes anything else. Members are `<key>.<ext>` (webdataset's convention: the key
has no dots; the extension may, e.g. `rgb.png`).

One writer per shard at a time: a writer holds the shard's lock (`ShardPaths.lock`, an `flock`ed
`.<prefix>-<index:06d>.lock` beside it) from its first temp file to its last rename. A rerun that
starts while a worker of a killed run still writes the same shard waits for it, then finds the
shard complete, instead of racing it over the same names.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import re
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from formats.atomic import temp_file

_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")
_EXT = re.compile(r"^[A-Za-z0-9_\-.]+$")


class ShardError(ValueError):
    """A shard that is truncated, corrupt, or holds unsafe member names."""


@dataclass(frozen=True)
class ShardPaths:
    tar: Path
    parquet: Path

    @classmethod
    def of(cls, out_dir: str | os.PathLike, prefix: str, index: int) -> "ShardPaths":
        base = Path(out_dir) / f"{prefix}-{index:06d}"
        return cls(base.with_suffix(".tar"), base.with_suffix(".parquet"))

    def complete(self) -> bool:
        return self.parquet.exists() and self.tar.exists()

    @contextlib.contextmanager
    def lock(self, wait: bool = True) -> Iterator[None]:
        """Hold this shard's writer lock for the block (waits while another process holds it; with
        `wait=False` raises BlockingIOError instead).

        Re-entrant within a process. The kernel drops the lock when its holder dies, so a killed
        writer never blocks the shard; the lock file is removed when the last holder leaves.
        """
        lock_path = self.tar.with_name(f".{self.tar.stem}.lock")
        if lock_path in _HELD:
            yield
            return
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = _acquire(lock_path, wait)
        _HELD.add(lock_path)
        try:
            yield
        finally:
            _HELD.discard(lock_path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock_path)  # before unlocking: a waiter then sees a stale inode and retries
            os.close(fd)

    def clean_up_after_dead_writers(self, wait_s: float = 0.0) -> int:
        """Remove the temp and lock files a killed writer left, unless a live writer holds the shard
        (e.g. after a cancelled job). A writer still dying (a worker being killed) is waited for up
        to `wait_s` seconds. Returns the temp files removed."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                with self.lock(wait=False):
                    return self.remove_stale_temps()
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return 0
                time.sleep(0.05)

    def remove_stale_temps(self) -> int:
        """Delete temp files an earlier, killed writer of this shard left behind: those of the tar, the
        Parquet file and the files a stage writes beside them under the lock (annotate's
        `<stem>.stats.json`), all `.<stem>.*.tmp`. Returns the count."""
        stale = list(self.tar.parent.glob(f".{self.tar.stem}.*.tmp"))
        for p in stale:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        return len(stale)


_HELD: set[Path] = set()  # shard locks this process holds


def _acquire(lock_path: Path, wait: bool = True) -> int:
    """An fd holding an exclusive flock on `lock_path`, the file that is at that path now.

    A holder removes the file before it unlocks, so a lock won on a file that is no longer at
    `lock_path` is stale: retry on the new file."""
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_ino == os.stat(lock_path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def ensure_output_dir(path: str | os.PathLike, key: str = "out") -> Path:
    """Create the output directory `path` if needed and check that files can be created in it.

    Call before any work starts, so that a typo'd or unwritable `out` fails at once and in one
    line instead of inside every worker. Raises ValueError naming `key` and the reason.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", suffix=".tmp", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"{key}={str(path)!r} is not a writable directory ({err.strerror}: {err.filename})") from err
    return path


class ShardWriter:
    """Collect samples in a temp tar; `commit()` publishes tar + Parquet atomically.

    Use as a context manager: leaving the block with an exception removes the temp files. The
    writer holds the shard's lock (`ShardPaths.lock`) from construction to commit or abort, and
    removes temp files that dead writers of the shard left.
    """

    def __init__(self, paths: ShardPaths, schema: pa.Schema | None = None) -> None:
        self.paths = paths
        self.schema = schema  # fixed Parquet schema (manifests); None: inferred from the rows
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(paths.lock())
        try:
            paths.remove_stale_temps()  # under the lock: no live writer of this shard has temp files
            fd, self._tmp_tar = temp_file(paths.tar)
        except BaseException:
            self._lock.close()
            raise
        self._file = os.fdopen(fd, "wb")
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT)
        self._rows: list[dict[str, Any]] = []
        self._keys: set[str] = set()

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def add(self, key: str, files: dict[str, bytes], row: dict[str, Any] | None = None) -> None:
        """Add one sample: `files` maps extension -> bytes; `row` goes to the Parquet sidecar.

        The row also records where the sample's members lie in the tar (`tar_offset`, `tar_size`:
        headers included), so readers can fetch one sample without scanning the shard.
        """
        if not _KEY.match(key):
            raise ValueError(f"sample key {key!r} must match {_KEY.pattern} (no dots, no slashes)")
        if key in self._keys:
            raise ValueError(f"duplicate sample key {key!r} in shard {self.paths.tar.name}")
        self._keys.add(key)
        start = self._tar.offset
        for ext, data in files.items():
            if not _EXT.match(ext):
                raise ValueError(f"extension {ext!r} of sample {key!r} must match {_EXT.pattern}")
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            info.mtime = 0  # reproducible bytes: same samples -> same shard
            info.mode = 0o644
            self._tar.addfile(info, io.BytesIO(data))
        self._rows.append({"key": key, "shard": self.paths.tar.name, "tar_offset": start,
                           "tar_size": self._tar.offset - start, **(row or {})})

    def commit(self) -> int:
        """Finish the tar, write the Parquet sidecar, rename both (Parquet last). Returns #samples.

        On any error (a full disk shows up at a write, the fsync or a rename) nothing new stays under
        a final name: the temp files go, and so does a tar already renamed whose Parquet rename failed
        (readers that glob `*.tar` would read a shard without its manifest rows), unless the shard's
        earlier Parquet is there (a rewrite of a complete shard keeps a complete pair).
        """
        tmp_pq, published = None, False
        try:
            self._tar.close()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            fd, tmp_pq = temp_file(self.paths.parquet)
            os.close(fd)
            pq.write_table(pa.Table.from_pylist(self._rows, schema=self.schema), tmp_pq)
            os.replace(self._tmp_tar, self.paths.tar)
            published = True
            os.replace(tmp_pq, self.paths.parquet)
        except BaseException:
            orphan = published and not self.paths.parquet.exists()  # a rewrite keeps the old, complete pair
            for path in [p for p in (tmp_pq, self.paths.tar if orphan else None) if p]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            self.abort()
            raise
        self._lock.close()
        return len(self._rows)

    def abort(self) -> None:
        """Drop the temp files and release the shard's lock (idempotent)."""
        with contextlib.suppress(Exception):
            self._tar.close()
        with contextlib.suppress(Exception):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp_tar)
        self._lock.close()


def check_member_name(name: str) -> None:
    """Reject absolute paths, `..` components and directories in tar member names."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in Path(name).parts or "/" in name:
        raise ShardError(f"unsafe tar member name {name!r}: absolute paths, '..' and directories are rejected")


def split_member(name: str) -> tuple[str, str]:
    """'key.rgb.png' -> ('key', 'rgb.png')."""
    key, dot, ext = name.partition(".")
    if not dot or not key:
        raise ShardError(f"tar member {name!r} is not <key>.<ext>")
    return key, ext


def _members(tar: tarfile.TarFile, where: str) -> Iterator[tuple[str, str, bytes]]:
    """(key, ext, payload) of every member, each name checked once here: safe, a regular file, `<key>.<ext>`."""
    for member in tar:
        check_member_name(member.name)
        if not member.isfile():
            raise ShardError(f"{where}: member {member.name!r} is not a regular file")
        key, ext = split_member(member.name)
        payload = tar.extractfile(member).read()
        if len(payload) != member.size:
            raise ShardError(f"{where}: member {member.name!r} is truncated")
        yield key, ext, payload


def iter_samples(tar_path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Samples of a shard as webdataset-style dicts {"__key__": key, ext: bytes, ...}.

    Raises ShardError on unsafe member names, non-file members, or a truncated/corrupt tar.
    """
    sample: dict[str, Any] = {}
    try:
        with tarfile.open(tar_path, mode="r:") as tar:
            for key, ext, payload in _members(tar, str(tar_path)):
                if sample and sample["__key__"] != key:
                    yield sample
                    sample = {}
                sample.setdefault("__key__", key)
                if ext in sample:
                    raise ShardError(f"{tar_path}: duplicate member {f'{key}.{ext}'!r}")
                sample[ext] = payload
            end = tar.offset
        _check_end_of_archive(tar_path, end)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ShardError(f"{tar_path}: truncated or corrupt tar ({err})") from err
    if sample:
        yield sample


def _check_end_of_archive(tar_path: str | os.PathLike, offset: int) -> None:
    """tarfile stops quietly at a truncated header; a complete tar ends in two zero blocks."""
    with open(tar_path, "rb") as f:
        f.seek(offset)
        tail = f.read(2 * tarfile.BLOCKSIZE)
    if len(tail) < 2 * tarfile.BLOCKSIZE or any(tail):
        raise ShardError(f"{tar_path}: truncated or corrupt tar (no end-of-archive marker at byte {offset})")


def read_sample_at(tar_path: str | os.PathLike, offset: int, size: int, filesystem: Any = None) -> dict[str, Any]:
    """One sample by its byte range (manifest `tar_offset`, `tar_size`) as a webdataset-style dict.

    Raises ShardError when the range does not hold exactly one complete, safely named sample.
    """
    opener = filesystem.open_input_file if filesystem is not None else (lambda p: open(p, "rb"))
    with opener(str(tar_path)) as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise ShardError(f"{tar_path}: truncated (wanted {size} bytes at {offset}, got {len(data)})")
    sample: dict[str, Any] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data + b"\0" * (2 * tarfile.BLOCKSIZE)), mode="r:") as tar:
            for key, ext, payload in _members(tar, f"{tar_path}@{offset}"):
                if sample.setdefault("__key__", key) != key or ext in sample:
                    raise ShardError(f"{tar_path}@{offset}: byte range holds more than one sample ({f'{key}.{ext}'!r})")
                sample[ext] = payload
    except (tarfile.TarError, EOFError) as err:
        raise ShardError(f"{tar_path}@{offset}: corrupt sample ({err})") from err
    if not sample:
        raise ShardError(f"{tar_path}@{offset}: no sample in byte range")
    return sample


def read_rows(parquet_path: str | os.PathLike) -> list[dict[str, Any]]:
    return pq.read_table(parquet_path).to_pylist()
