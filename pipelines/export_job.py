"""`vistune export checkpoint=CK out=DIR [--lora-only]`: a tuned pretrained model -> a diffusers pipeline.

The checkpoint's generator (EMA weights by default, on its recorded base directory) writes a
standard pipeline directory that `DiffusionPipeline.from_pretrained(DIR)` loads: the UNet family
as a StableDiffusionInstructPix2PixPipeline (8-channel conv_in), FLUX.1 Kontext as a
FluxKontextPipeline; LoRA adapters are fused and unloaded first. `--lora-only` writes just the
adapter with the pipeline's `save_lora_weights` (`pipe.load_lora_weights(DIR)` on the base).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from formats.config import from_dict


@dataclass(frozen=True)
class ExportConfig:
    checkpoint: str | None = None
    out: str | None = None
    lora_only: bool = False
    ema: bool = True

    def __post_init__(self) -> None:
        if not self.checkpoint or not self.out:
            raise ValueError("export needs checkpoint=CK and out=DIR")
        if not Path(self.checkpoint).is_file():
            raise ValueError(f"checkpoint={self.checkpoint!r} does not exist")


def config_from_dict(data: dict[str, Any]) -> ExportConfig:
    return from_dict(ExportConfig, data, "export")


def run(conf: ExportConfig) -> dict[str, Any]:
    from train.checkpoint import load_generator

    model, config = load_generator(conf.checkpoint, ema=conf.ema)
    if not hasattr(model, "export"):
        raise ValueError(f"checkpoint {conf.checkpoint!r} is a model.kind={config['model'].get('kind')} model; "
                         f"export writes diffusers pipelines of model.kind=diffusers runs only")
    out = model.export(conf.out, lora_only=conf.lora_only)
    return {"out": str(out), "family": model.family, "lora_only": conf.lora_only,
            "pipeline": model.pipeline_class().__name__}


def describe(summary: dict[str, Any]) -> str:
    what = "LoRA adapter (load_lora_weights)" if summary["lora_only"] else f"{summary['pipeline']} directory"
    return f"wrote {summary['out']}: {what}"
