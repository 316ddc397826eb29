"""Issue 19, defect 9: a file that is no checkpoint, or one that would run code when unpickled, is one
clear line (CheckpointError), never torch's paragraphs or a bare `pop from empty list`; torch.load
stays weights_only=True (nothing in the file is ever executed)."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from train.checkpoint import CheckpointError, checkpoint_path, load_checkpoint, save_checkpoint

PWNED = "vistune-test-pwned"


class Payload:
    """Unpickling this would run a shell command (creating a file we can look for)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    return text


@pytest.mark.parametrize("content", [b"step: 1000\nthis is a text file\n", b"", b"\x00" * 64])
def test_a_file_that_is_not_a_checkpoint_is_named_as_such(tmp_path, content):
    path = tmp_path / "step-00001000.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert _one_line(err) == f"{str(path)!r} is not a checkpoint: not a torch.save archive " \
                              f"(empty, truncated, text or another format)"


def test_a_truncated_checkpoint_is_named_as_such(tmp_path):
    path = save_checkpoint(checkpoint_path(tmp_path, 1), {"step": 1, "model": {"w": torch.zeros(256)}})
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "is not a checkpoint" in _one_line(err)


@pytest.mark.parametrize("kind", ["bare pickle", "torch.save archive"])
def test_a_pickle_payload_is_refused_because_it_holds_code(tmp_path, kind):
    marker = tmp_path / PWNED
    path = tmp_path / "evil.pt"
    if kind == "bare pickle":
        path.write_bytes(pickle.dumps(Payload(str(marker))))
    else:
        torch.save({"format": "vistune-train-checkpoint", "version": 1, "x": Payload(str(marker))}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    line = _one_line(err)
    assert line.startswith(f"refused checkpoint {str(path)!r}: ") and "run code" in line
    assert "system" in line  # names what it would have called
    assert "weights_only=False" not in line  # no advice to switch the protection off
    assert not marker.exists()  # nothing ran


def test_the_cli_prints_one_line_for_a_pickle_payload(tmp_path, capsys):
    from pipelines import cli
    from tests.evals.samples import eval_samples, write_shard

    shard = write_shard(eval_samples(1), tmp_path / "eval")
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(Payload(str(tmp_path / PWNED))))
    assert cli.main(["eval", f"checkpoint={path}", f"data={shard}", f"out={tmp_path / 'out'}"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vistune eval: error: refused checkpoint "), lines
    assert not (tmp_path / PWNED).exists()
