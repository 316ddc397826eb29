"""Task samples <-> shard members."""

import numpy as np
import pytest

from encode.sample import SampleError, TaskSample, from_sample, to_files


def test_round_trip_with_raw_targets():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 9, (8, 10)).astype(np.float32)
    depth[0, 0] = np.inf
    s = TaskSample("k", "depth", rng.integers(0, 255, (8, 10, 3), dtype=np.uint8), "a prompt", {"split": "eval"},
                   input=np.stack(np.broadcast_arrays(*np.ogrid[0:8, 0:10], 7), -1).astype(np.uint8) * 20,
                   raw={"depth": depth, "instance": rng.integers(0, 600, (8, 10)).astype(np.uint16),
                        "mask": rng.random((8, 10)) > 0.5})
    back = from_sample({"__key__": "k", **to_files(s)})
    assert np.array_equal(back.target, s.target) and np.array_equal(back.input, s.input)
    assert np.array_equal(back.raw["depth"], depth) and np.array_equal(back.raw["instance"], s.raw["instance"])
    assert np.array_equal(back.raw["mask"], s.raw["mask"]) and back.meta["task_format"] == 1
    jpg = from_sample({"__key__": "k", **to_files(s, input_format="jpg")})
    assert np.abs(jpg.input.astype(int) - s.input).mean() < 4  # JPEG q95 of a smooth ramp


def test_bad_samples_are_named():
    with pytest.raises(SampleError, match="lacks 'target.png'"):
        from_sample({"__key__": "x", "json": b'{"task": "depth"}', "prompt.txt": b"p"})
    files = to_files(TaskSample("k", "t2i", np.zeros((4, 4, 3), np.uint8), "p", {}))
    with pytest.raises(SampleError, match="unknown task"):
        from_sample({**files, "json": b'{"task": "albedo"}'})
    with pytest.raises(ValueError, match="unknown task"):
        to_files(TaskSample("k", "albedo", np.zeros((4, 4, 3), np.uint8), "p", {}))
