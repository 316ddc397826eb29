"""Annotate's counts are honest (issue 19): "N of M images" counts images, not the caption files
that an img2dataset tar holds beside them, even when those are rejected."""

import json

from annotate.imageio import DecodePolicy
from annotate.process import AnnotateSettings
from annotate.shard import AnnotateJobConfig, add_stats, annotate_shard, new_totals, totals_dict
from annotate.sources import plan_units

from .conftest import encode, write_tar


def test_rejected_caption_files_in_a_tar_are_not_counted_as_images(tmp_path, photos, u2netp):
    """Defect 12: a tar with 3 images (one unsafe) and 3 rejected caption/metadata files said "2 of 6 images"."""
    from pipelines.annotate_job import describe

    jpg = encode(photos["chelsea"][::4, ::4], "JPEG", quality=90)
    shard = tmp_path / "src" / "00000.tar"
    shard.parent.mkdir()
    write_tar(shard, [("000000000.jpg", jpg), ("000000000.txt", b"a cat"),
                 ("000000001.png", encode(photos["coffee"][::4, ::4], "PNG")), ("000000001.txt", b"a coffee"),
                 ("../evil.txt", b"a caption outside the shard"), ("/tmp/evil.json", b"{}"),  # unsafe, not images
                 ("000000002.txt", b"a caption whose image is missing"),  # no image
                 ("/tmp/evil.jpg", jpg)])  # an unsafe image: an image, rejected
    cfg = AnnotateJobConfig(out=str(tmp_path / "out"), source=str(shard),
                            settings=AnnotateSettings(decode=DecodePolicy(size=64), batch_size=2))
    (unit,) = plan_units(cfg.source)
    stats = annotate_shard(u2netp, cfg, unit)
    assert stats["items"] == 3 and stats["written"] == 2 and stats["skipped"] == {"unsafe_member": 1}
    assert stats["ignored"] == {"no_image": 1, "unsafe_member": 2}
    assert json.loads(cfg.stats_path(0).read_text())["ignored"] == stats["ignored"]

    total = new_totals()
    add_stats(total, stats)
    summary = {"shards": 1, "skipped_shards": 0, "wall_s": 0.0, "out": cfg.out, **totals_dict(total)}
    line = describe(summary)
    assert line.startswith("annotate: 2 of 3 images labeled")
    assert "skipped: unsafe_member 1; rejected tar content that is not an image: no_image 1, unsafe_member 2" in line
