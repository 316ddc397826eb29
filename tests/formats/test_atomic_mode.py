"""Issue 19, defect 10: outputs get the mode any new file gets (0666 less the umask), not mkstemp's 0600,
so shards, manifests and checkpoints on shared storage are readable by the users the umask allows."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from formats.atomic import atomic_write_text, umask
from formats.shards import ShardPaths, ShardWriter
from train.checkpoint import checkpoint_path, save_checkpoint


@pytest.fixture(params=[0o022, 0o002, 0o077])
def process_umask(request):
    before = os.umask(request.param)
    yield request.param
    os.umask(before)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_umask_is_read_without_changing_it(process_umask):
    assert umask() == process_umask
    assert umask() == process_umask


def test_atomic_writes_honour_the_umask(tmp_path, process_umask):
    assert _mode(atomic_write_text(tmp_path / "report.json", "{}")) == 0o666 & ~process_umask


def test_shards_honour_the_umask(tmp_path, process_umask):
    paths = ShardPaths.of(tmp_path, "x", 0)
    with ShardWriter(paths) as writer:
        writer.add("a", {"txt": b"hello"}, {"n": 1})
        writer.commit()
    assert _mode(paths.tar) == _mode(paths.parquet) == 0o666 & ~process_umask


def test_checkpoints_honour_the_umask(tmp_path, process_umask):
    path = save_checkpoint(checkpoint_path(tmp_path, 1), {"step": 1, "model": {"w": torch.zeros(2)}})
    assert _mode(path) == 0o666 & ~process_umask
