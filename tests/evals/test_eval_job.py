"""`vistune eval` end to end: debug-model checkpoints -> eval shards -> eval.json + report.html."""

import base64
import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines import cli
from train.checkpoint import checkpoint_path, save_checkpoint
from train.model import build_generator


def _checkpoint(run_dir, step, seed, **model):
    torch.manual_seed(seed)
    net = build_generator({"size": "debug", **model})
    sd = net.state_dict()
    return save_checkpoint(checkpoint_path(run_dir, step),
                           {"step": step, "config": {"model": net.config_dict()}, "model": sd, "ema": sd})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    return {"a": _checkpoint(run, 10, 0), "b": _checkpoint(run, 20, 1),
            "base": _checkpoint(tmp_path_factory.mktemp("base"), 0, 2),
            "other": _checkpoint(tmp_path_factory.mktemp("other"), 5, 3, dim=32)}


@pytest.fixture(scope="module")
def eval_run(checkpoints, eval_shard, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_out")
    code = cli.main(["eval", f"checkpoint=[{checkpoints['a']},{checkpoints['b']}]", f"base={checkpoints['base']}",
                     f"data={eval_shard.parent}", f"out={out}", "steps=2", "loss_draws=1", "batch_size=4",
                     "examples_per_task=2"])
    assert code == 0
    return out


def test_eval_writes_json_with_every_task_and_reference_rows(eval_run):
    doc = json.loads((eval_run / "eval.json").read_text())  # strict JSON: NaN written as null
    assert doc["n_samples"] == 14 and len(doc["results"]) == 3
    first, second, base = doc["results"]
    assert [r["info"]["step"] for r in doc["results"]] == [10, 20, 0] and base["name"] == "base"
    assert set(first["metrics"]) == {"model", "oracle", "baseline", "pixel_baseline"}   # references computed once
    assert set(second["metrics"]) == {"model"}
    assert set(first["metrics"]["model"]) == {"depth", "normals", "semantic", "instance", "referring", "t2i", "edit"}
    assert first["info"]["prediction_region"] == "center_square"
    assert first["metrics"]["oracle"]["depth"]["all"]["abs_rel"] < 0.005
    # an untrained debug model: every depth prediction is scored or counted as a failure, never dropped
    d = first["metrics"]["model"]["depth"]["all"]
    assert d["n"] + d["failed"] == 2
    wr = doc["comparison"]["win_rates"]
    assert set(wr) == {"t2i", "edit"} and {"feature_distance", "flow_loss"} <= set(wr["t2i"])
    assert wr["edit"]["ssim"]["n"] == 2


def test_report_embeds_plots(eval_run):
    text = (eval_run / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) >= 2 * 7 + 2  # per task: bars + grid (+ histograms); step chart; win rates
    for b64 in images:
        img = Image.open(io.BytesIO(base64.b64decode(b64)))
        assert img.size[0] > 100 and np.asarray(img.convert("L")).std() > 5  # a picture, not a blank
    for heading in ("Metric depth", "Metrics vs training step", "Generation preserved", "Failures"):
        assert heading in text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(eval_run, tmp_path):
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,2400",
                    f"--screenshot={shot}", (eval_run / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    pix = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    # plots are colored: a page of plain text and tables would be grayscale
    assert (pix.max(axis=2) - pix.min(axis=2) > 60).mean() > 0.01


def test_checkpoint_of_another_config_is_a_clear_error(checkpoints, eval_shard, tmp_path, capsys):
    code = cli.main(["eval", f"checkpoint=[{checkpoints['a']},{checkpoints['other']}]", f"data={eval_shard}",
                     f"out={tmp_path}", "steps=1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "another model config" in err and "dim" in err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert cli.main(["eval", f"checkpoint={junk}", f"data={eval_shard}", f"out={tmp_path}"]) == 2
    assert "is not a checkpoint: not a torch.save archive" in capsys.readouterr().err


def test_config_errors_before_work(eval_shard, capsys):
    assert cli.main(["eval", f"data={eval_shard}"]) == 2
    assert cli.main(["eval", "checkpoint=x.pt", "data=/nonexistent/dir"]) == 2
    assert cli.main(["eval", "checkpoint=x.pt", f"data={eval_shard}", "depth_protocol=nyu"]) == 2
    assert cli.main(["eval", "checkpoint=x.pt", f"data={eval_shard}", "tasks=[denoise]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "at least one checkpoint" in err[0]
    assert "matches no shard" in err[1]
    assert "unknown depth protocol 'nyu'" in err[2]
    assert "['denoise'] are not scored tasks" in err[3]


def test_vision_tasks_can_sample_with_their_own_steps_and_guidance(samples):
    """A model trained with p_t_one answers vision tasks in one step; generation keeps its sampler."""
    from evals.job import EvalJobConfig, predict_by_group

    calls = []

    def predictor(model, batch, steps, guidance, seed, batch_size):
        calls.append((sorted({s.task for s in batch}), steps, guidance))
        return [s.target for s in batch]

    conf = EvalJobConfig(checkpoint=("c.pt",), data=("d",), steps=20, guidance=3.0, vision_steps=1, vision_guidance=1.0)
    preds = predict_by_group(predictor, None, samples, conf)
    assert [p.tobytes() for p in preds] == [s.target.tobytes() for s in samples]  # each answer at its own sample
    assert sorted(calls) == [(["depth", "instance", "normals", "referring", "semantic"], 1, 1.0), (["edit", "t2i"], 20, 3.0)]
    calls.clear()
    predict_by_group(predictor, None, samples, EvalJobConfig(checkpoint=("c.pt",), data=("d",)))
    assert len(calls) == 1 and calls[0][1:] == (20, 3.0)  # unset: one call, as before


def test_sampling_is_chosen_per_vision_task_on_the_val_split_never_the_eval_split(tmp_path):
    """A stand-in predictor answers perfectly only with the candidate that is right for each task:
    the choice finds it from val samples, and eval-split samples are never looked at while choosing."""
    import dataclasses

    from evals.job import EvalJobConfig, choose_sampling
    from evals.reference import Baseline
    from tests.evals.samples import eval_samples, write_shard

    samples = eval_samples(2)
    val = [dataclasses.replace(s, key=s.key + "v", meta={**s.meta, "split": "val"}) for s in samples]
    write_shard(samples + val, tmp_path)
    right = {"depth": (1, 1.0), "normals": (4, 1.0), "semantic": (1, 3.0)}
    seen = []

    from evals.scoring import center_square

    def predictor(model, batch, steps, guidance, seed, batch_size):  # answers the center square, as train.predict
        seen.extend(s.split for s in batch)
        return [(s.target if right.get(s.task, (1, 1.0)) == (steps, guidance) else np.zeros_like(s.target))
                [center_square(s.target.shape)] for s in batch]

    conf = EvalJobConfig(checkpoint=("c.pt",), data=(str(tmp_path),), select_steps=(1, 4), select_guidance=(1.0, 3.0))
    chosen = choose_sampling(conf, None, predictor, Baseline.fit(samples, origin="test"), log=lambda _: None)
    assert {t: chosen[t] for t in right} == right
    assert set(seen) == {"val"}
    no_val = EvalJobConfig(checkpoint=("c.pt",), data=(str(tmp_path / "none"),), select_steps=(1, 4))
    (tmp_path / "none").mkdir()
    write_shard(samples, tmp_path / "none")
    assert choose_sampling(no_val, None, predictor, Baseline.fit(samples, origin="test"), log=lambda _: None) == {}


def test_depth_sampling_is_not_chosen_by_trading_delta1_for_abs_rel():
    from evals.job import SELECT_METRICS, best_candidate

    metrics = SELECT_METRICS["depth"]
    # (abs_rel, delta1): a hair better on AbsRel but far worse on delta1 loses; a candidate better on both wins
    options = [([0.84, 0.219], (1, 1.0)), ([0.83, 0.141], (4, 3.0)), ([0.86, 0.150], (10, 3.0))]
    assert best_candidate(options, metrics) == (1, 1.0)
    assert best_candidate(options + [([0.80, 0.25], (4, 1.0))], metrics) == (4, 1.0)
    # one metric: the headline alone, as for every other task
    assert best_candidate([([40.0], (1, 1.0)), ([39.0], (4, 1.0))], [("mean_deg", True)]) == (4, 1.0)
