"""EXR I/O with the `OpenEXR` package (no bpy): single-part files we write, multi-part files Blender writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import OpenEXR


def scratch_dir() -> str | None:
    """A RAM-backed directory for short-lived files (/dev/shm) when there is one, else the system temp."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


class ExrError(ValueError):
    """An EXR file that cannot be read or lacks an expected channel."""


def read_channels(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All channels of all parts, by full name (Blender multilayer: 'ViewLayer.Depth.Z')."""
    try:
        with OpenEXR.File(str(path), separate_channels=True) as f:
            out = {}
            for part in f.parts:
                for name, channel in part.channels.items():
                    out[name] = np.array(channel.pixels)  # copy: the binding frees its buffer on close
            return out
    except Exception as err:  # OpenEXR raises plain exceptions for corrupt files
        raise ExrError(f"cannot read EXR {path}: {err}") from err


def write(path: str | os.PathLike, channels: dict[str, np.ndarray], half: bool = False) -> None:
    """Write single-part scanline EXR with ZIP compression; float32 (or float16 when `half`)."""
    dtype = np.float16 if half else np.float32
    data = {name: np.ascontiguousarray(arr, dtype=dtype) for name, arr in channels.items()}
    shapes = {a.shape for a in data.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ExrError(f"EXR channels must share one (H, W) shape, got {sorted(shapes)}")
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, data) as f:
        f.write(str(path))


def to_bytes(channels: dict[str, np.ndarray], half: bool = False, tmp_dir: str | None = None) -> bytes:
    """Encode channels as EXR file bytes (the OpenEXR binding writes to paths only)."""
    fd, tmp = tempfile.mkstemp(suffix=".exr", dir=tmp_dir or scratch_dir())
    os.close(fd)
    try:
        write(tmp, channels, half=half)
        return Path(tmp).read_bytes()
    finally:
        os.unlink(tmp)


def from_bytes(data: bytes, tmp_dir: str | None = None, what: str = "EXR data") -> dict[str, np.ndarray]:
    """EXR file bytes -> channels by name. Raises ExrError "<what> is not a valid EXR file (...)".

    The binding reads paths only, so the bytes pass through a scratch file; errors name `what`
    (a shard member, say), never that scratch file.
    """
    fd, tmp = tempfile.mkstemp(suffix=".exr", dir=tmp_dir or scratch_dir())
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        channels = read_channels(tmp)
    except ExrError as err:
        reason = str(err.__cause__ or err).replace(f" '{tmp}'", "").replace(tmp, "file")
        raise ExrError(f"{what} is not a valid EXR file ({reason})") from err
    finally:
        os.unlink(tmp)
    if not channels:  # OpenEXR only warns when a cut-off file's pixel data cannot be read
        raise ExrError(f"{what} is not a valid EXR file (no readable pixel data: truncated?)")
    return channels


def channel(channels: dict[str, np.ndarray], name: str, what: str = "EXR data") -> np.ndarray:
    """Channel `name` of `channels`; ExrError naming `what` and the channels there are when it is missing."""
    if name not in channels:
        raise ExrError(f"{what} has no channel {name!r} (channels: {sorted(channels)})")
    return channels[name]
