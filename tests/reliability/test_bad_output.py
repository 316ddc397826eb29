"""A full disk or an unwritable output directory: a clear error, and nothing of a shard left under its
final name (a reader that globs `*.tar` or `*.parquet` must never see half a shard).

Tests may run as root, where a read-only directory (chmod) does not stop writes, and a tiny tmpfs
needs privileges. So the faults are made the honest ways that work anywhere: the kernel's own
per-process file-size limit (RLIMIT_FSIZE: a real write() failing mid-shard), ENOSPC injected at
each point of ShardWriter.commit where a full disk shows up, ENOSPC from fsync inside the real Ray
workers of a real job (a worker setup hook), and an `out` that is an existing file.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from formats.shards import ShardPaths, ShardWriter, read_rows
from pipelines import cli
from tests.reliability.checks import tar_keys
from tests.reliability.faults import FULL_DISK_ENV

REPO = Path(__file__).resolve().parents[2]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _enospc(*_args, **_kw):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["fsync", "parquet_write", "tar_rename", "parquet_rename"])
def test_commit_on_a_full_disk_leaves_no_shard_file(tmp_path, monkeypatch, where):
    import formats.shards as shards

    writer = ShardWriter(ShardPaths.of(tmp_path, "x", 0))
    writer.add("a", {"txt": b"hello"}, {"n": 1})
    if where == "fsync":
        monkeypatch.setattr(shards.os, "fsync", _enospc)
    elif where == "parquet_write":
        monkeypatch.setattr(shards.pq, "write_table", _enospc)
    else:  # the first os.replace publishes the tar, the second the Parquet sidecar
        real, calls = os.replace, []

        def replace(src, dst):
            calls.append(dst)
            if len(calls) == (1 if where == "tar_rename" else 2):
                _enospc()
            real(src, dst)

        monkeypatch.setattr(shards.os, "replace", replace)
    with pytest.raises(OSError) as info:
        writer.commit()
    assert info.value.errno == errno.ENOSPC
    assert _files(tmp_path) == []  # no final name, no temp file


def test_failed_rewrite_of_a_complete_shard_keeps_a_complete_pair(tmp_path, monkeypatch):
    import formats.shards as shards

    paths = ShardPaths.of(tmp_path, "x", 0)
    for attempt in range(2):  # the same samples again (encode rewrites identical shards), second commit fails
        writer = ShardWriter(paths)
        writer.add("a", {"txt": b"hello"}, {"n": 1})
        if attempt:
            real = os.replace
            monkeypatch.setattr(shards.os, "replace",
                                lambda s, d: _enospc() if str(d).endswith(".parquet") else real(s, d))
            with pytest.raises(OSError):
                writer.commit()
        else:
            writer.commit()
    assert _files(tmp_path) == ["x-000000.parquet", "x-000000.tar"]
    assert tar_keys(paths.tar) == [r["key"] for r in read_rows(paths.parquet)] == ["a"]


_FILL = """
import json, os, resource, sys
from formats.shards import ShardPaths, ShardWriter
resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    with ShardWriter(ShardPaths.of(sys.argv[1], "big", 0)) as writer:
        for i in range(64):
            writer.add(f"s{i}", {"bin": os.urandom(64 * 1024)})
        writer.commit()
except OSError as err:
    print(json.dumps({"errno": err.errno}))
"""


def test_write_failing_mid_shard_in_the_kernel_leaves_nothing(tmp_path):
    """A real write() failure half-way through a 4 MiB shard: the process may write 256 KiB per file."""
    proc = subprocess.run([sys.executable, "-c", _FILL, str(tmp_path)], capture_output=True, text=True, cwd=REPO,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"errno": errno.EFBIG}
    assert _files(tmp_path) == []


@pytest.mark.parametrize("argv, key", [
    (["render", "out={f}", "n_scenes=2"], "out"),
    (["encode", "inputs=[{raw}]", "out={f}/sub"], "out"),
    (["annotate", "source={raw}", "out={f}"], "out"),
    (["run", "out={f}", "stages=[render,encode]"], "out"),
    (["run", "out={tmp}/run", "encode.out={f}", "stages=[render,encode]"], "encode.out"),
])
def test_output_path_that_is_a_file_is_a_one_line_error_before_any_work(tmp_path, capsys, no_ray, argv, key):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the output directory should be")
    raw = tmp_path / "raw"
    raw.mkdir()
    argv = [a.format(f=blocker, raw=raw, tmp=tmp_path) for a in argv]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    line, = captured.err.strip().splitlines()
    assert line.startswith(f"vistune {argv[0]}: error: {key}=") and "is not a writable directory" in line
    assert str(blocker) in line and captured.out == ""
    assert blocker.read_text().startswith("a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories; see the other tests")
def test_read_only_output_directory_is_a_one_line_error(tmp_path, capsys, no_ray):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert cli.main(["render", f"out={out}", "n_scenes=2"]) == 2
        line, = capsys.readouterr().err.strip().splitlines()
        assert "is not a writable directory (Permission denied" in line
    finally:
        out.chmod(0o700)


@pytest.fixture(scope="module")
def full_disk_ray(tmp_path_factory):
    """An embedded Ray whose workers see a full disk under the returned directory (fsync -> ENOSPC)."""
    ray = pytest.importorskip("ray")
    full = tmp_path_factory.mktemp("full")
    assert not ray.is_initialized()
    python_path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR",
             runtime_env={"env_vars": {FULL_DISK_ENV: str(full), "PYTHONPATH": python_path},
                          "worker_process_setup_hook": "tests.reliability.faults.full_disk_on_fsync"})
    yield full
    ray.shutdown()


def _vistune_error(argv, capsys) -> str:
    """Run the CLI (in this process's Ray session); it must fail with exit code 1. Returns its error line."""
    assert cli.main(argv) == 1
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("vistune")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.slow
def test_encode_job_on_a_full_disk_fails_clearly_and_leaves_no_shard(full_disk_ray, tmp_path, capsys):
    from tests.encode.raw_fixtures import write_render_shard

    for i in range(2):
        write_render_shard(tmp_path / "raw", i, range(i * 2, i * 2 + 2), 24, 32)
    out = full_disk_ray / "enc"
    line = _vistune_error(["encode", f"inputs=[{tmp_path / 'raw'}]", f"out={out}", "on_error=raise",
                           "settings.size=16", "workers=1"], capsys)
    assert line.startswith("vistune encode: error: [Errno 28] No space left on device: ") and str(out) in line
    assert _files(out) == []  # no task shard, no manifest, no completion record, no temp file


@pytest.mark.slow
def test_render_job_on_a_full_disk_fails_clearly_and_leaves_no_shard(full_disk_ray, capsys):
    out = full_disk_ray / "render"
    line = _vistune_error(["render", f"out={out}", "n_scenes=2", "scenes_per_shard=2", "width=32", "height=24",
                           "render.rgb=false", "edit_fraction=0"], capsys)
    assert line.startswith("vistune render: error: [Errno 28] No space left on device: ") and str(out) in line
    assert _files(out) == []
