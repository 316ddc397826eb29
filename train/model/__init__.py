"""Conditional image generators (pure torch; no distributed code: see train/distributed.py)."""

from train.model.generator import (GENERATORS, SIZES, FlowDiTGenerator, Generator, GeneratorConfig,
                                   build_generator)

__all__ = ["GENERATORS", "SIZES", "FlowDiTGenerator", "Generator", "GeneratorConfig", "build_generator"]
