"""A bad config value -> exit code 2 and one stderr line naming the key and what is allowed, before any
work starts: no output directory is created and Ray is never started (it would fail the test)."""

from __future__ import annotations

import pytest

from pipelines import cli
from pipelines.run_job import STAGES

# (argv, what the line must contain: the key or value, and the allowed values)
CASES = {
    "unknown stage": (["run", "stages=[render,frobnicate]"], ["stages", "'frobnicate'", "allowed", *STAGES]),
    "negative count": (["render", "n_scenes=-1"], ["n_scenes", "-1", ">= 1"]),
    "negative count in run": (["run", "render.n_scenes=-1"], ["render:", "n_scenes", ">= 1"]),
    # a late stage's bad value fails before the early stages run for hours
    "negative steps in a late stage": (["run", "tune.train.steps=-1"], ["tune:", "steps", ">= 1"]),
    "missing weights": (["annotate", "labeler=sam", "source={src}"], ["labelers.sam.weights"]),
    "missing weights in run": (["run", "annotate.labeler=sam"], ["annotate:", "labelers.sam.weights"]),
    "weights path that does not exist": (
        ["annotate", "source={src}", "labelers.u2netp.weights={tmp}/none.onnx"], ["u2netp weights", "none.onnx"]),
    "unknown labeler": (["annotate", "labeler=clip", "source={src}"], ["'clip'", "u2netp", "sam"]),
    "unknown on_error": (["run", "encode.on_error=ignore"], ["on_error", "'ignore'", "'skip'", "'raise'"]),
    "unknown preset": (["run", "preset=huge"], ["preset/huge", "allowed", "smoke", "small", "cluster"]),
    "unknown eval task": (["run", "eval.tasks=[bogus]"], ["eval.tasks", "bogus", "depth"]),
    # a value of the wrong type names its key (it used to fail inside the stage: "'<' not supported")
    "text for a count": (["render", "n_scenes=abc"], ["n_scenes", "an integer", "'abc'"]),
    "text for a nested count in run": (["run", "render.render.samples=many"], ["render.render.samples", "'many'"]),
    "text for a flag": (["render", "render.rgb=maybe"], ["render.rgb", "true or false", "'maybe'"]),
    "text for a rate": (["train", "train.optim.lr=fast"], ["train.optim.lr", "a number", "'fast'"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_value_is_a_one_line_error_before_any_work(case, tmp_path, capsys, no_ray):
    argv, wanted = CASES[case]
    src = tmp_path / "photos"
    src.mkdir()
    out = tmp_path / "out"
    argv = [a.format(src=src, tmp=tmp_path) for a in argv] + [f"out={out}"]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"vistune {argv[0]}: ")
    missing = [w for w in wanted if w not in lines[0]]
    assert not missing, f"{missing} not in: {lines[0]}"
    assert captured.out == ""
    assert not out.exists(), "an output directory was created"


def test_type_check_accepts_what_the_configs_allow():
    """Ints for floats, presets that change values, lists and text for text keys: no false alarms."""
    assert cli.main(["run", "preset=small", "render.n_scenes=12", "tune.train.optim.lr=1", "--cfg", "job"]) == 0
    assert cli.main(["run", "preset=cluster", "--cfg", "job"]) == 0
    assert cli.main(["render", "prefix=2024", "families=[indoor]", "--cfg", "job"]) == 0
