"""Tiny random-weight diffusers pipelines of the real classes, saved like real checkpoints.

Configs follow diffusers' own pipeline tests (tests/pipelines/stable_diffusion*/, flux/
test_pipeline_flux_kontext.py): a 2-block UNet2DConditionModel, a 2-block AutoencoderKL (x2
downsampling), a 3-layer CLIP text encoder, and for FLUX.1 Kontext a 1+1-layer
FluxTransformer2DModel with tiny CLIP and T5 encoders. Tokenizers are built offline from a small
byte-level vocabulary written here (no hub). `save_pretrained` writes a pipeline directory with
`model_index.json` that `model.kind=diffusers model.path=DIR` loads with local_files_only=True.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

PROMPT_WORDS = ("a", "photo", "of", "red", "green", "blue", "yellow", "square", "on", "background", "depth",
                "map", "estimate", "the", "scene", "normals", "segment")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP's byte -> printable unicode table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_clip_tokenizer(out: Path) -> Path:
    """A CLIPTokenizer from a local vocab (every byte, with and without `</w>`, plus a few
    words merged whole) and its merges; saved as a standard tokenizer folder."""
    from transformers import CLIPTokenizer

    out.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for tok in chars + [c + "</w>" for c in chars]:
        vocab.setdefault(tok, len(vocab))
    merges: list[str] = []
    for word in PROMPT_WORDS:  # left-to-right merges building each word (with its end marker)
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            a, b = pieces[0], pieces[1]
            if f"{a} {b}" not in merges:
                merges.append(f"{a} {b}")
            vocab.setdefault(a + b, len(vocab))
            pieces = [a + b] + pieces[2:]
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    src = out / "src"
    src.mkdir(exist_ok=True)
    (src / "vocab.json").write_text(json.dumps(vocab))
    (src / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tok = CLIPTokenizer(vocab=str(src / "vocab.json"), merges=str(src / "merges.txt"), model_max_length=16)
    tok.save_pretrained(out)
    return out


def write_t5_tokenizer(out: Path) -> Path:
    """A T5TokenizerFast over a small Unigram vocabulary (the words above and single characters)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("▁" + w, -2.0) for w in PROMPT_WORDS] + [("▁", -3.0)]
    pieces += [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz0123456789,.-'"]
    backend = Tokenizer(models.Unigram(pieces, unk_id=2))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    tok = T5TokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                          extra_ids=0, model_max_length=32)
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)
    return out


def _clip_text_config(projection_dim: int | None = None):
    from transformers import CLIPTextConfig

    extra = {} if projection_dim is None else {"projection_dim": projection_dim}
    return CLIPTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-5,
                          num_attention_heads=4, num_hidden_layers=3, pad_token_id=1, vocab_size=1000,
                          max_position_embeddings=77, **extra)


def write_sd_pipeline(out: Path, *, instruct_pix2pix: bool = False, prediction_type: str = "epsilon",
                      seed: int = 0, width: int = 4, latent_size: int = 16) -> Path:
    """A tiny StableDiffusionPipeline (or InstructPix2Pix: 8-channel conv_in) at 32 px (16 px latents);
    `width` (UNet channels of the first block) and `latent_size` make a larger one for benchmarks."""
    from diffusers import (AutoencoderKL, DDPMScheduler, StableDiffusionInstructPix2PixPipeline,
                           StableDiffusionPipeline, UNet2DConditionModel)
    from transformers import CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(block_out_channels=(width, 2 * width), layers_per_block=1, sample_size=latent_size,
                                in_channels=8 if instruct_pix2pix else 4, out_channels=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=2)
    vae = AutoencoderKL(block_out_channels=[4, 8], in_channels=3, out_channels=3, sample_size=2 * latent_size,
                        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, norm_num_groups=2)
    text_encoder = CLIPTextModel(_clip_text_config()).eval()
    tok_dir = write_clip_tokenizer(out.parent / f"{out.name}-tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                              beta_end=0.012, prediction_type=prediction_type, clip_sample=False, steps_offset=1)
    cls = StableDiffusionInstructPix2PixPipeline if instruct_pix2pix else StableDiffusionPipeline
    pipe = cls(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
               safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(out)
    return out


def write_sdxl_pipeline(out: Path, *, instruct_pix2pix: bool = False, seed: int = 0) -> Path:
    """A tiny StableDiffusionXLPipeline (or SDXL InstructPix2Pix: 8-channel conv_in), diffusers' own SDXL
    InstructPix2Pix test config (text_time added embedding: 6 x 8 time ids + 32 pooled = 80; two
    32-wide CLIP encoders concatenated to cross_attention_dim 64) at 32 px (16 px latents)."""
    from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLInstructPix2PixPipeline,
                           StableDiffusionXLPipeline, UNet2DConditionModel)
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=2, sample_size=16,
                                in_channels=8 if instruct_pix2pix else 4, out_channels=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
                                use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
                                transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
                                cross_attention_dim=64)
    vae = AutoencoderKL(block_out_channels=[4, 8], in_channels=3, out_channels=3, sample_size=32,
                        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, norm_num_groups=2,
                        scaling_factor=0.13025)
    config = _clip_text_config(projection_dim=32)
    config.hidden_act = "gelu"
    text_encoder = CLIPTextModel(config).eval()
    text_encoder_2 = CLIPTextModelWithProjection(config).eval()
    tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer(out.parent / f"{out.name}-tokenizer"))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1, beta_schedule="scaled_linear",
                                       timestep_spacing="leading")
    cls = StableDiffusionXLInstructPix2PixPipeline if instruct_pix2pix else StableDiffusionXLPipeline
    cls(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer, tokenizer_2=tokenizer,
        unet=unet, scheduler=scheduler, add_watermarker=False).save_pretrained(out)
    return out


def write_flux_kontext_pipeline(out: Path, seed: int = 0) -> Path:
    """A tiny FluxKontextPipeline (diffusers' test config): 32 px images, latent channels 1 (packed 4)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxKontextPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5TokenizerFast

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, axes_dims_rope=[4, 4, 8])
    text_encoder = CLIPTextModel(_clip_text_config(projection_dim=32)).eval()
    t5 = T5EncoderModel(T5Config(vocab_size=128, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                 relative_attention_num_buckets=8, decoder_start_token_id=0, pad_token_id=0,
                                 eos_token_id=1)).eval()
    vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1,
                        latent_channels=1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.0609, scaling_factor=1.5035)
    tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer(out.parent / f"{out.name}-clip-tokenizer"))
    tokenizer_2 = T5TokenizerFast.from_pretrained(write_t5_tokenizer(out.parent / f"{out.name}-t5-tokenizer"))
    pipe = FluxKontextPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                               tokenizer=tokenizer, text_encoder_2=t5, tokenizer_2=tokenizer_2,
                               transformer=transformer)
    pipe.save_pretrained(out)
    return out


SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
SD15_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=512,
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                scaling_factor=0.18215)
SD15_CLIP = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                 max_position_embeddings=77, vocab_size=49408, hidden_act="quick_gelu", projection_dim=768)


def sd15_shaped_models() -> tuple:
    """(UNet, VAE, CLIP text encoder) with Stable Diffusion 1.5's published shapes, random weights
    (throughput and memory on a GPU machine without downloads; build under torch.device("meta")
    to count parameters without allocating)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    return (UNet2DConditionModel(**SD15_UNET), AutoencoderKL(**SD15_VAE),
            CLIPTextModel(CLIPTextConfig(**SD15_CLIP)).eval())


def write_sd15_shaped_pipeline(out: Path, seed: int = 0) -> Path:
    """A StableDiffusionPipeline of SD 1.5's shapes with random weights (~4 GB fp32), 512 px native,
    tokenized by the small local vocabulary (77 tokens)."""
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    torch.manual_seed(seed)
    unet, vae, text_encoder = sd15_shaped_models()
    tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer(out.parent / f"{out.name}-tokenizer"),
                                              model_max_length=77)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                              beta_end=0.012, clip_sample=False, steps_offset=1)
    StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                            safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(out)
    return out


def check_one_step_gradients(m, inputs: tuple, mode: str, frozen: tuple) -> dict:
    """One loss/backward/AdamW step of a UNet-family model; asserts gradients only where `mode`
    (full | lora) intends: the `frozen` parts get none, LoRA trains only adapters and the widened
    conv_in, every changed weight is a trained one, checkpoints hold only trained tensors.
    Returns the UNet's {name: grad} for family-specific checks."""
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    before = {k: v.clone() for k, v in m.unet.state_dict().items()}
    out = m(*inputs, generator=torch.Generator().manual_seed(0))
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"]) and out["per_sample"].shape == (len(inputs[0]),)
    out["loss"].backward()
    opt.step()
    for part in frozen:  # frozen, outside the module tree
        assert all(p.grad is None and not p.requires_grad for p in part.parameters())
    grads = {n: p.grad for n, p in m.unet.named_parameters()}
    changed = {k for k, v in m.unet.state_dict().items() if not torch.equal(v, before[k])}
    if mode == "full":
        assert all(g is not None for g in grads.values())
        assert set(m.state_dict()) == {"unet." + k for k in before}
    else:
        trained = {n for n, g in grads.items() if g is not None}
        assert trained and all("lora_" in n or n.startswith("conv_in.") for n in trained)
        assert {n for n in trained if n.startswith("conv_in.")} == {"conv_in.weight", "conv_in.bias"}
        assert all("lora_" in k or k.startswith("conv_in.") for k in changed)
        assert set(m.state_dict()) == {"unet." + n for n in trained}  # checkpoints hold only these
    assert changed
    return grads
