"""A work unit end to end with the real U^2-Net-p model: good images become samples, bad ones counted skips."""

import json

import numpy as np
import pytest
from PIL import Image

from formats import raw_label as raw
from annotate.imageio import DecodePolicy
from annotate.process import AnnotateSettings, UnitStats, annotate_unit, sample_key
from annotate.sources import plan_units

from .conftest import encode

SETTINGS = AnnotateSettings(decode=DecodePolicy(resize="max_side", size=256, max_aspect=4.0), batch_size=3)


def _write_inputs(root, photos):
    """Good files of many kinds and one bad file of every kind; returns (good names, {bad name: reason})."""
    small_coffee = photos["coffee"][100:300, 150:400]  # 200x250: below the resize size, so its bytes are kept
    exif = Image.Exif()
    exif[0x0112] = 8
    good = {
        "a_astronaut.jpg": encode(photos["astronaut"], "JPEG", quality=90),
        "b_chelsea.png": encode(photos["chelsea"], "PNG"),
        "c_coffee_small.jpg": encode(small_coffee, "JPEG", quality=92),
        "d_rotated.jpg": encode(small_coffee, "JPEG", exif=exif.tobytes()),
        "e_png_named_jpg.jpg": encode(photos["motorcycle"], "PNG"),
        "f_cmyk.jpg": encode(Image.fromarray(small_coffee).convert("CMYK"), "JPEG"),
        "g_16bit.png": encode(Image.fromarray(photos["coffee"][..., 0].astype(np.uint16) * 257), "PNG"),
        "h_animated.gif": encode(Image.fromarray(small_coffee).convert("P"), "GIF", save_all=True,
                                 append_images=[Image.fromarray(small_coffee[::-1]).convert("P")]),
        "i_palette_alpha.png": encode(Image.fromarray(photos["chelsea"]).convert("RGBA"), "PNG"),
    }
    jpg = good["a_astronaut.jpg"]
    bad = {
        "z_empty.jpg": (b"", "empty"),
        "z_html.jpg": (b"<!doctype html><title>404</title>", "not_an_image"),
        "z_truncated.jpg": (jpg[: len(jpg) // 3], "truncated"),
        "z_corrupt.png": (good["b_chelsea.png"][:100] + bytes(5000) + good["b_chelsea.png"][5100:], "corrupt"),
        "z_tiny.png": (encode(photos["coffee"][:20, :20], "PNG"), "too_small"),
        "z_panorama.png": (encode(photos["coffee"][:50, :], "PNG"), "aspect_ratio"),
    }
    for name, data in good.items():
        (root / name).write_bytes(data)
    for name, (data, _) in bad.items():
        (root / name).write_bytes(data)
    (root / "c_coffee_small.txt").write_text("an espresso on a saucer")
    return sorted(good), {name: reason for name, (_, reason) in bad.items()}, good


def test_unit_keeps_every_good_image_and_counts_every_bad_one(tmp_path, photos, u2netp):
    good, bad, data = _write_inputs(tmp_path, photos)
    (unit,) = plan_units(str(tmp_path), images_per_shard=100)
    stats = UnitStats()
    samples = list(annotate_unit(unit, u2netp, SETTINGS, stats))
    assert stats.items == len(good) + len(bad) == stats.written + sum(stats.skipped.values())
    assert [s.row["source_path"].rsplit("/", 1)[1] for s in samples] == good
    assert dict(stats.skipped) == {reason: 1 for reason in bad.values()}
    assert {d["ref"]["path"].rsplit("/", 1)[1]: d["reason"] for d in stats.skipped_items} == bad
    assert stats.notes["extension_mismatch"] == 1  # the PNG named .jpg: kept, noted
    assert [s.key for s in samples] == [sample_key(0, i) for i in range(len(good))]  # position = listing order

    by_name = {s.row["source_path"].rsplit("/", 1)[1]: s for s in samples}
    for name, s in by_name.items():
        label = raw.from_sample({"__key__": s.key, **s.files})
        assert label.rgb.shape[:2] == label.instance.shape == label.semantic.shape
        assert max(label.rgb.shape[:2]) <= 256
        meta = label.meta
        assert meta["kind"] == "annotate" and meta["class_table"] == ["unlabeled", "object"]
        assert meta["labelers"][0]["name"] == "u2netp" and "u2netp.onnx" in meta["labelers"][0]["weights"]
        assert [i["id"] for i in meta["instances"]] == list(range(1, len(meta["instances"]) + 1))
        for inst in meta["instances"]:
            mask = label.instance_mask(inst["id"])
            assert mask.sum() == inst["area"] > 0 and (label.semantic[mask] == inst["semantic_id"]).all()
            x0, y0, x1, y1 = inst["box"]
            assert mask[y0:y1, x0:x1].sum() == inst["area"]
        ids = {i["id"] for i in meta["instances"]}
        assert all(r["instance_id"] in ids for r in meta["referring"])
        assert meta["source"] == {"path": s.row["source_path"]} and meta["seed"] == s.row["seed"]
        assert s.row["n_instances"] == len(meta["instances"]) and s.row["n_referring"] == len(meta["referring"])
    assert sum(s.row["n_instances"] > 0 for s in samples) >= len(good) - 1  # the model finds objects in photos

    kept_jpeg = by_name["c_coffee_small.jpg"]
    assert kept_jpeg.files["rgb.jpg"] == data["c_coffee_small.jpg"]  # original bytes, no recompression
    assert kept_jpeg.files["txt"] == b"an espresso on a saucer"
    assert json.loads(kept_jpeg.files["json"])["caption"] == "an espresso on a saucer"
    assert "rgb.jpg" in by_name["d_rotated.jpg"].files and by_name["d_rotated.jpg"].files["rgb.jpg"] != data[
        "d_rotated.jpg"]
    rotated = raw.from_sample({"__key__": "k", **by_name["d_rotated.jpg"].files})
    assert rotated.rgb.shape[:2] == (250, 200)  # orientation 8 applied: portrait
    assert "rgb.png" in by_name["a_astronaut.jpg"].files  # resized 512 -> 256: stored losslessly
    assert "txt" not in by_name["b_chelsea.png"].files and json.loads(by_name["b_chelsea.png"].files["json"])[
        "caption"] is None


class _FailsOnSquares:
    """Wraps a real labeler; raises on square images (a model crash on one input)."""

    def __init__(self, inner):
        self.inner, self.name, self.version, self.classes, self.weights = inner, "flaky", "1", inner.classes, "-"

    def label(self, images):
        if any(im.shape[0] == im.shape[1] for im in images):
            raise RuntimeError("boom")
        return self.inner.label(images)


def test_a_labeler_crash_costs_only_that_image(tmp_path, photos, u2netp):
    for name, rgb in [("a.png", photos["astronaut"]), ("b.png", photos["chelsea"]), ("c.png", photos["coffee"])]:
        (tmp_path / name).write_bytes(encode(rgb, "PNG"))
    (unit,) = plan_units(str(tmp_path))
    stats = UnitStats()
    samples = list(annotate_unit(unit, _FailsOnSquares(u2netp), SETTINGS, stats))
    assert [s.key for s in samples] == [sample_key(0, 1), sample_key(0, 2)]
    assert dict(stats.skipped) == {"labeler_error": 1} and "boom" in stats.skipped_items[0]["detail"]


def test_raw_roundtrip_and_validation():
    inst = np.zeros((8, 9), np.uint16)
    inst[2:4, 3:5] = 300  # beyond 8 bits
    sem = (inst > 0).astype(np.uint16) * 1000
    files = raw.to_files(("rgb.png", encode(np.zeros((8, 9, 3), np.uint8), "PNG")), inst, sem,
                         {"seed": 1, "instances": []}, caption="cap")
    back = raw.from_sample({"__key__": "k", **files})
    np.testing.assert_array_equal(back.instance, inst)
    np.testing.assert_array_equal(back.semantic, sem)
    assert back.caption == "cap" and back.meta["raw_format"] == raw.RAW_FORMAT_VERSION
    with pytest.raises(ValueError, match="image member must be one of"):
        raw.to_files(("rgb.tif", b""), inst, sem, {})
    with pytest.raises(ValueError, match="not an annotate raw sample"):
        raw.from_sample({**files, "json": b'{"raw_format": 1}'})
