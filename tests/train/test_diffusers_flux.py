"""model.kind=diffusers, FLUX.1 Kontext family: a tiny random-weight FluxKontextPipeline of the real
classes (diffusers' test config), saved and loaded offline."""

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("peft")

from tests.train.diffusers_fixtures import write_flux_kontext_pipeline  # noqa: E402
from train.model import GeneratorConfig  # noqa: E402
from train.model.diffusers_flux import pack, position_ids, unpack  # noqa: E402


@pytest.fixture(scope="module")
def flux_dir(tmp_path_factory):
    return write_flux_kontext_pipeline(tmp_path_factory.mktemp("flux") / "kontext")


def build(path, **kw):
    return GeneratorConfig(kind="diffusers", path=str(path), **kw).resolved().build()


def test_packing_and_ids_match_the_kontext_pipeline():
    from diffusers import FluxKontextPipeline

    x = torch.randn(2, 3, 8, 6)
    tokens = pack(x)
    torch.testing.assert_close(tokens, FluxKontextPipeline._pack_latents(x, 2, 3, 8, 6), rtol=0, atol=0)
    torch.testing.assert_close(unpack(tokens, 8, 6), x, rtol=0, atol=0)
    ref = FluxKontextPipeline._prepare_latent_image_ids(2, 4, 3, torch.device("cpu"), torch.float32)
    torch.testing.assert_close(position_ids(8, 6, 0, torch.device("cpu"), torch.float32), ref, rtol=0, atol=0)
    ref[..., 0] = 1
    torch.testing.assert_close(position_ids(8, 6, 1, torch.device("cpu"), torch.float32), ref, rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_train_step_appends_condition_tokens_and_trains_only_what_is_intended(flux_dir, mode):
    m = build(flux_dir, train=mode, lora_rank=4, p_drop_text=0.0, p_drop_image=0.0, p_drop_both=0.0)
    assert m.family == "flux" and m.resolution == 32
    seen = []
    m.transformer.register_forward_pre_hook(
        lambda mod, args, kw: seen.append((kw["hidden_states"].shape, kw["img_ids"].clone(), kw["timestep"].clone())),
        with_kwargs=True)
    g = torch.Generator().manual_seed(0)
    target, image = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1, torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    has = torch.tensor([True, False, True])
    image[~has] = 0
    out = m(target, image, has, ["estimate depth", "a red square", "segment the scene"], generator=g)
    out["loss"].backward()
    n = 16 * 16  # 32 px, VAE factor 1, latent channels 1 -> 2x2 packing: 256 tokens of 4
    (with_img, ids, t_img), (without, ids_t2i, _) = seen
    assert with_img == (2, 2 * n, 4) and without == (1, n, 4)  # condition tokens only where there is an image
    assert ids.shape == (2 * n, 3) and (ids[:n, 0] == 0).all() and (ids[n:, 0] == 1).all()
    torch.testing.assert_close(ids[n:, 1:], ids[:n, 1:], rtol=0, atol=0)
    assert ids_t2i.shape == (n, 3) and (t_img > 0).all() and (t_img < 1).all()
    assert torch.isfinite(out["loss"]) and out["per_sample"].shape == (3,)
    for part in m.frozen.modules():
        assert all(p.grad is None and not p.requires_grad for p in part.parameters())
    grads = {k: p.grad for k, p in m.transformer.named_parameters()}
    if mode == "full":
        assert all(g is not None for g in grads.values())
    else:
        trained = {k for k, g in grads.items() if g is not None}
        assert trained and all("lora_" in k for k in trained)
        assert any(".add_q_proj.lora_A" in k for k in trained)  # the text stream's projections too


def test_timesteps_use_the_checkpoints_shift_and_sampling_runs_text_to_image(flux_dir):
    m = build(flux_dir)
    c = m.scheduler.config
    t = torch.tensor([0.25, 0.5, 0.75])
    if c.use_dynamic_shifting:
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        s = np.exp(calculate_shift(256, c.base_image_seq_len, c.max_image_seq_len, c.base_shift, c.max_shift))
    else:
        s = c.shift
    torch.testing.assert_close(m.shift(t, 256), s * t / (1 + (s - 1) * t))
    sig = m.sigmas(4, 256)
    assert sig[0] == 1 and sig[-1] == 0 and (sig[1:] < sig[:-1]).all()
    noise = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    none = torch.zeros(2, dtype=torch.bool)
    a = m.generate(torch.zeros(2, 3, 32, 32), none, ["a red square", "a blue square"], 2, 2.0, noise)
    assert a.shape == (2, 3, 32, 32) and torch.isfinite(a).all() and a.abs().max() <= 1
    has = torch.ones(2, dtype=torch.bool)
    img = torch.rand(2, 3, 32, 32) * 2 - 1
    one = m.generate(img, has, ["a", "b"], 2, 1.0, noise, 1.0)
    mixed = m.generate(img, has, ["a", "b"], 2, 1.0 + 1e-6, noise, 1.0 + 1e-6)
    torch.testing.assert_close(one, mixed, rtol=0, atol=1e-4)  # guidance 1 = the conditional output


def test_export_writes_a_kontext_pipeline_that_runs_with_an_image_and_a_prompt(flux_dir, tmp_path):
    from diffusers import DiffusionPipeline, FluxKontextPipeline
    from PIL import Image

    m = build(flux_dir, train="lora", lora_rank=4)
    with torch.no_grad():
        for name, p in m.transformer.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    x = torch.randn(1, 16, 4)
    kw = dict(timestep=torch.tensor([0.5]), pooled_projections=torch.randn(1, 32),
              encoder_hidden_states=torch.randn(1, 8, 32), txt_ids=torch.zeros(8, 3),
              img_ids=position_ids(8, 8, 0, torch.device("cpu"), torch.float32), return_dict=False)
    with torch.no_grad():
        ref = m.transformer(hidden_states=x, **kw)[0]
    m.export(tmp_path / "out")
    pipe = DiffusionPipeline.from_pretrained(str(tmp_path / "out"), local_files_only=True)
    assert isinstance(pipe, FluxKontextPipeline)
    with torch.no_grad():
        torch.testing.assert_close(pipe.transformer(hidden_states=x, **kw)[0], ref, rtol=1e-4, atol=1e-4)
    image = Image.fromarray(np.full((32, 32, 3), 100, np.uint8))
    out = pipe(image=image, prompt="estimate depth", height=32, width=32, num_inference_steps=2, output_type="np",
               _auto_resize=False, max_area=32 * 32, max_sequence_length=32, generator=torch.Generator().manual_seed(0)).images
    assert out.shape == (1, 32, 32, 3) and np.isfinite(out).all()


def test_lora_only_export_reloads_onto_the_kontext_base(flux_dir, tmp_path):
    from diffusers import FluxKontextPipeline

    m = build(flux_dir, train="lora", lora_rank=4, lora_alpha=8.0)
    with torch.no_grad():
        for name, p in m.transformer.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    x = torch.randn(1, 16, 4)
    kw = dict(timestep=torch.tensor([0.3]), pooled_projections=torch.randn(1, 32),
              encoder_hidden_states=torch.randn(1, 8, 32), txt_ids=torch.zeros(8, 3),
              img_ids=position_ids(8, 8, 0, torch.device("cpu"), torch.float32), return_dict=False)
    m.export(tmp_path / "lora", lora_only=True)
    pipe = FluxKontextPipeline.from_pretrained(str(flux_dir), local_files_only=True)
    with torch.no_grad():
        base = pipe.transformer(hidden_states=x, **kw)[0]
        pipe.load_lora_weights(str(tmp_path / "lora"))
        tuned = m.transformer(hidden_states=x, **kw)[0]
        torch.testing.assert_close(pipe.transformer(hidden_states=x, **kw)[0], tuned, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(base, tuned, atol=1e-3)
