"""The UNet family (StableDiffusion 1.x/2.x, InstructPix2Pix, Marigold) as a `Generator`; SDXL
subclasses it (train/model/diffusers_sdxl.py) through `load_text_parts`, `conditions` and `denoise`.

Follows diffusers' examples/instruct_pix2pix/train_instruct_pix2pix.py:
- the input image enters by channel concat `[noisy latents, image latents]`, the image latents
  being the VAE posterior's mode, unscaled (what StableDiffusionInstructPix2PixPipeline feeds);
  a 4-channel UNet gets conv_in widened to 8 channels: `model.conv_in_init=zero` (the new
  weights are zero: the tuned model starts as the base model) or `halve` (Marigold: the weights
  duplicated and halved: equal to the base when both halves carry the same latents); an
  8-channel UNet (InstructPix2Pix, Marigold) is used as is;
- the target latents are sampled from the posterior and scaled by the VAE's scaling factor;
  DDPM noising with the checkpoint's betas, loss on its own objective (epsilon or v);
- text through the pipeline's tokenizer and frozen CLIP text encoder (last hidden state);
- condition dropout (text, image, both) for two-way classifier-free guidance; text-to-image
  samples carry zero image latents (the dropped-image condition).
Sampling: DDIM (eta 0, trailing timesteps) built from the checkpoint's scheduler config, with
InstructPix2Pix's guidance over (image, text).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from train.model.diffusers_base import DiffusersGenerator, _Frozen
from train.model.generator import GeneratorConfig

CONV_IN_INITS = ("zero", "halve")


def widen_conv_in(conv: nn.Conv2d, init: str) -> nn.Conv2d:
    """A copy of `conv` taking twice the input channels: zero new weights, or both halves = old / 2."""
    if init not in CONV_IN_INITS:
        raise ValueError(f"model.conv_in_init {init!r} not in {list(CONV_IN_INITS)}")
    new = nn.Conv2d(2 * conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    bias=conv.bias is not None)
    with torch.no_grad():
        if init == "zero":
            new.weight.zero_()
            new.weight[:, :conv.in_channels].copy_(conv.weight)
        else:
            new.weight.copy_(torch.cat([conv.weight, conv.weight], dim=1) / 2)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new.to(conv.weight.dtype)


class UNetGenerator(DiffusersGenerator):
    denoiser_name = "unet"

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__(cfg)
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

        path = self.cfg.path
        load = dict(local_files_only=True)
        self.unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", **load)
        vae = AutoencoderKL.from_pretrained(path, subfolder="vae", **load).requires_grad_(False).eval()
        self.__dict__["_frozen"] = _Frozen(vae=vae, **self.load_text_parts(path))
        self.scheduler = DDPMScheduler.from_pretrained(path, subfolder="scheduler", **load)
        self.prediction = self.scheduler.config.prediction_type
        if self.prediction not in ("epsilon", "v_prediction"):
            raise ValueError(f"{path}: scheduler prediction_type {self.prediction!r} is not epsilon or v_prediction")
        self.latent_channels = vae.config.latent_channels
        widened = None
        if self.unet.config.in_channels == self.latent_channels:
            self.unet.conv_in = widened = widen_conv_in(self.unet.conv_in, self.cfg.conv_in_init)
            self.unet.register_to_config(in_channels=2 * self.latent_channels)
        elif self.unet.config.in_channels != 2 * self.latent_channels:
            raise ValueError(f"{path}: unet in_channels {self.unet.config.in_channels} is neither the latent "
                             f"channels {self.latent_channels} nor twice them")
        self.widened = widened is not None
        self.resolution = cfg.resolution or self.unet.config.sample_size * self.vae_scale
        if self.resolution % (self.vae_scale * 2 ** (len(self.unet.config.block_out_channels) - 1)):
            raise ValueError(f"model.resolution {self.resolution} is not a multiple of the UNet's downsampling")
        self.check_conditioning()
        self._finish_setup(widened)

    def check_conditioning(self) -> None:
        """Hook: the UNet takes what conditions() gives (SDXL's added embedding); ModelDirError if not."""

    def load_text_parts(self, path: str) -> dict[str, Any]:
        """The frozen tokenizer(s) and text encoder(s), by pipeline component name."""
        from transformers import AutoTokenizer, CLIPTextModel

        load = dict(local_files_only=True)
        return {"text_encoder": CLIPTextModel.from_pretrained(path, subfolder="text_encoder", **load)
                .requires_grad_(False).eval(),
                "tokenizer": AutoTokenizer.from_pretrained(path, subfolder="tokenizer", **load)}

    # -- conditions ----------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """CLIP last hidden states (B + 1, L, D) of the prompts and the empty prompt (last)."""
        tok, enc = self.frozen.tokenizer, self.frozen.text_encoder
        with self._timed("text_encode"):
            ids = tok(list(prompts) + [""], padding="max_length", max_length=tok.model_max_length,
                      truncation=True, return_tensors="pt").input_ids.to(enc.device)
            return enc(ids)[0]

    def conditions(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """The UNet's text inputs for the prompts and the null condition (last row), by keyword."""
        return {"encoder_hidden_states": self.encode_text(prompts)}

    def denoise(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        """The UNet's prediction for (noisy latents ++ image latents, timesteps, conditions)."""
        return self.unet(x, t, cond["encoder_hidden_states"]).sample

    def latents(self, target: torch.Tensor, image: torch.Tensor, keep_image: torch.Tensor,
                generator: torch.Generator | None) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(scaled target latents sampled from the posterior, or None; unscaled image latents (mode),
        zero where keep_image is False)."""
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        vae = self.frozen.vae
        with self._timed("vae_encode"):
            lat = None
            if target is not None:
                dist = DiagonalGaussianDistribution(self._vae_moments(target))
                lat = dist.sample(generator=generator) * vae.config.scaling_factor
            img = DiagonalGaussianDistribution(self._vae_moments(image)).mode()
            img = img * keep_image[:, None, None, None].to(img.dtype)
        return lat, img

    # -- training --------------------------------------------------------------------------------------
    def forward(self, target: torch.Tensor, image: torch.Tensor, has_image: torch.Tensor, prompts: list[str],
                generator: torch.Generator, weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        b, dev = target.shape[0], target.device
        drop_text, drop_image = self.dropout(b, generator, dev)
        cond = {k: torch.where(drop_text.view(-1, *[1] * (v.dim() - 1)), v[-1:], v[:-1])
                for k, v in self.conditions(prompts).items()}
        lat, img = self.latents(target, image, has_image.to(dev) & ~drop_image, generator)
        noise = torch.randn(lat.shape, generator=generator, device=dev, dtype=lat.dtype)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (b,), generator=generator, device=dev)
        noisy = self.scheduler.add_noise(lat, noise, t)
        with self._timed("denoiser"):
            pred = self.denoise(torch.cat([noisy, img], dim=1), t, cond)
            goal = noise if self.prediction == "epsilon" else self.scheduler.get_velocity(lat, noise, t)
            per_sample = self.masked_mean((pred.float() - goal.float()).square(), self.latent_weight(weight))
        return {"loss": per_sample.mean(), "per_sample": per_sample.detach()}

    # -- sampling --------------------------------------------------------------------------------------
    def sampler(self, steps: int) -> Any:
        from diffusers import DDIMScheduler

        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        sched = DDIMScheduler.from_config(self.scheduler.config, timestep_spacing="trailing", clip_sample=False,
                                          set_alpha_to_one=False, steps_offset=0)
        sched.set_timesteps(steps)
        return sched

    @torch.no_grad()
    def generate(self, image: torch.Tensor, has_image: torch.Tensor, prompts: list[str], steps: int,
                 guidance: float, noise: torch.Tensor, image_guidance: float = 1.0) -> torch.Tensor:
        b, dev = noise.shape[0], noise.device
        both = self.conditions(prompts)
        cond = {k: v[:-1] for k, v in both.items()}
        null = {k: v[-1:].expand(b, *v.shape[1:]) for k, v in both.items()}
        _, img = self.latents(None, image, has_image.to(dev), None)
        # branches: (image, text); (image, "") for text guidance; ("", "") for image guidance
        branches = [(img, cond)]
        if guidance != 1.0 or image_guidance != 1.0:
            branches.append((img, null))
        if image_guidance != 1.0:
            branches.append((torch.zeros_like(img), null))
        n = len(branches)
        img_in = torch.cat([br[0] for br in branches])
        txt_in = {k: torch.cat([br[1][k] for br in branches]) for k in cond}
        sched = self.sampler(steps)
        x = self.latent_noise(noise, self.latent_channels) * sched.init_noise_sigma
        for t in sched.timesteps:
            x_in = sched.scale_model_input(x.repeat(n, 1, 1, 1), t)
            e = self.denoise(torch.cat([x_in, img_in], dim=1), t.to(dev), txt_in).chunk(n)
            if n == 1:
                pred = e[0]
            elif n == 2:
                pred = e[1] + guidance * (e[0] - e[1])
            else:
                pred = e[2] + image_guidance * (e[1] - e[2]) + guidance * (e[0] - e[1])
            x = sched.step(pred, t, x).prev_sample
        vae = self.frozen.vae
        return vae.decode(x / vae.config.scaling_factor).sample.float().clamp(-1.0, 1.0)

    # -- export: an InstructPix2Pix pipeline with the 8-channel conv_in ------------------------------------
    def pipeline_class(self) -> Any:
        from diffusers import StableDiffusionInstructPix2PixPipeline

        return StableDiffusionInstructPix2PixPipeline

    def pipeline_components(self) -> dict[str, Any]:
        from diffusers import DDIMScheduler

        f = self.frozen
        return dict(vae=f.vae, text_encoder=f.text_encoder, tokenizer=f.tokenizer, unet=self.unet,
                    scheduler=DDIMScheduler.from_config(self.scheduler.config, timestep_spacing="trailing",
                                                        clip_sample=False, set_alpha_to_one=False),
                    safety_checker=None, feature_extractor=None, requires_safety_checker=False)
