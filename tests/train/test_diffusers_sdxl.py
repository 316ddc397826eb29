"""model.kind=diffusers, SDXL: tiny random-weight StableDiffusionXL / SDXL InstructPix2Pix pipelines of the
real diffusers classes (diffusers' own SDXL test config), saved with save_pretrained and loaded offline."""

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("peft")

from tests.train.diffusers_fixtures import check_one_step_gradients, write_sdxl_pipeline  # noqa: E402
from tests.train.test_diffusers_unet import _cfg, base_unet, batch, build  # noqa: E402
from train import checkpoint as ckpt  # noqa: E402
from train.data import ShardListStream  # noqa: E402
from train.loop import train  # noqa: E402
from train.model import GeneratorConfig  # noqa: E402


@pytest.fixture(scope="module")
def sdxl_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sdxl")
    return {"sdxl": write_sdxl_pipeline(root / "sdxl"), "ip2p": write_sdxl_pipeline(root / "ip2p", instruct_pix2pix=True)}


def added(m, cond, b):
    return {"text_embeds": cond["text_embeds"], "time_ids": m.time_ids.expand(b, -1)}


def test_conditions_are_what_the_sdxl_pipeline_feeds_the_unet(sdxl_dirs):
    """Both encoders' penultimate states concatenated, text_encoder_2's pooled projection, zero nulls, time ids
    (R, R, 0, 0, R, R): compared with StableDiffusionXLPipeline.encode_prompt / _get_add_time_ids themselves."""
    from diffusers import DiffusionPipeline

    m = build(sdxl_dirs["sdxl"])
    assert type(m).__name__ == "SDXLGenerator" and m.family == "sdxl" and m.widened and m.resolution == 32
    pipe = DiffusionPipeline.from_pretrained(str(sdxl_dirs["sdxl"]), local_files_only=True)
    prompts = ["a red square on a blue background", "estimate depth"]
    cond = m.conditions(prompts)
    assert cond["encoder_hidden_states"].shape == (3, 16, 64) and cond["text_embeds"].shape == (3, 32)
    hidden, neg, pooled, neg_pooled = pipe.encode_prompt(prompts, device="cpu", do_classifier_free_guidance=True)
    torch.testing.assert_close(cond["encoder_hidden_states"][:-1], hidden, rtol=0, atol=0)
    torch.testing.assert_close(cond["text_embeds"][:-1], pooled, rtol=0, atol=0)
    assert not neg.any() and not neg_pooled.any()  # force_zeros_for_empty_prompt: the null condition is zeros
    assert not cond["encoder_hidden_states"][-1].any() and not cond["text_embeds"][-1].any()
    time_ids = pipe._get_add_time_ids((32, 32), (0, 0), (32, 32), torch.float32, text_encoder_projection_dim=32)
    torch.testing.assert_close(m.time_ids, time_ids, rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_one_step_has_gradients_only_where_intended(sdxl_dirs, mode):
    m = build(sdxl_dirs["sdxl"], train=mode, lora_rank=4)
    f = m.frozen
    grads = check_one_step_gradients(m, batch(), mode, (f.vae, f.text_encoder, f.text_encoder_2))
    if mode == "full":  # the added (time, pooled text) embedding trains too
        assert grads["add_embedding.linear_1.weight"].abs().sum() > 0


def test_zero_init_widened_unet_equals_the_base_and_ip2p_is_used_as_is(sdxl_dirs):
    m, base = build(sdxl_dirs["sdxl"], train="lora"), base_unet(sdxl_dirs["sdxl"])
    assert m.unet.conv_in.in_channels == 8 and m.unet.config.in_channels == 8
    g = torch.Generator().manual_seed(1)
    x, img = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 4, 16, 16, generator=g) * 3
    cond = {k: v[:-1] for k, v in m.conditions(["a", "b"]).items()}
    t = torch.tensor([10, 900])
    with torch.no_grad():
        torch.testing.assert_close(m.denoise(torch.cat([x, img], 1), t, cond),
                                   base(x, t, cond["encoder_hidden_states"], added_cond_kwargs=added(m, cond, 2)).sample,
                                   rtol=1e-5, atol=1e-5)
    ip2p = build(sdxl_dirs["ip2p"])
    assert not ip2p.widened
    torch.testing.assert_close(ip2p.unet.conv_in.weight, base_unet(sdxl_dirs["ip2p"]).conv_in.weight, rtol=0, atol=0)


def test_dropped_text_is_zeros_and_guidance_one_is_the_conditional_output(sdxl_dirs, monkeypatch):
    m = build(sdxl_dirs["sdxl"])
    seen = []
    real = m.denoise
    monkeypatch.setattr(m, "denoise", lambda x, t, cond: seen.append(cond) or real(x, t, cond))
    data = batch()
    for drop in (True, False):  # every sample's text dropped, then none
        monkeypatch.setattr(m, "dropout", lambda b, g, d: (torch.full((b,), drop), torch.zeros(b, dtype=torch.bool)))
        m(*data, generator=torch.Generator().manual_seed(0))
    dropped, kept = seen
    assert not dropped["encoder_hidden_states"].any() and not dropped["text_embeds"].any()
    assert all(v.flatten(1).abs().sum(1).gt(0).all() for v in kept.values())  # every row a real prompt
    _, image, has, prompts = data
    noise = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    cond = m.generate(image, has, prompts, 2, 1.0, noise, 1.0)  # one branch: (image, text)
    mixed = m.generate(image, has, prompts, 2, 1.0 + 1e-6, noise, 1.0 + 1e-6)  # three branches
    torch.testing.assert_close(cond, mixed, rtol=0, atol=1e-4)
    assert not torch.allclose(cond, m.generate(image, has, prompts, 2, 5.0, noise, 2.0), atol=1e-3)


def test_checkpoint_round_trip_and_export_to_an_sdxl_instruct_pix2pix_pipeline(sdxl_dirs, task_shards, tmp_path):
    """Two LoRA steps through the loop; the checkpoint reloads to the identical seeded generate(); the
    export reloads with DiffusionPipeline.from_pretrained and, given the same starting latents, samples
    what generate() samples (image + text guidance, three branches)."""
    from diffusers import DiffusionPipeline, StableDiffusionXLInstructPix2PixPipeline

    from pipelines.cli import main

    model_cfg = GeneratorConfig(kind="diffusers", path=str(sdxl_dirs["sdxl"]), train="lora", lora_rank=4)
    result = train(_cfg(tmp_path / "run", steps=2), model_cfg, ShardListStream([str(p) for p in task_shards]))
    state = ckpt.load_checkpoint(result.checkpoint)
    assert state["config"]["model"]["base_hash"]
    assert all("lora_" in k or k.startswith("unet.conv_in.") for k in state["model"])
    a, _ = ckpt.load_generator(result.checkpoint)
    b, _ = ckpt.load_generator(result.checkpoint)
    _, image, has, prompts = batch()
    noise = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    ours = a.generate(image, has, prompts, 2, 3.0, noise, 1.5)
    torch.testing.assert_close(ours, b.generate(image, has, prompts, 2, 3.0, noise, 1.5), rtol=0, atol=0)

    out = tmp_path / "exported"
    assert main(["export", f"checkpoint={result.checkpoint}", f"out={out}"]) == 0
    pipe = DiffusionPipeline.from_pretrained(str(out), local_files_only=True)
    assert isinstance(pipe, StableDiffusionXLInstructPix2PixPipeline) and pipe.unet.config.in_channels == 8
    assert not any("lora" in k for k in pipe.unet.state_dict())  # fused and unloaded
    images = pipe(prompts[:1], image=(image[:1] + 1) / 2, num_inference_steps=2, guidance_scale=3.0,
                  image_guidance_scale=1.5, latents=a.latent_noise(noise[:1], 4), output_type="pt").images
    assert images.shape == (1, 3, 32, 32)
    torch.testing.assert_close(images, (ours[:1] + 1) / 2, rtol=0, atol=1e-5)  # measured 7e-7
    from PIL import Image  # and with a PIL image and a prompt, as a user runs it

    pil = Image.fromarray(np.full((32, 32, 3), 128, np.uint8))
    result = pipe("estimate depth", image=pil, num_inference_steps=2, output_type="np",
                  generator=torch.Generator().manual_seed(0)).images
    assert result.shape == (1, 32, 32, 3) and np.isfinite(result).all()


def test_lora_only_export_of_an_sdxl_instruct_pix2pix_base_reloads_onto_it(sdxl_dirs, tmp_path):
    from diffusers import StableDiffusionXLInstructPix2PixPipeline

    m = build(sdxl_dirs["ip2p"], train="lora", lora_rank=4)
    with torch.no_grad():  # as if trained: lora_B off zero
        for n, p in m.unet.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(n)))
    g = torch.Generator().manual_seed(6)
    x, t = torch.randn(1, 8, 16, 16, generator=g), torch.tensor([300])
    cond = {k: v[:1] for k, v in m.conditions(["a red square"]).items()}
    with torch.no_grad():
        ours = m.denoise(x, t, cond)
    m.export(tmp_path / "lora", lora_only=True)
    pipe = StableDiffusionXLInstructPix2PixPipeline.from_pretrained(str(sdxl_dirs["ip2p"]), local_files_only=True)
    pipe.load_lora_weights(str(tmp_path / "lora"))
    with torch.no_grad():
        theirs = pipe.unet(x, t, cond["encoder_hidden_states"], added_cond_kwargs=added(m, cond, 1)).sample
        base = base_unet(sdxl_dirs["ip2p"])(x, t, cond["encoder_hidden_states"], added_cond_kwargs=added(m, cond, 1)).sample
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(base, ours, atol=1e-4)  # the adapter changed the output
