"""What a labeler returns, and the registry that builds labelers by name.

A labeler turns a batch of RGB images into, per image, a list of `Instance`s (a full-size
boolean mask, a class name from `labeler.classes`, a score in [0, 1], and optionally a
stability score) and/or a semantic map. Backends register a factory under a name; building
one loads its weights once (a Ray worker keeps it for every shard it processes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from formats.registry import Registry


@dataclass
class Instance:
    """One object proposal. `mask` is (H, W) bool at the input image's size."""

    mask: np.ndarray
    class_name: str
    score: float
    stability: float | None = None  # IoU of the mask at two thresholds (SAM's definition); None: unknown

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass
class LabelResult:
    """A labeler's answer for one image.

    `semantic` (optional, (H, W) uint16) indexes ["unlabeled", *labeler.classes]; when None the
    annotator paints the semantic map from the kept instances.
    """

    instances: list[Instance] = field(default_factory=list)
    semantic: np.ndarray | None = None


@runtime_checkable
class Labeler(Protocol):
    """A batch of RGB uint8 (H, W, 3) arrays (sizes may differ) -> one LabelResult per image."""

    name: str
    version: str
    classes: list[str]

    @property
    def weights(self) -> str: ...

    def label(self, images: list[np.ndarray]) -> list[LabelResult]: ...


class MissingWeightsError(FileNotFoundError, ValueError):
    """Weights are not where the config says; the message says what to install or where to put them.

    Also a ValueError: it is a bad config value, reported as one (`vistune` exits 2 with the message).
    """


LABELERS: Registry[Callable[..., Labeler]] = Registry("labeler")


def register(name: str) -> Callable[[Callable[..., Labeler]], Callable[..., Labeler]]:
    """Decorator: register a labeler factory under `name` (twice is an error)."""
    return LABELERS.register(name)


def names() -> list[str]:
    """The registered labeler names, sorted."""
    return LABELERS.names()


def get(name: str, **params: Any) -> Labeler:
    """Build labeler `name` with `params` (its constructor's keyword arguments)."""
    return LABELERS.build(name, **params)


def check(name: str, params: dict[str, Any]) -> None:
    """Validate a labeler's name, parameters and weights location without loading it (cheap, on the driver).

    Parameters are bound to the factory's signature; a factory with a `preflight(**params)`
    static method also checks that its weights are where `params` say (MissingWeightsError if not).
    """
    import inspect

    factory = LABELERS.get(name)
    try:
        inspect.signature(factory).bind(**params)
    except TypeError as err:
        allowed = [p for p in inspect.signature(factory).parameters if p != "self"]
        raise ValueError(f"labeler {name!r}: bad parameters {sorted(params)} ({err}); allowed: {allowed}") from err
    preflight = getattr(factory, "preflight", None)
    if preflight is not None:
        preflight(**params)


def describe(labeler: Labeler) -> dict[str, str]:
    """The JSON description stored with every sample."""
    return {"name": labeler.name, "version": str(labeler.version), "weights": labeler.weights}


def stability_score(soft: np.ndarray, threshold: float, offset: float) -> float:
    """IoU of `soft > threshold + offset` and `soft > threshold - offset` (SAM's stability score).

    A mask whose outline moves a lot when the threshold moves a little is a guess, not an object.
    """
    high = np.count_nonzero(soft > threshold + offset)
    low = np.count_nonzero(soft > threshold - offset)
    return float(high / low) if low else 0.0
