"""Fixtures shared by the reliability tests."""

import pytest


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if anything starts or joins Ray: these errors must come before any work."""
    ray = pytest.importorskip("ray")

    def init(*_a, **_kw):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(ray, "init", init)
