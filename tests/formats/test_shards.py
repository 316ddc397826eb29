import io
import tarfile

import pytest
import webdataset as wds

from formats.shards import ShardError, ShardPaths, ShardWriter, iter_samples, read_rows


def _write(tmp_path, n=3, index=0):
    paths = ShardPaths.of(tmp_path, "raw", index)
    with ShardWriter(paths) as w:
        for i in range(n):
            w.add(f"s{i:04d}", {"rgb.png": b"png%d" % i, "json": b'{"i": %d}' % i}, {"i": i})
        assert w.commit() == n
    return paths


def test_round_trip_read_by_webdataset(tmp_path):
    paths = _write(tmp_path)
    assert paths.complete()
    samples = list(wds.WebDataset(str(paths.tar), shardshuffle=False))
    assert [s["__key__"] for s in samples] == ["s0000", "s0001", "s0002"]
    assert samples[1]["rgb.png"] == b"png1"
    assert [r["i"] for r in read_rows(paths.parquet)] == [0, 1, 2]
    assert [r["key"] for r in read_rows(paths.parquet)] == [s["__key__"] for s in iter_samples(paths.tar)]
    assert not list(tmp_path.glob(".*"))  # no temp files left


def test_failed_shard_leaves_nothing_under_final_names(tmp_path):
    paths = ShardPaths.of(tmp_path, "raw", 1)
    with pytest.raises(RuntimeError):
        with ShardWriter(paths) as w:
            w.add("a", {"json": b"{}"})
            raise RuntimeError("worker died")
    assert not paths.tar.exists() and not paths.parquet.exists() and not list(tmp_path.iterdir())


def test_bad_keys(tmp_path):
    with ShardWriter(ShardPaths.of(tmp_path, "raw", 2)) as w:
        with pytest.raises(ValueError, match="no dots"):
            w.add("a.b", {"json": b"{}"})
        w.add("a", {"json": b"{}"})
        with pytest.raises(ValueError, match="duplicate"):
            w.add("a", {"json": b"{}"})
        w.abort()


@pytest.mark.parametrize("name", ["/etc/passwd.json", "../evil.json", "dir/x.json", "a/../../b.json"])
def test_unsafe_member_names_are_rejected(tmp_path, name):
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo(name)
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    with pytest.raises(ShardError, match="unsafe"):
        list(iter_samples(path))


def test_truncated_shard_is_a_clear_error(tmp_path):
    paths = _write(tmp_path, n=20)
    data = paths.tar.read_bytes()
    paths.tar.write_bytes(data[: len(data) // 2 + 100])
    with pytest.raises(ShardError, match="truncated or corrupt"):
        list(iter_samples(paths.tar))


def test_read_sample_at_by_manifest_offsets_and_rejects_unsafe_names(tmp_path):
    from formats.shards import read_sample_at

    paths = ShardPaths.of(tmp_path, "s", 0)
    with ShardWriter(paths) as w:
        for i in range(3):
            w.add(f"k{i}", {"txt": f"sample {i}".encode(), "json": b"{}"})
        w.commit()
    for row in read_rows(paths.parquet):
        s = read_sample_at(paths.tar, row["tar_offset"], row["tar_size"])
        assert s["__key__"] == row["key"] and s["txt"] == f"sample {row['key'][1]}".encode()
    with pytest.raises(ShardError, match="truncated"):
        read_sample_at(paths.tar, paths.tar.stat().st_size - 100, 4096)
    for name in ("/etc/passwd.txt", "../evil.txt"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        bad = tmp_path / "bad.tar"
        bad.write_bytes(buf.getvalue())
        with pytest.raises(ShardError, match="unsafe"):
            read_sample_at(bad, 0, 1024)


def test_a_writer_sweeps_what_dead_writers_of_its_shard_left_and_nothing_else(tmp_path):
    """Temp files of the shard's tar, Parquet and the stats written beside them under its lock go;
    another shard's temp file and a complete shard's files stay."""
    paths = ShardPaths.of(tmp_path, "x", 1)
    dead = [".x-000001.tar.a1.tmp", ".x-000001.parquet.b2.tmp", ".x-000001.stats.json.c3.tmp"]
    kept = [".x-000011.tar.d4.tmp", ".x-0000010.tar.e5.tmp"]
    for name in dead + kept:
        (tmp_path / name).write_bytes(b"partial")
    with ShardWriter(paths) as w:
        w.add("a", {"txt": b"x"})
        w.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept + ["x-000001.parquet", "x-000001.tar"])
    assert paths.clean_up_after_dead_writers() == 0
