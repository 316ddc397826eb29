"""Read held-out evaluation samples from task shards (webdataset tars written by encode)."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterable, Sequence

from encode.sample import TaskSample, from_sample
from formats.shards import iter_samples


def shard_paths(specs: Sequence[str | os.PathLike]) -> list[Path]:
    """Tar paths from a list of files, directories (every *.tar inside, sorted) and glob patterns.

    Raises ValueError when a spec matches nothing (a typo must not evaluate an empty set).
    """
    out: list[Path] = []
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            found = sorted(p.glob("*.tar"))
        elif p.is_file():
            found = [p]
        else:
            found = [Path(x) for x in sorted(glob.glob(str(spec)))]
        if not found:
            raise ValueError(f"eval data {str(spec)!r} matches no shard (.tar file, directory of them, or glob)")
        out += found
    return out


def iter_eval_samples(paths: Iterable[str | os.PathLike], tasks: Sequence[str] | None = None,
                      with_raw: bool = True, split: str = "eval") -> Iterable[TaskSample]:
    """TaskSamples of `split` (default: the held-out eval split) from shard tars, optionally only `tasks`."""
    for path in paths:
        for raw in iter_samples(path):
            ts = from_sample(raw, with_raw=with_raw)
            if ts.split == split and (tasks is None or ts.task in tasks):
                yield ts


def load_eval_samples(specs: Sequence[str | os.PathLike], tasks: Sequence[str] | None = None,
                      max_samples: int | None = None, split: str = "eval") -> list[TaskSample]:
    """The first `max_samples` (all when None) samples of `split` (held-out ones with their raw truth)."""
    out: list[TaskSample] = []
    for ts in iter_eval_samples(shard_paths(specs), tasks, with_raw=split != "train", split=split):
        out.append(ts)
        if max_samples is not None and len(out) >= max_samples:
            break
    return out
