"""SDXL in the UNet family: StableDiffusionXLPipeline / StableDiffusionXLInstructPix2PixPipeline as a `Generator`.

Everything of train/model/diffusers_unet.py (image latents by channel concat, conv_in widened
4->8 or an 8-channel InstructPix2Pix UNet used as is, the scheduler's DDPM objective, two-way
guidance, DDIM sampling) with SDXL's conditioning, as StableDiffusionXLInstructPix2PixPipeline and
diffusers' examples/instruct_pix2pix/train_instruct_pix2pix_sdxl.py feed the UNet:
- both tokenizers and frozen text encoders (CLIPTextModel, CLIPTextModelWithProjection): the
  penultimate hidden states of both, concatenated on the feature axis, are `encoder_hidden_states`;
  the second encoder's projected pooled output is `text_embeds`;
- `time_ids` = (orig_h, orig_w, crop_top, crop_left, target_h, target_w) = (R, R, 0, 0, R, R) at
  the model's resolution R: what the pipeline passes at that size (whole-frame samples, no crop);
- the null (dropped-text) condition: with the pipeline's `force_zeros_for_empty_prompt` (SDXL's
  default) zeros for both `encoder_hidden_states` and `text_embeds`, which is what the pipeline
  feeds its unconditional branches; otherwise the encoded empty prompt for both. (diffusers' SDXL
  InstructPix2Pix script drops to the encoded empty prompt and keeps the pooled embedding, yet
  samples with the pipeline's zeros; here training and sampling use the same null.)
Export: a StableDiffusionXLInstructPix2PixPipeline directory with the 8-channel conv_in.
"""

from __future__ import annotations

from typing import Any

import torch

from train.model.diffusers_base import ModelDirError, read_model_index
from train.model.diffusers_unet import UNetGenerator

TIME_IDS = 6  # original size (2), crop top-left (2), target size (2)


class SDXLGenerator(UNetGenerator):
    def load_text_parts(self, path: str) -> dict[str, Any]:
        from transformers import AutoTokenizer, CLIPTextModel, CLIPTextModelWithProjection

        load = dict(local_files_only=True)
        self.force_zeros = bool(read_model_index(path).get("force_zeros_for_empty_prompt", True))
        return {"text_encoder": CLIPTextModel.from_pretrained(path, subfolder="text_encoder", **load)
                .requires_grad_(False).eval(),
                "text_encoder_2": CLIPTextModelWithProjection.from_pretrained(path, subfolder="text_encoder_2", **load)
                .requires_grad_(False).eval(),
                "tokenizer": AutoTokenizer.from_pretrained(path, subfolder="tokenizer", **load),
                "tokenizer_2": AutoTokenizer.from_pretrained(path, subfolder="tokenizer_2", **load)}

    def check_conditioning(self) -> None:
        """The UNet's added embedding takes 6 time ids and text_encoder_2's projection; its cross-attention
        takes both encoders' hidden states; both tokenizers pad to one length."""
        cfg, f, path = self.unet.config, self.frozen, self.cfg.path
        if cfg.addition_embed_type != "text_time":
            raise ModelDirError(f"model.path {path!r}: an SDXL pipeline whose unet has addition_embed_type "
                                f"{cfg.addition_embed_type!r}, not 'text_time'")
        proj = f.text_encoder_2.config.projection_dim
        want, got = cfg.addition_time_embed_dim * TIME_IDS + proj, self.unet.add_embedding.linear_1.in_features
        hidden = f.text_encoder.config.hidden_size + f.text_encoder_2.config.hidden_size
        if want != got or hidden != cfg.cross_attention_dim:
            raise ModelDirError(f"model.path {path!r}: the unet's added embedding takes {got} values and its "
                                f"cross-attention {cfg.cross_attention_dim}, the text encoders give {want} "
                                f"({TIME_IDS} x {cfg.addition_time_embed_dim} time ids + {proj} pooled) and {hidden}")
        if f.tokenizer.model_max_length != f.tokenizer_2.model_max_length:
            raise ModelDirError(f"model.path {path!r}: tokenizer and tokenizer_2 pad to different lengths "
                                f"({f.tokenizer.model_max_length} vs {f.tokenizer_2.model_max_length})")
        r = self.resolution
        self.time_ids = torch.tensor([[r, r, 0, 0, r, r]], dtype=torch.float32)

    # -- conditions ----------------------------------------------------------------------------------
    @torch.no_grad()
    def conditions(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """encoder_hidden_states (B + 1, L, D1 + D2) and text_embeds (B + 1, P) of the prompts and the
        null condition (last row)."""
        f = self.frozen
        texts = list(prompts) + [""]
        with self._timed("text_encode"):
            states = []
            for tok, enc in ((f.tokenizer, f.text_encoder), (f.tokenizer_2, f.text_encoder_2)):
                ids = tok(texts, padding="max_length", max_length=tok.model_max_length, truncation=True,
                          return_tensors="pt").input_ids.to(enc.device)
                out = enc(ids, output_hidden_states=True)
                states.append(out.hidden_states[-2])
            hidden, pooled = torch.cat(states, dim=-1), out.text_embeds
            if self.force_zeros:
                hidden[-1], pooled[-1] = 0.0, 0.0
        return {"encoder_hidden_states": hidden, "text_embeds": pooled}

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        return self.conditions(prompts)["encoder_hidden_states"]

    def denoise(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        pooled = cond["text_embeds"]
        added = {"text_embeds": pooled, "time_ids": self.time_ids.to(pooled.device, pooled.dtype).expand(x.shape[0], -1)}
        return self.unet(x, t, cond["encoder_hidden_states"], added_cond_kwargs=added).sample

    # -- export: an SDXL InstructPix2Pix pipeline with the 8-channel conv_in -----------------------------
    def pipeline_class(self) -> Any:
        from diffusers import StableDiffusionXLInstructPix2PixPipeline

        return StableDiffusionXLInstructPix2PixPipeline

    def pipeline_components(self) -> dict[str, Any]:
        from diffusers import DDIMScheduler

        f = self.frozen
        return dict(vae=f.vae, text_encoder=f.text_encoder, text_encoder_2=f.text_encoder_2, tokenizer=f.tokenizer,
                    tokenizer_2=f.tokenizer_2, unet=self.unet,
                    scheduler=DDIMScheduler.from_config(self.scheduler.config, timestep_spacing="trailing",
                                                        clip_sample=False, set_alpha_to_one=False),
                    force_zeros_for_empty_prompt=self.force_zeros, add_watermarker=False)
