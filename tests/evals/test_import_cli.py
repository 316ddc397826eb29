"""`vistune import FORMAT src=DIR out=DIR ...` end to end: every importer's fixture imported through
the CLI, then scored by `vistune eval predictions=DIR` with the codec oracle's images (each sample's
own target.png, saved as `<sample key>.png`): every benchmark row is perfect. Bad input exits 2 with
one line naming the file."""

import json

import numpy as np
from PIL import Image

from evals.data import load_eval_samples
from pipelines import cli
from tests.evals import test_import_depth as depth_fx
from tests.evals import test_import_normals as normals_fx
from tests.evals import test_import_referring as referring_fx
from tests.evals import test_import_semantic as semantic_fx


def _fixtures(root):
    """(format, src, extra overrides) for a fixture of every importer."""
    (root / "nyu").mkdir(parents=True)
    depth_fx.write_nyu(root / "nyu")
    depth_fx.write_kitti(root / "kitti")
    depth_fx.write_diode(root / "diode")
    depth_fx.write_ibims(root / "ibims")
    depth_fx.write_eth3d(root / "eth3d")
    (root / "folder" / "rgb").mkdir(parents=True)
    (root / "folder" / "depth").mkdir()
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(root / "folder" / "rgb" / "a.png")
    Image.fromarray(np.full((48, 64), 2500, np.uint16)).save(root / "folder" / "depth" / "a.png")
    normals_fx.write_dsine(root / "dsine_nyu", "test", ["000001"])
    normals_fx.write_dsine(root / "dsine_scannet", "scene0532_00", ["000000"])
    normals_fx.write_diode_normals(root / "diode_n")
    semantic_fx.write_cityscapes(root / "cityscapes")
    semantic_fx.write_ade20k(root / "ade")
    referring_fx.write_refcoco(root / "refer")
    referring_fx.write_reasonseg(root / "reasonseg" / "val")
    return [("depth-folder", root / "folder", ["depth_scale=0.001", "protocol=nyuv2", "source=folder"]),
            ("nyuv2", root / "nyu", []), ("kitti", root / "kitti", []), ("diode", root / "diode", []),
            ("ibims", root / "ibims", []), ("eth3d", root / "eth3d", []),
            ("nyuv2-normals", root / "dsine_nyu", []), ("scannet-normals", root / "dsine_scannet", []),
            ("diode-normals", root / "diode_n", []), ("cityscapes", root / "cityscapes", ["split=val"]),
            ("ade20k", root / "ade", []), ("refcoco", root / "refer", ["dataset=refcocog", "split=val"]),
            ("reasonseg", root / "reasonseg" / "val", [])]


def test_import_then_eval_predictions_scores_perfect_oracle_rows(tmp_path, capsys):
    outs = []
    for fmt, src, extra in _fixtures(tmp_path / "src"):
        out = tmp_path / "bench" / fmt
        assert cli.main(["import", fmt, f"src={src}", f"out={out}", *extra]) == 0, capsys.readouterr().err
        assert f"{fmt} samples" in capsys.readouterr().out
        outs.append(out)
    preds = tmp_path / "preds"
    preds.mkdir()
    for s in load_eval_samples(outs):
        Image.fromarray(s.target).save(preds / f"{s.key}.png")       # the codec oracle, as anyone's predictions
    data = "[" + ",".join(str(o) for o in outs) + "]"
    assert cli.main(["eval", f"predictions={preds}", f"data={data}", f"out={tmp_path / 'eval'}"]) == 0
    result = json.loads((tmp_path / "eval" / "eval.json").read_text())["results"][0]
    m = result["metrics"]["model"]
    assert sorted(m["depth"]) == ["all", "diode", "eth3d", "folder", "ibims", "kitti", "nyuv2"]
    for source, row in m["depth"].items():
        assert row["delta1"] == 1.0 and row["abs_rel"] < 0.01, source  # the gray codec's bound is ~0.3% here
    assert sorted(m["normals"]) == ["all", "diode_normals", "nyuv2_normals", "scannet_normals"]
    assert all(row["mean_deg"] < 1.0 for row in m["normals"].values())
    assert m["semantic"]["cityscapes"]["miou"] == 1.0 and m["semantic"]["ade20k"]["miou"] == 1.0
    assert m["referring"]["refcocog"]["ciou"] == 1.0 and m["referring"]["reasonseg"]["giou"] == 1.0
    assert all(row["failed"] == 0 for task in m.values() for row in task.values())


def test_import_errors_are_one_line_naming_the_file(tmp_path, capsys):
    src = tmp_path / "kitti"
    depth_fx.write_kitti(src)
    next(src.rglob("proj_depth/groundtruth/image_02/0000000000.png")).unlink()
    assert cli.main(["import", "kitti", f"src={src}", f"out={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vistune import: error: ") and "0000000000.png: missing" in err and "\n" not in err
    assert cli.main(["import", "kitti", f"src={src}", f"out={tmp_path / 'o'}", "scene_type=indoors"]) == 2
    assert "format kitti does not read ['scene_type']" in capsys.readouterr().err
    assert cli.main(["import", "kitti", f"src={src}", "depth_scale=abc"]) == 2
    assert "depth_scale must be a number > 0 (meters per PNG unit), got 'abc'" in capsys.readouterr().err
    assert cli.main(["import", "nyu", f"src={src}"]) == 2
    assert "unknown format 'nyu'" in capsys.readouterr().err
    assert cli.main(["import", f"src={src}"]) == 2
    assert "name the format" in capsys.readouterr().err
