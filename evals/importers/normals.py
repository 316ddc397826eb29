"""Surface-normal benchmarks in the layout of DSINE's evaluation sets (dsine_eval/nyuv2, dsine_eval/scannet).

    SRC/<split or scene>/<name>_img.png        the photo (640x480)
    SRC/<split or scene>/<name>_normal.png     (n + 1) / 2 * 255 per channel; all-zero pixels = no truth
                       or <name>_normal.npy    float (H, W, 3)
    SRC/<split or scene>/<name>_intrins.npy    optional 3x3 intrinsics (recorded as K)

DSINE's normals use axes (x, y, z) = (right, down, front) and point away from the camera (its
README: a wall facing the camera is (0, 0, 1)); vistune's contract is the same OpenCV axes with
normals facing the camera (n . ray < 0). `convention` says how the files are stored:

    dsine    n_vistune = -n_file          (the default: DSINE's NYUv2 and ScanNet sets)
    opencv   n_vistune = n_file           (already vistune's convention)
    opengl   n_vistune = (x, -y, -z)      (x right, y up, z toward the viewer: Omnidata / Marigold style)

A wrong convention would silently score every model against flipped truth, so the import checks
that most valid truth normals face the camera after conversion and refuses the file otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from evals.importers.common import BenchmarkError, Imported, read_npy, read_rgb, require, same_size

CONVENTIONS = {"dsine": (-1.0, -1.0, -1.0), "opencv": (1.0, 1.0, 1.0), "opengl": (1.0, -1.0, -1.0)}
MIN_FACING = 0.5  # share of valid truth pixels that must face the camera after conversion


def read_normal_file(path: Path) -> np.ndarray:
    """(H, W, 3) float32 file normals, all-NaN where the file has no truth."""
    if path.suffix.lower() == ".npy":
        n = read_npy(path, "normal map").astype(np.float32)
        if n.ndim != 3 or n.shape[2] != 3:
            raise BenchmarkError(f"{path}: normal map must be (H, W, 3), got {n.shape}")
        valid = np.isfinite(n).all(-1) & (np.abs(n).sum(-1) > 0)
    else:
        from PIL import Image

        require(path, "normal map")
        try:
            with Image.open(path) as im:
                arr = np.asarray(im)
        except (OSError, ValueError) as err:
            raise BenchmarkError(f"{path}: not a readable normal map PNG ({err})") from err
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise BenchmarkError(f"{path}: normal PNG must be 8-bit RGB, got shape {arr.shape} dtype {arr.dtype}")
        valid = arr.astype(np.int32).sum(-1) > 0  # DSINE: normal_mask = sum > 0
        n = arr.astype(np.float32) / 255.0 * 2.0 - 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        n = n / np.linalg.norm(n, axis=-1, keepdims=True)
    valid &= np.isfinite(n).all(-1)
    return np.where(valid[..., None], n, np.nan).astype(np.float32)


def camera_rays(shape: tuple[int, int], K: np.ndarray | None) -> np.ndarray:
    """Per-pixel viewing directions (OpenCV); the optical axis everywhere when K is unknown."""
    h, w = shape
    if K is None:
        return np.broadcast_to(np.array([0.0, 0.0, 1.0], np.float32), (h, w, 3))
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    return np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1).astype(np.float32)


def check_facing(n: np.ndarray, K: np.ndarray | None, path: Path, convention: str) -> float:
    """Share of valid normals facing the camera; BenchmarkError naming the file when under MIN_FACING."""
    valid = np.isfinite(n).all(-1)
    if not valid.any():
        raise BenchmarkError(f"{path}: no valid normal (all pixels are zero / NaN)")
    facing = float(np.mean(np.einsum("hwc,hwc->hw", n, camera_rays(n.shape[:2], K))[valid] < 0))
    if facing < MIN_FACING:
        raise BenchmarkError(f"{path}: only {facing:.0%} of the truth normals face the camera under "
                             f"convention={convention}; the file's convention is another one of {sorted(CONVENTIONS)}")
    return facing


def dsine_normals(src: Path, convention: str = "dsine") -> Iterator[Imported]:
    """Every `*_img.png|jpg` under SRC with its `_normal.png|npy` (and `_intrins.npy` when present)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {sorted(CONVENTIONS)}, got {convention!r}")
    sign = np.array(CONVENTIONS[convention], np.float32)
    images = sorted(p for ext in ("png", "jpg") for p in src.rglob(f"*_img.{ext}"))
    if not images:
        raise BenchmarkError(f"{src}: no '*_img.png' files (DSINE layout: <dir>/<name>_img.png, <name>_normal.png)")
    for img_path in images:
        base = img_path.name[:img_path.name.rindex("_img")]
        png, npy = img_path.with_name(base + "_normal.png"), img_path.with_name(base + "_normal.npy")
        normal_path = png if png.exists() or not npy.exists() else npy
        intrins_path = img_path.with_name(base + "_intrins.npy")
        K = None
        if intrins_path.exists():
            K = read_npy(intrins_path, "intrinsics").astype(np.float64)
            if K.shape != (3, 3):
                raise BenchmarkError(f"{intrins_path}: intrinsics must be 3x3, got {K.shape}")
        rgb = read_rgb(img_path)
        n = read_normal_file(require(normal_path, "the DSINE normal map (<name>_normal.png or .npy)")) * sign
        same_size(rgb, n, normal_path)
        facing = check_facing(n, K, normal_path, convention)
        stem = str(img_path.relative_to(src).with_name(base)).replace("/", "_")
        extra = {"normal_convention": convention, "facing_fraction": round(facing, 4)}
        if K is not None:
            extra["K"] = K.tolist()
        yield Imported(stem, "normals", rgb, n, {"rgb": str(img_path), "normals": str(normal_path)}, extra)


def diode_normals(src: Path, scene_type: str = "indoors", convention: str = "dsine") -> Iterator[Imported]:
    """DIODE's `<name>_normal.npy` (zero vectors = no truth) beside `<name>.png`, under an
    `indoors` / `outdoors` directory (DIODE's release) or `indoor` / `outdoor` (Marigold's copy)."""
    if scene_type not in ("indoors", "outdoors", "all"):
        raise ValueError(f"scene_type must be one of ['indoors', 'outdoors', 'all'], got {scene_type!r}")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {sorted(CONVENTIONS)}, got {convention!r}")
    sign = np.array(CONVENTIONS[convention], np.float32)
    found = sorted(src.rglob("*_normal.npy"))
    if scene_type != "all":
        found = [p for p in found if {scene_type, scene_type[:-1]} & set(p.relative_to(src).parts)]
    if not found:
        raise BenchmarkError(f"{src}: no DIODE '*_normal.npy' files under a {scene_type!r} directory "
                             f"(layout: val/{scene_type}/<scene>/<scan>/<name>.png + <name>_normal.npy)")
    for normal_path in found:
        base = normal_path.name[:-len("_normal.npy")]
        rgb_path = normal_path.with_name(base + ".png")
        rgb = read_rgb(rgb_path)
        n = read_normal_file(normal_path) * sign
        same_size(rgb, n, normal_path)
        facing = check_facing(n, None, normal_path, convention)
        stem = str(normal_path.relative_to(src).with_name(base)).replace("/", "_")
        yield Imported(stem, "normals", rgb, n, {"rgb": str(rgb_path), "normals": str(normal_path)},
                       {"normal_convention": convention, "facing_fraction": round(facing, 4)})
