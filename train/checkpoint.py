"""Training checkpoints: one self-describing file per save, written atomically, loadable with
`torch.load(weights_only=True)` (tensors, dicts, lists, numbers and strings only).

Contents: format/version, step, the run config (with the *resolved* model config, so a checkpoint
rebuilds its model even if size presets change), model and EMA weights, optimizer and scheduler
state, and per rank: RNG states (python, numpy, torch CPU/CUDA, the training noise generator) and
the data-stream position. Files are `<out>/checkpoints/step-00001000.pt`; the newest complete
file is the resume point (a file only appears, by rename, once it is fully on disk).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import pickletools
import random
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from formats.atomic import atomic_open
from train.model import Generator, build_generator

FORMAT = "vistune-train-checkpoint"
VERSION = 1
_NAME = re.compile(r"^step-(\d{8})\.pt$")


class CheckpointError(ValueError):
    """A missing, foreign, or incompatible checkpoint."""


def checkpoint_path(out: str | os.PathLike, step: int) -> Path:
    return Path(out) / "checkpoints" / f"step-{step:08d}.pt"


def list_checkpoints(out: str | os.PathLike) -> list[Path]:
    """Complete checkpoints under `<out>/checkpoints`, oldest first."""
    d = Path(out) / "checkpoints"
    return sorted(p for p in d.glob("step-*.pt") if _NAME.match(p.name)) if d.is_dir() else []


def latest_checkpoint(out: str | os.PathLike) -> Path | None:
    found = list_checkpoints(out)
    return found[-1] if found else None


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write `state` (plus format/version) to a temp file beside `path`, fsync, then rename."""
    path = Path(path)
    with atomic_open(path, "wb") as f:
        torch.save({"format": FORMAT, "version": VERSION, **state}, f)
    return path


def prune_checkpoints(out: str | os.PathLike, keep: int) -> None:
    """Keep the newest `keep` checkpoints (keep <= 0 keeps all)."""
    if keep > 0:
        for old in list_checkpoints(out)[:-keep]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint dict, read with weights_only=True; CheckpointError if missing or foreign."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    state = _torch_load(path, map_location)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a vistune training checkpoint (format {FORMAT!r})")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{str(path)!r} has checkpoint version {state.get('version')}, this code reads {VERSION}")
    return state


def _torch_load(path: Path, map_location: str | torch.device) -> Any:
    """torch.load(weights_only=True), with one line for each way a file that is no checkpoint fails.

    torch.save writes a zip archive; anything else (a text file, an empty or truncated file, a bare
    pickle) is not a checkpoint, and a pickle that would import or call code is refused by name.
    """
    if not zipfile.is_zipfile(path):
        code = _pickle_code(path)
        if code:
            raise CheckpointError(f"refused checkpoint {str(path)!r}: it is a pickle that would run code on "
                                  f"load ({code}); only torch.save archives of tensors and plain data are read")
        raise CheckpointError(f"{str(path)!r} is not a checkpoint: not a torch.save archive "
                              f"(empty, truncated, text or another format)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if str(err).startswith("Weights only load failed"):
            raise CheckpointError(f"refused checkpoint {str(path)!r}: it holds Python objects that would run code "
                                  f"on load ({_weights_only_reason(err)}); only tensors and plain data are read") from None
        raise CheckpointError(f"{str(path)!r} is not a checkpoint: {_first_line(err)}") from None
    except Exception as err:  # zip / storage errors have many types
        raise CheckpointError(f"{str(path)!r} is not a checkpoint: corrupt or truncated torch archive "
                              f"({_first_line(err)})") from None


def _pickle_code(path: Path) -> str | None:
    """The first import a bare pickle file would run (`posix.system`), read without unpickling it;
    None when the file is no well-formed binary pickle, or one that imports nothing."""
    found, strings = None, []
    try:
        with open(path, "rb") as f:
            if f.read(1) != b"\x80":  # PROTO: every pickle of protocol 2 and later starts with it
                return None
            f.seek(0)
            for op, arg, _ in pickletools.genops(f):  # parses opcodes; nothing is imported or called
                if isinstance(arg, str):
                    strings = (strings + [arg])[-2:]
                if found is None and op.name in ("GLOBAL", "INST"):
                    found = str(arg).replace(" ", ".")
                elif found is None and op.name == "STACK_GLOBAL":
                    found = ".".join(strings) or "STACK_GLOBAL"
    except Exception:  # not a pickle after all: genops stops at the first bad opcode
        return None
    return found


def _weights_only_reason(err: Exception) -> str:
    """torch's own reason among its paragraphs of advice (`Unsupported global: GLOBAL posix.system ...`)."""
    lines = [ln.strip() for ln in str(err).splitlines()[1:] if ln.strip()]
    reasons = [ln for ln in lines if not ln.startswith(("Please file an issue", "Check the documentation"))]
    return reasons[0].rstrip(".") if reasons else "unsupported pickle content"


def _first_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], what: str) -> None:
    """load_state_dict(strict) with a one-paragraph error instead of torch's wall of keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    shapes = [f"{k}: {tuple(weights[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(weights)) if weights[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise CheckpointError(f"{what} does not fit this model (a checkpoint from another model config?): "
                              f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, "
                              f"{len(shapes)} shape mismatches {shapes[:3]}")
    model.load_state_dict(weights)


def check_same_base(saved: dict[str, Any], current: dict[str, Any], path: str | os.PathLike) -> None:
    """A checkpoint of a pretrained base (model.base_hash) only loads onto that same base."""
    was, now = saved.get("model", {}).get("base_hash"), current.get("model", {}).get("base_hash")
    if was != now and (was or now):
        raise CheckpointError(f"checkpoint {str(path)!r} was trained on base {saved['model'].get('path')!r} "
                              f"(hash {str(was)[:12]}), this run's model is {current['model'].get('path')!r} "
                              f"(hash {str(now)[:12]}): a checkpoint only loads onto its own base model")


def load_generator(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                   ema: bool = True) -> tuple[Generator, dict[str, Any]]:
    """The generator a checkpoint holds (EMA weights by default), in eval mode, and its run config.

    The config dict is the training run's config; `config["model"]` is the resolved model config
    (`resolution`, size fields, ...). Raises CheckpointError for a missing file, a file that is not
    a vistune checkpoint, or weights that do not fit the model its config describes.
    """
    state = load_checkpoint(path, map_location)
    config = state["config"]
    try:
        model = build_generator(config["model"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {str(path)!r}: cannot build its model from {config.get('model')}: {err}") from err
    load_weights(model, state["ema" if ema else "model"], f"checkpoint {str(path)!r} ({'ema' if ema else 'model'} weights)")
    return model.to(map_location).eval(), config


def rng_state(noise: torch.Generator) -> dict[str, Any]:
    """Every RNG a training step may touch, in weights_only-loadable types."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(), "noise": noise.get_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], noise: torch.Generator) -> None:
    random.setstate(_tuplify(state["python"]))
    torch.set_rng_state(state["torch"].cpu())
    noise.set_state(state["noise"].cpu())
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _tuplify(x: Any) -> Any:
    """random.setstate needs tuples; a save/load round trip may hand back lists."""
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x
