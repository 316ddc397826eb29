"""Referring segmentation benchmarks -> `Imported` referring samples (one per expression).

    refcoco     the refer API's data: SRC/<dataset>/refs(<split_by>).p (a pickle: read by
    refcoco+    SafeUnpickler, which builds only builtin containers and scalars and refuses
    refcocog    every global, so a crafted file cannot run code) or a JSON conversion of it
                (refs=...json), SRC/<dataset>/instances.json (COCO: images, annotations with
                polygon or RLE segmentation) and the COCO train2014 images (image_root=, default
                SRC/images/mscoco/images/train2014 as LISA lays it out). Every sentence of every
                ref of `split` is one sample, its mask the union of the ann's segments (LISA).
    reasonseg   LISA's ReasonSeg: SRC/<name>.jpg + SRC/<name>.json ({"text": [...], "is_sentence",
                "shapes": [{"label": "target" | "ignore" | "flag", "points": [[x, y], ...]}]}).
                Polygons are filled largest first (LISA's get_mask_from_json); "ignore" regions
                are recorded in the sample's json (`ignore_pixels`, `ignore_polygons`); the query
                is text[0], as LISA's validation uses.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image, ImageDraw

from evals.importers.common import BenchmarkError, Imported, read_rgb, require

REFER_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
SAFE_BUILTINS: frozenset = frozenset()  # no global at all: dict, list, tuple, str, bytes, int, float, bool, None


class SafeUnpickler(pickle.Unpickler):
    """An unpickler for data-only pickles: any global (a class, a function: how a pickle runs code) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed (data-only pickle: builtin "
                                     f"containers and scalars)")


def safe_load_pickle(path: Path) -> Any:
    """A data-only pickle file's content; BenchmarkError naming the file for a global or a damaged file."""
    require(path, "a pickle file")
    try:
        return SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OSError) as err:
        raise BenchmarkError(f"{path}: refused or unreadable pickle ({err}); convert it to JSON and pass refs=") from err


def load_json(path: Path, what: str) -> Any:
    """JSON (UTF-8, or cp1252 as some ReasonSeg files are: LISA falls back to it too)."""
    require(path, what)
    try:
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp1252")
        return json.loads(text)
    except (OSError, ValueError) as err:
        raise BenchmarkError(f"{path}: not readable JSON ({what}: {err})") from err


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def coco_mask(ann: dict, h: int, w: int, where: str) -> np.ndarray:
    """The union of an annotation's segments (polygons or RLE) as an (h, w) bool mask."""
    from pycocotools import mask as mask_utils

    seg = ann.get("segmentation")
    if not seg:
        return np.zeros((h, w), bool)
    try:
        if isinstance(seg, list):
            rles = mask_utils.frPyObjects(seg, h, w)
        else:
            rles = [dict(seg, counts=seg["counts"].encode() if isinstance(seg["counts"], str) else seg["counts"])]
            if isinstance(seg["counts"], list):
                rles = [mask_utils.frPyObjects(seg, h, w)]
        m = mask_utils.decode(rles)
    except (TypeError, ValueError, KeyError, IndexError) as err:
        raise BenchmarkError(f"{where}: annotation {ann.get('id')} has a malformed segmentation ({err})") from err
    return (m.reshape(h, w, -1).sum(axis=2) > 0) if m.ndim == 3 else m.astype(bool)


def refcoco(src: Path, dataset: str = "refcocog", split: str = "val", split_by: str | None = None,
            refs: str | None = None, instances: str | None = None, image_root: str | None = None) -> Iterator[Imported]:
    if dataset not in REFER_SPLIT_BY:
        raise ValueError(f"dataset must be one of {sorted(REFER_SPLIT_BY)}, got {dataset!r}")
    split_by = split_by or REFER_SPLIT_BY[dataset]
    refs_path = Path(refs) if refs else src / dataset / f"refs({split_by}).p"
    inst_path = Path(instances) if instances else src / dataset / "instances.json"
    img_root = Path(image_root) if image_root else src / "images" / "mscoco" / "images" / "train2014"
    ref_list = load_json(refs_path, "refer refs") if refs_path.suffix == ".json" else safe_load_pickle(refs_path)
    inst = load_json(inst_path, "COCO instances")
    if not isinstance(ref_list, list) or not isinstance(inst, dict):
        raise BenchmarkError(f"{refs_path} / {inst_path}: expected a list of refs and a COCO instances dict")
    try:
        images = {int(im["id"]): im for im in inst["images"]}
        anns = {int(a["id"]): a for a in inst["annotations"]}
    except (KeyError, TypeError, ValueError) as err:
        raise BenchmarkError(f"{inst_path}: not COCO instances (images, annotations with ids): {err}") from err
    chosen = [r for r in ref_list if isinstance(r, dict) and _text(r.get("split")) == split]
    if not chosen:
        raise BenchmarkError(f"{refs_path}: no ref of split {split!r} "
                             f"(splits: {sorted({_text(r.get('split')) for r in ref_list if isinstance(r, dict)})})")
    for ref in sorted(chosen, key=lambda r: int(r["ref_id"])):
        yield from _ref_samples(ref, images, anns, img_root, refs_path, inst_path, dataset, split_by)


def _ref_samples(ref: dict, images: dict, anns: dict, img_root: Path, refs_path: Path, inst_path: Path,
                 dataset: str, split_by: str) -> Iterator[Imported]:
    try:
        ref_id, image_id, ann_id = int(ref["ref_id"]), int(ref["image_id"]), int(ref["ann_id"])
        sentences = list(ref["sentences"])
    except (KeyError, TypeError, ValueError) as err:
        raise BenchmarkError(f"{refs_path}: malformed ref {ref.get('ref_id')!r} ({err})") from err
    if image_id not in images or ann_id not in anns:
        raise BenchmarkError(f"{inst_path}: has no image {image_id} / annotation {ann_id} of ref {ref_id}")
    info = images[image_id]
    img_path = img_root / _text(info["file_name"])
    rgb = read_rgb(img_path)
    h, w = rgb.shape[:2]
    if (int(info.get("height", h)), int(info.get("width", w))) != (h, w):
        raise BenchmarkError(f"{img_path}: is {w}x{h}, {inst_path} says {info.get('width')}x{info.get('height')}")
    mask = coco_mask(anns[ann_id], h, w, str(inst_path))
    for j, sent in enumerate(sentences):
        expression = _text(sent.get("sent", sent.get("raw", "")) if isinstance(sent, dict) else sent).strip().lower()
        if not expression:
            continue
        sent_id = int(sent.get("sent_id", j)) if isinstance(sent, dict) else j
        yield Imported(f"{ref_id}_{sent_id}", "referring", rgb, mask,
                       {"rgb": str(img_path), "refs": str(refs_path), "instances": str(inst_path)},
                       {"expression": expression, "ref_id": ref_id, "sent_id": sent_id, "image_id": image_id,
                        "ann_id": ann_id, "refer_dataset": dataset, "split_by": split_by})


def polygon_area_mask(points: list, h: int, w: int) -> np.ndarray:
    """A polygon filled with its outline (cv2.fillPoly + polylines on int32 points, as LISA draws it)."""
    pts = [(int(x), int(y)) for x, y in points]
    canvas = Image.new("L", (w, h), 0)
    ImageDraw.Draw(canvas).polygon(pts, fill=1, outline=1)
    return np.asarray(canvas, bool)


def reasonseg_mask(shapes: list, h: int, w: int, where: Path) -> tuple[np.ndarray, np.ndarray, list]:
    """(target mask, ignore mask, ignore polygons): polygons drawn largest first, later ones on top."""
    polys = []
    for s in shapes:
        try:
            label, points = _text(s["label"]).lower(), s["points"]
            if label == "flag":  # LISA: meaningless deprecated annotations
                continue
            polys.append((label, points, polygon_area_mask(points, h, w)))
        except (KeyError, TypeError, ValueError) as err:
            raise BenchmarkError(f"{where}: malformed shape {s!r:.80} ({err})") from err
    label_map = np.zeros((h, w), np.uint8)
    for label, _, m in sorted(polys, key=lambda p: -int(p[2].sum())):
        label_map[m] = 255 if "ignore" in label else 1
    return label_map == 1, label_map == 255, [p[1] for p in polys if "ignore" in p[0]]


def reasonseg(src: Path) -> Iterator[Imported]:
    images = sorted(p for p in src.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")) if src.is_dir() else []
    if not images:
        raise BenchmarkError(f"{src}: no ReasonSeg images (layout: <split dir>/<name>.jpg + <name>.json)")
    for img_path in images:
        json_path = img_path.with_suffix(".json")
        anno = load_json(json_path, "ReasonSeg annotation")
        if not isinstance(anno, dict) or not anno.get("text") or "shapes" not in anno:
            raise BenchmarkError(f"{json_path}: needs 'text' (a non-empty list) and 'shapes'")
        texts = anno["text"] if isinstance(anno["text"], list) else [anno["text"]]
        rgb = read_rgb(img_path)
        target, ignore, ignore_polys = reasonseg_mask(anno["shapes"], *rgb.shape[:2], json_path)
        yield Imported(img_path.stem, "referring", rgb, target, {"rgb": str(img_path), "annotation": str(json_path)},
                       {"expression": _text(texts[0]).strip(), "all_texts": [_text(t) for t in texts],
                        "is_sentence": bool(anno.get("is_sentence", False)), "ignore_pixels": int(ignore.sum()),
                        "ignore_polygons": ignore_polys})
