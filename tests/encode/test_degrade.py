"""Restoration degradations: seeded, bounded, and of the documented kind."""

import numpy as np
import pytest

from encode.degrade import DEGRADATIONS, degrade


@pytest.fixture
def clean():
    y, x = np.mgrid[0:64, 0:64]
    return np.stack([x * 4, y * 4, np.full_like(x, 128)], -1).astype(np.uint8)


@pytest.mark.parametrize("kind", sorted(DEGRADATIONS))
def test_seeded_and_changes_the_image(kind, clean):
    a, pa = degrade(kind, clean, 7)
    b, pb = degrade(kind, clean, 7)
    c, _ = degrade(kind, clean, 8)
    assert np.array_equal(a, b) and pa == pb and not np.array_equal(a, c)
    assert a.shape == clean.shape and a.dtype == np.uint8
    assert np.abs(a.astype(int) - clean).mean() > 2


def test_kinds_do_what_they_say(clean):
    dark, p = degrade("lowlight", clean, 1)
    assert dark.mean() < 0.6 * clean.mean() and 0.03 <= p["exposure"] <= 0.25
    rain, _ = degrade("derain", clean, 1)
    assert (rain.astype(int) >= clean.astype(int) - 1).mean() > 0.95  # screen blend only brightens
    noisy, p = degrade("denoise", clean, 1)
    assert abs(noisy.astype(float).mean() - clean.mean()) < 3  # zero-mean noise


def test_bad_input():
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade("blur", np.zeros((4, 4, 3), np.uint8), 0)
    with pytest.raises(ValueError, match="uint8"):
        degrade("denoise", np.zeros((4, 4), np.float32), 0)

