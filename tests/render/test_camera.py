import numpy as np
import pytest

from render import analytic, camera


def test_intrinsics_35mm_equivalent():
    K = camera.intrinsics(640, 480, 36.0)
    assert K[0, 0] == pytest.approx(640.0) and K[1, 1] == pytest.approx(640.0)
    assert (K[0, 2], K[1, 2]) == (320.0, 240.0)
    with pytest.raises(ValueError):
        camera.intrinsics(0, 480, 36.0)


def test_look_at_is_opencv():
    ext = camera.look_at((0, 0, 1), (5, 0, 1))  # looking along world +x, z up
    rot = ext[:3, :3]
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(rot[2], [1, 0, 0], atol=1e-12)   # camera z = forward
    np.testing.assert_allclose(rot[1], [0, 0, -1], atol=1e-12)  # camera y = down
    np.testing.assert_allclose(rot[0], [0, -1, 0], atol=1e-12)  # camera x = right (world -y)
    np.testing.assert_allclose(camera.camera_center(ext), [0, 0, 1], atol=1e-12)


def test_projection_of_known_points():
    K = camera.intrinsics(100, 80, 50.0)
    ext = camera.look_at((0, 0, 0), (0, 10, 0))
    uv, z = camera.project(np.array([[0, 10, 0], [1, 10, 0], [0, 5, 1]]), K, ext)
    np.testing.assert_allclose(uv[0], [50, 40])
    f = K[0, 0]
    np.testing.assert_allclose(uv[1], [50 + f * 0.1, 40])
    np.testing.assert_allclose(uv[2], [50, 40 - f * 0.2])
    np.testing.assert_allclose(z, [10, 10, 5])


def test_z_distance_round_trip():
    K = camera.intrinsics(64, 48, 20.0)
    z = np.random.default_rng(0).uniform(0.5, 30, (48, 64))
    dist = camera.z_to_distance(z, K)
    assert np.all(dist >= z)
    np.testing.assert_allclose(camera.distance_to_z(dist, K), z, rtol=1e-12)
    # the center ray (between the four middle pixels) is nearly the optical axis
    assert dist[24, 32] / z[24, 32] == pytest.approx(1.0, abs=1e-3)


def test_analytic_plane_and_sphere():
    K = camera.intrinsics(64, 64, 35.0)
    ext = camera.look_at((0, 0, 0), (0, 1, 0))
    wall = analytic.Box((-50, 4.0, -50), (50, 5.0, 50))  # its near face: a plane 4 m ahead
    truth = analytic.render(analytic.AnalyticScene([wall]), K, ext, 64, 64)
    np.testing.assert_allclose(truth.depth, 4.0, rtol=1e-6)  # planar depth is constant on a fronto-parallel plane
    np.testing.assert_allclose(truth.normals[..., 2], -1.0, atol=1e-6)
    ball = analytic.Sphere((0, 3.0, 0), 1.0)
    truth = analytic.render(analytic.AnalyticScene([ball]), K, ext, 64, 64)
    center = truth.depth[31:33, 31:33]
    assert np.all(np.abs(center - 2.0) < 2e-3)  # front of the ball at 2 m
    assert np.isinf(truth.depth[0, 0]) and truth.instance[0, 0] == 0 and truth.instance[32, 32] == 1
    n = truth.normals[truth.instance == 1]
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
    assert np.all(n[:, 2] < 0.05)  # facing the camera


def test_demo_scenes_are_seeded():
    a, _, _ = analytic.demo_room(32, 32, seed=4)
    b, _, _ = analytic.demo_room(32, 32, seed=4)
    np.testing.assert_array_equal(a.depth, b.depth)
    assert np.isfinite(a.depth).all()
    out, _, _ = analytic.demo_outdoor(32, 32, seed=4)
    assert np.isinf(out.depth).any() and np.isfinite(out.depth).any()
