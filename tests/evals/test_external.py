"""External held-out depth sets (NYUv2-style 16-bit PNG in mm, EXR in m) -> eval shards -> evaluator."""

import numpy as np
import pytest
from PIL import Image

from formats import exr
from evals import Evaluator, oracle_predict
from evals.data import load_eval_samples
from evals.external import convert_depth_set, main
from tests.evals.importer_checks import assert_perfect_depth


def _write_set(root, n=3, h=48, w=64):
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    rng = np.random.default_rng(0)
    truth = {}
    for i in range(n):
        mm = rng.integers(500, 9000, (h, w)).astype(np.uint16)
        mm[:4] = 0  # no measurement
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "rgb" / f"img {i}.png")
        if i == n - 1:
            exr.write(root / "depth" / f"img {i}.exr", {"Z": mm.astype(np.float32) / 1000})
        else:
            Image.fromarray(mm).save(root / "depth" / f"img {i}.png")
        truth[f"nyu_img_{i}"] = mm
    return truth


def test_convert_nyu_style_and_evaluate(tmp_path):
    truth = _write_set(tmp_path / "src")
    tars = convert_depth_set(tmp_path / "src", tmp_path / "shards", source="nyu", protocol="nyuv2", per_shard=2)
    assert [t.name for t in tars] == ["eval-000000.tar", "eval-000001.tar"]
    samples = load_eval_samples([tmp_path / "shards"])
    assert [s.key for s in samples] == sorted(truth)
    for s in samples:
        mm = truth[s.key]
        d = s.raw["depth"]
        assert np.isnan(d[:4]).all()  # 0 (no measurement) -> NaN (invalid)
        np.testing.assert_allclose(d[4:], mm[4:] / 1000.0, rtol=1e-6)  # mm -> m
        assert s.meta["protocol"] == "nyuv2" and s.meta["split"] == "eval" and "grayscale" in s.prompt
    ev = Evaluator(oracle_predict, samples)
    flat = dict(ev.run())
    assert ev.result.protocols == {"nyu": "nyuv2"}
    assert_perfect_depth(flat, samples, "nyu", 3)


def test_convert_rejects_bad_layouts(tmp_path):
    _write_set(tmp_path / "src", n=2)
    (tmp_path / "src" / "rgb" / "extra.png").write_bytes(b"")
    with pytest.raises(ValueError, match="no partner"):
        convert_depth_set(tmp_path / "src", tmp_path / "out", source="x")
    with pytest.raises(ValueError, match="missing the depth/ directory"):
        (tmp_path / "only").mkdir()
        (tmp_path / "only" / "rgb").mkdir()
        convert_depth_set(tmp_path / "only", tmp_path / "out", source="x")
    with pytest.raises(SystemExit):
        main([str(tmp_path / "src"), str(tmp_path / "out"), "--source", "x", "--protocol", "nyu"])
    with pytest.raises(ValueError, match="img 0.png: depth map must be a single-channel uint16 PNG"):
        Image.fromarray(np.zeros((48, 64), np.uint8)).save(tmp_path / "src" / "depth" / "img 0.png")
        (tmp_path / "src" / "rgb" / "extra.png").unlink()
        convert_depth_set(tmp_path / "src", tmp_path / "out", source="x")
