"""Pinhole camera math in numpy (no Blender): intrinsics, poses, projection, depth conversions.

Conventions (docs/design.md): OpenCV camera frame (x right, y down, z forward); world frame z up;
`K` is 3x3 in pixels; extrinsics are world -> camera 4x4. Pixel (row i, column j) covers
[j, j+1) x [i, i+1) in image coordinates, so its center is (j + 0.5, i + 0.5) and the
principal point of a centered sensor is (W / 2, H / 2).
"""

from __future__ import annotations

import numpy as np

FULL_FRAME_WIDTH_MM = 36.0  # "35 mm equivalent" focal lengths refer to a 36 x 24 mm sensor


def intrinsics(width: int, height: int, focal_mm: float, sensor_width_mm: float = FULL_FRAME_WIDTH_MM) -> np.ndarray:
    """K for square pixels, a centered principal point and a sensor `sensor_width_mm` wide."""
    if width <= 0 or height <= 0 or focal_mm <= 0 or sensor_width_mm <= 0:
        raise ValueError(f"intrinsics: need positive sizes, got {width}x{height}, f={focal_mm} mm")
    f = focal_mm / sensor_width_mm * width
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = (0.0, 0.0, 1.0)) -> np.ndarray:
    """World -> camera (OpenCV) 4x4 for a camera at `eye` looking at `target`."""
    eye, target, up = (np.asarray(v, np.float64) for v in (eye, target, up))
    z = target - eye
    if np.linalg.norm(z) < 1e-12:
        raise ValueError("look_at: eye and target coincide")
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("look_at: viewing direction is parallel to `up`")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)  # points down in the image when `up` is up
    rot = np.stack([x, y, z])  # rows: camera axes in world coordinates
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = -rot @ eye
    return out


def camera_center(world_to_camera: np.ndarray) -> np.ndarray:
    """Camera position in world coordinates."""
    rot, t = world_to_camera[:3, :3], world_to_camera[:3, 3]
    return -rot.T @ t


def pixel_ray_axes(K: np.ndarray, height: int, width: int, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """The x (1, W) and y (H, 1) components of the z = 1 rays through pixel centers.

    Broadcast them instead of building the (H, W, 3) array of `pixel_rays` in hot paths
    (square pixels, no skew, as every K here has).
    """
    x = ((np.arange(width, dtype=dtype) + 0.5 - K[0, 2]) / K[0, 0])[None, :]
    y = ((np.arange(height, dtype=dtype) + 0.5 - K[1, 2]) / K[1, 1])[:, None]
    return x, y


def pixel_rays(K: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 3) camera-frame ray directions through pixel centers, scaled so that z = 1.

    With z = 1, the ray parameter of a hit *is* its planar depth.
    """
    x, y = pixel_ray_axes(K, height, width)
    return np.stack(np.broadcast_arrays(x, y, np.ones((height, width))), axis=-1)


def z_to_distance(z: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Planar depth (H, W) -> distance along each pixel's ray from the camera center."""
    rays = pixel_rays(K, *z.shape)
    return z * np.linalg.norm(rays, axis=-1)


def distance_to_z(distance: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Inverse of `z_to_distance`."""
    rays = pixel_rays(K, *distance.shape)
    return distance / np.linalg.norm(rays, axis=-1)


def project(points: np.ndarray, K: np.ndarray, world_to_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points (N, 3) -> pixel coordinates (N, 2) as (x, y) and planar depth (N,)."""
    pts = np.asarray(points, np.float64)
    cam = pts @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (cam @ K.T)[:, :2] / z[:, None]
    return uv, z
