"""The one config layer: dict -> dataclass, one ConfigError that names the key."""

from dataclasses import dataclass, field

import pytest

from formats.config import ConfigError, from_dict


@dataclass(frozen=True)
class Optim:
    lr: float = 3e-4
    betas: tuple[float, ...] = (0.9, 0.99)


@dataclass(frozen=True)
class Job:
    out: str
    steps: int = 10
    optim: Optim = field(default_factory=Optim)
    shards: tuple[str, ...] = ()
    tasks: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


def test_lists_become_tuples_and_nested_blocks_dataclasses():
    job = from_dict(Job, {"out": "o", "optim": {"betas": [0.8, 0.9]}, "shards": "a.tar", "tasks": ["depth"]})
    assert job == Job("o", optim=Optim(betas=(0.8, 0.9)), shards=("a.tar",), tasks=("depth",))
    assert from_dict(Job, {"out": "o", "optim": None}).optim == Optim()  # `optim: null` in YAML: the defaults
    assert from_dict(Job, {"out": "o", "tasks": None}).tasks is None     # an optional field keeps its null


@pytest.mark.parametrize("data, message", [
    ({"out": "o", "stpes": 3}, r"unknown train keys \['stpes'\]; allowed: \['optim', 'out', 'shards', 'steps', 'tasks'\]"),
    ({"steps": 3}, r"train missing required keys \['out'\]"),
    ({"out": "o", "steps": 0}, r"train: steps must be >= 1, got 0"),
    ({"out": "o", "optim": {"lr": 1, "beta": 2}}, r"unknown train.optim keys \['beta'\]"),
    ({"out": "o", "optim": 5}, r"train.optim must be a mapping"),
])
def test_every_bad_config_is_one_config_error_naming_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Job, data, "train")
    assert issubclass(ConfigError, ValueError)  # the CLI reports ValueErrors in one line, exit code 2
