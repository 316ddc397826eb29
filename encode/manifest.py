"""The task-shard manifest: one Parquet row per sample, schema-versioned, queryable as one dataset.

Each task shard `<task>/<task>-000123.tar` has its manifest `<task>/<task>-000123.parquet` beside
it (written by `formats.shards.ShardWriter` with `SCHEMA`, so even an empty shard has the full
schema). `open_dataset(root)` reads all of them as one `pyarrow.dataset`; `mix`, `mix check`,
pandas and DuckDB users read that. Paths may be local directories or URIs that pyarrow's
filesystem layer understands (`s3://bucket/prefix`, `gs://...`).

Hashes: `image_sha256` is the SHA-256 of the pixels the model sees as content (the input image,
or the target for text-to-image), `target_sha256` of the target pixels; `image_phash` is a
64-bit DCT perceptual hash (pHash) of the same image, for near-duplicate search.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from PIL import Image
from scipy import fft

MANIFEST_VERSION = 1

SCHEMA = pa.schema([
    ("key", pa.string()),
    ("shard", pa.string()),              # tar file name
    ("tar_offset", pa.int64()),          # byte range of the sample's members in the tar
    ("tar_size", pa.int64()),
    ("manifest_version", pa.int16()),
    ("task", pa.string()),
    ("task_group", pa.string()),         # vision | generation | restoration
    ("source", pa.string()),             # render | annotate
    ("source_shard", pa.string()),
    ("source_key", pa.string()),
    ("source_group", pa.string()),       # the unit of the train/eval split (scene seed, source image)
    ("split", pa.string()),              # train | eval
    ("seed", pa.int64()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("codec", pa.string()),              # null for generation / restoration targets
    ("codec_version", pa.int32()),
    ("codec_params", pa.string()),       # JSON
    ("prompt", pa.string()),
    ("image_sha256", pa.string()),
    ("target_sha256", pa.string()),
    ("image_phash", pa.uint64()),
    ("valid_frac", pa.float32()),        # target statistics (see target_stats)
    ("stat_min", pa.float32()),
    ("stat_median", pa.float32()),
    ("stat_max", pa.float32()),
    ("stat_count", pa.int32()),
])


def pixel_sha256(image: np.ndarray) -> str:
    """SHA-256 over shape, dtype and pixels: encoder-independent (PNG and JPEG bytes differ, pixels don't)."""
    h = hashlib.sha256(f"{image.shape}{image.dtype}".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def phash(image: np.ndarray) -> int:
    """64-bit DCT perceptual hash: the 8x8 lowest frequencies of a 32x32 grayscale, vs. their median."""
    gray = Image.fromarray(image).convert("L").resize((32, 32), Image.BOX)
    coeffs = fft.dctn(np.asarray(gray, dtype=np.float64), norm="ortho")[:8, :8].ravel()
    bits = coeffs > np.median(coeffs[1:])  # the DC term would dominate the median
    return int(np.packbits(bits).view(">u8")[0])


def hamming(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """Bitwise Hamming distances between uint64 hashes (broadcasting)."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    return np.unpackbits(x[..., None].view(np.uint8), axis=-1).sum(-1)


def target_stats(task: str, raw: dict[str, np.ndarray], target_rgb: np.ndarray) -> dict[str, Any]:
    """Per-task statistics of the physical target (or of the target image when there is none)."""
    if task == "depth":
        d = raw["depth"]
        finite = d[np.isfinite(d) & (d > 0)]
        valid = float(np.mean(d > 0))  # positive or +inf (no hit); NaN, zero and negative are invalid
        if finite.size:
            return {"valid_frac": valid, "stat_min": float(finite.min()), "stat_median": float(np.median(finite)),
                    "stat_max": float(finite.max()), "stat_count": int(np.isinf(d).sum())}
        return {"valid_frac": valid, "stat_count": int(np.isinf(d).sum())}
    if task == "normals":
        ok = np.isfinite(raw["normals"]).all(-1)
        return {"valid_frac": float(ok.mean())}
    if task in ("semantic", "instance"):
        ids = raw[task]
        present = np.unique(ids[ids > 0])
        return {"valid_frac": float(np.mean(ids > 0)), "stat_count": int(present.size)}
    if task == "referring":
        return {"valid_frac": float(np.mean(raw["mask"])), "stat_count": 1}
    lum = target_rgb[::4, ::4].mean(-1)  # a 1/16 subsample: statistics, not pixels
    return {"valid_frac": 1.0, "stat_min": float(lum.min()), "stat_median": float(np.median(lum)),
            "stat_max": float(lum.max())}


def impossible_depth(depth: np.ndarray, instance: np.ndarray | None = None) -> dict[str, int]:
    """Pixels of a raw depth map that no renderer should produce, by kind (only kinds that occur).

    `negative` and `zero` (planar depth is > 0 in front of the camera), `neg_inf`, and
    `nan_in_object` (NaN where `instance` says an object was hit; NaN elsewhere is the
    contract's "unknown"). The depth codec draws all of them in its invalid colour, so they are
    counted here, per sample, to be reported instead of vanishing into "invalid".
    """
    counts = {"negative": int(np.count_nonzero((depth < 0) & np.isfinite(depth))),
              "zero": int(np.count_nonzero(depth == 0)), "neg_inf": int(np.count_nonzero(depth == -np.inf))}
    if instance is not None and instance.shape == depth.shape:
        counts["nan_in_object"] = int(np.count_nonzero(np.isnan(depth) & (instance > 0)))
    return {k: v for k, v in counts.items() if v}


def make_row(*, task: str, task_group: str, source: str, source_shard: str, source_key: str, source_group: str,
             split: str, seed: int, image: np.ndarray, target: np.ndarray, codec_spec: dict | None, prompt: str,
             stats: dict[str, Any]) -> dict[str, Any]:
    """A manifest row (without key/shard/offsets, which the shard writer adds)."""
    return {
        "manifest_version": MANIFEST_VERSION, "task": task, "task_group": task_group, "source": source,
        "source_shard": source_shard, "source_key": source_key, "source_group": source_group, "split": split,
        "seed": int(seed), "width": int(target.shape[1]), "height": int(target.shape[0]),
        "codec": codec_spec["name"] if codec_spec else None,
        "codec_version": codec_spec["version"] if codec_spec else None,
        "codec_params": json.dumps(codec_spec["params"], sort_keys=True) if codec_spec else None,
        "prompt": prompt, "image_sha256": pixel_sha256(image), "target_sha256": pixel_sha256(target),
        "image_phash": phash(image), **stats,
    }


def filesystem_and_path(uri: str) -> tuple[pafs.FileSystem, str]:
    """A local path or a pyarrow-filesystem URI (s3://, gs://, hdfs://) -> (filesystem, path)."""
    if "://" in str(uri):
        return pafs.FileSystem.from_uri(str(uri))
    return pafs.LocalFileSystem(), str(uri)


def manifest_files(root: str) -> list[str]:
    """All shard manifests under `root` (recursively), sorted. Paths with a component starting with
    '.' (temp files) or '_' (bookkeeping: `_done/`, `_excluded.parquet`) are not manifests."""
    fs, path = filesystem_and_path(root)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    prefix = len(path.rstrip("/")) + 1
    return sorted(i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet")
                  and not any(part[:1] in "._" for part in i.path[prefix:].split("/")))


class ManifestError(ValueError):
    """A manifest that is missing, of another schema version, or that does not match its shard."""


def open_dataset(roots: str | Iterable[str]) -> pads.Dataset:
    """All manifests under one or more roots as one pyarrow dataset (schema `SCHEMA`)."""
    roots = [roots] if isinstance(roots, str) else list(roots)
    children = []
    for root in roots:
        files = manifest_files(root)
        if not files:
            raise ManifestError(f"no task-shard manifests (*.parquet) under {root!r}; run `vistune encode` first")
        fs, _ = filesystem_and_path(root)
        children.append(pads.dataset(files, schema=SCHEMA, format="parquet", filesystem=fs))
    ds = children[0] if len(children) == 1 else pads.dataset(children)
    try:
        versions = pc.unique(ds.to_table(columns=["manifest_version"])["manifest_version"]).to_pylist()
    except (pa.ArrowException, OSError):  # an unreadable file: find and name it
        versions = [None]
    if any(v != MANIFEST_VERSION for v in versions):
        for child in children:
            check_versions(child.files, child.filesystem)
        raise ManifestError(f"manifest version(s) {versions} under {roots}; this vistune reads version "
                            f"{MANIFEST_VERSION}")  # not reached: check_versions names the file
    return ds


def check_versions(files: list[str], fs: pafs.FileSystem) -> None:
    """Raise ManifestError naming the first of `files` that is not a readable manifest of MANIFEST_VERSION."""
    for path in files:
        try:
            schema = pq.read_schema(path, filesystem=fs)
            if "manifest_version" not in schema.names:
                raise ManifestError(f"{path} is not a task-shard manifest (no manifest_version column; a raw "
                                    f"shard's sidecar?); this vistune reads manifest version {MANIFEST_VERSION}")
            found = pc.unique(pq.read_table(path, columns=["manifest_version"], filesystem=fs)["manifest_version"])
        except (pa.ArrowException, OSError) as err:
            raise ManifestError(f"{path} is not a readable Parquet manifest ({err})") from err
        bad = [v for v in found.to_pylist() if v != MANIFEST_VERSION]
        if bad:
            raise ManifestError(f"{path} has manifest version(s) {bad}; this vistune reads version "
                                f"{MANIFEST_VERSION} (re-run `vistune encode` into a new `out`)")


def filter_expression(filters: dict[str, Any] | None) -> pc.Expression | None:
    """{column: value | [values]} -> a pyarrow expression (AND of equality / membership tests)."""
    expr = None
    for column, value in (filters or {}).items():
        if column not in SCHEMA.names:
            raise ManifestError(f"filter on unknown manifest column {column!r}; columns: {SCHEMA.names}")
        term = pc.field(column).isin(list(value)) if isinstance(value, (list, tuple)) else pc.field(column) == value
        expr = term if expr is None else expr & term
    return expr
