"""`model.kind=diffusers`: instruction-tune a pretrained diffusers pipeline on the `Generator` interface.

    vistune train model.kind=diffusers model.path=/models/instruct-pix2pix model.train=lora ...

`model.path` is a local diffusers pipeline directory (`model_index.json` plus one folder per
component), loaded with `local_files_only=True`; nothing is downloaded. The family is read from
the pipeline class in `model_index.json`:
- UNet (StableDiffusion, InstructPix2Pix, Marigold): train/model/diffusers_unet.py; SDXL (its
  two text encoders and added time ids): train/model/diffusers_sdxl.py;
- flow transformer (FLUX.1 Kontext): train/model/diffusers_flux.py.

What the loop and checkpoints see: the denoiser (UNet / transformer, with its LoRA adapters) is
the only submodule; the VAE, tokenizers and text encoders are frozen and held outside the module
tree (`_Frozen`), so `parameters()`, DDP and `.state_dict()` never include them. `state_dict()`
holds only the trainable tensors (full: the denoiser; lora: the adapters and a widened conv_in),
so checkpoints and EMA carry just those; EMA copies share the frozen tensors (`__deepcopy__`).
`config_dict()` records the base directory and `base_hash` (sha256 of `model_index.json` and every
weight file); building against a directory whose hash differs is `BaseModelError`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from train.model.generator import GENERATORS, Generator, GeneratorConfig

# pipeline class (model_index.json `_class_name`) -> family
FAMILIES = {
    "StableDiffusionPipeline": "unet", "StableDiffusionInstructPix2PixPipeline": "unet",
    "StableDiffusionImg2ImgPipeline": "unet", "MarigoldDepthPipeline": "unet", "MarigoldNormalsPipeline": "unet",
    "MarigoldIntrinsicsPipeline": "unet",
    "StableDiffusionXLPipeline": "sdxl", "StableDiffusionXLInstructPix2PixPipeline": "sdxl",
    "FluxKontextPipeline": "flux", "FluxPipeline": "flux",
}
# families recognised but not built yet: a clear error instead of a wrong model
UNSUPPORTED = {
    "QwenImageEditPipeline": "Qwen-Image-Edit is not supported yet",
}
# components each family needs: name -> "model" (config + weights) | "tokenizer" | "scheduler"
COMPONENTS = {
    "unet": {"unet": "model", "vae": "model", "text_encoder": "model", "tokenizer": "tokenizer",
             "scheduler": "scheduler"},
    "sdxl": {"unet": "model", "vae": "model", "text_encoder": "model", "text_encoder_2": "model",
             "tokenizer": "tokenizer", "tokenizer_2": "tokenizer", "scheduler": "scheduler"},
    "flux": {"transformer": "model", "vae": "model", "text_encoder": "model", "text_encoder_2": "model",
             "tokenizer": "tokenizer", "tokenizer_2": "tokenizer", "scheduler": "scheduler"},
}
DOWNLOAD_HINT = ("download the whole pipeline on a connected machine, e.g. `hf download "
                 "timbrooks/instruct-pix2pix --local-dir DIR` (or stable-diffusion-v1-5/stable-diffusion-v1-5, "
                 "stabilityai/stable-diffusion-2, stabilityai/stable-diffusion-xl-base-1.0, "
                 "black-forest-labs/FLUX.1-Kontext-dev), copy DIR here and pass model.path=DIR")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")
TRAIN_MODES = ("full", "lora")


class ModelDirError(ValueError):
    """A missing, incomplete or unsupported local pipeline directory."""


class BaseModelError(ValueError):
    """A checkpoint trained on another base model than the directory it is loaded against."""


# -- the pipeline directory ----------------------------------------------------------------------
def read_model_index(path: str | os.PathLike) -> dict[str, Any]:
    root = Path(path)
    if not root.is_dir():
        raise ModelDirError(f"model.path {str(path)!r} is not a directory; {DOWNLOAD_HINT}")
    index = root / "model_index.json"
    if not index.is_file():
        raise ModelDirError(f"model.path {str(path)!r} has no model_index.json (not a diffusers pipeline "
                            f"directory); {DOWNLOAD_HINT}")
    try:
        return json.loads(index.read_text())
    except json.JSONDecodeError as err:
        raise ModelDirError(f"{str(index)!r} is not valid JSON ({err}); {DOWNLOAD_HINT}") from None


def family_of(path: str | os.PathLike) -> str:
    """'unet' | 'sdxl' | 'flux' from the pipeline class; ModelDirError for unsupported classes."""
    name = read_model_index(path).get("_class_name")
    if name in UNSUPPORTED:
        raise ModelDirError(f"model.path {str(path)!r}: {name}: {UNSUPPORTED[name]}")
    if name not in FAMILIES:
        raise ModelDirError(f"model.path {str(path)!r}: pipeline class {name!r} is not supported; "
                            f"known: {sorted(FAMILIES)}")
    return FAMILIES[name]


def check_model_dir(path: str | os.PathLike) -> str:
    """The family, after checking every component the family needs is present and complete
    (config, weight files, every shard an index names); ModelDirError naming what is missing."""
    family = family_of(path)
    root, index = Path(path), read_model_index(path)
    problems = []
    for name, kind in COMPONENTS[family].items():
        sub = root / name
        if not isinstance(index.get(name), list) or index[name][0] is None:
            problems.append(f"model_index.json names no {name}")
        elif not sub.is_dir():
            problems.append(f"{name}/ is missing")
        elif kind == "model":
            if not (sub / "config.json").is_file():
                problems.append(f"{name}/config.json is missing")
            weights = [p for p in sub.iterdir() if p.name.endswith(WEIGHT_SUFFIXES)]
            if not weights:
                problems.append(f"{name}/ has no weight files")
            for shard_index in sub.glob("*.index.json"):
                shards = set(json.loads(shard_index.read_text()).get("weight_map", {}).values())
                absent = sorted(s for s in shards if not (sub / s).is_file())
                if absent:
                    problems.append(f"{name}/ lacks shards {absent[:3]} named by {shard_index.name}")
        elif kind == "scheduler" and not (sub / "scheduler_config.json").is_file():
            problems.append(f"{name}/scheduler_config.json is missing")
        elif kind == "tokenizer" and not any(sub.iterdir()):
            problems.append(f"{name}/ is empty")
    if problems:
        raise ModelDirError(f"model.path {str(path)!r} is incomplete: {'; '.join(problems)}; {DOWNLOAD_HINT}")
    return family


_HASHES: dict[tuple, str] = {}


def base_hash(path: str | os.PathLike) -> str:
    """sha256 over model_index.json and every weight file (relative name + content), cached per
    (path, sizes, mtimes) in this process: a different or modified base gets a different hash."""
    root = Path(path).resolve()
    files = [root / "model_index.json"] + sorted(p for p in root.rglob("*") if p.is_file()
                                                 and p.name.endswith(WEIGHT_SUFFIXES))
    key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if key not in _HASHES:
        h = hashlib.sha256()
        for p in files:
            h.update(str(p.relative_to(root)).encode() + b"\0")
            with open(p, "rb") as f:
                h.update(hashlib.file_digest(f, "sha256").digest())
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


# -- the generator base --------------------------------------------------------------------------
class _Frozen:
    """Frozen components (VAE, text encoders, tokenizers) outside the module tree; one instance is
    shared by a generator and its EMA copy (deepcopy returns it as is)."""

    def __init__(self, **parts: Any) -> None:
        self.__dict__.update(parts)

    def __deepcopy__(self, memo: dict) -> "_Frozen":
        return self

    def modules(self) -> Iterator[nn.Module]:
        return (m for m in self.__dict__.values() if isinstance(m, nn.Module))


class DiffusersGenerator(Generator):
    """Shared by the families: directory checks, trainable-only state, frozen parts, LoRA, timings."""

    denoiser_name = "denoiser"       # the attribute holding the trained network ("unet" / "transformer")
    default_lora_targets: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        if not cfg.path:
            raise ModelDirError(f"model.kind=diffusers needs model.path=DIR (a local diffusers pipeline); "
                                f"{DOWNLOAD_HINT}")
        if cfg.train not in TRAIN_MODES:
            raise ValueError(f"model.train {cfg.train!r} not in {list(TRAIN_MODES)}")
        self.family = check_model_dir(cfg.path)
        digest = base_hash(cfg.path)
        if cfg.base_hash is not None and cfg.base_hash != digest:
            raise BaseModelError(f"model.path {cfg.path!r} is not the base this model was trained on "
                                 f"(base_hash {digest[:12]}... vs recorded {cfg.base_hash[:12]}...): "
                                 f"pass the original base directory")
        self.cfg = dataclasses.replace(cfg, path=str(Path(cfg.path).resolve()), base_hash=digest)
        self.timings: dict[str, float] | None = None  # set to {} to accumulate per-phase seconds (bench)
        self._latent_cache: dict[bytes, torch.Tensor] = {}
        self._trainable: frozenset[str] = frozenset()

    # -- what the loop and checkpoints use --------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(dataclasses.replace(self.cfg, resolution=self.resolution))

    @property
    def denoiser(self) -> nn.Module:
        return getattr(self, self.denoiser_name)

    @property
    def dit(self) -> nn.Module:  # what `train.compile` compiles
        return self.denoiser

    def _finish_setup(self, widened: nn.Module | None) -> None:
        """Freeze / adapt the denoiser per model.train, record the trainable names."""
        den = self.denoiser
        den.requires_grad_(self.cfg.train == "full")
        if self.cfg.train == "lora":
            from peft import LoraConfig

            targets = list(self.cfg.lora_targets or self.default_lora_targets)
            den.add_adapter(LoraConfig(r=self.cfg.lora_rank, lora_alpha=self.cfg.lora_alpha,
                                       init_lora_weights="gaussian", target_modules=targets))
            if widened is not None:  # the new input channels must learn (peft's modules_to_save role)
                widened.requires_grad_(True)
        if self.cfg.gradient_checkpointing:
            den.enable_gradient_checkpointing()
        self._trainable = frozenset(n for n, p in self.named_parameters() if p.requires_grad)
        if not self._trainable:
            raise ValueError(f"model.train={self.cfg.train}: no trainable parameters (lora_targets "
                             f"{self.cfg.lora_targets} match no module?)")

    def state_dict(self, *args: Any, destination: Any = None, prefix: str = "", keep_vars: bool = False) -> Any:
        """Only the trainable tensors (full weights or adapters + widened input layer)."""
        full = super().state_dict(prefix="", keep_vars=keep_vars)
        out = destination if destination is not None else {}
        for k, v in full.items():
            if k in self._trainable:
                out[prefix + k] = v
        return out

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        missing, unexpected = sorted(self._trainable - set(state_dict)), sorted(set(state_dict) - self._trainable)
        if strict and (missing or unexpected):
            raise RuntimeError(f"trainable state does not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
        return super().load_state_dict(state_dict, strict=False, assign=assign)

    def __deepcopy__(self, memo: dict) -> "DiffusersGenerator":
        """A copy (EMA) with its own trainable tensors; frozen tensors and parts are shared."""
        for p in self.parameters():
            if not p.requires_grad:
                memo[id(p)] = p
        for b in self.buffers():
            memo[id(b)] = b
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            new.__dict__[k] = copy.deepcopy(v, memo)
        return new

    def _apply(self, fn: Any, recurse: bool = True) -> "DiffusersGenerator":
        super()._apply(fn, recurse)
        for m in self.frozen.modules():  # .to(device) moves the frozen parts too (dtype stays fp32)
            m._apply(fn, recurse)
        return self

    @property
    def frozen(self) -> _Frozen:
        return self.__dict__["_frozen"]

    # -- helpers for the families -------------------------------------------------------------------
    @contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        if self.timings is None:
            yield
            return
        dev = next(self.denoiser.parameters()).device
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        yield
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - t0

    @torch.no_grad()
    def _vae_moments(self, pixels: torch.Tensor) -> torch.Tensor:
        """The VAE posterior's parameters (mean and log-variance, (B, 2C, h, w)) of images in [-1, 1];
        with model.cache_latents each distinct image is encoded once (keyed by its 8-bit content)."""
        vae = self.frozen.vae
        pixels = pixels.to(dtype=vae.dtype)
        if not self.cfg.cache_latents:
            return vae.encode(pixels).latent_dist.parameters
        keys = [hashlib.blake2b(((x + 1) * 127.5).round().to(torch.uint8).cpu().numpy().tobytes(),
                                digest_size=16).digest() for x in pixels]
        todo = [i for i, k in enumerate(keys) if k not in self._latent_cache]
        if todo:
            params = vae.encode(pixels[todo]).latent_dist.parameters
            for i, p in zip(todo, params):
                self._latent_cache[keys[i]] = p.to("cpu")
        return torch.stack([self._latent_cache[k] for k in keys]).to(pixels.device)

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.frozen.vae.config.block_out_channels) - 1)

    def latent_noise(self, noise: torch.Tensor, channels: int) -> torch.Tensor:
        """Latent starting noise from the interface's pixel noise (B, 3, R, R): pixel-unshuffle by
        the VAE's factor and keep the first `channels` (still i.i.d. N(0, 1), a function of `noise`)."""
        f = self.vae_scale
        if 3 * f * f < channels:
            raise ValueError(f"pixel noise has {3 * f * f} values per latent pixel, {channels} needed")
        return nn.functional.pixel_unshuffle(noise, f)[:, :channels] if f > 1 else noise[:, :channels]

    def latent_weight(self, weight: torch.Tensor | None) -> torch.Tensor | None:
        """The per-pixel loss weight (B, 1, R, R) averaged to the latent grid."""
        if weight is None:
            return None
        return nn.functional.avg_pool2d(weight, self.vae_scale) if self.vae_scale > 1 else weight

    @staticmethod
    def masked_mean(sq: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        if weight is None:
            return sq.mean(dim=(1, 2, 3))
        return (sq * weight).sum(dim=(1, 2, 3)) / (weight.sum(dim=(1, 2, 3)) * sq.shape[1]).clamp_min(1e-6)

    def dropout(self, b: int, generator: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """InstructPix2Pix's condition dropout: (drop_text, drop_image) per sample."""
        cfg = self.cfg
        u = torch.rand(b, 3, generator=generator, device=device)
        both = u[:, 0] < cfg.p_drop_both
        return both | (u[:, 1] < cfg.p_drop_text), both | (u[:, 2] < cfg.p_drop_image)


    # -- export --------------------------------------------------------------------------------------
    def pipeline_class(self) -> Any:
        raise NotImplementedError

    def pipeline_components(self) -> dict[str, Any]:
        raise NotImplementedError

    def lora_layers_key(self) -> str:
        return f"{self.denoiser_name}_lora_layers"

    def export(self, out: str | os.PathLike, lora_only: bool = False) -> Path:
        """Write a standard diffusers pipeline directory (`DiffusionPipeline.from_pretrained(out)`),
        LoRA adapters fused and unloaded first (unfused adapters save keys that do not reload); with
        `lora_only`, just the adapter (`save_lora_weights`). `out` must not exist or be empty; a failed
        export removes what it wrote. Changes this model (fuses the adapters)."""
        out = Path(out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ValueError(f"export out={str(out)!r} exists and is not empty")
        lora = self.cfg.train == "lora"
        if lora_only and not lora:
            raise ValueError("--lora-only needs a checkpoint trained with model.train=lora")
        if lora_only and getattr(self, "widened", False):
            raise ValueError("--lora-only: this model's conv_in was widened to take the input image, which a LoRA "
                             "file cannot carry onto the 4-channel base; export the full pipeline instead")
        try:
            if lora_only:
                from peft.utils import get_peft_model_state_dict

                layers = get_peft_model_state_dict(self.denoiser)
                meta = self.denoiser.peft_config["default"].to_dict()  # rank, alpha, targets: reload at the same scale
                self.pipeline_class().save_lora_weights(str(out), **{self.lora_layers_key(): layers,
                                                                     f"{self.denoiser_name}_lora_adapter_metadata": meta})
            else:
                if lora:
                    self.denoiser.fuse_lora()
                    self.denoiser.unload_lora()
                self.pipeline_class()(**self.pipeline_components()).save_pretrained(str(out))
        except BaseException:  # no half-written pipeline under out (it was empty)
            import shutil

            shutil.rmtree(out, ignore_errors=True)
            raise
        return out


def build_diffusers(cfg: GeneratorConfig) -> Generator:
    """model.kind=diffusers: the family's generator for the pipeline class in model.path."""
    family = family_of(cfg.path) if cfg.path else None
    if family == "flux":
        from train.model.diffusers_flux import FluxKontextGenerator

        return FluxKontextGenerator(cfg)
    if family == "sdxl":
        from train.model.diffusers_sdxl import SDXLGenerator

        return SDXLGenerator(cfg)
    from train.model.diffusers_unet import UNetGenerator

    return UNetGenerator(cfg)


GENERATORS.add("diffusers", build_diffusers)
