import json
import time

import numpy as np
import pytest
import torch

from encode import codecs
from tests.train.fixtures import write_task_shards
from train import checkpoint as ckpt
from train.data import BatchError, ShardListStream
from train.loop import NonFiniteLossError, OptimConfig, TrainConfig, lr_factor, train
from train.model import GeneratorConfig
from train.predict import predict

DEBUG = GeneratorConfig(size="debug")


def _cfg(out, **kw):
    base = dict(out=str(out), steps=4, batch_size=4, log_every=1, ckpt_every=2, progress=False,
                optim=OptimConfig(lr=1e-3, warmup_steps=2))
    return TrainConfig(**{**base, **kw})


def test_one_step_on_a_real_shard_stream_writes_loadable_checkpoint_and_metrics(task_shards, tmp_path):
    result = train(_cfg(tmp_path, steps=1, num_workers=1), DEBUG, ShardListStream([str(p) for p in task_shards]))
    assert result.step == 1 and np.isfinite(result.losses[1])
    state = torch.load(result.checkpoint, weights_only=True)  # the acceptance criterion, verbatim
    assert state["step"] == 1 and set(state) >= {"model", "ema", "optimizer", "scheduler", "ranks", "config"}
    assert state["ranks"][0]["data"]["positions"]["0"]["index"] >= 4
    rec = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert rec["step"] == 1 and rec["samples_per_s"] > 0 and "loss/depth" in rec and "loss/t2i" in rec
    assert list((tmp_path / "tb").glob("events.*"))  # TensorBoard
    model, config = ckpt.load_generator(result.checkpoint)
    assert config["model"]["resolution"] == 32 and not model.training
    assert not list((tmp_path / "checkpoints").glob(".*tmp"))


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    f = [lr_factor(s, 10, 100, 0.1) for s in range(101)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0) and f[100] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(f[9:], f[10:]))


@pytest.mark.slow
def test_overfits_a_tiny_fixed_set_and_decodes_close_to_truth(tmp_path):
    """4 samples (2 depth planes, 2 text-to-image), 250 steps: the loss falls >= 30x (measured 137x)
    and 10-step samples of the depth targets decode to AbsRel <= 6% (measured 1.9% and 2.7%).
    Text-to-image targets are not checked: two prompts that differ in one color word are not yet
    told apart after 250 steps (pixel MAE 24 and 32 of 255)."""
    from tests.train.fixtures import depth_sample, t2i_sample

    tars = write_task_shards(tmp_path / "shards", n_shards=1, per_shard=4)
    cfg = _cfg(tmp_path / "run", steps=250, ckpt_every=250, log_every=50, ema_decay=0.0,
               optim=OptimConfig(lr=3e-3, warmup_steps=20, min_lr_ratio=0.05, weight_decay=0.0))
    model_cfg = GeneratorConfig(size="debug", p_drop_text=0.0, p_drop_image=0.0, p_drop_both=0.0)
    result = train(cfg, model_cfg, ShardListStream([str(tars[0])]))
    losses = np.array([result.losses[s] for s in sorted(result.losses)])
    factor = losses[:10].mean() / losses[-20:].mean()
    assert factor >= 30, f"loss fell only {factor:.1f}x"
    model, _ = ckpt.load_generator(result.checkpoint)
    samples = [(depth_sample if i % 2 == 0 else t2i_sample)(f"s0i{i}", 32, i) for i in range(4)]
    out = predict(model, samples, steps=10, guidance=1.0, seed=0)
    codec = codecs.get("depth")
    for s, rgb in zip(samples, out):
        if s.task == "depth":
            rel = np.abs(codec.decode(rgb) - s.raw["depth"]) / s.raw["depth"]
            assert np.mean(rel) <= 0.06, f"{s.key}: depth AbsRel {np.mean(rel):.3f}"


@pytest.mark.parametrize("num_workers,grad_accum", [(0, 1), (2, 2)])
def test_kill_and_resume_gives_the_same_losses(task_shards, tmp_path, num_workers, grad_accum):
    factory = ShardListStream([str(p) for p in task_shards])
    kw = dict(steps=8, ckpt_every=3, num_workers=num_workers, grad_accum=grad_accum, batch_size=3)
    full = train(_cfg(tmp_path / "full", **kw), DEBUG, factory)

    def kill_at_5(stats):
        if stats["step"] == 5:  # after step 5's batches were consumed; the newest checkpoint is step 3
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path / "cut", **kw), DEBUG, factory, on_step=kill_at_5)
    resumed = train(_cfg(tmp_path / "cut", **kw), DEBUG, factory)
    assert resumed.resumed_from.name == "step-00000003.pt"
    assert sorted(resumed.losses) == [4, 5, 6, 7, 8]
    for step in resumed.losses:
        assert resumed.losses[step] == pytest.approx(full.losses[step], rel=1e-6, abs=1e-7)
    a, b = (torch.load(r.checkpoint, weights_only=True) for r in (full, resumed))
    for key in ("model", "ema"):
        for name in a[key]:
            torch.testing.assert_close(a[key][name], b[key][name], rtol=1e-5, atol=1e-6)
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))  # the killed run's records after step 3 were replaced


def test_nan_loss_stops_with_step_and_keys_and_keeps_last_good_checkpoint(task_shards, tmp_path, monkeypatch):
    from train.model.generator import FlowDiTGenerator

    forward = FlowDiTGenerator.forward
    calls = {"n": 0}

    def nan_on_third(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        calls["n"] += 1
        return {**out, "loss": out["loss"] * float("nan")} if calls["n"] == 3 else out

    monkeypatch.setattr(FlowDiTGenerator, "forward", nan_on_third)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan on this rank at step 3 \(rank 0\) on batch keys \['s"
                                                 r".*last good checkpoint: .*step-00000002.pt") as err:
        train(_cfg(tmp_path, steps=6), DEBUG, ShardListStream([str(p) for p in task_shards]))
    assert "stopped before the optimizer step" in str(err.value)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-00000002.pt"]
    model, _ = ckpt.load_generator(ckpt.latest_checkpoint(tmp_path))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_mismatched_resolution_is_a_clear_error_in_the_loop(tmp_path):
    tars = write_task_shards(tmp_path / "shards", n_shards=1, per_shard=4, size=48)
    with pytest.raises(BatchError, match="is 48x48, the model needs 32x32"):
        train(_cfg(tmp_path / "run", steps=1, resize="error"), DEBUG, ShardListStream([str(tars[0])]))


def test_init_from_starts_from_pretrained_weights_and_rejects_other_configs(task_shards, tmp_path):
    factory = ShardListStream([str(p) for p in task_shards])
    pre = train(_cfg(tmp_path / "pre", steps=2, tasks=("t2i",)), DEBUG, factory)
    pre_state = torch.load(pre.checkpoint, weights_only=True)
    tuned = train(_cfg(tmp_path / "tune", steps=1, init_from=str(pre.checkpoint), ema_decay=0.0,
                       optim=OptimConfig(lr=1e-12, warmup_steps=0)), DEBUG, factory)
    tuned_state = torch.load(tuned.checkpoint, weights_only=True)
    assert tuned_state["step"] == 1  # fresh step count and optimizer
    for name, w in pre_state["ema"].items():  # lr ~ 0: still the pre-trained EMA weights
        torch.testing.assert_close(tuned_state["model"][name], w, rtol=1e-6, atol=1e-6)
    with pytest.raises(ckpt.CheckpointError, match="does not fit this model .* shape mismatches"):
        train(_cfg(tmp_path / "bad", steps=1, init_from=str(pre.checkpoint)),
              GeneratorConfig(size="debug", dim=96), factory)


def test_load_generator_errors(tmp_path, task_shards):
    with pytest.raises(ckpt.CheckpointError, match="does not exist"):
        ckpt.load_generator(tmp_path / "nope.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(ckpt.CheckpointError, match="is not a vistune training checkpoint"):
        ckpt.load_generator(tmp_path / "foreign.pt")
    result = train(_cfg(tmp_path / "run", steps=1), DEBUG, ShardListStream([str(task_shards[0])]))
    state = torch.load(result.checkpoint, weights_only=True)
    state["config"]["model"]["depth"] = 3  # a checkpoint whose config says another architecture
    ckpt.save_checkpoint(tmp_path / "other.pt", {k: v for k, v in state.items() if k not in ("format", "version")})
    with pytest.raises(ckpt.CheckpointError, match="does not fit this model .* 0 missing keys|missing keys"):
        ckpt.load_generator(tmp_path / "other.pt")


def test_predict_is_seeded_batch_independent_and_at_model_resolution(task_shards, tmp_path):
    from tests.train.fixtures import depth_sample, t2i_sample

    result = train(_cfg(tmp_path, steps=2), DEBUG, ShardListStream([str(task_shards[0])]))
    model, _ = ckpt.load_generator(result.checkpoint, ema=False)
    for p in model.dit.proj_out.parameters():  # 2 steps barely move the zero-initialized head
        torch.nn.init.normal_(p, std=0.2)
    samples = [depth_sample("a", 48, 0), t2i_sample("b", 32, 1), depth_sample("c", 32, 2)]
    a = predict(model, samples, steps=2, guidance=2.0, seed=7, batch_size=3)
    b = predict(model, samples, steps=2, guidance=2.0, seed=7, batch_size=1)
    c = predict(model, samples, steps=2, guidance=2.0, seed=8)
    assert [x.shape for x in a] == [(32, 32, 3)] * 3 and all(x.dtype == np.uint8 for x in a)
    for x, y in zip(a, b):
        assert np.abs(x.astype(int) - y).max() <= 1  # batched matmuls may round differently
    assert any(np.abs(x.astype(int) - y).mean() > 1 for x, y in zip(a, c))


@pytest.mark.slow
def test_sigkilled_vistune_train_resumes_with_the_same_losses(task_shards, tmp_path):
    """A real `kill -9` of `vistune train` at an arbitrary point (maybe mid-checkpoint-write)."""
    import os
    import signal
    import subprocess
    import sys

    args = [f"data.shards=[{','.join(str(p) for p in task_shards)}]", "train.steps=60", "train.ckpt_every=5",
            "train.log_every=1", "train.batch_size=2", "train.progress=false", "data.num_workers=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = [sys.executable, "-m", "pipelines.cli", "train"]
    subprocess.run(run + [f"out={tmp_path / 'ref'}", *args], env=env, check=True, capture_output=True)
    proc = subprocess.Popen(run + [f"out={tmp_path / 'cut'}", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (tmp_path / "cut" / "checkpoints" / "step-00000010.pt").exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    res = subprocess.run(run + [f"out={tmp_path / 'cut'}", *args], env=env, check=True, capture_output=True, text=True)
    assert "resumed from" in res.stdout and "trained to step 60" in res.stdout

    def records(name):
        return [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]

    ref, cut = records("ref"), records("cut")
    assert [r["step"] for r in cut] == list(range(1, 61))
    for a, b in zip(ref, cut):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6, abs=1e-7), a["step"]
