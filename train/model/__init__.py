"""Conditional image generators (pure torch; no distributed code: see train/distributed.py)."""

from train.model.generator import (GENERATORS, SIZES, FlowDiTGenerator, Generator, GeneratorConfig,
                                   build_generator)
from train.model import diffusers_base  # noqa: E402,F401  registers model.kind=diffusers (imports diffusers lazily)

__all__ = ["GENERATORS", "SIZES", "FlowDiTGenerator", "Generator", "GeneratorConfig", "build_generator"]
