"""What every benchmark importer shares: the error type, file readers that name the file, and
the writer that turns imported samples into eval task shards with manifests.

An importer yields `Imported` records (one eval sample each: the photo, the raw truth at native
resolution, the protocol name); `write_shards` encodes the target with the task's codec, writes
the prompt, and stores input, target, prompt, json and the raw truth (encode/sample.py) in
`<prefix>-000000.tar` ... with a Parquet manifest row per sample (encode/manifest.py), so
`vistune eval`, `mix check` (train/eval contamination) and DuckDB read imported benchmarks like
any other eval shards.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
from PIL import Image

from encode import codecs
from encode.manifest import SCHEMA, make_row, target_stats
from encode.prompts import make_prompt
from encode.sample import TASK_GROUPS, TaskSample, to_files
from formats.shards import ShardPaths, ShardWriter

log = logging.getLogger(__name__)

RGB_EXTS = (".png", ".jpg", ".jpeg")
MAX_PIXELS = 80_000_000  # a decompression bomb is a malformed file, not a benchmark image


class BenchmarkError(ValueError):
    """A benchmark file that is missing or malformed; the message names the file."""


@dataclass
class Imported:
    """One eval sample of a benchmark, before encoding."""

    stem: str                          # unique within the import: the sample key is `<source>_<stem>`
    task: str                          # depth | normals | semantic | referring
    rgb: np.ndarray                    # (H, W, 3) uint8, native resolution
    truth: np.ndarray                  # depth (H, W) m NaN invalid | normals (H, W, 3) | ids (H, W) | mask (H, W) bool
    origin: dict[str, str]             # member -> the file it came from
    extra: dict[str, Any] = field(default_factory=dict)   # task fields (expression, class table, focal, ...)


@dataclass
class ImportSummary:
    format: str
    source: str
    protocol: str | None
    written: int
    skipped: dict[str, int]
    shards: list[Path]


def require(path: Path, what: str) -> Path:
    """`path` if it exists, else BenchmarkError naming it and what it should be."""
    if not path.exists():
        raise BenchmarkError(f"{path}: missing ({what})")
    return path


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 from an image file; BenchmarkError naming the file if it is not one."""
    require(path, "the benchmark's RGB image")
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise BenchmarkError(f"{path}: {im.width}x{im.height} exceeds {MAX_PIXELS} pixels")
            return np.asarray(im.convert("RGB"))
    except BenchmarkError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise BenchmarkError(f"{path}: not a readable image ({err})") from err


def read_png(path: Path, what: str, dtypes: tuple[str, ...] = ("uint8", "uint16")) -> np.ndarray:
    """A single-channel PNG as an integer array; BenchmarkError naming the file otherwise."""
    require(path, what)
    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except (OSError, ValueError) as err:
        raise BenchmarkError(f"{path}: not a readable {what} ({err})") from err
    if arr.dtype == np.int32 and "uint16" in dtypes:  # Pillow's mode I for some 16-bit PNGs
        arr = arr.astype(np.uint16) if arr.min() >= 0 and arr.max() < 65536 else arr
    if arr.ndim != 2 or str(arr.dtype) not in dtypes:
        raise BenchmarkError(f"{path}: {what} must be a single-channel {'/'.join(dtypes)} PNG, "
                             f"got shape {arr.shape} dtype {arr.dtype}")
    return arr


def read_npy(path: Path, what: str) -> np.ndarray:
    """A .npy array (never a pickled object); BenchmarkError naming the file otherwise."""
    require(path, what)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise BenchmarkError(f"{path}: not a readable .npy {what} ({err})") from err


def same_size(rgb: np.ndarray, truth: np.ndarray, truth_path: Path | str) -> None:
    if truth.shape[:2] != rgb.shape[:2]:
        raise BenchmarkError(f"{truth_path}: truth is {truth.shape[:2]}, its image is {rgb.shape[:2]}")


def read_list(path: Path, what: str) -> list[str]:
    """Non-empty, non-comment lines of a text file (split files, image lists)."""
    require(path, what)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise BenchmarkError(f"{path}: not a readable text {what} ({err})") from err
    out = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not out:
        raise BenchmarkError(f"{path}: the {what} lists nothing")
    return out


def flag(value: bool | str, name: str) -> bool:
    """A boolean parameter given as a bool or as text (true/false, 1/0, yes/no: the argparse CLI passes text)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


def sample_key(source: str, stem: str) -> str:
    """A shard-safe key (`<source>_<stem>`, other characters -> `_`; a long one shortened with a hash).
    Two stems that map to one key are an error at write time (write_shards)."""
    clean = re.sub(r"[^A-Za-z0-9_\-]", "_", f"{source}_{stem}")
    if len(clean) > 150:
        clean = f"{clean[:130]}_{hashlib.sha1(stem.encode()).hexdigest()[:8]}"
    return clean


class SampleEncoder:
    """Imported -> (TaskSample, manifest row): the task's codec, prompt and meta."""

    def __init__(self, fmt: str, source: str, protocol: str | None, depth_preset: str = "gray",
                 class_names: list[str] | None = None, benchmark: dict[str, Any] | None = None) -> None:
        self.fmt, self.source, self.protocol = fmt, source, protocol
        self.depth_preset = depth_preset
        self.class_names = class_names or []
        self.benchmark = benchmark or {}
        self._codecs: dict[str, Any] = {}

    def codec(self, task: str):
        if task not in self._codecs:
            if task == "depth":
                self._codecs[task] = codecs.get("depth", preset=self.depth_preset)
            elif task == "normals":
                self._codecs[task] = codecs.get("normals")
            elif task == "semantic":
                self._codecs[task] = codecs.get("semantic", num_classes=max(len(self.class_names), 1))
            elif task == "referring":
                self._codecs[task] = codecs.get("mask")
            else:
                raise ValueError(f"importers encode depth, normals, semantic and referring samples, not {task!r}")
        return self._codecs[task]

    def prompt(self, item: Imported, seed: int) -> str:
        codec = self.codec(item.task)
        if item.task == "depth":
            return make_prompt("depth", seed, preset=self.depth_preset)
        if item.task == "semantic":  # every class of the benchmark: listing only present ones would leak the truth
            return make_prompt("semantic", seed, class_names=self.class_names, palette=codec.params["palette"])
        if item.task == "referring":
            return make_prompt("referring", seed, expression=item.extra["expression"], color=codec.params["color"])
        return make_prompt(item.task, seed)

    def encode(self, item: Imported, index: int) -> tuple[TaskSample, dict[str, Any]]:
        codec = self.codec(item.task)
        key = sample_key(self.source, item.stem)
        seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")
        spec = codecs.spec(codec)
        raw_name = "mask" if item.task == "referring" else item.task
        h, w = item.rgb.shape[:2]
        meta = {"codec": spec, "source": self.source, "split": "eval", "seed": seed, "index": index,
                "width": w, "height": h, "prediction_region": "full",
                "benchmark": {"format": self.fmt, **self.benchmark}, "origin": item.origin, **item.extra}
        if self.protocol is not None:
            meta["protocol"] = self.protocol
            if item.task == "depth":
                meta["depth_protocol"] = self.protocol  # the key evaluators before evals/protocols.py read
        if item.task == "semantic":
            meta["class_table"] = self.class_names
        prompt = self.prompt(item, seed)
        target = codec.encode(item.truth)
        sample = TaskSample(key, item.task, target, prompt, meta, item.rgb, {raw_name: item.truth})
        row = make_row(task=item.task, task_group=TASK_GROUPS[item.task], source=self.source,
                       source_shard=self.fmt, source_key=item.stem, source_group=f"{self.source}:{item.stem}",
                       split="eval", seed=seed, image=item.rgb, target=target, codec_spec=spec, prompt=prompt,
                       stats=target_stats(item.task, {raw_name: item.truth}, target))
        return sample, row


def write_shards(items: Iterable[Imported], out: str | Path, encoder: SampleEncoder, per_shard: int = 256,
                 prefix: str = "eval") -> tuple[list[Path], int]:
    """Encode and write `items` into `<out>/<prefix>-NNNNNN.tar` (+ .parquet). Returns (tars, count).

    Samples are encoded and written one at a time (an ETH3D frame is 24 Mpx: a shard's worth of them
    is never held in memory). A shard is published when full or at the end; an error leaves the
    shards published so far and removes the one being written."""
    if per_shard < 1:
        raise ValueError(f"per_shard must be >= 1, got {per_shard}")
    tars: list[Path] = []
    count = 0
    writer: ShardWriter | None = None
    try:
        for item in _unique(items, encoder.source):
            if writer is None:
                writer = ShardWriter(ShardPaths.of(out, prefix, len(tars)), schema=SCHEMA)
            sample, row = encoder.encode(item, count)
            writer.add(sample.key, to_files(sample), row)
            count += 1
            if count % per_shard == 0:
                tars.append(_commit(writer))
                writer = None
        if writer is not None:
            tars.append(_commit(writer))
            writer = None
    finally:
        if writer is not None:
            writer.abort()
    if count:
        remove_stale_shards(out, prefix, len(tars))
    return tars, count


def _commit(writer: ShardWriter) -> Path:
    n = writer.commit()
    log.info("wrote %s (%d samples)", writer.paths.tar, n)
    return writer.paths.tar


def _unique(items: Iterable[Imported], source: str) -> Iterator[Imported]:
    seen: dict[str, str] = {}
    for item in items:
        key = sample_key(source, item.stem)
        if key in seen:
            raise BenchmarkError(f"{next(iter(item.origin.values()), '?')}: sample {item.stem!r} has the key {key!r} "
                                 f"of sample {seen[key]!r} (names that differ only in punctuation)")
        seen[key] = item.stem
        yield item


def remove_stale_shards(out: str | Path, prefix: str, keep: int) -> list[Path]:
    """Delete `<prefix>-NNNNNN.tar|.parquet` with NNNNNN >= keep under `out`: the tail of an earlier, larger
    import into the same directory, which `vistune eval data=out` would otherwise read as part of this one."""
    removed = []
    for path in sorted(Path(out).glob(f"{prefix}-*")):
        stem, _, index = path.stem.rpartition("-")
        if stem == prefix and index.isdigit() and len(index) == 6 and int(index) >= keep \
                and path.suffix in (".tar", ".parquet"):
            path.unlink()
            removed.append(path)
    if removed:
        log.info("removed %d shard files of an earlier import under %s (e.g. %s)", len(removed), out, removed[0].name)
    return removed
