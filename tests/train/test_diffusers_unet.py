"""model.kind=diffusers, UNet family: tiny random-weight StableDiffusion / InstructPix2Pix pipelines
of the real diffusers classes, saved with save_pretrained and loaded offline like real ones."""

import shutil

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("peft")

from tests.train.diffusers_fixtures import check_one_step_gradients, write_sd_pipeline  # noqa: E402
from train import checkpoint as ckpt  # noqa: E402
from train.data import ShardListStream  # noqa: E402
from train.loop import OptimConfig, TrainConfig, train  # noqa: E402
from train.model import GeneratorConfig  # noqa: E402
from train.model.diffusers_base import BaseModelError, ModelDirError  # noqa: E402


@pytest.fixture(scope="module")
def sd_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd")
    return {"sd": write_sd_pipeline(root / "sd"), "ip2p": write_sd_pipeline(root / "ip2p", instruct_pix2pix=True),
            "sd_v": write_sd_pipeline(root / "sd_v", prediction_type="v_prediction"),
            "other": write_sd_pipeline(root / "other", seed=1)}


def build(path, **kw):
    return GeneratorConfig(kind="diffusers", path=str(path), **kw).resolved().build()


def base_unet(path):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(path, subfolder="unet", local_files_only=True).eval()


def batch(b=4, r=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(b, 3, r, r, generator=g) * 2 - 1
    image = torch.rand(b, 3, r, r, generator=g) * 2 - 1
    has = torch.tensor([True, False] * (b // 2))
    image[~has] = 0
    return target, image, has, [f"a red square on a blue background {i}" for i in range(b)]


def test_missing_or_incomplete_directory_stops_naming_what_to_download(sd_dirs, tmp_path):
    with pytest.raises(ModelDirError, match="not a directory.*download"):
        build(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(sd_dirs["sd"], broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    shutil.rmtree(broken / "tokenizer")
    with pytest.raises(ModelDirError, match=r"incomplete: unet/ has no weight files; tokenizer/ is missing.*hf download"):
        build(broken)
    with pytest.raises(ModelDirError, match="model.path"):
        GeneratorConfig(kind="diffusers").build()


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_one_step_has_gradients_only_where_intended(sd_dirs, mode):
    m = build(sd_dirs["sd"], train=mode, lora_rank=4)  # lora_B starts at zero: the adapted model starts as the base
    check_one_step_gradients(m, batch(), mode, (m.frozen.vae, m.frozen.text_encoder))


def test_zero_init_widened_unet_equals_the_base(sd_dirs):
    m, base = build(sd_dirs["sd"], train="lora"), base_unet(sd_dirs["sd"])
    assert m.widened and m.unet.conv_in.in_channels == 8 and m.unet.config.in_channels == 8
    g = torch.Generator().manual_seed(1)
    x, img = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 4, 16, 16, generator=g) * 3
    hidden = m.encode_text(["a", "b"])[:-1]
    t = torch.tensor([10, 900])
    with torch.no_grad():
        torch.testing.assert_close(m.unet(torch.cat([x, img], 1), t, hidden).sample, base(x, t, hidden).sample,
                                   rtol=1e-5, atol=1e-5)


def test_duplicate_and_halve_equals_the_base_on_identical_latents(sd_dirs):
    m, base = build(sd_dirs["sd"], conv_in_init="halve"), base_unet(sd_dirs["sd"])
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    hidden = m.encode_text(["a", "b"])[:-1]
    t = torch.tensor([50, 500])
    with torch.no_grad():
        torch.testing.assert_close(m.unet(torch.cat([x, x], 1), t, hidden).sample, base(x, t, hidden).sample,
                                   rtol=1e-5, atol=1e-5)
        assert not torch.allclose(m.unet(torch.cat([x, 0 * x], 1), t, hidden).sample, base(x, t, hidden).sample,
                                  atol=1e-3)


def test_instruct_pix2pix_is_used_as_is(sd_dirs):
    m, base = build(sd_dirs["ip2p"]), base_unet(sd_dirs["ip2p"])
    assert not m.widened
    torch.testing.assert_close(m.unet.conv_in.weight, base.conv_in.weight, rtol=0, atol=0)


def test_v_prediction_objective_and_text_to_image_samples(sd_dirs):
    m = build(sd_dirs["sd_v"])
    assert m.prediction == "v_prediction"
    target, image, has, prompts = batch()
    out = m(target, image, torch.zeros_like(has), prompts, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"])
    noise = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    none = torch.zeros(4, dtype=torch.bool)
    a = m.generate(torch.zeros_like(image), none, prompts, 3, 2.0, noise)
    b = m.generate(image, none, prompts, 3, 2.0, noise)  # without has_image the image content is ignored
    assert a.shape == (4, 3, 32, 32) and a.abs().max() <= 1 and torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_dropout_proportions_and_guidance_one_is_the_conditional_output(sd_dirs):
    m = build(sd_dirs["sd"], p_drop_text=0.1, p_drop_image=0.2, p_drop_both=0.05)
    text, image = m.dropout(40000, torch.Generator().manual_seed(0), torch.device("cpu"))
    both = 0.05
    assert text.float().mean().item() == pytest.approx(both + (1 - both) * 0.1, abs=0.006)
    assert image.float().mean().item() == pytest.approx(both + (1 - both) * 0.2, abs=0.006)
    assert (text & image).float().mean().item() == pytest.approx(both + (1 - both) * 0.1 * 0.2, abs=0.006)
    _, image_in, has, prompts = batch()
    noise = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    cond = m.generate(image_in, has, prompts, 2, 1.0, noise, 1.0)       # one branch: (image, text)
    mixed = m.generate(image_in, has, prompts, 2, 1.0 + 1e-6, noise, 1.0 + 1e-6)  # three branches
    torch.testing.assert_close(cond, mixed, rtol=0, atol=1e-4)
    assert not torch.allclose(cond, m.generate(image_in, has, prompts, 2, 5.0, noise, 2.0), atol=1e-3)


def test_overfitting_four_samples_lowers_the_loss_fourfold(sd_dirs):
    torch.manual_seed(0)
    m = build(sd_dirs["sd"], p_drop_text=0.0, p_drop_image=0.0, p_drop_both=0.0)
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=3e-3, weight_decay=0.0)
    data = batch()

    def loss():  # the same noise, timesteps and posterior samples every time: a fixed regression
        return m(*data, generator=torch.Generator().manual_seed(0))["loss"]

    with torch.no_grad():
        first = loss().item()
    for _ in range(150):
        opt.zero_grad()
        loss().backward()
        opt.step()
    with torch.no_grad():
        last = loss().item()
    assert last < first / 4, (first, last)  # measured 1.156 -> 0.208 (5.6x)


# -- checkpoints through the training loop --------------------------------------------------------
def _cfg(out, **kw):
    base = dict(out=str(out), steps=4, batch_size=2, log_every=1, ckpt_every=2, progress=False, tensorboard=False,
                optim=OptimConfig(lr=1e-3, warmup_steps=1))
    return TrainConfig(**{**base, **kw})


def test_checkpoint_holds_trainables_and_round_trips_to_the_same_generate(sd_dirs, task_shards, tmp_path):
    model_cfg = GeneratorConfig(kind="diffusers", path=str(sd_dirs["sd"]), train="lora", lora_rank=4)
    result = train(_cfg(tmp_path / "run", steps=2), model_cfg, ShardListStream([str(p) for p in task_shards]))
    state = ckpt.load_checkpoint(result.checkpoint)
    keys = set(state["model"])
    assert keys == set(state["ema"]) and all("lora_" in k or k.startswith("unet.conv_in.") for k in keys)
    assert state["config"]["model"]["base_hash"] and state["config"]["model"]["path"] == str(sd_dirs["sd"].resolve())
    a, _ = ckpt.load_generator(result.checkpoint)
    b, config = ckpt.load_generator(result.checkpoint)
    assert config["model"]["resolution"] == a.resolution == 32
    _, image, has, prompts = batch()
    noise = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a.generate(image, has, prompts, 2, 2.0, noise), b.generate(image, has, prompts, 2, 2.0, noise),
                               rtol=0, atol=0)
    # the EMA weights are what load_generator returns, and they moved off the base
    base = build(sd_dirs["sd"], train="lora", lora_rank=4)
    assert not torch.equal(base.unet.conv_in.weight, a.unet.conv_in.weight)


def test_kill_and_resume_gives_the_same_losses_and_another_base_is_an_error(sd_dirs, task_shards, tmp_path):
    factory = ShardListStream([str(p) for p in task_shards])
    model_cfg = GeneratorConfig(kind="diffusers", path=str(sd_dirs["sd"]), train="lora", lora_rank=4)
    kw = dict(steps=5, ckpt_every=2)
    full = train(_cfg(tmp_path / "full", **kw), model_cfg, factory)

    def kill_at_3(stats):
        if stats["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path / "cut", **kw), model_cfg, factory, on_step=kill_at_3)
    resumed = train(_cfg(tmp_path / "cut", **kw), model_cfg, factory)
    assert resumed.resumed_from.name == "step-00000002.pt" and sorted(resumed.losses) == [3, 4, 5]
    for step in resumed.losses:
        assert resumed.losses[step] == pytest.approx(full.losses[step], rel=1e-6, abs=1e-7)
    other = GeneratorConfig(kind="diffusers", path=str(sd_dirs["other"]), train="lora", lora_rank=4)
    with pytest.raises(ckpt.CheckpointError, match="only loads onto its own base"):
        train(_cfg(tmp_path / "cut", steps=6), other, factory)
    # a checkpoint whose recorded base directory now holds other weights
    state = ckpt.load_checkpoint(full.checkpoint)
    with pytest.raises(BaseModelError, match="not the base this model was trained on"):
        GeneratorConfig.from_dict({**state["config"]["model"], "path": str(sd_dirs["other"])}).build()


def test_cached_latents_checkpointing_and_ema_copies_change_nothing_but_cost(sd_dirs):
    import copy

    data = batch()
    plain = build(sd_dirs["sd"], train="lora", lora_rank=4)
    torch.manual_seed(0)
    cached = build(sd_dirs["sd"], train="lora", lora_rank=4, cache_latents=True, gradient_checkpointing=True)
    cached.load_state_dict(plain.state_dict())
    cached.train()
    losses = []
    for model in (plain, cached, cached):  # the second cached call reads every latent from the cache
        out = model(*data, generator=torch.Generator().manual_seed(0))
        out["loss"].backward()
        losses.append(out["loss"].item())
    assert len(cached._latent_cache) == 7  # 4 targets + 2 input images + the t2i rows' zero image (one entry)
    assert losses[1] == pytest.approx(losses[0], rel=1e-5) and losses[2] == pytest.approx(losses[0], rel=1e-5)
    ema = copy.deepcopy(plain)  # what train.ema.EMA does: trainables copied, the frozen base shared
    assert ema.frozen is plain.frozen
    base = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.base_layer.weight"
    lora = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.default.weight"
    params, ema_params = dict(plain.named_parameters()), dict(ema.named_parameters())
    assert ema_params[base] is params[base] and ema_params[lora] is not params[lora]


def test_vistune_train_with_a_missing_pipeline_dir_is_one_line_before_work(tmp_path, task_shards, capsys):
    from pipelines.cli import main

    rc = main(["train", f"out={tmp_path / 'run'}", "model.kind=diffusers", f"model.path={tmp_path / 'sd'}",
               f"data.shards=[{task_shards[0]}]", "train.progress=false"])
    err = capsys.readouterr().err
    assert rc == 2 and "is not a directory" in err and "hf download" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "checkpoints").exists()
