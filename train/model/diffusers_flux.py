"""The flow-transformer family (FLUX.1 Kontext) as a `Generator`.

Follows diffusers' FluxKontextPipeline and examples/dreambooth/train_dreambooth_lora_flux_kontext.py:
- latents are the VAE posterior's samples (target) or modes (condition image), shifted and scaled
  by the VAE's `shift_factor` / `scaling_factor`, and packed into 2x2 patches (tokens of 4C);
- the condition image's packed latents are appended to the noisy image's tokens, with their own
  position ids: `img_ids[..., 0] = 1` (Kontext); the prediction is sliced back to the noisy
  tokens. Samples without an input image (text-to-image, or the dropped image condition) carry
  no condition tokens, as Kontext generates from text alone;
- text: CLIP's pooled output and T5's hidden states (frozen), `txt_ids` zeros;
- flow matching: x_t = (1 - t) x + t eps, target eps - x, timesteps logit-normal (model.t_mean,
  model.t_std) then shifted by the checkpoint's scheduler (its dynamic `mu` for the image's
  token count, or its static `shift`); a guidance-distilled transformer gets the embedded
  guidance FLUX_GUIDANCE. Sampling: Euler over the same shifted grid, two-way CFG over (image, text).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from train.model.diffusers_base import DiffusersGenerator, _Frozen
from train.model.generator import GeneratorConfig

FLUX_GUIDANCE = 2.5   # embedded guidance of guidance-distilled checkpoints (FluxKontextPipeline's default)
MAX_T5_TOKENS = 512


def pack(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) latents -> (B, H/2 * W/2, 4C) tokens (FluxPipeline._pack_latents)."""
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The inverse of `pack` for latents of (h, w)."""
    b, _, d = tokens.shape
    c = d // 4
    return tokens.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def position_ids(h: int, w: int, first: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(h/2 * w/2, 3) ids [first, row, col] of packed tokens: first 0 for the image, 1 for Kontext's condition."""
    ids = torch.zeros(h // 2, w // 2, 3, device=device, dtype=dtype)
    ids[..., 0] = first
    ids[..., 1] = torch.arange(h // 2, device=device, dtype=dtype)[:, None]
    ids[..., 2] = torch.arange(w // 2, device=device, dtype=dtype)[None, :]
    return ids.reshape(-1, 3)


class FluxKontextGenerator(DiffusersGenerator):
    denoiser_name = "transformer"
    default_lora_targets = ("to_k", "to_q", "to_v", "to_out.0", "add_k_proj", "add_q_proj", "add_v_proj", "to_add_out")

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__(cfg)
        from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
        from transformers import AutoTokenizer, CLIPTextModel, T5EncoderModel

        path, load = self.cfg.path, dict(local_files_only=True)
        self.transformer = FluxTransformer2DModel.from_pretrained(path, subfolder="transformer", **load)
        frozen = lambda m: m.requires_grad_(False).eval()  # noqa: E731
        vae = frozen(AutoencoderKL.from_pretrained(path, subfolder="vae", **load))
        self.__dict__["_frozen"] = _Frozen(
            vae=vae, text_encoder=frozen(CLIPTextModel.from_pretrained(path, subfolder="text_encoder", **load)),
            text_encoder_2=frozen(T5EncoderModel.from_pretrained(path, subfolder="text_encoder_2", **load)),
            tokenizer=AutoTokenizer.from_pretrained(path, subfolder="tokenizer", **load),
            tokenizer_2=AutoTokenizer.from_pretrained(path, subfolder="tokenizer_2", **load))
        self.scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(path, subfolder="scheduler", **load)
        self.latent_channels = vae.config.latent_channels
        self.resolution = cfg.resolution or vae.config.sample_size
        if self.resolution % (2 * self.vae_scale):
            raise ValueError(f"model.resolution {self.resolution} is not a multiple of {2 * self.vae_scale} "
                             f"(VAE factor {self.vae_scale} x 2x2 packing)")
        self.t_mean = 0.0 if cfg.t_mean is None else cfg.t_mean
        self._finish_setup(None)

    # -- conditions ----------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(T5 hidden states (B + 1, L, D), CLIP pooled (B + 1, P)) of the prompts and "" (last)."""
        f = self.frozen
        texts = list(prompts) + [""]
        with self._timed("text_encode"):
            dev = f.text_encoder.device
            ids = f.tokenizer(texts, padding="max_length", max_length=f.tokenizer.model_max_length, truncation=True,
                              return_tensors="pt").input_ids.to(dev)
            pooled = f.text_encoder(ids, output_hidden_states=False).pooler_output
            n = min(MAX_T5_TOKENS, f.tokenizer_2.model_max_length)
            ids2 = f.tokenizer_2(texts, padding="max_length", max_length=n, truncation=True,
                                 return_tensors="pt").input_ids.to(dev)
            return f.text_encoder_2(ids2, output_hidden_states=False)[0], pooled

    def latents(self, target: torch.Tensor | None, image: torch.Tensor,
                generator: torch.Generator | None) -> tuple[torch.Tensor | None, torch.Tensor]:
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        cfg = self.frozen.vae.config
        shift, scale = cfg.shift_factor or 0.0, cfg.scaling_factor
        with self._timed("vae_encode"):
            lat = None
            if target is not None:
                lat = (DiagonalGaussianDistribution(self._vae_moments(target)).sample(generator=generator) - shift) * scale
            img = (DiagonalGaussianDistribution(self._vae_moments(image)).mode() - shift) * scale
        return lat, img

    def shift(self, t: torch.Tensor, tokens: int) -> torch.Tensor:
        """The checkpoint's timestep shift: s t / (1 + (s - 1) t), s = exp(mu(tokens)) (dynamic) or `shift`."""
        c = self.scheduler.config
        if c.use_dynamic_shifting:
            from diffusers.pipelines.flux.pipeline_flux import calculate_shift

            s = math.exp(calculate_shift(tokens, c.base_image_seq_len, c.max_image_seq_len, c.base_shift, c.max_shift))
        else:
            s = c.shift
        return s * t / (1 + (s - 1) * t)

    def denoise(self, x: torch.Tensor, t: torch.Tensor, t5: torch.Tensor, pooled: torch.Tensor,
                cond: torch.Tensor, with_image: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """The transformer's velocity for packed noisy tokens `x`; rows with `with_image` get the
        condition tokens appended (ids[..., 0] = 1) and their prediction sliced back."""
        n, dev, dt = x.shape[1], x.device, x.dtype
        ids = position_ids(h, w, 0, dev, dt)
        txt_ids = torch.zeros(t5.shape[1], 3, device=dev, dtype=dt)
        out = torch.zeros_like(x)
        for flag in (True, False):
            rows = torch.nonzero(with_image == flag).flatten()
            if rows.numel() == 0:
                continue
            hs, img_ids = x[rows], ids
            if flag:
                hs = torch.cat([hs, cond[rows]], dim=1)
                img_ids = torch.cat([ids, position_ids(h, w, 1, dev, dt)])
            guidance = (torch.full((rows.numel(),), FLUX_GUIDANCE, device=dev, dtype=dt)
                        if self.transformer.config.guidance_embeds else None)
            pred = self.transformer(hidden_states=hs, timestep=t[rows], guidance=guidance,
                                    pooled_projections=pooled[rows], encoder_hidden_states=t5[rows], txt_ids=txt_ids,
                                    img_ids=img_ids, return_dict=False)[0]
            out = out.index_copy(0, rows, pred[:, :n].to(out.dtype))
        return out

    # -- training --------------------------------------------------------------------------------------
    def forward(self, target: torch.Tensor, image: torch.Tensor, has_image: torch.Tensor, prompts: list[str],
                generator: torch.Generator, weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        b, dev = target.shape[0], target.device
        drop_text, drop_image = self.dropout(b, generator, dev)
        t5, pooled = self.encode_text(prompts)
        t5 = torch.where(drop_text[:, None, None], t5[-1:], t5[:-1])
        pooled = torch.where(drop_text[:, None], pooled[-1:], pooled[:-1])
        lat, img = self.latents(target, image, generator)
        h, w = lat.shape[-2:]
        noise = torch.randn(lat.shape, generator=generator, device=dev, dtype=lat.dtype)
        t = torch.sigmoid(self.t_mean + self.cfg.t_std * torch.randn(b, generator=generator, device=dev))
        t = self.shift(t, (h // 2) * (w // 2))
        tb = t[:, None, None, None]
        x_t = (1 - tb) * lat + tb * noise
        with self._timed("denoiser"):
            v = self.denoise(pack(x_t), t, t5, pooled, pack(img), has_image.to(dev) & ~drop_image, h, w)
            per_sample = self.masked_mean((unpack(v, h, w).float() - (noise - lat).float()).square(),
                                          self.latent_weight(weight))
        return {"loss": per_sample.mean(), "per_sample": per_sample.detach()}

    # -- sampling --------------------------------------------------------------------------------------
    def sigmas(self, steps: int, tokens: int) -> torch.Tensor:
        """FluxKontextPipeline's grid: linspace(1, 1/steps), shifted, then 0."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        return torch.cat([self.shift(torch.linspace(1.0, 1.0 / steps, steps), tokens), torch.zeros(1)])

    @torch.no_grad()
    def generate(self, image: torch.Tensor, has_image: torch.Tensor, prompts: list[str], steps: int,
                 guidance: float, noise: torch.Tensor, image_guidance: float = 1.0) -> torch.Tensor:
        b, dev = noise.shape[0], noise.device
        t5, pooled = self.encode_text(prompts)
        null_t5, null_pooled = t5[-1:].expand(b, -1, -1), pooled[-1:].expand(b, -1)
        _, img = self.latents(None, image, None)
        h, w = img.shape[-2:]
        cond, has = pack(img), has_image.to(dev)
        branches = [(has, t5[:-1], pooled[:-1])]
        if guidance != 1.0 or image_guidance != 1.0:
            branches.append((has, null_t5, null_pooled))
        if image_guidance != 1.0:
            branches.append((torch.zeros_like(has), null_t5, null_pooled))
        x = pack(self.latent_noise(noise, self.latent_channels))
        sig = self.sigmas(steps, x.shape[1]).to(dev)
        for i in range(steps):
            t = sig[i].expand(b)
            v = [self.denoise(x, t, tt, pp, cond, hh, h, w) for hh, tt, pp in branches]
            if len(v) == 1:
                vel = v[0]
            elif len(v) == 2:
                vel = v[1] + guidance * (v[0] - v[1])
            else:
                vel = v[2] + image_guidance * (v[1] - v[2]) + guidance * (v[0] - v[1])
            x = x + (sig[i + 1] - sig[i]) * vel
        vae = self.frozen.vae
        lat = unpack(x, h, w) / vae.config.scaling_factor + (vae.config.shift_factor or 0.0)
        return vae.decode(lat).sample.float().clamp(-1.0, 1.0)

    # -- export ----------------------------------------------------------------------------------------
    def pipeline_class(self) -> Any:
        from diffusers import FluxKontextPipeline

        return FluxKontextPipeline

    def pipeline_components(self) -> dict[str, Any]:
        f = self.frozen
        return dict(scheduler=self.scheduler, vae=f.vae, text_encoder=f.text_encoder, tokenizer=f.tokenizer,
                    text_encoder_2=f.text_encoder_2, tokenizer_2=f.tokenizer_2, transformer=self.transformer)
