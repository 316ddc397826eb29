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


def _fixtures(root):
    """(format, src, extra overrides) for one fixture of each importer family."""
    (root / "nyu").mkdir(parents=True)
    depth_fx.write_nyu(root / "nyu")
    depth_fx.write_kitti(root / "kitti")
    normals_fx.write_dsine(root / "dsine", "test", ["000001"])
    referring_fx.write_refcoco(root / "refer")
    referring_fx.write_reasonseg(root / "reasonseg" / "val")
    city = root / "cityscapes"
    (city / "leftImg8bit" / "val" / "aachen").mkdir(parents=True)
    (city / "gtFine" / "val" / "aachen").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(
        city / "leftImg8bit" / "val" / "aachen" / "aachen_000000_000019_leftImg8bit.png")
    Image.fromarray(rng.choice(np.array([0, 7, 8, 26, 33], np.uint8), (32, 64))).save(
        city / "gtFine" / "val" / "aachen" / "aachen_000000_000019_gtFine_labelIds.png")
    return [("nyuv2", root / "nyu", []), ("kitti", root / "kitti", []),
            ("nyuv2-normals", root / "dsine", []), ("cityscapes", city, ["split=val"]),
            ("refcoco", root / "refer", ["dataset=refcocog", "split=val"]),
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
    assert m["depth"]["nyuv2"]["delta1"] == 1.0 and m["depth"]["nyuv2"]["abs_rel"] < 0.01
    assert m["depth"]["kitti"]["delta1"] == 1.0 and m["depth"]["kitti"]["abs_rel"] < 0.01
    assert m["normals"]["nyuv2_normals"]["mean_deg"] < 1.0
    assert m["semantic"]["cityscapes"]["miou"] == 1.0
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
