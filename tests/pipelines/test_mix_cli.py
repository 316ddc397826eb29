"""`vistune mix`, `vistune mix stats` and `vistune preview` on encoded fixture shards."""

import json
from dataclasses import asdict

import pytest

from encode.tasks import EncodeSettings
from pipelines.cli import main
from pipelines.encode_job import EncodeWorker
from tests.encode.raw_fixtures import write_annotate_shard, write_render_shard


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    write_render_shard(root / "raw", 0, range(6), 24, 32)
    write_annotate_shard(root / "raw", 0, range(10, 16), height=24, width=32)
    worker = EncodeWorker(asdict(EncodeSettings(size=16, eval_fraction=0.0)), "raise")
    for tar in sorted((root / "raw").glob("*.tar")):
        worker.encode_shard(str(root / "out"), str(tar))
    return root


def test_mix_resolve_and_stats(encoded, capsys):
    out = encoded / "mix"
    base = [f"roots=[{encoded / 'out'}]", f"out={out}", "mixture.allow_empty=true"]
    assert main(["mix", *base]) == 0
    text = capsys.readouterr().out
    record = json.loads((out / "mixture.json").read_text())
    assert [s["name"] for s in record["sources"]] == ["t2i", "restore", "depth", "normals", "semantic", "instance",
                                                     "referring"]  # edit has no samples: dropped
    assert "t2i" in text and record["fingerprint"] in text
    assert main(["mix", "stats", *base, "stats.n=2000", "stats.num_workers=2", "stats.read=true",
                 "stats.read_n=50"]) == 0
    text = capsys.readouterr().out
    assert "realized" in text and "samples/s" in text
    t2i_line = next(line for line in text.splitlines() if line.strip().startswith("t2i"))
    weight, realized = map(float, t2i_line.split()[1:3])
    assert abs(weight - realized) < 0.01


def test_mix_errors_are_one_line(encoded, capsys):
    assert main(["mix", f"roots=[{encoded / 'out'}]", f"out={encoded / 'm2'}"]) == 2  # edit source is empty
    assert "allow_empty" in capsys.readouterr().err
    assert main(["mix", "frobnicate"]) == 2


def test_preview_writes_sheets_and_html(encoded):
    out = encoded / "preview"
    assert main(["preview", f"roots=[{encoded / 'out'}]", f"out={out}", "per_task=3"]) == 0
    html = (out / "index.html").read_text()
    for task in ("depth", "normals", "semantic", "instance", "referring", "t2i", "denoise"):
        assert (out / f"{task}.png").stat().st_size > 1000 and f"{task}.png" in html
