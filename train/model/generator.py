"""The generator interface and the built-in rectified-flow pixel DiT.

Interface (`Generator`, an nn.Module): `forward(target, image, has_image, prompts, generator)`
returns the training loss (forward, so DDP wraps it as is); `generate(image, has_image, prompts,
steps, guidance, noise)` samples images in [-1, 1]; `config_dict()` is the JSON-able config that
`build_generator` rebuilds it from (stored in every checkpoint). Images are (B, 3, R, R) floats in
[-1, 1]; `has_image` (B,) bool is False for text-to-image samples, whose `image` is zeros.

Built-in (`kind: flow_dit`): rectified flow (x_t = (1 - t) x + t eps, velocity eps - x) with a
pixel-space DiT. By default the network predicts the clean image and the loss is taken on the
velocity it implies (JiT, Li & He 2025, "Back to Basics: Let Denoising Generative Models
Denoise"): in pixel space a p x p x 3 patch is high-dimensional and noise-like targets waste
capacity, while clean images lie near a low-dimensional manifold. `prediction: v` is the
classic alternative. Timesteps are drawn logit-normal (SD3). Conditions are dropped during
training as InstructPix2Pix does (text only, image only, both), which enables classifier-free
guidance at sampling: v = v(I, "") + g (v(I, T) - v(I, "")), plus an optional image scale.

Pretrained diffusers models (`kind: diffusers`, `path: DIR`) are train/model/diffusers_base.py
(UNet family: diffusers_unet.py; FLUX.1 Kontext: diffusers_flux.py).

Only `forward`, `generate` and `config_dict` are used by the loop, checkpoints and predict; a
pretrained model's config names its local directory so `load_generator` can rebuild it before loading
the trained weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from formats.config import from_dict
from formats.registry import Registry
from train.model.dit import DiTConfig
from train.model.text import TextEncoderConfig

# size -> resolved architecture fields. `debug` is for tests (32 px, ~0.2M parameters); `base` and
# `large` are the H100 configs (256 px, patch 8: 1,024 tokens per image).
SIZES: dict[str, dict[str, Any]] = {
    "debug": dict(resolution=32, patch=4, dim=64, depth=2, heads=2, text_dim=64, text_depth=1, text_heads=2,
                  text_max_len=192),
    "small": dict(resolution=128, patch=8, dim=384, depth=8, heads=6, text_dim=256, text_depth=3, text_heads=4,
                  text_max_len=384, t_mean=0.4, sample_shift=2.0),
    "base": dict(resolution=256, patch=8, dim=768, depth=12, heads=12, text_dim=384, text_depth=4, text_heads=6,
                 text_max_len=512, t_mean=0.8, sample_shift=3.0),
    "large": dict(resolution=256, patch=8, dim=1152, depth=28, heads=16, text_dim=512, text_depth=6, text_heads=8,
                  text_max_len=512, t_mean=0.8, sample_shift=3.0),
}
PREDICTIONS = ("x", "v")
GENERATORS: Registry[type[Generator]] = Registry("generator")  # model.kind -> Generator class


@dataclass(frozen=True)
class GeneratorConfig:
    """A size preset plus explicit overrides; `resolved()` fills every None from the preset."""

    kind: str = "flow_dit"
    size: str = "debug"
    resolution: int | None = None
    patch: int | None = None
    dim: int | None = None
    depth: int | None = None
    heads: int | None = None
    text_dim: int | None = None
    text_depth: int | None = None
    text_heads: int | None = None
    text_max_len: int | None = None
    conv: int | None = None          # channels of the DiT's full-resolution conv stem and head (0: none)
    text_pretrained: str | None = None  # local dir of a transformers text model (frozen); None: trainable bytes
    prediction: str = "x"
    t_mean: float | None = None      # logit-normal timestep sampling: t = sigmoid(t_mean + t_std * N(0, 1))
    t_std: float = 1.0
    t_eps: float = 0.05              # x-prediction: velocity = (x_t - x) / max(t, t_eps)
    input_gate: bool = False         # the denoiser sees (1 - t) x_t: nothing of the pure noise at t = 1
    p_t_one: float = 0.0             # share of training samples at t = 1 (pure noise): the x-prediction is then
                                     # a regression onto the clean target, what one-step sampling returns (Lotus)
    sample_shift: float | None = None  # sampling grid t -> s t / (1 + (s - 1) t): more steps at high noise
    p_drop_text: float = 0.05        # condition dropout (InstructPix2Pix: 5% text, 5% image, 5% both)
    p_drop_image: float = 0.05
    p_drop_both: float = 0.05
    # kind=diffusers (train/model/diffusers_base.py): a local pretrained pipeline; size presets do not apply
    path: str | None = None              # local diffusers pipeline dir (model_index.json), loaded offline
    base_hash: str | None = None         # sha256 of its model_index.json + weights (recorded by the model)
    train: str = "full"                  # full | lora (peft)
    conv_in_init: str = "zero"           # widened 4->8 conv_in: zero (InstructPix2Pix) | halve (Marigold)
    lora_rank: int = 16
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] | None = None  # None: the family's attention projections
    gradient_checkpointing: bool = False
    cache_latents: bool = False          # VAE-encode each distinct sample once (fixed data, many epochs)

    def __post_init__(self) -> None:
        if self.kind not in GENERATORS:
            raise ValueError(f"model.kind {self.kind!r} not in {GENERATORS.names()}")
        if self.size not in SIZES:
            raise ValueError(f"model.size {self.size!r} not in {list(SIZES)}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"model.prediction {self.prediction!r} not in {list(PREDICTIONS)}")
        for name in ("p_drop_text", "p_drop_image", "p_drop_both"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"model.{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.p_t_one <= 1.0:
            raise ValueError(f"model.p_t_one must be in [0, 1], got {self.p_t_one}")

    def resolved(self) -> "GeneratorConfig":
        if self.kind != "flow_dit":  # a pretrained model: its own architecture and native resolution
            return self
        preset = {"t_mean": 0.0, "sample_shift": 1.0, "conv": 0, **SIZES[self.size]}
        return dataclasses.replace(self, **{k: v for k, v in preset.items() if getattr(self, k) is None})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GeneratorConfig":
        """A config from a `model` block or a checkpoint's `config_dict()`; ConfigError names a bad key."""
        return from_dict(cls, data, "model")

    def build(self) -> "Generator":
        return GENERATORS.get(self.kind)(self.resolved())


class Generator(nn.Module):
    """What the loop, checkpoints and predict need from a conditional image generator."""

    resolution: int

    def config_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def forward(self, target: torch.Tensor, image: torch.Tensor, has_image: torch.Tensor, prompts: list[str],
                generator: torch.Generator, weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Training loss: {"loss": scalar, "per_sample": (B,) detached}. All randomness from `generator`.
        `weight` (B, 1, H, W), optional: per-pixel loss weight (0 where the truth is undefined)."""
        raise NotImplementedError

    def generate(self, image: torch.Tensor, has_image: torch.Tensor, prompts: list[str], steps: int,
                 guidance: float, noise: torch.Tensor, image_guidance: float = 1.0) -> torch.Tensor:
        """Sample (B, 3, R, R) images in [-1, 1], starting from `noise` (B, 3, R, R)."""
        raise NotImplementedError


@GENERATORS.register("flow_dit")
class FlowDiTGenerator(Generator):
    """Rectified flow with a pixel-space DiT denoiser and a text encoder."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.resolution = cfg.resolution
        self.text = TextEncoderConfig(dim=cfg.text_dim, depth=cfg.text_depth, heads=cfg.text_heads,
                                      max_len=cfg.text_max_len, pretrained=cfg.text_pretrained).build(cfg.text_dim)
        self.dit = DiTConfig(resolution=cfg.resolution, patch=cfg.patch, dim=cfg.dim, depth=cfg.depth,
                             heads=cfg.heads, conv=cfg.conv).build(text_dim=cfg.text_dim)

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.cfg)

    def _encode_text(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts plus one empty prompt (the dropped / unconditional text) in one encoder call.

        Each distinct prompt is encoded once and gathered back in order: instructions repeat
        within a batch (a few templates per task), and the byte encoder is a third of the debug
        model's step (measured: 80 ms per step of 16 at 32 px, 30 of them in the text encoder)."""
        texts = list(prompts) + [""]
        index: dict[str, int] = {}
        rows = [index.setdefault(text, len(index)) for text in texts]
        tokens, mask = self.text(list(index))
        if len(index) == len(texts):
            return tokens, mask
        at = torch.tensor(rows, device=tokens.device)
        return tokens[at], mask[at]

    def _denoise(self, x_t: torch.Tensor, t: torch.Tensor, image: torch.Tensor, has: torch.Tensor,
                 tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The DiT's prediction. With `input_gate` it sees (1 - t) x_t: at t = 1 the noisy target is
        pure noise, which says nothing about the answer; gated to zero it cannot leak into a one-step
        (t = 1) prediction as speckle, and the convolutional stem, which does not see t, cannot
        mistake it for image detail. For t < 1 the scaling is invertible (t is an input), so
        generation loses nothing."""
        if self.cfg.input_gate:
            x_t = x_t * (1.0 - t)[:, None, None, None].to(x_t.dtype)
        return self.dit(x_t, t, image, has, tokens, mask)

    def _velocity(self, x_t: torch.Tensor, t: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        if self.cfg.prediction == "v":
            return pred
        return (x_t - pred) / t.clamp_min(self.cfg.t_eps)[:, None, None, None]

    def forward(self, target: torch.Tensor, image: torch.Tensor, has_image: torch.Tensor, prompts: list[str],
                generator: torch.Generator, weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        b, dev, cfg = target.shape[0], target.device, self.cfg
        u = torch.rand(b, 3, generator=generator, device=dev)
        both = u[:, 0] < cfg.p_drop_both
        drop_text = both | (u[:, 1] < cfg.p_drop_text)
        drop_image = both | (u[:, 2] < cfg.p_drop_image)
        tokens, mask = self._encode_text(prompts)
        # swap dropped prompts for the empty prompt's encoding on device (no host sync)
        tokens = torch.where(drop_text[:, None, None], tokens[-1:], tokens[:-1])
        mask = torch.where(drop_text[:, None], mask[-1:], mask[:-1])
        has = has_image.to(dev) & ~drop_image
        t = torch.sigmoid(cfg.t_mean + cfg.t_std * torch.randn(b, generator=generator, device=dev))
        if cfg.p_t_one:
            t = torch.where(torch.rand(b, generator=generator, device=dev) < cfg.p_t_one, torch.ones_like(t), t)
        noise = torch.randn(target.shape, generator=generator, device=dev, dtype=target.dtype)
        tb = t[:, None, None, None]
        x_t = (1 - tb) * target + tb * noise
        pred = self._denoise(x_t, t, image, has, tokens, mask)
        v_hat = self._velocity(x_t, t, pred.float())
        sq = (v_hat - (noise - target)).square()
        if weight is None:
            per_sample = sq.mean(dim=(1, 2, 3))
        else:  # mean over the weighted pixels (a sample with none defined contributes 0)
            per_sample = (sq * weight).sum(dim=(1, 2, 3)) / (weight.sum(dim=(1, 2, 3)) * sq.shape[1]).clamp_min(1.0)
        return {"loss": per_sample.mean(), "per_sample": per_sample.detach()}

    def timesteps(self, steps: int) -> torch.Tensor:
        """The sampling grid from t = 1 (noise) to t = 0 (image), shifted toward high noise."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        t = torch.linspace(1.0, 0.0, steps + 1)
        s = self.cfg.sample_shift
        return s * t / (1 + (s - 1) * t)

    @torch.no_grad()
    def generate(self, image: torch.Tensor, has_image: torch.Tensor, prompts: list[str], steps: int,
                 guidance: float, noise: torch.Tensor, image_guidance: float = 1.0) -> torch.Tensor:
        b, dev = noise.shape[0], noise.device
        tokens, mask = self._encode_text(prompts)
        cond_tokens, cond_mask = tokens[:-1], mask[:-1]
        null_tokens, null_mask = tokens[-1:].expand(b, -1, -1), mask[-1:].expand(b, -1)
        has = has_image.to(dev)
        # branches: (image, text) always; (image, "") for text guidance; ("", "") for image guidance
        branches = [(has, cond_tokens, cond_mask)]
        if guidance != 1.0 or image_guidance != 1.0:
            branches.append((has, null_tokens, null_mask))
        if image_guidance != 1.0:
            branches.append((torch.zeros_like(has), null_tokens, null_mask))
        n = len(branches)
        img_in, has_in = image.repeat(n, 1, 1, 1), torch.cat([br[0] for br in branches])
        tok_in, mask_in = torch.cat([br[1] for br in branches]), torch.cat([br[2] for br in branches])
        ts = self.timesteps(steps).to(dev)
        x = noise
        for i in range(steps):
            t = ts[i].expand(b * n)
            x_in = x.repeat(n, 1, 1, 1)
            v = self._velocity(x_in, t, self._denoise(x_in, t, img_in, has_in, tok_in, mask_in).float()).chunk(n)
            if n == 1:
                vel = v[0]
            elif n == 2:
                vel = v[1] + guidance * (v[0] - v[1])
            else:  # InstructPix2Pix's two-scale guidance
                vel = v[2] + image_guidance * (v[1] - v[2]) + guidance * (v[0] - v[1])
            x = x + (ts[i + 1] - ts[i]) * vel
        return x.clamp(-1.0, 1.0)


def build_generator(config: dict[str, Any]) -> Generator:
    """A generator from its `config_dict()` (or a Hydra `model` block)."""
    return GeneratorConfig.from_dict(config).build()
