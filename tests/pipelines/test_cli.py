import json
import subprocess
import sys

import numpy as np
from PIL import Image

from pipelines import cli


def test_demo_writes_contact_sheet(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", f"out={out}", "size=48", "depth_presets=[default]"]) == 0
    sheet = np.asarray(Image.open(out / "contact_sheet.png"))
    assert sheet.shape[0] > 4 * 48 and sheet.shape[1] > 4 * 48
    stats = json.loads((out / "roundtrip.json").read_text())
    assert stats["room/depth[default]/lossless"]["max_rel"] <= 0.006
    assert stats["room/normals/lossless"]["mean_deg"] <= 0.25
    assert not list(out.glob(".*tmp"))  # atomic writes leave no temp files
    assert "contact_sheet.png" in capsys.readouterr().out


def test_config_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["demo", "sizee=3"]) == 2
    assert cli.main(["rendr"]) == 2
    assert cli.main(["demo", f"out={tmp_path}", "size=4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert "sizee" in err[0] and "allowed: " in err[1] and "'render'" in err[1] and "size must be >= 16" in err[2]
    assert str(sorted(cli.STAGES)) in err[1]


def test_console_script_prints_resolved_config():
    res = subprocess.run([sys.executable, "-m", "pipelines.cli", "demo", "size=64", "--cfg", "job"],
                         capture_output=True, text=True, check=True)
    assert "size: 64" in res.stdout and "out: outputs/demo" in res.stdout


def test_render_config_errors_before_work(capsys):
    assert cli.main(["render", "n_scenes=0"]) == 2
    assert cli.main(["render", "render.device=TPU"]) == 2
    assert cli.main(["render", "render.sampless=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "n_scenes must be >= 1" in err[0]
    assert "render.device must be one of ['CPU', 'CUDA', 'OPTIX']" in err[1]
    assert "sampless" in err[2]


def test_usage_lists_every_stage_of_the_table(capsys):
    from pipelines.stages import STAGES

    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name:<10} {stage.help}" in out for name, stage in STAGES.items())
