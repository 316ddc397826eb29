"""`vistune run`: presets build every stage's config; the whole pipeline runs, reruns for free, and
redoes only what is missing."""

import json
from pathlib import Path

import pytest

from pipelines import encode_job, eval_job, render_job, train_job
from pipelines.cli import compose, main
from pipelines.run_job import STAGES, check_config, run
from tests.encode.raw_fixtures import write_web_images


def _resolved(overrides):
    from omegaconf import OmegaConf

    return OmegaConf.to_container(compose("run", overrides), resolve=True)


@pytest.mark.parametrize("preset", ["smoke", "small", "cluster"])
def test_presets_build_every_stage_config(preset):
    cfg = _resolved([f"preset={preset}"])
    assert check_config(cfg) == list(STAGES)
    render_job.config_from_dict(cfg["render"])
    encode_job.config_from_dict({**cfg["encode"], "inputs": ["x"]})
    for stage in ("pretrain", "tune"):
        job = train_job.config_from_dict({**cfg[stage], "init_from": None})
        assert job.mixture is not None and job.mixture["roots"] == [cfg["encode"]["out"]]
    assert set(cfg["tune"]["mixture"]["sources"]) > set(cfg["pretrain"]["mixture"]["sources"])  # vision added
    eval_job.config_from_dict({**cfg["eval"], "checkpoint": ["a.pt"], "base": None})
    assert cfg["encode"]["inputs"] == [cfg["render"]["out"], cfg["annotate"]["out"]]
    # the model trains at the size encode writes: the size preset's own resolution for every preset
    from train.model.generator import SIZES

    for stage in ("pretrain", "tune"):
        model = cfg[stage]["model"]
        assert model["resolution"] == cfg["encode"]["settings"]["size"] == SIZES[model["size"]]["resolution"]


def test_unknown_stage_is_a_one_line_error(capsys):
    assert main(["run", "stages=[render,frobnicate]"]) == 2
    err = capsys.readouterr().err
    assert "frobnicate" in err and "allowed" in err and len(err.strip().splitlines()) == 1


def _tiny(out, images):
    return _resolved([
        f"out={out}", f"annotate.source={images}", "ray.num_cpus=2",
        "render.n_scenes=4", "render.scenes_per_shard=2", "render.width=32", "render.height=32",
        "render.render.samples=1", "render.render.denoise=false", "render.edit_fraction=0.5",
        "annotate.images_per_shard=2", "encode.settings.size=16", "encode.settings.eval_fraction=0.5",
        "encode.settings.split_salt=b",  # render scene 1 held out, 0, 2, 3 trained: both splits non-empty
        "tune.mixture.allow_empty=true", "pretrain.mixture.allow_empty=true",
        "pretrain.train.steps=4", "tune.train.steps=4", "pretrain.train.ckpt_every=2", "tune.train.ckpt_every=2",
        "pretrain.train.batch_size=2", "tune.train.batch_size=2", "pretrain.data.num_workers=0",
        "tune.data.num_workers=0", "pretrain.train.progress=false", "tune.train.progress=false",
        "pretrain.train.tensorboard=false", "tune.train.tensorboard=false",
        "eval.steps=2", "eval.max_samples=12", "eval.loss_draws=1", "eval.examples_per_task=1",
    ])


@pytest.mark.slow
def test_run_end_to_end_then_rerun_redoes_only_missing(tmp_path):
    images = write_web_images(tmp_path / "web")
    cfg = _tiny(tmp_path / "run", images)
    logs = []
    first = run(cfg, log=logs.append)
    assert list(first["stages"]) == list(STAGES)
    assert first["stages"]["render"]["new"] == 4
    assert first["stages"]["pretrain"]["step"] == 4 and first["stages"]["tune"]["step"] == 4
    assert Path(first["report"]).exists() and first["metrics"]
    assert json.loads((tmp_path / "run" / "run_summary.json").read_text())["stages"]["eval"]["report"]

    # the whole job again: nothing is redone
    again = run(cfg, log=logs.append)
    assert again["stages"]["render"]["new"] == 0
    assert again["stages"]["encode"]["written"] == {}
    assert again["stages"]["tune"]["step"] == 4 and again["stages"]["eval"].get("skipped")

    # a crash that lost one encoded input: only that one is redone
    enc = tmp_path / "run" / "encode"
    (enc / "_done" / "render-000001.json").unlink()
    for task_dir in enc.iterdir():
        for f in task_dir.glob("render-000001.*"):
            f.unlink()
    third = run({**cfg, "stages": ["render", "annotate", "encode"]}, log=logs.append)
    assert "1 input shards encoded" in third["stages"]["encode"]["summary"]


def test_sample_photos_list_resolves_from_a_relative_out_dir(tmp_path, monkeypatch):
    """The smoke run's web images: a captioned file list whose paths annotate can open."""
    from annotate.sources import read_file_list
    from pipelines.run_job import SAMPLE_PHOTOS, sample_photos

    monkeypatch.chdir(tmp_path)
    listing = sample_photos(Path("outputs/run/web"))  # relative, as `make run` uses it
    items = read_file_list(str(listing))
    assert len(items) == len(SAMPLE_PHOTOS) and all(Path(p).is_file() for p, _ in items)
    assert all(caption for _, caption in items)


def test_eval_scores_the_newest_tune_checkpoint_or_every_kept_one(tmp_path):
    """`eval.checkpoint: all` scores every checkpoint the tune stage kept, oldest first (the learning
    curve of the report); `auto` the newest; the pretrain's newest is the base either way."""
    from pipelines.run_job import _fill_eval

    cfg = {"tune": {"out": str(tmp_path / "tune")}, "pretrain": {"out": str(tmp_path / "pre")}}
    for out, steps in (("tune", (2000, 1000, 3000)), ("pre", (500,))):
        (tmp_path / out / "checkpoints").mkdir(parents=True)
        for step in steps:
            (tmp_path / out / "checkpoints" / f"step-{step:08d}.pt").write_bytes(b"")
    every = _fill_eval(cfg, {"checkpoint": "all", "base": "auto"}, dry=False)
    assert [Path(p).name for p in every["checkpoint"]] == [f"step-0000{s}.pt" for s in (1000, 2000, 3000)]
    assert Path(every["base"]).name == "step-00000500.pt"
    newest = _fill_eval(cfg, {"checkpoint": "auto", "base": None}, dry=False)
    assert [Path(p).name for p in newest["checkpoint"]] == ["step-00003000.pt"]
