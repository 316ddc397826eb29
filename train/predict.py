"""Batched, seeded sampling from a trained generator on task samples (what evaluation calls)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from encode.sample import TaskSample
from train.data import fit
from train.model import Generator


def sample_noise(seed: int, index: int, resolution: int) -> torch.Tensor:
    """The starting noise of sample `index`: a function of (seed, index) only, so results do not
    depend on the batch size or on which other samples are predicted alongside."""
    g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0]) >> 1)
    return torch.randn(3, resolution, resolution, generator=g)


@torch.no_grad()
def predict(model: Generator, samples: Sequence[TaskSample], steps: int, guidance: float, seed: int,
            batch_size: int = 16, image_guidance: float = 1.0) -> list[np.ndarray]:
    """One generated (R, R, 3) uint8 image per sample at the model resolution R.

    Input images are center-cropped to a square and resized (bilinear) to R; text-to-image
    samples (input None) get no image condition. Deterministic for a given seed.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    r = model.resolution
    out: list[np.ndarray] = []
    try:
        for lo in range(0, len(samples), batch_size):
            chunk = samples[lo:lo + batch_size]
            images = np.stack([np.zeros((r, r, 3), np.uint8) if s.input is None else fit(s.input, r, nearest=False)
                               for s in chunk])
            image = torch.from_numpy(images).permute(0, 3, 1, 2).to(device).float() / 127.5 - 1.0
            has = torch.tensor([s.input is not None for s in chunk], device=device)
            noise = torch.stack([sample_noise(seed, lo + i, r) for i in range(len(chunk))]).to(device)
            x = model.generate(image, has, [s.prompt for s in chunk], steps, guidance, noise, image_guidance)
            rgb = ((x.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            out += list(rgb)
    finally:
        model.train(was_training)
    return out
