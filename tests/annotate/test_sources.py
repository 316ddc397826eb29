"""Sources: directory trees, file lists and img2dataset-style shards, read in a fixed order."""

import json

import numpy as np
import pytest

from annotate.sources import detect_kind, iter_tar, iter_unit, plan_units

from .conftest import encode, write_tar

IMG = encode(np.full((40, 40, 3), 90, np.uint8), "JPEG")


def test_directory_tree_sorted_with_sidecar_captions(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    for name in ["b/2.png", "a.JPG", "b/1.webp", ".hidden/x.jpg", ".dot.jpg", "notes.md", "c.jpeg"]:
        (tmp_path / name).write_bytes(IMG)
    (tmp_path / "a.txt").write_text("a caption")
    (tmp_path / "a.json").write_text(json.dumps({"url": "http://example.invalid/a.jpg"}))
    units = plan_units(str(tmp_path), images_per_shard=3)
    assert detect_kind(str(tmp_path)) == "dir"
    assert [len(u.paths) for u in units] == [3, 1] and [u.index for u in units] == [0, 1]
    names = [p.split(str(tmp_path))[1] for u in units for p in u.paths]
    assert names == ["/a.JPG", "/b/1.webp", "/b/2.png", "/c.jpeg"]
    first = next(iter_unit(units[0]))
    assert first.caption == "a caption" and first.meta["url"].endswith("a.jpg") and first.data == IMG
    assert first.ext == "jpg"


def test_file_list_relative_paths_captions_and_errors(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "x.png").write_bytes(IMG)
    listing = tmp_path / "list.txt"
    listing.write_text("# comment\nimgs/x.png\tx marks the spot\n\nimgs/missing.jpg\nhttps://example.invalid/y.jpg\n")
    assert detect_kind(str(listing)) == "list"
    (unit,) = plan_units(str(listing))
    items = list(iter_unit(unit))
    assert items[0].caption == "x marks the spot" and items[0].data == IMG and items[0].error is None
    assert items[1].error[0] == "missing_file"
    assert items[2].error[0] == "remote_url" and items[2].ref == {"url": "https://example.invalid/y.jpg"}


def test_img2dataset_shard_with_bad_members(tmp_path):
    shard = tmp_path / "00000.tar"
    meta = json.dumps({"url": "http://example.invalid/0.jpg", "caption": "from json"}).encode()
    write_tar(shard, [("000000000.jpg", IMG), ("000000000.txt", b"a dog"), ("000000000.json", meta),
                 ("000000001.json", b"{}"),  # a sample without an image
                 ("../evil.jpg", IMG), ("/etc/evil.jpg", IMG),  # never read
                 ("000000002.png", IMG), ("000000002.json", meta)])
    assert detect_kind(str(shard)) == "wds" and detect_kind(str(tmp_path)) == "wds"
    items = list(iter_tar(str(shard)))
    good = [i for i in items if i.error is None]
    bad = sorted(i.error[0] for i in items if i.error is not None)
    assert bad == ["no_image", "unsafe_member", "unsafe_member"]
    assert [(i.ref["key"], i.caption) for i in good] == [("000000000", "a dog"), ("000000002", "from json")]
    assert good[0].ref["url"] == "http://example.invalid/0.jpg" and good[0].data == IMG and good[1].ext == "png"


def test_truncated_shard_keeps_the_samples_before_the_cut(tmp_path):
    shard = tmp_path / "00000.tar"
    write_tar(shard, [(f"{i:09d}.jpg", IMG) for i in range(3)])
    data = shard.read_bytes()
    cut = data.index(IMG, 2 * 512 + len(IMG)) + 100  # inside the second image
    shard.write_bytes(data[:cut])
    items = list(iter_tar(str(shard)))
    assert [i.ref.get("key") for i in items if i.error is None] == ["000000000"]
    assert [i.error[0] for i in items if i.error is not None] == ["shard_error"]


def test_brace_patterns_and_validation(tmp_path):
    for i in range(3):
        write_tar(tmp_path / f"{i:05d}.tar", [(f"{i:09d}.jpg", IMG)])
    units = plan_units(str(tmp_path / "{00000..00002}.tar"))
    assert [u.paths[0].rsplit("/", 1)[1] for u in units] == ["00000.tar", "00001.tar", "00002.tar"]
    assert len(plan_units(str(tmp_path / "*.tar"))) == 3
    with pytest.raises(ValueError, match="source kind must be one of"):
        plan_units(str(tmp_path), kind="s3")
    with pytest.raises(ValueError, match="does not exist"):
        plan_units(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="not found"):
        plan_units(str(tmp_path / "{00000..00004}.tar"))
