"""Finding and loading transformers checkpoints from a local directory (no hub access at run time)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEVICES = ("cpu", "cuda")


def checkpoint_dir(backend: str, weights: str | None, example: str) -> Path:
    """The weights directory, or a MissingWeightsError saying where to put what.

    Args:
        backend: the labeler name (for the message and the config key).
        weights: the configured directory.
        example: a hub checkpoint that fits, named in the message.
    """
    from annotate.labelers.base import MissingWeightsError

    how = (f"put a transformers checkpoint there (config.json, model.safetensors and the processor's json), e.g. "
           f"`hf download {example} --local-dir DIR` on a machine with internet, or `model.save_pretrained(DIR)` "
           f"and `processor.save_pretrained(DIR)`; then set labelers.{backend}.weights=DIR")
    if not weights:
        raise MissingWeightsError(f"labeler {backend!r} needs labelers.{backend}.weights: {how}")
    path = Path(weights).expanduser()
    if not (path / "config.json").is_file():
        raise MissingWeightsError(f"{backend} weights directory {str(path)!r} has no config.json: {how}")
    return path


def model_type(path: Path) -> str:
    """`model_type` of the checkpoint's config.json (read without importing transformers)."""
    return str(json.loads((path / "config.json").read_text()).get("model_type", ""))


def load(path: Path, model_class: str, processor_class: str, device: str) -> tuple[Any, Any]:
    """Load model + processor with transformers' Auto classes, offline, in eval mode on `device`."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {list(DEVICES)}, got {device!r}")
    try:
        import transformers
    except ImportError as err:
        raise ImportError("transformers labelers need `pip install transformers torch`") from err
    model = getattr(transformers, model_class).from_pretrained(str(path), local_files_only=True)
    processor = getattr(transformers, processor_class).from_pretrained(str(path), local_files_only=True)
    return model.to(device).eval(), processor
