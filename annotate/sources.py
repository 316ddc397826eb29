"""Where web images come from: a directory tree, a file list, or img2dataset-style shards.

A source is planned into `WorkUnit`s, each of which becomes one output shard: `images_per_shard`
consecutive files of a sorted listing, or one input tar (img2dataset writes `00000.tar` with
`<key>.jpg`, `<key>.txt` caption, `<key>.json` metadata). Planning is a pure function of the
listing, so a rerun over the same input maps the same images to the same shards (idempotency).

`iter_unit(unit)` yields `SourceItem`s in a fixed order. An item that cannot even be read
(a missing file, an unsafe tar member, a tar cut off mid-file) is yielded with `error` set, so
the caller counts it like any other skip; sources never raise for one bad input. Rejected tar
content that is not an image (an unsafe `../x.txt` caption member, a caption or metadata
sample without an image) comes with `is_image` False: it is reported, but not as an image.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import braceexpand

from formats.shards import ShardError, check_member_name

SOURCE_KINDS = ("auto", "dir", "list", "wds")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")
# Reasons a source item is skipped before decoding (decode reasons are in annotate/imageio.py).
SOURCE_SKIP_REASONS = ("missing_file", "unreadable", "remote_url", "unsafe_member", "no_image", "shard_error")


@dataclass(frozen=True)
class WorkUnit:
    """One output shard's worth of input: image files (with optional captions) or one tar."""

    index: int
    kind: str  # "files" | "wds"
    paths: tuple[str, ...]
    captions: tuple[str | None, ...] = ()

    def describe(self) -> str:
        return self.paths[0] if self.kind == "wds" else f"{len(self.paths)} files from {self.paths[0]}"


@dataclass
class SourceItem:
    """One input image (bytes) with where it came from, its caption and metadata, or an error."""

    ref: dict[str, Any]
    data: bytes | None = None
    caption: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    ext: str = ""  # the extension the source claims (the decoder sniffs the real format)
    error: tuple[str, str] | None = None  # (reason, detail) when the item cannot be read
    is_image: bool = True  # False: rejected non-image tar content (counted apart from the images)


def detect_kind(source: str) -> str:
    """'wds' for tars / brace or glob patterns / a folder of tars, 'dir' for a folder, 'list' for a file."""
    if source.endswith(".tar") or any(c in source for c in "{*?["):
        return "wds"
    path = Path(source)
    if path.is_dir():
        entries = [p for p in path.iterdir() if not p.name.startswith(".")]
        has_tars = any(p.suffix == ".tar" for p in entries)
        has_images = any(p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS for p in entries)
        return "wds" if has_tars and not has_images else "dir"
    if path.is_file():
        return "list"
    raise ValueError(f"source {source!r} does not exist (expected a directory, a file list, or .tar shards)")


def plan_units(source: str, kind: str = "auto", images_per_shard: int = 256,
               extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[WorkUnit]:
    """Split a source into work units (see the module docstring)."""
    if kind not in SOURCE_KINDS:
        raise ValueError(f"source kind must be one of {list(SOURCE_KINDS)}, got {kind!r}")
    if images_per_shard < 1:
        raise ValueError(f"images_per_shard must be >= 1, got {images_per_shard}")
    kind = detect_kind(source) if kind == "auto" else kind
    if kind == "wds":
        return [WorkUnit(i, "wds", (tar,)) for i, tar in enumerate(list_tars(source))]
    if kind == "dir":
        entries = [(p, None) for p in list_images(source, extensions)]
    else:
        entries = read_file_list(source)
    units = []
    for i, start in enumerate(range(0, len(entries), images_per_shard)):
        chunk = entries[start:start + images_per_shard]
        units.append(WorkUnit(i, "files", tuple(p for p, _ in chunk), tuple(c for _, c in chunk)))
    return units


def list_images(root: str, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[str]:
    """Image files under `root` by extension (case-insensitive), sorted by relative path; dotfiles skipped."""
    base = Path(root)
    if not base.is_dir():
        raise ValueError(f"source directory {root!r} does not exist")
    wanted = {e.lower().lstrip(".") for e in extensions}
    found = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and name.rsplit(".", 1)[-1].lower() in wanted and "." in name:
                found.append(Path(dirpath, name))
    return [str(p) for p in sorted(found, key=lambda p: p.relative_to(base).as_posix())]


def read_file_list(path: str) -> list[tuple[str, str | None]]:
    """`path[<TAB>caption]` per line; blank lines and `#` comments ignored; relative to the list's folder."""
    entries = []
    base = Path(path).parent
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, _, caption = line.partition("\t")
            name = name.strip()
            if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", name):
                name = str(base / name) if not os.path.isabs(name) else name
            entries.append((name, caption or None))
    return entries


def list_tars(source: str) -> list[str]:
    """Tar shards named by a path, a brace pattern (`a-{000..009}.tar`), a glob, or a folder of tars."""
    if Path(source).is_dir():
        tars = sorted(str(p) for p in Path(source).glob("*.tar"))
    else:
        tars = []
        for pattern in braceexpand.braceexpand(source):
            tars += sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
    if not tars:
        raise ValueError(f"no .tar shards found for source {source!r}")
    # Only existing local files: webdataset's opener would also run `pipe:` commands and fetch URLs.
    missing = [t for t in tars if not Path(t).is_file()]
    if missing:
        raise ValueError(f"tar shards not found: {missing[:5]}")
    return tars


def iter_unit(unit: WorkUnit, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> Iterator[SourceItem]:
    """The unit's items in order; unreadable ones carry `error`."""
    if unit.kind == "wds":
        yield from iter_tar(unit.paths[0], extensions)
    else:
        captions = unit.captions or (None,) * len(unit.paths)
        for path, caption in zip(unit.paths, captions):
            yield read_file_item(path, caption)


def read_file_item(path: str, caption: str | None = None) -> SourceItem:
    """One local file; its caption from the list, else from a `<stem>.txt` beside it (img2dataset 'files' layout)."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", path):
        return SourceItem({"url": path}, error=("remote_url", "annotate reads local files; download with img2dataset first"))
    ref = {"path": path}
    ext = path.rsplit(".", 1)[-1].lower() if "." in Path(path).name else ""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return SourceItem(ref, ext=ext, error=("missing_file", path))
    except OSError as err:
        return SourceItem(ref, ext=ext, error=("unreadable", f"{type(err).__name__}: {err}"))
    meta = {}
    stem = Path(path).with_suffix("")
    if caption is None and stem.with_suffix(".txt").is_file():
        caption = stem.with_suffix(".txt").read_text(encoding="utf-8", errors="replace")
    if stem.with_suffix(".json").is_file():
        meta = load_json_meta(stem.with_suffix(".json").read_bytes())
    return SourceItem(ref, data, caption, meta, ext)


def load_json_meta(data: bytes) -> dict[str, Any]:
    """img2dataset's per-sample json (url, caption, exif, ...); unparsable metadata is dropped, not fatal."""
    try:
        meta = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def iter_tar(tar_path: str, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> Iterator[SourceItem]:
    """Samples of an img2dataset-style shard, read with webdataset's tar iterators.

    Unsafe member names (absolute, `..`, directories) are never read; they and a tar that ends
    mid-member are reported as items with an error. A sample without an image member is an item
    with reason `no_image`.
    """
    from webdataset.tariterators import group_by_keys, tar_file_expander, url_opener

    problems: list[tuple[str, str, bool]] = []  # (reason, detail, is an image)
    failed = []

    def handler(exn: Exception) -> bool:  # webdataset's hook: record and go on with the next member
        # A cut-off tar is reported by the member reader and again by the stream: count it once.
        if not failed:
            failed.append(exn)
            problems.append(("shard_error", f"{type(exn).__name__}: {str(exn.args[0]) if exn.args else exn}"[:300],
                             True))
        return True

    def select(name: str) -> bool:
        try:
            check_member_name(name)
        except ShardError as err:
            problems.append(("unsafe_member", str(err), name.rsplit(".", 1)[-1].lower() in wanted))
            return False
        return True

    wanted = [e.lower() for e in extensions]
    stream = group_by_keys(tar_file_expander(url_opener([{"url": tar_path}], handler=handler), handler=handler,
                                             select_files=select), handler=handler)
    for sample in stream:
        yield from _drain(problems, tar_path)
        yield sample_to_item(sample, tar_path, wanted)
    yield from _drain(problems, tar_path)


def _drain(problems: list[tuple[str, str, bool]], tar_path: str) -> Iterator[SourceItem]:
    while problems:
        reason, detail, is_image = problems.pop(0)
        yield SourceItem({"shard": tar_path}, error=(reason, detail), is_image=is_image)


def sample_to_item(sample: dict[str, Any], tar_path: str, extensions: list[str]) -> SourceItem:
    """A webdataset sample dict -> SourceItem (image bytes, caption from `txt`, metadata from `json`)."""
    key = sample["__key__"]
    meta = load_json_meta(sample["json"]) if "json" in sample else {}
    ref: dict[str, Any] = {"shard": tar_path, "key": key}
    if isinstance(meta.get("url"), str):
        ref["url"] = meta["url"]
    caption = sample["txt"].decode("utf-8", errors="replace") if "txt" in sample else meta.get("caption")
    caption = caption if isinstance(caption, str) else None
    ext = next((e for e in extensions if e in sample), None)
    if ext is None:
        members = sorted(k for k in sample if not k.startswith("__"))
        return SourceItem(ref, caption=caption, meta=meta, error=("no_image", f"members {members}"), is_image=False)
    return SourceItem(ref, sample[ext], caption, meta, ext)
