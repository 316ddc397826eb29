"""The annotate job on a real embedded Ray cluster with the real U^2-Net-p model: complete shards with
stats, skips counted, captions carried, rerun idempotent, restartable."""

import io
import json
import tarfile

import pytest
import webdataset as wds
from PIL import Image

from formats import raw_label as raw
from formats.shards import read_rows
from pipelines import cli
from annotate.shard import AnnotateJobConfig
from pipelines.annotate_job import config_from_dict, run_annotate
from tests.reliability.procs import run_killing

ray = pytest.importorskip("ray")
skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _jpeg(rgb, quality=90):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    photos = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.stereo_motorcycle()[0]]
    for i, rgb in enumerate(photos):
        (root / f"{i}.jpg").write_bytes(_jpeg(rgb[::2, ::2]))  # half size: fast
    (root / "0.txt").write_text("an astronaut")
    (root / "9_broken.jpg").write_bytes(_jpeg(photos[0])[:3000])
    (root / "9_page.png").write_bytes(b"<html>moved</html>")
    return root


def _cfg(out, source, **kw):
    return config_from_dict({"out": str(out), "source": str(source), "images_per_shard": 3, "batch_size": 2,
                             "decode": {"size": 256}, **kw})


def _samples(out):
    return [s for tar in sorted(out.glob("*.tar")) for s in wds.WebDataset(str(tar), shardshuffle=False,
                                                                              empty_check=False)]


def test_directory_job_writes_shards_stats_and_reruns_idempotently(ray_local, photo_dir, tmp_path):
    out = tmp_path / "out"
    cfg = _cfg(out, photo_dir)
    summary = run_annotate(cfg, progress=False)
    assert summary["shards"] == 2 and summary["annotated_shards"] == 2
    assert summary["items"] == 6 and summary["written"] == 4
    assert summary["skipped"] == {"not_an_image": 1, "truncated": 1}
    assert summary["kept"] >= 4 and summary["referring"] >= 4
    samples = _samples(out)
    assert [s["__key__"] for s in samples] == ["img000000_000000", "img000000_000001", "img000000_000002",
                                               "img000001_000000"]
    rows = [r for p in sorted(out.glob("*.parquet")) for r in read_rows(p)]
    assert [r["key"] for r in rows] == [s["__key__"] for s in samples]
    assert all(r["labeler"] == "u2netp" and r["n_instances"] >= 1 for r in rows)
    first = raw.from_sample(samples[0])
    assert first.caption == "an astronaut" and first.rgb.shape[:2] == first.instance.shape == (256, 256)
    assert first.meta["source"]["path"].endswith("0.jpg") and first.meta["width"] == 256
    stats = [json.loads((out / f"annotate-00000{i}.stats.json").read_text()) for i in range(2)]
    assert [s["written"] for s in stats] == [3, 1] and stats[1]["skipped"] == {"not_an_image": 1, "truncated": 1}
    assert json.loads((out / "annotate-summary.json").read_text())["written"] == 4

    mtimes = {p: p.stat().st_mtime_ns for p in out.iterdir() if "summary" not in p.name}
    again = run_annotate(cfg, progress=False)
    assert again["annotated_shards"] == 0 and again["skipped_shards"] == 2
    assert again["written"] == 4 and again["skipped"] == summary["skipped"]  # totals from the stats files
    assert mtimes == {p: p.stat().st_mtime_ns for p in out.iterdir() if "summary" not in p.name}


def test_img2dataset_shards_carry_captions_and_urls(ray_local, tmp_path):
    src = tmp_path / "web"
    src.mkdir()
    for shard in range(2):
        with tarfile.open(src / f"{shard:05d}.tar", "w") as tar:
            for i in range(2):
                key = f"{shard:05d}{i:04d}"
                rgb = skdata.coffee()[::4, ::4] if i == 0 else skdata.chelsea()[::3, ::3]
                meta = json.dumps({"url": f"http://example.invalid/{key}.jpg", "key": key}).encode()
                for ext, data in (("jpg", _jpeg(rgb)), ("txt", f"caption {key}".encode()), ("json", meta)):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    out = tmp_path / "out"
    summary = run_annotate(_cfg(out, src), progress=False)
    assert summary["shards"] == 2 and summary["written"] == 4 and summary["skipped"] == {}
    samples = _samples(out)
    label = raw.from_sample(samples[3])
    assert label.caption == "caption 000010001" and samples[3]["txt"] == b"caption 000010001"
    assert label.meta["source"] == {"shard": str(src / "00001.tar"), "key": "000010001",
                                    "url": "http://example.invalid/000010001.jpg"}
    assert "rgb.jpg" in samples[0]  # small JPEG, not resized: its own bytes
    rows = read_rows(out / "annotate-000001.parquet")
    assert [r["source_url"] for r in rows] == ["http://example.invalid/000010000.jpg",
                                               "http://example.invalid/000010001.jpg"]


def test_cli_runs_the_stage_and_reports_config_errors(ray_local, photo_dir, tmp_path, capsys):
    assert cli.main(["annotate"]) == 2
    assert "source is required" in capsys.readouterr().err
    assert cli.main(["annotate", f"source={tmp_path / 'nope'}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["annotate", f"source={photo_dir}", "labeler=clip"]) == 2
    assert "unknown labeler 'clip'" in capsys.readouterr().err
    assert cli.main(["annotate", f"source={photo_dir}", "decode.resize=crop"]) == 2
    assert "resize must be one of" in capsys.readouterr().err
    assert cli.main(["annotate", f"source={photo_dir}", "+labelers.u2netp.colour=red"]) == 2
    assert "labeler 'u2netp': bad parameters" in capsys.readouterr().err
    assert cli.main(["annotate", f"source={photo_dir}", "labeler=sam"]) == 2  # no weights configured
    assert "needs labelers.sam.weights" in capsys.readouterr().err
    assert cli.main(["annotate", "source=/x", "--cfg", "job"]) == 0
    assert "threads: 1" in capsys.readouterr().out  # labelers.u2netp.threads follows cpus_per_worker
    out = tmp_path / "cli"
    assert cli.main(["annotate", f"source={photo_dir}", f"out={out}", "images_per_shard=10", "decode.size=128"]) == 0
    assert "annotate: 4 of 6 images labeled" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["annotate-000000.parquet", "annotate-000000.stats.json",
                                                     "annotate-000000.tar", "annotate-summary.json"]


def test_config_validation_names_the_bad_value(tmp_path):
    with pytest.raises(ValueError, match="images_per_shard must be >= 1, got 0"):
        AnnotateJobConfig(out=str(tmp_path), source=str(tmp_path), images_per_shard=0)
    with pytest.raises(ValueError, match="source_kind must be one of"):
        AnnotateJobConfig(out=str(tmp_path), source=str(tmp_path), source_kind="http")
    with pytest.raises(ValueError, match=r"unknown annotate\.referring keys"):  # a ConfigError
        config_from_dict({"out": "o", "source": str(tmp_path), "referring": {"count": 3}})
    with pytest.raises(ValueError, match="u2netp weights .*/none.onnx' not found"):
        config_from_dict({"out": "o", "source": str(tmp_path), "labelers": {"u2netp": {"weights": "/none.onnx"}}})
    cfg = config_from_dict({"out": "o", "source": str(tmp_path), "labelers": {"sam": {"weights": "/m"},
                                                                           "u2netp": {"threads": 4}}})
    assert cfg.labeler_params == {"threads": 4}  # only the chosen backend's block


@pytest.mark.slow
def test_killed_worker_mid_shard_is_redone_exactly_once(ray_local, photo_dir, tmp_path):
    out = tmp_path / "out"
    cfg = _cfg(out, photo_dir, workers=1, images_per_shard=2, batch_size=1)
    # SIGKILL this test's own AnnotateWorker (not other sessions' workers) while it writes a shard
    result, hit = run_killing(lambda: run_annotate(cfg, progress=False), out, "AnnotateWorker", kills=1)
    assert len(hit) >= 1, "the test never caught a worker mid-shard"
    assert result["written"] == 4 and result["shards"] == 3
    keys = [s["__key__"] for s in _samples(out)]
    assert keys == ["img000000_000000", "img000000_000001", "img000001_000000", "img000001_000001"]
    assert not list(out.glob(".*.tmp"))


def test_a_torch_labeler_worker_sizes_torch_threads_by_thread_count(monkeypatch):
    """AnnotateWorker sets torch's threads through formats.cpus.thread_count (issue 19: 11):
    `cpus_per_worker` when given, else the launcher's OMP_NUM_THREADS, never the machine's cores."""
    torch = pytest.importorskip("torch")
    from pipelines.annotate_job import AnnotateWorker

    before = torch.get_num_threads()
    try:
        AnnotateWorker("u2netp", {}, 2)
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        AnnotateWorker("u2netp", {}, 0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
