"""Procedural shapes: closed, outward, unit-box meshes; exact volumes where analytic; clear errors."""

import math

import numpy as np
import pytest

from render import sampling, shapes


def _components(faces: np.ndarray, n_vertices: int) -> list[np.ndarray]:
    parent = np.arange(n_vertices)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, c in faces:
        for u, v in ((a, b), (b, c)):
            ru, rv = find(u), find(v)
            if ru != rv:
                parent[ru] = rv
    roots = np.array([find(f[0]) for f in faces])
    return [faces[roots == r] for r in np.unique(roots)]


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6)


def assert_closed_outward(mesh: shapes.Mesh, name: str) -> None:
    """Every directed edge once, its reverse once (watertight, consistently oriented), per part
    positive volume (normals point out)."""
    f = mesh.faces
    edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    keys = edges[:, 0] * (len(mesh.vertices) + 1) + edges[:, 1]
    rev = edges[:, 1] * (len(mesh.vertices) + 1) + edges[:, 0]
    uniq, counts = np.unique(keys, return_counts=True)
    assert counts.max() == 1, f"{name}: a directed edge is used twice (flipped or duplicated face)"
    assert np.isin(rev, uniq).all(), f"{name}: an edge has no opposite (hole in the surface)"
    for part in _components(f, len(mesh.vertices)):
        assert signed_volume(mesh.vertices, part) > 0, f"{name}: a part faces inward"


def _variants(name: str, n: int = 4) -> list[dict]:
    rng = np.random.default_rng(7)
    info = shapes.info(name)
    lows = {k: p.lo for k, p in info.params.items()}
    highs = {k: p.hi for k, p in info.params.items()}
    return [{}, lows, highs] + [shapes.sample_params(name, rng) for _ in range(n)]


@pytest.mark.parametrize("name", shapes.names())
def test_every_shape_is_a_valid_unit_mesh(name):
    for params in _variants(name):
        mesh = shapes.build(name, params)
        v, f = mesh.vertices, mesh.faces
        assert v.dtype == np.float64 and f.dtype == np.int64 and v.shape[1] == 3 and f.shape[1] == 3
        assert np.isfinite(v).all() and f.min() >= 0 and f.max() < len(v)
        extent = v.max(0) - v.min(0)
        flat = name == "plane"
        np.testing.assert_allclose(v.min(0)[:2], -0.5, atol=1e-12)
        np.testing.assert_allclose(v.max(0)[:2], 0.5, atol=1e-12)
        assert extent[2] == pytest.approx(0.0 if flat else 1.0, abs=1e-12)
        area = np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1) / 2
        assert area.min() > 1e-9, f"{name} {params}: degenerate triangle"
        if shapes.info(name).closed:
            assert_closed_outward(mesh, f"{name} {params}")


def test_enough_procedural_shapes_and_sampling_only_uses_registered_ones():
    procedural = [n for n in shapes.names() if shapes.info(n).category == "procedural"]
    assert len(procedural) >= 20
    assert set(shapes.PRIMITIVES) <= set(shapes.names())
    classes = set(sampling.INDOOR_FURNITURE) | set(sampling.SMALL_OBJECTS) | set(sampling.OUTDOOR_OBJECTS)
    used = {sampling.SHAPE_OF.get(c, c) for c in classes}
    assert used <= set(shapes.names())


@pytest.mark.parametrize("name, volume, rtol", [
    ("box", 1.0, 1e-12),
    ("wedge", 0.5, 1e-12),  # a right triangle prism
    ("pyramid", 1 / 3, 1e-12),  # square base, unit box
    ("cylinder", math.pi / 4 * (48 / (2 * math.pi)) * math.sin(2 * math.pi / 48), 1e-9),  # inscribed 48-gon
    ("sphere", math.pi / 6, 0.01),  # tessellation loses < 1%
])
def test_analytic_volumes(name, volume, rtol):
    mesh = shapes.build(name)
    assert signed_volume(mesh.vertices, mesh.faces) == pytest.approx(volume, rel=rtol)


def test_stairs_volume_and_sphere_radius():
    for steps in (3, 7, 15):
        m = shapes.build("stairs", {"steps": steps})
        assert signed_volume(m.vertices, m.faces) == pytest.approx((steps + 1) / (2 * steps), rel=1e-12)
    s = shapes.build("sphere")
    np.testing.assert_allclose(np.linalg.norm(s.vertices, axis=1), 0.5, rtol=1e-12)


def test_deterministic_params_and_meshes():
    for name in shapes.names():
        a = shapes.sample_params(name, np.random.default_rng(3))
        b = shapes.sample_params(name, np.random.default_rng(3))
        assert a == b
        m1, m2 = shapes.build(name, a), shapes.build(name, b)
        assert np.array_equal(m1.vertices, m2.vertices) and np.array_equal(m1.faces, m2.faces)
    r1 = shapes.build("rock", {"seed": 1})
    r2 = shapes.build("rock", {"seed": 2})
    assert not np.allclose(r1.vertices, r2.vertices)  # the seed changes the rock


def test_bad_names_and_params_are_named():
    with pytest.raises(ValueError, match="unknown shape 'blob'.*known shapes"):
        shapes.build("blob")
    with pytest.raises(ValueError, match=r"table: unknown parameter\(s\) \['legz'\]"):
        shapes.build("table", {"legz": 3})
    with pytest.raises(ValueError, match=r"stairs.steps must be an integer in \[3, 15\], got 2.5"):
        shapes.build("stairs", {"steps": 2.5})
    with pytest.raises(ValueError, match=r"gear.depth must be a number in \[0.08, 0.25\], got nan"):
        shapes.build("gear", {"depth": float("nan")})
    with pytest.raises(ValueError, match="already registered"):
        shapes.register(shapes.info("box"))


def test_triangulate_concave_polygon():
    # an L shape: ear clipping must not emit triangles outside it
    poly = np.array([(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)], float)
    tris = shapes.triangulate(poly)
    assert len(tris) == 4
    area = sum(abs(shapes.polygon_area(poly[t])) for t in tris)
    assert area == pytest.approx(3.0)
    with pytest.raises(ValueError, match="not simple"):
        shapes.triangulate(np.array([(0, 0), (1, 1), (1, 0), (0, 1)], float))  # a bow tie
