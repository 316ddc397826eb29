"""Normals importers on DSINE-layout fixtures (dsine_eval/nyuv2 and dsine_eval/scannet):
`<name>_img.png`, `<name>_normal.png` ((n + 1) / 2 * 255 in DSINE's convention, black = no truth),
`<name>_intrins.npy`. The import must turn DSINE's normals into vistune's (OpenCV axes, facing the
camera) within the PNG's quantization, refuse a convention that makes the truth face away, and
score a perfect oracle row."""

import numpy as np
import pytest
from PIL import Image

from evals.importers import BenchmarkError, import_benchmark
from tests.evals.importer_checks import oracle_metrics

H, W = 48, 64
K = np.array([[60.0, 0, W / 2], [0, 60.0, H / 2], [0, 0, 1]])


def facing_normals(rng):
    """Unit normals in vistune's convention: OpenCV axes, facing the camera (z < 0 on the optical axis)."""
    n = np.stack([rng.uniform(-0.5, 0.5, (H, W)), rng.uniform(-0.5, 0.5, (H, W)), -np.ones((H, W))], -1)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def write_dsine(root, rel_dir, names, npy=False):
    rng = np.random.default_rng(7)
    truth = {}
    (root / rel_dir).mkdir(parents=True, exist_ok=True)
    for name in names:
        n = facing_normals(rng)
        dsine = -n                                                     # DSINE README: a facing wall is (0, 0, 1)
        valid = np.ones((H, W), bool)
        valid[:6, :] = False
        base = root / rel_dir / name
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(f"{base}_img.png")
        if npy:
            np.save(f"{base}_normal.npy", np.where(valid[..., None], dsine, 0).astype(np.float32))
        else:
            png = np.round((dsine + 1) / 2 * 255).astype(np.uint8)
            png[~valid] = 0
            Image.fromarray(png).save(f"{base}_normal.png")
        np.save(f"{base}_intrins.npy", K)
        truth[name] = (n, valid)
    return truth


def angles_deg(a, b):
    a, b = (np.asarray(x, np.float64) / np.linalg.norm(x, axis=-1, keepdims=True) for x in (a, b))
    return np.degrees(np.arccos(np.clip(np.sum(a * b, -1), -1, 1)))


def test_nyuv2_normals_dsine_layout(tmp_path):
    truth = write_dsine(tmp_path, "test", ["000001", "000002"])
    summary = import_benchmark("nyuv2-normals", tmp_path, tmp_path / "out")
    assert summary.written == 2 and summary.protocol == "nyuv2"
    samples, flat = oracle_metrics(tmp_path / "out")
    for s, name in zip(samples, ["000001", "000002"]):
        n, valid = truth[name]
        got = s.raw["normals"]
        assert np.isnan(got[~valid]).all()
        assert angles_deg(got[valid], n[valid]).max() < 0.5          # 8-bit PNG quantization
        assert s.meta["K"] == K.tolist() and s.meta["normal_convention"] == "dsine"
    assert flat["model/normals/nyuv2_normals/n"] == 2 and flat["model/normals/nyuv2_normals/failed"] == 0
    assert flat["model/normals/nyuv2_normals/mean_deg"] < 1.0       # the normals codec's round trip
    assert flat["model/normals/nyuv2_normals/within_11.25"] == 100.0


def test_scannet_normals_npy_and_wrong_convention(tmp_path):
    truth = write_dsine(tmp_path, "scene0532_00", ["000000"], npy=True)
    assert import_benchmark("scannet-normals", tmp_path, tmp_path / "out").protocol == "scannet"
    samples, flat = oracle_metrics(tmp_path / "out")
    n, valid = truth["000000"]
    assert angles_deg(samples[0].raw["normals"][valid], n[valid]).max() < 0.1  # float16 on disk
    assert samples[0].key == "scannet_normals_scene0532_00_000000"
    assert flat["model/normals/scannet_normals/mean_deg"] < 1.0
    with pytest.raises(BenchmarkError, match=r"000000_normal.npy: only 0% of the truth normals face the camera"):
        import_benchmark("scannet-normals", tmp_path, tmp_path / "out2", {"convention": "opencv"})
    (tmp_path / "scene0532_00" / "000000_normal.npy").unlink()
    with pytest.raises(BenchmarkError, match="000000_normal.png: missing"):
        import_benchmark("scannet-normals", tmp_path, tmp_path / "out3")


def write_diode_normals(root):
    rng = np.random.default_rng(8)
    truth = {}
    for scene in ("indoors", "outdoors"):
        d = root / "val" / scene / "scene_00019" / "scan_00183"
        d.mkdir(parents=True)
        base = f"00019_00183_{scene}_000_010"
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(d / f"{base}.png")
        n = facing_normals(rng)
        stored = np.where(np.arange(H)[:, None, None] < 4, 0.0, -n).astype(np.float32)  # zero vector: no truth
        np.save(d / f"{base}_normal.npy", stored)
        truth[scene] = n
    return truth


def test_diode_normals_npy(tmp_path):
    truth = write_diode_normals(tmp_path)
    summary = import_benchmark("diode-normals", tmp_path, tmp_path / "out")
    assert summary.written == 1 and summary.protocol == "diode"
    samples, flat = oracle_metrics(tmp_path / "out")
    got = samples[0].raw["normals"]
    assert np.isnan(got[:4]).all() and angles_deg(got[4:], truth["indoors"][4:]).max() < 0.1
    assert flat["model/normals/diode_normals/mean_deg"] < 1.0 and flat["model/normals/diode_normals/n"] == 1
