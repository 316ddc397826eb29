"""Depth benchmark importers on tiny fixtures written in each benchmark's own file format:
NYUv2 (labeled .mat, HDF5, MATLAB axes + splits.mat), KITTI (Eigen split file, uint16/256 PNG),
DIODE (.npy depth + mask), iBims-1 (core_raw PNGs + masks), ETH3D (raw float32 binary).

Each import must keep the truth exactly (float32 m, NaN where the benchmark has none), record its
protocol, and score a perfect oracle row (AbsRel within the depth codec's lossless bound, delta1 = 1)."""


import h5py
import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from evals.importers import BenchmarkError, import_benchmark
from tests.evals.importer_checks import assert_perfect_depth, oracle_metrics

H, W = 48, 64


def _rgb(rng, h=H, w=W):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------- NYUv2


def write_nyu(root, n=4, test=(2, 4)):
    """nyu_depth_v2_labeled.mat as MATLAB v7.3 writes it (HDF5, 512-byte user block, axes transposed)."""
    rng = np.random.default_rng(1)
    rgbs = [_rgb(rng) for _ in range(n)]
    filled = [rng.uniform(0.7, 9.5, (H, W)).astype(np.float32) for _ in range(n)]
    depths = [np.where(rng.random((H, W)) < 0.2, 0, d).astype(np.float32) for d in filled]  # raw Kinect: 0 = none
    path = root / "nyu_depth_v2_labeled.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f["images"] = np.stack([im.transpose(2, 1, 0) for im in rgbs])    # (N, 3, W, H)
        f["rawDepths"] = np.stack([d.T for d in depths])                  # (N, W, H)
        f["depths"] = np.stack([d.T for d in filled])
        f["labels"] = np.zeros((n, W, H), np.uint16)
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116, b" "))
    savemat(root / "splits.mat", {"testNdxs": np.array(test, np.float64)[:, None],
                                  "trainNdxs": np.array([i for i in range(1, n + 1) if i not in test], np.float64)[:, None]})
    return rgbs, depths, filled


def test_nyuv2_labeled_mat_eigen_split(tmp_path):
    (tmp_path / "nyu").mkdir()
    rgbs, depths, filled = write_nyu(tmp_path / "nyu")
    summary = import_benchmark("nyuv2", tmp_path / "nyu", tmp_path / "out")
    assert summary.written == 2 and summary.protocol == "nyuv2"
    samples, flat = oracle_metrics(tmp_path / "out")
    assert [s.key for s in samples] == ["nyuv2_0002", "nyuv2_0004"]  # 1-based MATLAB indices of the test split
    for s, i in zip(samples, (1, 3)):
        y0, y1, x0, x1 = round(7 / 480 * H), round(474 / 480 * H), round(7 / 640 * W), round(632 / 640 * W)
        np.testing.assert_array_equal(s.input[y0:y1, x0:x1], rgbs[i][y0:y1, x0:x1])  # MATLAB axes undone
        assert s.input[:y0].max() == 0 and s.input[:, x1:].max() == 0    # BTS's black projection border
        np.testing.assert_array_equal(s.raw["depth"], np.where(depths[i] > 0, depths[i], np.nan))
        assert s.meta["protocol"] == "nyuv2" and s.meta["width"] == W and s.meta["prediction_region"] == "full"
    assert_perfect_depth(flat, samples, "nyuv2", 2)
    (tmp_path / "list.txt").write_text("3\n")                              # a text list of 1-based indices
    import_benchmark("nyuv2", tmp_path / "nyu", tmp_path / "out2", {"split": str(tmp_path / "list.txt"),
                                                                      "depth_key": "depths", "black_border": False})
    samples, _ = oracle_metrics(tmp_path / "out2")
    np.testing.assert_array_equal(samples[0].raw["depth"], filled[2])
    np.testing.assert_array_equal(samples[0].input, rgbs[2])


def test_nyuv2_bad_inputs_name_the_file(tmp_path):
    (tmp_path / "nyu").mkdir()
    write_nyu(tmp_path / "nyu")
    mat = tmp_path / "nyu" / "nyu_depth_v2_labeled.mat"
    (tmp_path / "bad.txt").write_text("9\n")
    with pytest.raises(BenchmarkError, match="bad.txt.*exceed the 4 images"):
        import_benchmark("nyuv2", tmp_path / "nyu", tmp_path / "o", {"split": str(tmp_path / "bad.txt")})
    mat.write_bytes(b"not hdf5")
    with pytest.raises(BenchmarkError, match="nyu_depth_v2_labeled.mat: not a readable HDF5"):
        import_benchmark("nyuv2", tmp_path / "nyu", tmp_path / "o")
    mat.unlink()
    with pytest.raises(BenchmarkError, match="nyu_depth_v2_labeled.mat: missing"):
        import_benchmark("nyuv2", tmp_path / "nyu", tmp_path / "o")
    (tmp_path / "nyu" / "splits.mat").unlink()
    with pytest.raises(BenchmarkError, match="splits.mat: missing"):
        import_benchmark("nyuv2", tmp_path / "nyu", tmp_path / "o")


# ---------------------------------------------------------------- KITTI


def write_kitti(root):
    """BTS's eigen_test_files_with_gt.txt lines and KITTI depth-completion PNGs (uint16 = m * 256, 0 = none)."""
    rng = np.random.default_rng(2)
    lines, truth = [], {}
    for i in range(3):
        rgb_rel = f"2011_09_26/2011_09_26_drive_0002_sync/image_02/data/{i:010d}.png"
        (root / rgb_rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_rgb(rng)).save(root / rgb_rel)
        if i == 1:
            lines.append(f"{rgb_rel} None 721.5377")
            continue
        depth_rel = f"2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/{i:010d}.png"
        (root / depth_rel).parent.mkdir(parents=True, exist_ok=True)
        raw = (rng.uniform(1.0, 79.0, (H, W)) * 256).astype(np.uint16)
        raw[rng.random((H, W)) < 0.7] = 0  # sparse LiDAR
        raw[H // 2:, W // 4] = 2560       # 10 m inside the Garg crop, always
        Image.fromarray(raw).save(root / depth_rel)
        lines.append(f"{rgb_rel} {depth_rel} 721.5377")
        truth[i] = raw
    (root / "eigen_test_files_with_gt.txt").write_text("\n".join(lines) + "\n")
    return truth


def test_kitti_eigen_split_uint16_over_256(tmp_path):
    truth = write_kitti(tmp_path)
    summary = import_benchmark("kitti", tmp_path, tmp_path / "out")
    assert summary.written == 2 and summary.skipped == {"no_ground_truth": 1} and summary.protocol == "kitti"
    samples, flat = oracle_metrics(tmp_path / "out")
    for s, i in zip(samples, (0, 2)):
        raw = truth[i]
        d = s.raw["depth"]
        assert np.isnan(d[raw == 0]).all()
        np.testing.assert_allclose(d[raw > 0], raw[raw > 0] / 256.0, rtol=1e-6)
        assert s.meta["protocol"] == "kitti" and s.meta["focal"] == pytest.approx(721.5377)
    assert_perfect_depth(flat, samples, "kitti", 2)


def test_kitti_missing_depth_names_the_file(tmp_path):
    write_kitti(tmp_path)
    victim = next(tmp_path.rglob("proj_depth/groundtruth/image_02/0000000002.png"))
    victim.unlink()
    with pytest.raises(BenchmarkError, match="0000000002.png: missing"):
        import_benchmark("kitti", tmp_path, tmp_path / "out", {"per_shard": 1})
    # the shard published before the error stays; the one being written leaves no temp or lock file
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["eval-000000.parquet", "eval-000000.tar"]
    (tmp_path / "eigen_test_files_with_gt.txt").write_text("only_one_column.png\n")
    with pytest.raises(BenchmarkError, match="eigen_test_files_with_gt.txt:1: expected"):
        import_benchmark("kitti", tmp_path, tmp_path / "out")


# ---------------------------------------------------------------- DIODE


def write_diode(root):
    rng = np.random.default_rng(3)
    truth = {}
    for scene in ("indoors", "outdoors"):
        d = root / "val" / scene / "scene_00019" / "scan_00183"
        d.mkdir(parents=True)
        base = f"00019_00183_{scene}_000_010"
        Image.fromarray(_rgb(rng)).save(d / f"{base}.png")
        depth = rng.uniform(0.7, 9.0, (H, W, 1)).astype(np.float32)
        mask = (rng.random((H, W)) > 0.2).astype(np.float32)
        np.save(d / f"{base}_depth.npy", depth)
        np.save(d / f"{base}_depth_mask.npy", mask)
        truth[scene] = (depth[..., 0], mask)
    return truth


def test_diode_indoor_npy_depth_and_mask(tmp_path):
    truth = write_diode(tmp_path)
    summary = import_benchmark("diode", tmp_path, tmp_path / "out")
    assert summary.written == 1 and summary.protocol == "diode"
    samples, flat = oracle_metrics(tmp_path / "out")
    depth, mask = truth["indoors"]
    d = samples[0].raw["depth"]
    assert np.isnan(d[mask == 0]).all()
    np.testing.assert_array_equal(d[mask > 0], depth[mask > 0])
    assert_perfect_depth(flat, samples, "diode", 1)
    out = import_benchmark("diode", tmp_path, tmp_path / "out_o", {"scene_type": "outdoors"})
    assert out.protocol == "diode_outdoor" and out.written == 1
    np.save(next(tmp_path.rglob("*indoors*_depth_mask.npy")), np.zeros((3, 3)))
    with pytest.raises(BenchmarkError, match="_depth.npy: depth .* and mask"):
        import_benchmark("diode", tmp_path, tmp_path / "out3")


# ---------------------------------------------------------------- iBims-1


def write_ibims(root):
    """ibims1_core_raw: depth PNGs uint16 = m * 65535 / 50, mask_invalid / mask_transp (0 = not scored)."""
    rng = np.random.default_rng(4)
    for sub in ("rgb", "depth", "mask_invalid", "mask_transp"):
        (root / sub).mkdir(parents=True)
    names = ["corridor_01", "kitchen_02"]
    (root / "imagelist.txt").write_text("\n".join(names) + "\n")
    raws = {}
    for name in names:
        Image.fromarray(_rgb(rng)).save(root / "rgb" / f"{name}.png")
        raw = rng.integers(1300, 13000, (H, W)).astype(np.uint16)     # * 50 / 65535: 1..10 m
        Image.fromarray(raw).save(root / "depth" / f"{name}.png")
        invalid = (rng.random((H, W)) > 0.1).astype(np.uint8)
        transp = np.ones((H, W), np.uint8)
        transp[:5] = 0
        Image.fromarray(invalid).save(root / "mask_invalid" / f"{name}.png")
        Image.fromarray(transp).save(root / "mask_transp" / f"{name}.png")
        raws[name] = (raw, invalid.astype(bool) & transp.astype(bool))
    return names, raws


def test_ibims_core_raw_with_masks(tmp_path):
    names, raws = write_ibims(tmp_path)
    import_benchmark("ibims", tmp_path, tmp_path / "out")
    samples, flat = oracle_metrics(tmp_path / "out")
    for s, name in zip(samples, names):
        raw, keep = raws[name]
        d = s.raw["depth"]
        assert np.isnan(d[~keep]).all()
        np.testing.assert_allclose(d[keep], raw[keep] * 50.0 / 65535.0, rtol=1e-6)
        assert s.meta["protocol"] == "ibims"
    assert_perfect_depth(flat, samples, "ibims", 2)
    (tmp_path / "mask_transp" / "kitchen_02.png").unlink()
    with pytest.raises(BenchmarkError, match="mask_transp/kitchen_02.png: missing"):
        import_benchmark("ibims", tmp_path, tmp_path / "out2")


# ---------------------------------------------------------------- ETH3D


def write_eth3d(root):
    """<scene>/images/dslr_images/<name>.JPG + <scene>/ground_truth_depth/dslr_images/<name>.JPG (raw <f4, inf = none)."""
    rng = np.random.default_rng(5)
    img_dir = root / "courtyard" / "images" / "dslr_images"
    gt_dir = root / "courtyard" / "ground_truth_depth" / "dslr_images"
    img_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    Image.fromarray(_rgb(rng)).save(img_dir / "DSC_0286.JPG", format="JPEG", quality=95)
    depth = rng.uniform(1.0, 40.0, (H, W)).astype("<f4")
    depth[:3] = np.inf                                                  # ETH3D: inf = no measurement
    (gt_dir / "DSC_0286.JPG").write_bytes(depth.tobytes())
    return gt_dir, depth


def test_eth3d_raw_float_binary(tmp_path):
    gt_dir, depth = write_eth3d(tmp_path)
    summary = import_benchmark("eth3d", tmp_path, tmp_path / "out")
    assert summary.protocol == "eth3d"
    samples, flat = oracle_metrics(tmp_path / "out")
    d = samples[0].raw["depth"]
    assert np.isnan(d[:3]).all()
    np.testing.assert_array_equal(d[3:], depth[3:])
    assert_perfect_depth(flat, samples, "eth3d", 1)
    (gt_dir / "DSC_0286.JPG").write_bytes(depth[:-1].tobytes())
    with pytest.raises(BenchmarkError, match="DSC_0286.JPG: .* bytes; a raw float32 depth map"):
        import_benchmark("eth3d", tmp_path, tmp_path / "out2")


def test_unknown_format_parameter_and_protocol_are_errors(tmp_path):
    write_diode(tmp_path)
    with pytest.raises(ValueError, match="unknown parameter.*'depth_scale'"):
        import_benchmark("diode", tmp_path, tmp_path / "o", {"depth_scale": 1.0})
    with pytest.raises(ValueError, match="unknown protocol 'nyu'"):
        import_benchmark("diode", tmp_path, tmp_path / "o", {"protocol": "nyu"})
    with pytest.raises(BenchmarkError, match="nowhere: src does not exist"):
        import_benchmark("diode", tmp_path / "nowhere", tmp_path / "o")


def test_reimport_into_the_same_out_leaves_no_stale_shard(tmp_path):
    truth = write_diode(tmp_path)
    import_benchmark("diode", tmp_path, tmp_path / "out", {"scene_type": "all", "per_shard": 1})
    assert sorted(p.name for p in (tmp_path / "out").glob("eval-*.tar")) == ["eval-000000.tar", "eval-000001.tar"]
    import_benchmark("diode", tmp_path, tmp_path / "out", {"scene_type": "indoors", "per_shard": 1})
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == \
        ["eval-000000.parquet", "eval-000000.tar"]
    samples, _ = oracle_metrics(tmp_path / "out")
    assert len(samples) == 1 and np.nanmax(samples[0].raw["depth"]) <= truth["indoors"][0].max()
