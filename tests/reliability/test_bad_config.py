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
}


@pytest.fixture
def no_ray(monkeypatch):
    ray = pytest.importorskip("ray")

    def init(*_a, **_kw):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(ray, "init", init)


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
